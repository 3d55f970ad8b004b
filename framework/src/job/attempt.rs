//! One attempt of one job: find its handler, decode it, run it with its
//! timeout and with panics caught, and say how it went.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use lapin::BasicProperties;

use crate::DeadReason;
use crate::amqp::hold;
use crate::amqp::message;
use crate::job::QueueShape;
use crate::job::retry::RetryPolicy;
use crate::observe::AttemptOutcome;
use crate::{Client, JobContext, JobId, Registry, State};

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler returned `Ok`.
    Done,
    /// The attempt failed and the job has retries left: it runs again after `delay`.
    Retry {
        /// How long until the next attempt.
        delay: Duration,
        /// How the attempt failed.
        reason: DeadReason,
        /// The error text, for the next attempt's headers and the log.
        error: String,
    },
    /// The job cannot succeed here; it goes to the dead-letter queue.
    Dead {
        /// Why.
        reason: DeadReason,
        /// The error text, for the dead letter's headers and the log.
        error: String,
    },
}

impl Outcome {
    /// As hooks hear it.
    pub(crate) fn observed(&self) -> AttemptOutcome<'_> {
        match self {
            Outcome::Done => AttemptOutcome::Succeeded,
            Outcome::Retry { delay, reason, error } => AttemptOutcome::Retried {
                reason: *reason,
                error,
                delay: *delay,
            },
            Outcome::Dead { reason, error } => AttemptOutcome::Dead { reason: *reason, error },
        }
    }

    fn dead(reason: DeadReason, error: impl Into<String>) -> Self {
        Outcome::Dead {
            reason,
            error: cut(error.into()),
        }
    }
}

/// How much of an error text goes into logs and headers: a decoding error
/// can quote the body (serde quotes the value it could not take), and a
/// handler's error can be any size.
const MAX_ERROR_TEXT: usize = 1024;

/// `error`, cut to [`MAX_ERROR_TEXT`] bytes with its full size noted.
fn cut(mut error: String) -> String {
    if error.len() > MAX_ERROR_TEXT {
        let size = error.len();
        let mut end = MAX_ERROR_TEXT;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
        error.push_str(&format!("… ({size} bytes in all)"));
    }
    error
}

/// Where an attempt runs: the worker and the queue it consumes.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    /// The queue's name without the prefix, as jobs declare it.
    pub(crate) queue: Arc<str>,
    /// The queue's full name on the broker.
    pub(crate) full_queue: Arc<str>,
    /// What the queue is declared with, as its jobs declare it (see
    /// [`Registry::queue_type`]): its own declaration, its dead-letter
    /// queue's and every republish to it use it.
    #[cfg_attr(not(feature = "worker"), allow(dead_code, reason = "read when a worker republishes"))]
    pub(crate) shape: QueueShape,
    /// The worker's id.
    pub(crate) worker: Arc<str>,
    /// For handlers' follow-up jobs.
    pub(crate) client: Client,
    /// What the setup hook built, for handlers.
    pub(crate) state: State,
}

impl Runner {
    /// Runs one attempt of the job in a message. Never panics, whatever the
    /// message or the handler does.
    pub(crate) async fn attempt(
        &self,
        registry: &Registry,
        id: JobId,
        properties: &BasicProperties,
        body: &[u8],
        redelivered: bool,
    ) -> Outcome {
        if let Some(reason) = message::malformed(properties) {
            return Outcome::dead(
                DeadReason::Undecodable,
                format!("the message cannot be a job: {reason}"),
            );
        }
        let registration = match message::job_name(properties) {
            Some(name) => match registry.get(name) {
                Some(registration) => registration,
                None => {
                    return Outcome::dead(
                        DeadReason::UnknownJob,
                        format!("no job named `{name}` is registered in this worker"),
                    );
                }
            },
            None => match registry.queue_default(&self.queue) {
                Some(registration) => registration,
                None => {
                    return Outcome::dead(
                        DeadReason::UnknownJob,
                        format!(
                            "the message has no `type` property and no job is the default for queue `{}`",
                            self.queue
                        ),
                    );
                }
            },
        };
        let attempt = message::attempt(properties);
        let ctx = JobContext::new(
            id,
            registration.name,
            Arc::clone(&self.full_queue),
            attempt,
            redelivered,
            Arc::clone(&self.worker),
            self.client.clone(),
            self.state.clone(),
        );
        // A hand-written Deserialize may panic; that is the job's fault, not the worker's.
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| registration.start(body, ctx)));
        let future = match started {
            Ok(Some(Ok(future))) => future,
            Ok(Some(Err(reason))) => return Outcome::dead(DeadReason::Undecodable, reason),
            Ok(None) => {
                return Outcome::dead(
                    DeadReason::UnknownJob,
                    crate::RegistryError::missing_handler(registration).to_string(),
                );
            }
            Err(panic) => return Outcome::dead(DeadReason::Panic, panic_message(panic.as_ref())),
        };
        let timeout = registration.options.effective_timeout();
        let (reason, error, asked_delay) =
            match tokio::time::timeout(timeout, AssertUnwindSafe(future).catch_unwind()).await {
                Ok(Ok(Ok(()))) => return Outcome::Done,
                Ok(Ok(Err(error))) if error.is_rejected() => {
                    return Outcome::dead(DeadReason::Rejected, error.to_string());
                }
                Ok(Ok(Err(error))) => (DeadReason::Failed, error.to_string(), error.retry_delay()),
                Ok(Err(panic)) => (DeadReason::Panic, panic_message(panic.as_ref()), None),
                Err(_elapsed) => (
                    DeadReason::Timeout,
                    format!("timed out after {}", crate::duration::Written(timeout)),
                    None,
                ),
            };
        let policy = message::retry_policy(properties, RetryPolicy::of(&registration.options));
        if !policy.retries_after(attempt) {
            return Outcome::dead(reason, error);
        }
        let delay = asked_delay
            .unwrap_or_else(|| policy.delay(attempt))
            .min(hold::MAX_DELAY);
        Outcome::Retry {
            delay,
            reason,
            error: cut(error),
        }
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_error_texts_are_cut_with_their_size() {
        let quoted_body = format!("invalid type: string \"{}\"", "é".repeat(600_000));
        let cut = cut(quoted_body.clone());
        assert!(cut.len() < MAX_ERROR_TEXT + 40, "{} bytes", cut.len());
        assert!(
            cut.ends_with(&format!("… ({} bytes in all)", quoted_body.len())),
            "{cut}"
        );
        assert_eq!(super::cut("short".into()), "short");
    }
}
