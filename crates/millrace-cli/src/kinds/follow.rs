//! Following a growing file, as `tail -f` does: the reader behind `lines` with
//! `follow = true`.
//!
//! [`Follow`] reads the file to its end and then, instead of ending, looks again every
//! [`POLL`] for what was appended since. A line cut short at the end of the file is held
//! until its end arrives (at Ctrl-C, a line still without its end is not read: it may be
//! half written); a file truncated in place (`copytruncate` log rotation) is read again
//! from its start, and a line it held without its end is dropped (it never got one). It follows the file it opened, not the name: a file renamed away and
//! replaced is not reopened (`tail -f`, not `tail -F`).
//!
//! A truncation is seen when the file is shorter than what was read, or, for a file
//! truncated and written past that length again between two looks, when the bytes just
//! before the read position are no longer the ones read there ([`TAIL`] of them, checked
//! each time new bytes appear after a wait). Without the second check such a file was read
//! on from the old position: its first new lines were lost and a fragment of a line came
//! out as a line of its own.
//!
//! The reader never ends by itself: the source is read on a thread of its own
//! ([`super::Opened::waits`]), so each line goes down the pipeline as it is read, and
//! Ctrl-C ends the run at once, whether or not a line is coming.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

/// How often the end of a followed file is looked at again.
pub const POLL: Duration = Duration::from_millis(25);

/// How many of the last bytes read are kept, to see a file rewritten in place.
pub const TAIL: usize = 64;

/// A file read as it grows.
pub struct Follow {
    file: File,
    /// Bytes read from the start.
    pos: u64,
    /// The last bytes read (at most [`TAIL`]), which end at `pos`.
    tail: Vec<u8>,
    /// Whether the last read found the end of the file (new bytes may belong to a file
    /// rewritten since).
    waited: bool,
    /// Not a regular file (a named pipe, a device): read as the stream it is, to its end.
    /// (Following one failed the run with "Illegal seek".)
    stream: bool,
    /// Bytes read and not yet handed out: whole lines (the first `whole` bytes), then the
    /// start of a line still without its end, held here until the end arrives. A
    /// truncation drops it: it was the old file's. (Held in the reader above, it was glued
    /// onto the new file's first line: `half-written-oldbrand new line`.)
    staged: Vec<u8>,
    whole: usize,
}

impl Follow {
    /// Follows `file`, from its start.
    pub fn new(file: File) -> Follow {
        let stream = file.metadata().map_or(true, |m| !m.file_type().is_file());
        Follow {
            file,
            pos: 0,
            tail: Vec::with_capacity(TAIL),
            waited: false,
            stream,
            staged: Vec::new(),
            whole: 0,
        }
    }

    /// Whether the bytes before the read position differ from those read there: the file
    /// was truncated and written again past the position. Leaves the position as it was.
    fn rewritten(&mut self) -> std::io::Result<bool> {
        if self.tail.is_empty() {
            return Ok(false);
        }
        let mut there = vec![0; self.tail.len()];
        self.file
            .seek(SeekFrom::Start(self.pos - self.tail.len() as u64))?;
        let read = self.file.read_exact(&mut there);
        self.file.seek(SeekFrom::Start(self.pos))?;
        match read {
            Ok(()) => Ok(there != self.tail),
            // Shorter than it was: truncated.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Starts again from the start of the file, dropping the line it held without its end.
    fn restart(&mut self) -> std::io::Result<()> {
        self.pos = self.file.seek(SeekFrom::Start(0))?;
        self.tail.clear();
        self.staged.drain(self.whole..);
        Ok(())
    }

    /// Hands out up to `buf.len()` bytes of the whole lines staged; 0 if there are none.
    fn hand_out(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.whole);
        buf[..n].copy_from_slice(&self.staged[..n]);
        self.staged.drain(..n);
        self.whole -= n;
        n
    }

    /// Keeps the last bytes of `read` (just read) in `tail`.
    fn remember(&mut self, read: &[u8]) {
        let keep = read.len().min(TAIL);
        let drop = (self.tail.len() + keep).saturating_sub(TAIL);
        self.tail.drain(..drop);
        self.tail.extend_from_slice(&read[read.len() - keep..]);
    }
}

impl Read for Follow {
    /// Reads what is there; at the end, waits for more (never returns 0 for a non-empty
    /// `buf`, but for a stream at its end).
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.stream {
            return self.file.read(buf);
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let handed = self.hand_out(buf);
            if handed > 0 {
                return Ok(handed);
            }
            if std::mem::take(&mut self.waited) && self.rewritten()? {
                // Truncated (and perhaps written past the old end again) since the last look.
                self.restart()?;
            }
            let n = self.file.read(&mut chunk)?;
            if n > 0 {
                self.pos += n as u64;
                self.remember(&chunk[..n]);
                self.staged.extend_from_slice(&chunk[..n]);
                if let Some(end) = chunk[..n].iter().rposition(|&b| b == b'\n') {
                    self.whole = self.staged.len() - n + end + 1;
                }
                continue;
            }
            if self.file.metadata()?.len() < self.pos {
                // Truncated in place: what is there now is new.
                self.restart()?;
                continue;
            }
            self.waited = true;
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// A file `log` in a temporary directory, holding `text`, followed from its start.
    fn following(text: &str) -> (tempfile::TempDir, std::path::PathBuf, BufReader<Follow>) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("log");
        std::fs::write(&path, text).expect("write");
        let lines = BufReader::new(Follow::new(File::open(&path).expect("open")));
        (dir, path, lines)
    }

    #[test]
    fn appended_lines_are_read_and_a_cut_line_waits_for_its_end() {
        let (_dir, path, mut lines) = following("one\ntw");
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
        let (_dir, path, mut lines) = following("first\nsecond\n");
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

    #[test]
    fn a_file_truncated_and_written_past_the_old_end_between_two_looks_is_read_from_its_start() {
        // It used to be read on from the old position: the first new lines were lost and
        // a fragment of one came out as a line (a new user's trial).
        let (_dir, path, mut lines) = following("ERR first-line-of-some-length\nERR second\n");
        let mut line = String::new();
        for want in ["ERR first-line-of-some-length\n", "ERR second\n"] {
            line.clear();
            lines.read_line(&mut line).expect("read");
            assert_eq!(line, want);
        }
        // The reader reaches the end and waits: the file is rewritten, longer, meanwhile.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(POLL * 2);
            let new: String = (0..20).map(|i| format!("ERR new {i:03}\n")).collect();
            std::fs::write(&path, new).expect("truncate and write longer");
        });
        for i in 0..20 {
            line.clear();
            lines.read_line(&mut line).expect("read");
            assert_eq!(line, format!("ERR new {i:03}\n"));
        }
        writer.join().expect("the writer");
    }

    #[test]
    fn a_line_cut_short_when_the_file_is_truncated_is_dropped_not_joined_to_the_next() {
        // The held start of a line was glued onto the truncated file's first line:
        // `half-written-oldbrand new line` (a new user's trial).
        let (_dir, path, mut lines) = following("first\nhalf-written-old");
        let mut line = String::new();
        lines.read_line(&mut line).expect("read");
        assert_eq!(line, "first\n");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(POLL * 3);
            std::fs::write(&path, "brand new line\n").expect("truncate and write");
        });
        line.clear();
        lines.read_line(&mut line).expect("read");
        assert_eq!(line, "brand new line\n");
        writer.join().expect("the writer");
    }

    #[test]
    fn appending_after_a_wait_is_not_taken_for_a_rewrite() {
        let (_dir, path, mut lines) = following("a\n");
        let mut line = String::new();
        lines.read_line(&mut line).expect("read");
        let writer = std::thread::spawn(move || {
            for i in 0..5 {
                std::thread::sleep(POLL * 2);
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .expect("append");
                f.write_all(format!("line {i}\n").as_bytes())
                    .expect("append");
            }
        });
        for i in 0..5 {
            line.clear();
            lines.read_line(&mut line).expect("read");
            assert_eq!(line, format!("line {i}\n"));
        }
        writer.join().expect("the writer");
    }

    #[cfg(unix)]
    #[test]
    fn a_named_pipe_is_read_as_the_stream_it_is() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || std::fs::write(path, "one\ntwo\n").expect("write"))
        };
        let lines: Vec<String> = BufReader::new(Follow::new(File::open(&path).expect("open")))
            .lines()
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(lines, ["one", "two"]);
        writer.join().expect("the writer");
    }
}
