//! Following a growing file, as `tail -f` does: the reader behind `lines` with
//! `follow = true`.
//!
//! [`Follow`] reads the file to its end and then, instead of ending, looks again every
//! [`POLL`] for what was appended since. A line cut short at the end of the file is held
//! until its end arrives; a file truncated in place (`copytruncate` log rotation) is read
//! again from its start. It follows the file it opened, not the name: a file renamed away
//! and replaced is not reopened (`tail -f`, not `tail -F`).
//!
//! The reader never ends by itself: the source is read on a thread of its own
//! ([`super::Opened::waits`]), so each line goes down the pipeline as it is read, and
//! Ctrl-C ends the run at once, whether or not a line is coming.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

/// How often the end of a followed file is looked at again.
pub const POLL: Duration = Duration::from_millis(25);

/// A file read as it grows.
pub struct Follow {
    file: File,
    /// Bytes read from the start.
    pos: u64,
}

impl Follow {
    /// Follows `file`, from its start.
    pub fn new(file: File) -> Follow {
        Follow { file, pos: 0 }
    }
}

impl Read for Follow {
    /// Reads what is there; at the end, waits for more (never returns 0 for a non-empty
    /// `buf`).
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.file.read(buf)?;
            if n > 0 {
                self.pos += n as u64;
                return Ok(n);
            }
            if self.file.metadata()?.len() < self.pos {
                // Truncated in place: what is there now is new.
                self.pos = self.file.seek(SeekFrom::Start(0))?;
                continue;
            }
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    #[test]
    fn appended_lines_are_read_and_a_cut_line_waits_for_its_end() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("log");
        std::fs::write(&path, "one\ntw").expect("write");
        let mut lines = BufReader::new(Follow::new(File::open(&path).expect("open")));
        let mut line = String::new();
        lines.read_line(&mut line).expect("read");
        assert_eq!(line, "one\n");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(POLL * 2);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("append");
            f.write_all(b"o\nthree\n").expect("append");
        });
        line.clear();
        lines.read_line(&mut line).expect("read");
        assert_eq!(line, "two\n");
        line.clear();
        lines.read_line(&mut line).expect("read");
        assert_eq!(line, "three\n");
        writer.join().expect("the writer");
    }

    #[test]
    fn a_file_truncated_in_place_is_read_again_from_its_start() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("log");
        std::fs::write(&path, "first\nsecond\n").expect("write");
        let mut lines = BufReader::new(Follow::new(File::open(&path).expect("open")));
        let mut line = String::new();
        for want in ["first\n", "second\n"] {
            line.clear();
            lines.read_line(&mut line).expect("read");
            assert_eq!(line, want);
        }
        // copytruncate: the same file, emptied, then written again (shorter than before).
        std::fs::write(&path, "new\n").expect("truncate and write");
        line.clear();
        lines.read_line(&mut line).expect("read");
        assert_eq!(line, "new\n");
    }
}
