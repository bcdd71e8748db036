//! A tiny HTTP/1.1 server for the `http` kind's tests.
//!
//! It listens on 127.0.0.1 on an ephemeral port and nowhere else, answers one connection
//! at a time (`Connection: close`), takes at most `max_requests` requests, and stops by
//! itself after `life` or when [`Server::finish`] (or drop) asks it to. What it answers is
//! up to the test: a status and a body for each path, or nothing at all (the connection is
//! held open unanswered until the server stops, for timeout tests).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a test's server answers a request for a path: `Some((status, body))`, or `None` to
/// hold the connection without answering.
pub(crate) type Answer = fn(&str) -> Option<(u16, String)>;

/// A running test server.
pub(crate) struct Server {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl Server {
    /// `http://127.0.0.1:PORT` followed by `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Stops the server and returns the paths it was asked for, in order.
    pub(crate) fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("the test server panicked"))
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

/// Reads a request head (up to 8 KiB) and returns its path.
fn read_path(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next()?.split_whitespace();
    (words.next()? == "GET").then_some(())?;
    words.next().map(str::to_owned)
}

/// Starts a server that answers with `answer`, takes at most `max_requests` requests, and
/// stops by itself after `life`.
pub(crate) fn serve(max_requests: usize, life: Duration, answer: Answer) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("the bound address").port();
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        let deadline = Instant::now() + life;
        let mut paths = Vec::new();
        let mut held = Vec::new();
        while paths.len() < max_requests
            && Instant::now() < deadline
            && !stopping.load(Ordering::Relaxed)
        {
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let Some(path) = read_path(&mut stream) else {
                continue;
            };
            match answer(&path) {
                Some((status, body)) => {
                    let response = format!(
                        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        reason(status),
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes());
                    let _ = stream.flush();
                }
                None => held.push(stream),
            }
            paths.push(path);
        }
        // Held connections close here, unanswered.
        while !held.is_empty() && Instant::now() < deadline && !stopping.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        paths
    });
    Server {
        port,
        stop,
        thread: Some(thread),
    }
}
