//! The errors of a broker edge: each says what went wrong, where (the server URL, with any
//! password left out, or the stream's name) and what to check.

use std::fmt;

/// What went wrong talking to the NATS server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatsError {
    /// No server answered at the URL.
    Unreachable {
        /// The server's URL, without credentials.
        url: String,
        /// What the client reported.
        detail: String,
    },
    /// The server refused the credentials.
    Unauthorized {
        /// The server's URL, without credentials.
        url: String,
        /// What the client reported.
        detail: String,
    },
    /// The server runs without JetStream.
    JetStreamDisabled {
        /// The server's URL, without credentials.
        url: String,
        /// What the server answered.
        detail: String,
    },
    /// A stream or consumer of that name exists with settings other than the edge's.
    ConfigConflict {
        /// The stream (and consumer) concerned.
        what: String,
        /// The setting that differs.
        field: &'static str,
        /// Its value on the server.
        existing: String,
        /// The edge's value.
        wanted: String,
    },
    /// A job or edge name that cannot name a stream.
    BadName {
        /// The name given.
        name: String,
        /// Why it cannot be used.
        why: &'static str,
    },
    /// The credentials named in the environment could not be read.
    Credentials {
        /// The file or variable concerned.
        source: String,
        /// What went wrong.
        detail: String,
    },
    /// A request to the server failed (it went away, or answered an error).
    Request {
        /// What was being done.
        what: String,
        /// What the client or server reported.
        detail: String,
    },
    /// Another origin has a run going on the job (see [`lease`](crate::lease)).
    JobBusy {
        /// The job.
        job: String,
        /// Who holds it, as that origin wrote it (its run and process).
        holder: String,
    },
    /// A worker took a message from an origin whose remote part differs from the worker's
    /// (see [`Job::fingerprint`](crate::Job::fingerprint)), gave it back, and stopped.
    PartMismatch {
        /// The job.
        job: String,
        /// The edge the message came from.
        edge: String,
        /// The worker's fingerprint.
        ours: String,
        /// The message's.
        theirs: String,
    },
    /// The pipeline of a part failed to build or run.
    Pipeline(String),
}

impl fmt::Display for NatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsError::PartMismatch {
                job,
                edge,
                ours,
                theirs,
            } => write!(
                f,
                "a message on edge `{edge}` of job `{job}` comes from an origin whose remote \
                 part differs from this worker's (its fingerprint {theirs}, this worker's \
                 {ours}): this worker would process it otherwise than the origin expects. \
                 The message was given back, for a worker that agrees with the origin. Start \
                 every process of a job from the same pipeline (the same file and the same \
                 --set overrides)"
            ),
            NatsError::JobBusy { job, holder } => write!(
                f,
                "job `{job}` has a run going ({holder}): two origins on one job would take \
                 each other's results. Wait for that run to end (an origin that died lets go \
                 after {} s), or give this run a job of its own (the pipeline's name)",
                crate::lease::HOLD.as_secs()
            ),
            NatsError::Unreachable { url, detail } => write!(
                f,
                "cannot reach the NATS server at {url} ({detail}): check that nats-server is \
                 running there with JetStream on (`nats-server -js`), that the host and port are \
                 right, and that no firewall is in the way"
            ),
            NatsError::Unauthorized { url, detail } => write!(
                f,
                "the NATS server at {url} refused the credentials ({detail}): check \
                 MILLRACE_NATS_CREDS, MILLRACE_NATS_USER / MILLRACE_NATS_PASSWORD or \
                 MILLRACE_NATS_TOKEN"
            ),
            NatsError::JetStreamDisabled { url, detail } => write!(
                f,
                "the NATS server at {url} has JetStream disabled ({detail}): start it with `-js` \
                 (or `jetstream {{}}` in its config), and give it a store directory with `-sd DIR`"
            ),
            NatsError::ConfigConflict {
                what,
                field,
                existing,
                wanted,
            } => write!(
                f,
                "{what} exists with {field} = {existing}, but this edge wants {wanted}: delete it \
                 (`nats stream rm`) if nothing is in flight, or use another job name"
            ),
            NatsError::BadName { name, why } => write!(f, "cannot use `{name}` as a name: {why}"),
            NatsError::Credentials { source, detail } => {
                write!(
                    f,
                    "cannot read the NATS credentials from {source}: {detail}"
                )
            }
            NatsError::Request { what, detail } => write!(f, "{what} failed: {detail}"),
            NatsError::Pipeline(e) => write!(f, "the part's pipeline failed: {e}"),
        }
    }
}

impl std::error::Error for NatsError {}

impl NatsError {
    /// A request error: `what` was being done, `e` is what came back.
    pub(crate) fn request(what: impl Into<String>, e: impl fmt::Display) -> Self {
        NatsError::Request {
            what: what.into(),
            detail: e.to_string(),
        }
    }

    /// Whether trying again later may succeed (the server was unreachable, or a request
    /// failed on the way), as opposed to a mistake in the configuration.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            NatsError::Unreachable { .. } | NatsError::Request { .. }
        )
    }
}
