//! The `/metrics` endpoint: a small HTTP server (`tiny_http`) on a thread of its own that
//! renders the pipeline's report at each scrape: a live [`Handle::snapshot`] while it runs,
//! the final report once [`MetricsServer::finish`] hands it over.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use millrace::{Handle, Report};
use tiny_http::{Header, Method, Response, Server};

use crate::encode::render;

/// The content type of the OpenMetrics text format, which Prometheus negotiates.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a scrape reads: nothing yet, the running pipeline, or its final report.
enum Source {
    Waiting,
    Live(Handle),
    Finished(Box<Report>),
}

struct Shared {
    pipeline: String,
    source: Mutex<Source>,
}

impl Shared {
    /// The text of the metrics, or `None` before a pipeline is watched.
    fn render(&self) -> Option<String> {
        let report = match &*self.source.lock().unwrap_or_else(PoisonError::into_inner) {
            Source::Waiting => return None,
            Source::Live(handle) => handle.snapshot(),
            Source::Finished(report) => (**report).clone(),
        };
        Some(render(&self.pipeline, &report))
    }
}

/// Serves a pipeline's metrics at `http://ADDR/metrics` until dropped.
///
/// # Examples
///
/// ```
/// use millrace::Pipeline;
/// use millrace_prometheus::MetricsServer;
///
/// let running = Pipeline::source(0..1000u64).map("double", |x| 2 * x).for_each(|_| {}).spawn()?;
/// let server = MetricsServer::serve("127.0.0.1:0", "demo", running.handle())?;
/// println!("scrape http://{}/metrics", server.local_addr());
/// let finished = running.join()?;
/// server.finish(&finished.report); // scrapes now read the final counts
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MetricsServer {
    server: Arc<Server>,
    shared: Arc<Shared>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Listens on `addr` (port 0: any free port, see [`local_addr`](Self::local_addr)) and
    /// serves the metrics of the pipeline `handle` steers, labelled `pipeline="NAME"`.
    ///
    /// # Errors
    ///
    /// The address does not resolve, or cannot be listened on (in use, not allowed); the
    /// error names the address.
    pub fn serve(
        addr: impl ToSocketAddrs + fmt::Debug,
        pipeline: &str,
        handle: Handle,
    ) -> io::Result<Self> {
        let server = Self::bind(addr, pipeline)?;
        server.watch(handle);
        Ok(server)
    }

    /// Listens on `addr` before the pipeline starts (so that a bad address is found before
    /// anything runs); scrapes get `503 Service Unavailable` until [`watch`](Self::watch).
    ///
    /// # Errors
    ///
    /// As [`serve`](Self::serve). The error keeps the kind the OS gave
    /// ([`AddrInUse`](io::ErrorKind::AddrInUse) for a port taken, say), or
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for an address that resolves to none.
    pub fn bind(addr: impl ToSocketAddrs + fmt::Debug, pipeline: &str) -> io::Result<Self> {
        let addrs: Vec<SocketAddr> = match addr.to_socket_addrs() {
            Ok(addrs) => addrs.collect(),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot serve metrics on {addr:?}: {e}"),
                ))
            }
        };
        let Some(shown) = addrs.first().map(ToString::to_string) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot serve metrics on {addr:?}: it resolves to no address"),
            ));
        };
        let server = Server::http(&*addrs).map_err(|e| {
            // (tiny_http boxes the listener's `io::Error`: its kind, `AddrInUse` say, is
            // what a caller matches on.)
            let kind = e
                .downcast_ref::<io::Error>()
                .map_or(io::ErrorKind::Other, io::Error::kind);
            io::Error::new(kind, format!("cannot serve metrics on {shown}: {e}"))
        })?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "not an IP address"))?;
        let server = Arc::new(server);
        let shared = Arc::new(Shared {
            pipeline: pipeline.to_owned(),
            source: Mutex::new(Source::Waiting),
        });
        let thread = std::thread::Builder::new()
            .name("millrace-metrics".into())
            .spawn({
                let server = Arc::clone(&server);
                let shared = Arc::clone(&shared);
                move || answer(&server, &shared)
            })?;
        Ok(MetricsServer {
            server,
            shared,
            addr,
            thread: Some(thread),
        })
    }

    /// From now on, scrapes read the pipeline `handle` steers, live.
    pub fn watch(&self, handle: Handle) {
        *self
            .shared
            .source
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Source::Live(handle);
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, scrapes read `report` (the final one): the counts stay where the run
    /// ended for a last scrape.
    pub fn finish(&self, report: &Report) {
        *self
            .shared
            .source
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Source::Finished(Box::new(report.clone()));
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers requests until the server is unblocked: `GET /metrics` with the text (503
/// before a pipeline is watched), anything else with 404 (or 405 for another method).
fn answer(server: &Server, shared: &Shared) {
    while let Ok(request) = server.recv() {
        let path = request.url().split('?').next().unwrap_or("");
        let response = match (request.method(), path) {
            (Method::Get | Method::Head, "/metrics") => match shared.render() {
                Some(text) => {
                    // A constant, valid header.
                    let header =
                        Header::from_bytes("Content-Type", CONTENT_TYPE).expect("a valid header");
                    Response::from_string(text).with_header(header)
                }
                None => Response::from_string("the pipeline has not started yet\n")
                    .with_status_code(503),
            },
            (Method::Get | Method::Head, _) => {
                Response::from_string("not found: metrics are at /metrics\n").with_status_code(404)
            }
            _ => Response::from_string("only GET /metrics\n").with_status_code(405),
        };
        // The scraper may have gone away: nothing to do about it.
        let _ = request.respond(response);
    }
}
