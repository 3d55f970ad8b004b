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
    #[error("cannot delay a job by {}: the longest delay is {}", humantime::format_duration(*.delay), humantime::format_duration(*.max))]
    DelayTooLong {
        /// The delay asked for.
        delay: std::time::Duration,
        /// The longest delay.
        max: std::time::Duration,
    },
    /// RabbitMQ did not answer, or did not come back, within the client's
    /// recovery timeout.
    #[error("RabbitMQ did not answer within {} (the client's recovery timeout)", humantime::format_duration(*.timeout))]
    Unavailable {
        /// The recovery timeout.
        timeout: std::time::Duration,
    },
    /// The broker did not answer an operation in time; the connection is
    /// taken as cut.
    #[error("RabbitMQ did not answer within {}", humantime::format_duration(*.waited))]
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

fn redact_one(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
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
