//! The units of work the workloads are made of, exactly as `bench-workloads.md` defines them:
//! [`spin`], the unit of CPU work, and the 64-bit FNV-1a hash of W5.

/// The unit of CPU work: `units × 200` rounds of a multiply-add-xorshift on `x`.
///
/// Its result must feed the checksum, so the compiler cannot remove the work.
#[inline]
pub fn spin(units: u32, x: u64) -> u64 {
    let mut x = x;
    for _ in 0..units * 200 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x ^= x >> 33;
    }
    x
}

/// The 64-bit FNV-1a hash of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn spin_of_zero_units_is_the_identity() {
        assert_eq!(spin(0, 42), 42);
    }
}
