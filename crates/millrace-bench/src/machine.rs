//! The machine the figures were measured on: core count, CPU model, and how busy it was.

/// Cores available to this process (`std::thread::available_parallelism`, 1 if unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The CPU model from `/proc/cpuinfo`, where the OS has one.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

/// One line describing the machine.
pub fn describe() -> String {
    format!(
        "{} cores available, CPU: {}, 1-minute load average: {}",
        cores(),
        cpu_model().unwrap_or_else(|| "unknown".to_owned()),
        load_average().map_or_else(|| "unknown".to_owned(), |load| format!("{load:.2}"))
    )
}

/// The 1-minute load average from `/proc/loadavg`, where the OS has one: on a shared
/// machine, other work running beside the benchmark shows here.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
