//! `--metrics-addr HOST:PORT`: the run's counters at `http://HOST:PORT/metrics` for
//! Prometheus, served by the `millrace-prometheus` crate (names and types in its docs and
//! in this crate's README).
//!
//! The address is bound before the pipeline starts, so that one in use is a usage error
//! (exit 2) before anything runs; [`crate::supervise`] hands the server the running
//! pipeline, then its final report, which it serves until the command exits.

use millrace_prometheus::MetricsServer;

/// Listens on `addr` for the pipeline `name`, and says where on stderr: unless `quiet`,
/// and always for port 0, whose port nothing else tells (`--quiet` hid it).
///
/// # Errors
///
/// The address does not parse, does not resolve, or cannot be listened on; the message
/// names it.
pub fn bind(addr: &str, name: &str, quiet: bool) -> Result<MetricsServer, String> {
    let server =
        MetricsServer::bind(addr, name).map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
    let any_port = addr.rsplit_once(':').is_some_and(|(_, port)| port == "0");
    if !quiet || any_port {
        eprintln!(
            "millrace: metrics at http://{}/metrics",
            server.local_addr()
        );
    }
    Ok(server)
}
