//! The connection to a NATS server: [`Broker::connect`] (or [`Broker::connect_retrying`],
//! which waits for a server that is not up yet and says so), the checks made on connecting
//! (reachable, JetStream on, version), credentials from the environment, and the [`Job`]
//! that namespaces one pipeline's edges on the server.
//!
//! The broker owns a small tokio runtime (two threads) that drives the client; millrace's
//! stages never run on it. Everything a part does on the network (pulling, publishing,
//! acking) runs there, and hands items to and from millrace's threads through channels.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::runtime::Runtime;

use crate::error::NatsError;

/// The environment variable naming a NATS `.creds` file (JWT + nkey seed).
pub const ENV_CREDS: &str = "MILLRACE_NATS_CREDS";
/// The environment variable holding a user name (with [`ENV_PASSWORD`]).
pub const ENV_USER: &str = "MILLRACE_NATS_USER";
/// The environment variable holding the password for [`ENV_USER`].
pub const ENV_PASSWORD: &str = "MILLRACE_NATS_PASSWORD";
/// The environment variable holding an authentication token.
pub const ENV_TOKEN: &str = "MILLRACE_NATS_TOKEN";

/// How to authenticate. Never printed: its `Debug` says only which kind it is.
#[derive(Clone, Default)]
pub enum Credentials {
    /// None (or whatever the URL carries).
    #[default]
    None,
    /// A `.creds` file.
    File(std::path::PathBuf),
    /// A user name and password.
    UserPassword(String, String),
    /// A token.
    Token(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credentials::None => "Credentials::None",
            Credentials::File(_) => "Credentials::File(..)",
            Credentials::UserPassword(..) => "Credentials::UserPassword(..)",
            Credentials::Token(_) => "Credentials::Token(..)",
        })
    }
}

impl Credentials {
    /// The credentials the environment names: [`ENV_CREDS`], else [`ENV_USER`] with
    /// [`ENV_PASSWORD`], else [`ENV_TOKEN`], else none.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        if let Some(path) = var(ENV_CREDS) {
            Credentials::File(path.into())
        } else if let Some(user) = var(ENV_USER) {
            Credentials::UserPassword(user, var(ENV_PASSWORD).unwrap_or_default())
        } else if let Some(token) = var(ENV_TOKEN) {
            Credentials::Token(token)
        } else {
            Credentials::None
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The server's URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// How to authenticate; [`Credentials::from_env`] by default.
    pub credentials: Credentials,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
}

impl BrokerConfig {
    /// Connects to `url` with the credentials the environment names.
    pub fn new(url: &str) -> Self {
        BrokerConfig {
            url: url.to_owned(),
            credentials: Credentials::from_env(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// `url` with any `user:password@` left out, for messages.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    if scheme.is_empty() {
        rest.to_owned()
    } else {
        format!("{scheme}://{rest}")
    }
}

/// A server version as `(major, minor)`, if it parses.
fn version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

struct Inner {
    /// Always `Some` until dropped.
    runtime: Option<Runtime>,
    js: jetstream::Context,
    url: String,
    server_version: String,
    warnings: Vec<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle may go on one of the runtime's own tasks: shut down without
        // waiting (a runtime cannot wait for itself).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A connection to a NATS server with JetStream, shared by every edge and part that use it
/// (cheap to clone).
///
/// ```no_run
/// use millrace_nats::Broker;
///
/// let broker = Broker::connect("nats://127.0.0.1:4222")?;
/// for w in broker.warnings() {
///     eprintln!("warning: {w}");
/// }
/// # Ok::<(), millrace_nats::NatsError>(())
/// ```
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("url", &self.inner.url)
            .field("server_version", &self.inner.server_version)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Connects to the server at `url`, with credentials from the environment.
    ///
    /// # Errors
    ///
    /// [`NatsError::Unreachable`] (with the URL and what to check),
    /// [`NatsError::Unauthorized`], [`NatsError::JetStreamDisabled`].
    pub fn connect(url: &str) -> Result<Broker, NatsError> {
        Broker::connect_with(BrokerConfig::new(url))
    }

    /// Connects as `config` says.
    ///
    /// # Errors
    ///
    /// As [`connect`](Broker::connect), and [`NatsError::Credentials`] when a creds file
    /// cannot be read.
    pub fn connect_with(config: BrokerConfig) -> Result<Broker, NatsError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("millrace-nats")
            .enable_all()
            .build()
            .map_err(|e| NatsError::request("starting the NATS client's runtime", e))?;
        let url = redact(&config.url);
        let (client, js) = runtime.block_on(open(&config, &url))?;
        let server_version = client.server_info().version;
        let mut warnings = Vec::new();
        match version(&server_version) {
            Some(v) if v >= (2, 10) => {}
            _ => warnings.push(format!(
                "the NATS server at {url} is version {server_version}, older than 2.10: it can \
                 lose acknowledged deletions on a hard kill (messages may then be delivered \
                 again, which the sink's de-duplication absorbs); use 2.10 or newer in \
                 production"
            )),
        }
        Ok(Broker {
            inner: Arc::new(Inner {
                runtime: Some(runtime),
                js,
                url,
                server_version,
                warnings,
            }),
        })
    }

    /// Connects, and while the server cannot be reached (or a request fails on the way)
    /// tries again after a backoff that doubles from 100 ms up to 5 s, calling `on_retry`
    /// with the error and the wait before each new try; gives up after `attempts` tries.
    /// [`say_retry`] prints each to stderr.
    ///
    /// # Errors
    ///
    /// The last error once `attempts` tries failed, or at once an error that retrying
    /// cannot fix (no JetStream, bad credentials).
    pub fn connect_retrying(
        config: BrokerConfig,
        attempts: u32,
        mut on_retry: impl FnMut(&NatsError, Duration, u32),
    ) -> Result<Broker, NatsError> {
        let connected = Broker::connect_waiting(config, attempts, |e, wait, attempt| {
            on_retry(e, wait, attempt);
            std::thread::sleep(wait);
            true
        })?;
        // (The wait above never gives up.)
        connected.ok_or_else(|| NatsError::request("connecting", "gave up waiting"))
    }

    /// As [`connect_retrying`](Broker::connect_retrying), but the caller waits: `wait` gets
    /// the error, the backoff and the attempt, waits (or not) and says whether to try again;
    /// `Ok(None)` once it says no (a worker interrupted while its server is down).
    ///
    /// # Errors
    ///
    /// As for [`connect_retrying`](Broker::connect_retrying).
    pub fn connect_waiting(
        config: BrokerConfig,
        attempts: u32,
        mut wait: impl FnMut(&NatsError, Duration, u32) -> bool,
    ) -> Result<Option<Broker>, NatsError> {
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match Broker::connect_with(config.clone()) {
                Ok(broker) => return Ok(Some(broker)),
                Err(e) if e.is_transient() && attempt < attempts => {
                    if !wait(&e, backoff, attempt) {
                        return Ok(None);
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The server's URL, without credentials.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The server's version, as it says.
    pub fn server_version(&self) -> &str {
        &self.inner.server_version
    }

    /// What was found on connecting that works but should be fixed (an old server).
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// A job: the namespace of one pipeline's edges on this server. Its streams are
    /// `MILLRACE_<job>_<edge>`, its subjects `millrace.<job>.<edge>`.
    ///
    /// # Errors
    ///
    /// [`NatsError::BadName`] unless `name` is 1 to 32 ASCII letters, digits, `-` or `_`.
    pub fn job(&self, name: &str) -> Result<Job, NatsError> {
        check_name(name)?;
        Ok(Job {
            broker: self.clone(),
            name: name.into(),
            fingerprint: None,
        })
    }

    pub(crate) fn js(&self) -> &jetstream::Context {
        &self.inner.js
    }

    fn runtime(&self) -> &Runtime {
        self.inner
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the broker")
    }

    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime().block_on(f)
    }

    pub(crate) fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime().spawn(f)
    }
}

/// Prints a retry to stderr: `millrace-nats: <error>; trying again in 400ms (attempt 3)`.
pub fn say_retry(e: &NatsError, wait: Duration, attempt: u32) {
    eprintln!("millrace-nats: {e}; trying again in {wait:?} (attempt {attempt})");
}

/// Opens the connection and checks that JetStream answers.
async fn open(
    config: &BrokerConfig,
    url: &str,
) -> Result<(async_nats::Client, jetstream::Context), NatsError> {
    let mut options = async_nats::ConnectOptions::new()
        .name("millrace")
        .connection_timeout(config.connect_timeout)
        // After the first connection, reconnect for as long as it takes: a server restart
        // pauses the parts, it does not end them.
        .max_reconnects(None);
    match &config.credentials {
        Credentials::None => {}
        Credentials::File(path) => {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| NatsError::Credentials {
                    source: format!("{ENV_CREDS} ({})", path.display()),
                    detail: e.to_string(),
                })?;
        }
        Credentials::UserPassword(user, password) => {
            options = options.user_and_password(user.clone(), password.clone());
        }
        Credentials::Token(token) => options = options.token(token.clone()),
    }
    let client = options.connect(config.url.as_str()).await.map_err(|e| {
        use async_nats::ConnectErrorKind as K;
        let detail = e.to_string();
        match e.kind() {
            K::Authentication | K::AuthorizationViolation => NatsError::Unauthorized {
                url: url.to_owned(),
                detail,
            },
            _ => NatsError::Unreachable {
                url: url.to_owned(),
                detail,
            },
        }
    })?;
    // `$JS.API.INFO` answers only where JetStream is on (else: no responders, or an error
    // such as 503 "JetStream not enabled for account"). Read raw, so that any server
    // version's answer is understood.
    let disabled = |detail: String| NatsError::JetStreamDisabled {
        url: url.to_owned(),
        detail,
    };
    let reply = client
        .request("$JS.API.INFO", bytes::Bytes::new())
        .await
        .map_err(|e| disabled(e.to_string()))?;
    let text = String::from_utf8_lossy(&reply.payload);
    if text.contains("\"error\"") {
        return Err(disabled(text.into_owned()));
    }
    let js = jetstream::new(client.clone());
    Ok((client, js))
}

/// Checks a job or edge name: it becomes part of stream and subject names.
pub(crate) fn check_name(name: &str) -> Result<(), NatsError> {
    let bad = |why| {
        Err(NatsError::BadName {
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() || name.len() > 32 {
        return bad("a name must have 1 to 32 characters");
    }
    if name.starts_with('_') {
        return bad("names starting with `_` are millrace's own");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return bad("only ASCII letters, digits, `-` and `_` may name a stream");
    }
    Ok(())
}

/// The namespace of one pipeline's edges on a server: see [`Broker::job`].
#[derive(Clone, Debug)]
pub struct Job {
    pub(crate) broker: Broker,
    pub(crate) name: Arc<str>,
    /// What the job's parts do, as its processes see it (see [`Job::fingerprint`]).
    pub(crate) fingerprint: Option<Arc<str>>,
}

impl Job {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Marks what this process takes the job's remote part to be: a fingerprint of the
    /// stages the workers run and their settings (the `millrace` command hashes them from
    /// its file). Every message an origin or worker of this `Job` publishes carries it
    /// (header [`PART_HEADER`](crate::PART_HEADER)), and a worker whose fingerprint differs
    /// from a message's refuses the message: it gives it back to the edge, for a worker
    /// that agrees with the origin, and stops, its [`join`](crate::WorkerHandle::join)
    /// returning [`NatsError::PartMismatch`]. A worker started from a file that differs
    /// from the origin's (another `factor`, say) would otherwise process the items its way
    /// and send back results the origin takes for its own. Messages without a fingerprint,
    /// and a job without one, are not checked.
    #[must_use]
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(Arc::from(fingerprint.into()));
        self
    }

    /// The job's fingerprint, if one was set.
    pub fn part_fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// The broker it runs on.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_leaves_out_user_and_password() {
        assert_eq!(redact("nats://bob:s3cret@host:4222"), "nats://host:4222");
        assert_eq!(redact("nats://host:4222"), "nats://host:4222");
        assert_eq!(redact("bob:pw@host"), "host");
    }

    #[test]
    fn versions_older_than_2_10_are_told_apart() {
        assert!(version("2.9.10").is_some_and(|v| v < (2, 10)));
        assert!(version("2.10.0").is_some_and(|v| v >= (2, 10)));
        assert!(version("v2.11.3").is_some_and(|v| v >= (2, 10)));
    }

    #[test]
    fn names_that_cannot_name_a_stream_are_refused() {
        assert!(check_name("w2-heavy_1").is_ok());
        for bad in ["", "a.b", "a b", "_responses", "x*", &"n".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_are_never_printed() {
        let c = Credentials::UserPassword("bob".into(), "s3cret".into());
        assert!(!format!("{c:?}").contains("s3cret"));
        let t = Credentials::Token("tok3n".into());
        assert!(!format!("{t:?}").contains("tok3n"));
    }
}
