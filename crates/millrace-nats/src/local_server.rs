//! A `nats-server` of one's own, for tests, benchmarks and demos: JetStream on, on
//! 127.0.0.1 and a free port, with a store in a fresh temporary directory; stopped (and its
//! store removed) when dropped.
//!
//! ```no_run
//! let server = millrace_nats::local_server::LocalServer::start()?;
//! let broker = millrace_nats::Broker::connect(&server.url())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary: `$NATS_SERVER`, else `nats-server` on the `PATH` (Debian's package
/// installs `/usr/sbin/nats-server`, which is tried too).
pub fn server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return p.into();
    }
    let sbin = Path::new("/usr/sbin/nats-server");
    if sbin.exists() {
        return sbin.into();
    }
    "nats-server".into()
}

/// A running `nats-server` (see the module docs).
#[derive(Debug)]
pub struct LocalServer {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    /// The arguments after the address, port and store (JetStream and any others).
    extra: Vec<String>,
}

fn fresh_dir() -> io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "millrace-nats-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl LocalServer {
    /// Starts a server on a free port.
    ///
    /// # Errors
    ///
    /// When `nats-server` cannot be started or does not write its ports file within 20 s.
    pub fn start() -> io::Result<LocalServer> {
        LocalServer::start_with(&["-js"])
    }

    /// Starts a server on a free port with `args` (e.g. `["-js", "--user", "u", "--pass",
    /// "p"]`; without `-js`, JetStream is off).
    ///
    /// # Errors
    ///
    /// As [`start`](LocalServer::start).
    pub fn start_with(args: &[&str]) -> io::Result<LocalServer> {
        let dir = fresh_dir()?;
        let mut server = LocalServer {
            child: None,
            dir,
            port: 0,
            extra: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.launch(None)?;
        Ok(server)
    }

    /// Starts a server on `port` (to start one where a client already waits).
    ///
    /// # Errors
    ///
    /// As [`start`](LocalServer::start).
    pub fn start_on(port: u16) -> io::Result<LocalServer> {
        let dir = fresh_dir()?;
        let mut server = LocalServer {
            child: None,
            dir,
            port,
            extra: vec!["-js".to_owned()],
        };
        server.launch(Some(port))?;
        Ok(server)
    }

    fn launch(&mut self, port: Option<u16>) -> io::Result<()> {
        let ports_dir = self.dir.join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir)?;
        let port_arg = port.map_or("-1".to_owned(), |p| p.to_string());
        let child = Command::new(server_binary())
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-sd"])
            .arg(self.dir.join("store"))
            .args(&self.extra)
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot start {} ({e}): install it (`apt-get install nats-server`) or \
                         set NATS_SERVER",
                        server_binary().display()
                    ),
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(port) = read_port(&ports_dir) {
                self.port = port;
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nats-server wrote no ports file within 20 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops it with SIGTERM (a clean shutdown), waits, and starts it again on the same
    /// port and store.
    ///
    /// # Errors
    ///
    /// As [`start`](LocalServer::start).
    pub fn restart(&mut self) -> io::Result<()> {
        self.terminate();
        self.launch(Some(self.port))
    }

    /// SIGTERM, then wait (SIGKILL after 10 s).
    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The client port from the ports file nats-server writes (`{"nats":["nats://host:port"],…}`).
fn read_port(dir: &Path) -> Option<u16> {
    let entry = std::fs::read_dir(dir).ok()?.next()?.ok()?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    let rest = &text[text.find("\"nats\"")?..];
    let url = &rest[rest.find("nats://")? + "nats://".len()..];
    url[..url.find('"')?].rsplit(':').next()?.parse().ok()
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
