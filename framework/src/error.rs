//! The one error type of warren, and the enqueue error that hands the job back.

use std::fmt;

/// Something went wrong talking to the broker or encoding a job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker could not be reached or refused the connection.
    #[error("could not connect to RabbitMQ at {url}: {source}")]
    Connect {
        /// The broker's URL, without its password.
        url: String,
        /// What the AMQP client reported.
        #[source]
        source: AmqpError,
    },
    /// The RabbitMQ URL is not one warren can connect to: empty, without
    /// `amqp://` or `amqps://`, or malformed. Not retried.
    #[error("invalid RabbitMQ URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, without its password.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A TLS file (the CA, the client certificate or its key) could not be
    /// read or holds nothing usable. Not retried.
    #[error("cannot use the TLS {what} `{}`: {reason}", .path.display())]
    TlsFile {
        /// Which file: `CA file`, `client certificate` or `client key`.
        what: &'static str,
        /// Its path.
        path: std::path::PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The TLS handshake with the broker failed: its certificate did not
    /// verify, the port does not speak TLS, or the broker refused the
    /// client certificate. Not retried.
    #[error("TLS with RabbitMQ at {url} failed: {reason}")]
    Tls {
        /// The broker's URL, without its password.
        url: String,
        /// What failed, and what to check.
        reason: String,
    },
    /// The broker refused the user name and password (or the client
    /// certificate, with `auth_mechanism=external`). Not retried.
    #[error("RabbitMQ at {url} refused the credentials of user `{user}`: check the user name and password ({reason})")]
    AccessRefused {
        /// The broker's URL, without its password.
        url: String,
        /// The user name it refused.
        user: String,
        /// The broker's reply text.
        reason: String,
    },
    /// The broker refused the virtual host: it does not exist, or the user
    /// may not use it. Not retried.
    #[error(
        "RabbitMQ at {url} refused virtual host `{vhost}`: it does not exist or user `{user}` has no access to it ({reason})"
    )]
    VhostRefused {
        /// The broker's URL, without its password.
        url: String,
        /// The virtual host.
        vhost: String,
        /// The user name.
        user: String,
        /// The broker's reply text.
        reason: String,
    },
    /// The broker did not complete the connection handshake in time.
    #[error("could not connect to RabbitMQ at {url}: no answer within {timeout:?}")]
    ConnectTimeout {
        /// The broker's URL, without its password.
        url: String,
        /// How long warren waited.
        timeout: std::time::Duration,
    },
    /// A queue exists on the broker with settings other than warren's.
    #[error("queue `{queue}` already exists with other settings ({reason}); delete it or declare it as warren does")]
    QueueMismatch {
        /// The queue.
        queue: String,
        /// The broker's reply text.
        reason: String,
    },
    /// The broker refused to declare a queue for another reason, such as a
    /// limit on queues.
    #[error("RabbitMQ refused to declare queue `{queue}`: {reason}")]
    DeclareRefused {
        /// The queue.
        queue: String,
        /// The broker's reply text.
        reason: String,
    },
    /// Declaring a queue failed for another reason.
    #[error("could not declare queue `{queue}`: {source}")]
    Declare {
        /// The queue.
        queue: String,
        /// What the AMQP client reported.
        #[source]
        source: AmqpError,
    },
    /// The broker did not take the message (a negative publisher confirm).
    #[error("RabbitMQ refused the message for queue `{queue}` (nack)")]
    Nacked {
        /// The queue the message was for.
        queue: String,
    },
    /// The message could not be routed: its queue does not exist.
    #[error("RabbitMQ returned the message: queue `{queue}` does not exist")]
    Unroutable {
        /// The queue the message was for.
        queue: String,
    },
    /// The job could not be encoded.
    #[error("could not encode job `{job}`: {reason}")]
    Encode {
        /// The job's name.
        job: &'static str,
        /// Why.
        reason: String,
    },
    /// A job was enqueued with a delay longer than warren holds jobs.
    #[error("cannot delay a job by {}: the longest delay is {}", crate::duration::Written(*.delay), crate::duration::Written(*.max))]
    DelayTooLong {
        /// The delay asked for.
        delay: std::time::Duration,
        /// The longest delay.
        max: std::time::Duration,
    },
    /// A unique job (`#[job(unique_for = "...")]`) with the same name and
    /// key is already pending, delayed or running: nothing was enqueued.
    /// Not a failure for most callers: the work is already on its way, as
    /// job `existing`.
    #[error("job `{job}` with this unique key is already enqueued as {existing}; not enqueued again")]
    Duplicate {
        /// The job.
        job: String,
        /// The id of the job that holds the key.
        existing: crate::JobId,
    },
    /// A unique key was given for a job that is not unique.
    #[error("job `{job}` is not unique: give it #[job(unique_for = \"10m\")] to enqueue it with a unique key")]
    NotUnique {
        /// The job.
        job: String,
    },
    /// A job was enqueued with a priority its queue does not take: the
    /// queue takes none (its jobs set no `#[job(max_priority = N)]`), or
    /// less than the one asked for. RabbitMQ would silently ignore or cap it.
    #[error(
        "cannot enqueue `{job}` with priority {priority}: queue `{queue}` {}",
        match .max { Some(max) => format!("takes priorities up to {max}"), None => "takes no priorities; give its jobs #[job(max_priority = N)]".to_owned() }
    )]
    PriorityNotTaken {
        /// The job.
        job: String,
        /// Its queue.
        queue: String,
        /// The priority asked for.
        priority: u8,
        /// The highest priority the queue takes, if any.
        max: Option<u8>,
    },
    /// RabbitMQ did not answer, or did not come back, within the client's
    /// recovery timeout.
    #[error("RabbitMQ did not answer within {} (the client's recovery timeout)", crate::duration::Written(*.timeout))]
    Unavailable {
        /// The recovery timeout.
        timeout: std::time::Duration,
    },
    /// RabbitMQ is blocking publishes, and did not lift the block within
    /// the client's recovery timeout: a memory or disk alarm on a node
    /// (`connection.blocked`; in a cluster, an alarm on any node blocks the
    /// publishers of every node). Nothing is wrong with the job or the
    /// connection: the block lifts once the broker is below its memory
    /// watermark and above its disk limit again, and enqueueing again then
    /// succeeds. Consumers are not blocked, so workers keep running the jobs
    /// already queued, which frees the broker's memory. Transient.
    ///
    /// Wrapped in [`Error::OutcomeUnknown`] when the message was sent before
    /// the block was known (the broker blocks a connection when it reads its
    /// first publish after the alarm, and stores that message once the alarm
    /// clears); [`Error::is_publish_blocked`] sees it either way.
    #[error(
        "RabbitMQ is blocking publishes ({reason}) and did not lift the block within {} (the client's recovery timeout): a node is low on memory or disk (see `rabbitmq-diagnostics alarms`); consumers still run, and enqueues succeed again once the alarm clears",
        crate::duration::Written(*.timeout)
    )]
    PublishBlocked {
        /// Why, as the broker said it (`low on memory`, `low on disk`).
        reason: String,
        /// The recovery timeout, how long the enqueue waited.
        timeout: std::time::Duration,
    },
    /// The broker did not answer an operation in time; the connection is
    /// taken as cut.
    #[error("RabbitMQ did not answer within {}", crate::duration::Written(*.waited))]
    NoAnswer {
        /// How long warren waited.
        waited: std::time::Duration,
    },
    /// The message was handed to the connection, but no confirm came back
    /// before it died or the recovery timeout ran out: RabbitMQ may or may
    /// not have stored it.
    #[error(
        "outcome unknown: RabbitMQ may or may not have stored job {job_id}: it was sent, but no confirm came ({cause}); enqueue it again with the same id (EnqueueOptions::job_id) so that a copy stored twice can be told apart"
    )]
    OutcomeUnknown {
        /// The job's id, to publish it again under.
        job_id: crate::JobId,
        /// What ended the wait for the confirm.
        cause: Box<Error>,
    },
    /// No job of that name is linked into this program.
    #[error("no job named `{name}` is linked into this program (linked: {known})")]
    UnknownJob {
        /// The name asked for.
        name: String,
        /// The names of the jobs that are linked, comma-separated.
        known: String,
    },
    /// The job types linked into this program conflict.
    #[error(transparent)]
    Registry(#[from] crate::RegistryError),
    /// The client was closed.
    #[error("the client was closed")]
    ClientClosed,
    /// A queue name, with its prefix and suffix, is longer than AMQP allows.
    #[error("queue name `{name}` is {} bytes long; AMQP allows 255 (shorten the queue name or the queue prefix)", .name.len())]
    NameTooLong {
        /// The name.
        name: String,
    },
    /// `Client::connect` was called outside a tokio runtime.
    #[error("warren needs a tokio runtime: connect from within one (e.g. under #[tokio::main])")]
    NoRuntime,
    /// An AMQP operation failed (usually: the connection or channel is gone).
    #[error("RabbitMQ error: {0}")]
    Amqp(#[source] AmqpError),
}

impl Error {
    /// Whether trying again later may succeed: the broker unreachable or
    /// restarting, a connection lost, no answer in time. `false` for what
    /// only a change of configuration fixes: an invalid URL, a TLS file or
    /// handshake that fails, credentials or a virtual host the broker
    /// refuses.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            Error::InvalidUrl { .. }
                | Error::TlsFile { .. }
                | Error::Tls { .. }
                | Error::AccessRefused { .. }
                | Error::VhostRefused { .. }
                | Error::NoRuntime
        )
    }

    /// Whether RabbitMQ was blocking publishes ([`Error::PublishBlocked`]),
    /// also when that left the outcome of an enqueue unknown.
    pub fn is_publish_blocked(&self) -> bool {
        match self {
            Error::PublishBlocked { .. } => true,
            Error::OutcomeUnknown { cause, .. } => cause.is_publish_blocked(),
            _ => false,
        }
    }

    /// Whether the error is in the configuration given (a URL, a TLS file)
    /// rather than in what the broker answered: a command line would
    /// report it as a usage error.
    #[cfg(feature = "cli")]
    pub(crate) fn is_configuration(&self) -> bool {
        matches!(self, Error::InvalidUrl { .. } | Error::TlsFile { .. })
    }
}

impl From<lapin::Error> for Error {
    fn from(error: lapin::Error) -> Self {
        Error::Amqp(AmqpError(error))
    }
}

/// What the AMQP client library reported, as text and as an error source;
/// its type is not part of warren's API, so that warren can change or
/// upgrade its AMQP client without breaking yours.
#[derive(Debug)]
pub struct AmqpError(lapin::Error);

impl AmqpError {
    pub(crate) fn new(error: lapin::Error) -> Self {
        AmqpError(error)
    }

    /// The client library's error, for warren's own decisions.
    pub(crate) fn inner(&self) -> &lapin::Error {
        &self.0
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AmqpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// An enqueue that did not happen: the error, and the job handed back so the
/// caller can retry or store it.
pub struct EnqueueError<J> {
    job: J,
    error: Error,
}

impl<J> EnqueueError<J> {
    pub(crate) fn new(job: J, error: Error) -> Self {
        EnqueueError { job, error }
    }

    /// The job that was not enqueued.
    pub fn job(&self) -> &J {
        &self.job
    }

    /// Takes the job back.
    pub fn into_job(self) -> J {
        self.job
    }

    /// Why it was not enqueued.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// Whether the job may have been enqueued after all: it was sent, but its
    /// confirm never came. Enqueue it again with the same id
    /// ([`EnqueueOptions::job_id`](crate::EnqueueOptions::job_id) and
    /// [`job_id`](Self::job_id)) rather than a new one.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self.error, Error::OutcomeUnknown { .. })
    }

    /// The id the job was sent under, when its outcome is unknown; `None`
    /// when it was certainly not enqueued.
    pub fn job_id(&self) -> Option<crate::JobId> {
        match self.error {
            Error::OutcomeUnknown { job_id, .. } => Some(job_id),
            _ => None,
        }
    }

    /// The id of the job already enqueued with the same unique key, when
    /// this enqueue was refused as its duplicate ([`Error::Duplicate`]).
    pub fn duplicate_of(&self) -> Option<crate::JobId> {
        match self.error {
            Error::Duplicate { existing, .. } => Some(existing),
            _ => None,
        }
    }

    /// Splits into the job and the error.
    pub fn into_parts(self) -> (J, Error) {
        (self.job, self.error)
    }
}

impl<J> fmt::Debug for EnqueueError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnqueueError")
            .field("job", &std::any::type_name::<J>())
            .field("error", &self.error)
            .finish()
    }
}

impl<J> fmt::Display for EnqueueError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_outcome_unknown() {
            write!(f, "job perhaps not enqueued: {}", self.error)
        } else {
            write!(f, "job not enqueued: {}", self.error)
        }
    }
}

impl<J> std::error::Error for EnqueueError<J> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The URL (or comma-separated URLs) with any password replaced by `***`,
/// for logs and errors.
pub(crate) fn redact(urls: &str) -> String {
    urls.split(',').map(redact_one).collect::<Vec<_>>().join(",")
}

/// Hides everything from the first `:` of the user information to the
/// last `@`, so that a password with `/`, `@` or `:` in it, or in a URL too
/// malformed to parse (`amqp//user:secret@host`), is hidden all the same.
fn redact_one(url: &str) -> String {
    let start = url
        .find("://")
        .map(|at| at + 3)
        .or_else(|| url.find("//").map(|at| at + 2))
        .unwrap_or(0);
    let Some(at) = url.rfind('@').filter(|&at| at >= start) else {
        return url.to_owned();
    };
    match url[start..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..start + colon], &url[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact("amqp://127.0.0.1:5672/%2f"), "amqp://127.0.0.1:5672/%2f");
        assert_eq!(redact("amqp://user@host"), "amqp://user@host");
        assert_eq!(
            redact("amqp://u:one@a:5672,amqp://u:two@b:5672"),
            "amqp://u:***@a:5672,amqp://u:***@b:5672"
        );
    }

    #[test]
    fn passwords_in_malformed_urls_never_reach_logs_either() {
        assert_eq!(redact("amqp//guest:secret@host:5672"), "amqp//guest:***@host:5672");
        assert_eq!(redact("guest:secret@host:5672"), "guest:***@host:5672");
        assert_eq!(redact("amqp://guest:se/cr@t@host/%2f"), "amqp://guest:***@host/%2f");
        assert_eq!(redact("amqps://guest:a:b@host"), "amqps://guest:***@host");
        assert_eq!(redact("127.0.0.1:5672"), "127.0.0.1:5672");
        assert_eq!(redact(""), "");
    }

    #[test]
    fn enqueue_error_hands_the_job_back() {
        let error = EnqueueError::new("the job", Error::Nacked { queue: "q".into() });
        assert_eq!(
            error.to_string(),
            "job not enqueued: RabbitMQ refused the message for queue `q` (nack)"
        );
        assert_eq!(error.into_job(), "the job");
    }

    #[test]
    fn an_enqueue_whose_confirm_never_came_says_so_and_names_the_job() {
        let id = crate::JobId::new();
        let lost_confirm = Error::OutcomeUnknown {
            job_id: id,
            cause: Box::new(Error::Unavailable {
                timeout: std::time::Duration::from_secs(30),
            }),
        };
        let error = EnqueueError::new("the job", lost_confirm);
        assert!(error.is_outcome_unknown());
        assert_eq!(error.job_id(), Some(id));
        let text = error.to_string();
        assert!(
            text.starts_with("job perhaps not enqueued: outcome unknown: RabbitMQ may or may not have stored job"),
            "{text}"
        );
        assert!(text.contains(&id.to_string()) && text.contains("30s"), "{text}");

        let refused = EnqueueError::new("the job", Error::Nacked { queue: "q".into() });
        assert!(!refused.is_outcome_unknown());
        assert_eq!(refused.job_id(), None);
    }
}
