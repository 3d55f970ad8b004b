//! Hooks around each attempt and each enqueue, to plug in error trackers,
//! audit logs or metrics of your own; warren's own metrics are a hook too.
//!
//! A [`Hook`] has one method per event, each a no-op unless overridden.
//! Register hooks on [`WorkerBuilder::hook`](crate::WorkerBuilder::hook)
//! (attempts, and the enqueues of handlers' follow-up jobs), on
//! [`ClientBuilder::hook`](crate::ClientBuilder::hook) (enqueues) and on
//! [`InMemoryBroker::with_hook`](crate::testing::InMemoryBroker::with_hook)
//! (both, to test a hook without RabbitMQ). Hooks run in the order they were
//! registered, after warren's own metrics, on the task that runs the job or
//! the enqueue: keep them quick (hand slow work to a channel). A hook that
//! panics is logged and skipped; the job or the enqueue goes on.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use warren::observe::{Attempt, AttemptOutcome, Enqueue, Headers, Hook};
//! use warren::prelude::*;
//! use warren::testing::InMemoryBroker;
//!
//! #[derive(Debug, Serialize, Deserialize, Job)]
//! struct Charge { cents: u64 }
//!
//! impl Handler for Charge {
//!     async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> { Ok(()) }
//! }
//!
//! /// Counts successes, and tags every enqueue with the tenant.
//! #[derive(Default)]
//! struct Audit { succeeded: AtomicUsize }
//!
//! impl Hook for Audit {
//!     fn after_attempt(&self, _attempt: &Attempt<'_>, outcome: &AttemptOutcome<'_>, _took: Duration) {
//!         if matches!(outcome, AttemptOutcome::Succeeded) {
//!             self.succeeded.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//!
//!     fn before_enqueue(&self, _enqueue: &Enqueue<'_>, headers: &mut Headers) {
//!         headers.insert("tenant", "acme").expect("not a reserved name");
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let audit = Arc::new(Audit::default());
//! let broker = InMemoryBroker::new().with_hook(Arc::clone(&audit));
//! broker.client().enqueue(Charge { cents: 500 }).await?;
//! assert_eq!(broker.enqueued_jobs()[0].header("tenant").as_deref(), Some("acme"));
//! broker.drain().await?;
//! assert_eq!(audit.succeeded.load(Ordering::Relaxed), 1);
//! # Ok(()) }
//! ```

mod hooks;
pub(crate) mod metrics;

#[cfg(feature = "worker")]
pub(crate) mod health;
#[cfg(feature = "http")]
pub(crate) mod http;
#[cfg(feature = "otel")]
mod otel;
mod span;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lapin::BasicProperties;
use lapin::types::AMQPValue;

use crate::amqp::message;
use crate::{DeadReason, Error, JobId};

pub(crate) use hooks::Hooks;
#[cfg(feature = "otel")]
pub use otel::{Continuation, TraceContext};
pub(crate) use span::{enqueue_span, job_span};

/// Callbacks around attempts and enqueues; every method does nothing
/// unless overridden. See the [module docs](self).
pub trait Hook: Send + Sync + 'static {
    /// The job's `tracing` span was made and is not entered yet: the one
    /// moment to give it a parent or links (see
    /// [`TraceContext`](crate::observe) with feature `otel`).
    fn attempt_span(&self, attempt: &Attempt<'_>, span: &tracing::Span) {
        let _ = (attempt, span);
    }

    /// An attempt is about to run, inside the job's `tracing` span.
    fn before_attempt(&self, attempt: &Attempt<'_>) {
        let _ = attempt;
    }

    /// An attempt ended: how, and how long the handler ran.
    fn after_attempt(&self, attempt: &Attempt<'_>, outcome: &AttemptOutcome<'_>, duration: Duration) {
        let _ = (attempt, outcome, duration);
    }

    /// A failed attempt's job runs again after `delay` (called before the
    /// retry is stored).
    fn on_retry(&self, attempt: &Attempt<'_>, delay: Duration, error: &str) {
        let _ = (attempt, delay, error);
    }

    /// A job goes to its queue's dead-letter queue, for `reason` (called
    /// before the dead letter is stored).
    fn on_dead_letter(&self, attempt: &Attempt<'_>, reason: DeadReason, error: &str) {
        let _ = (attempt, reason, error);
    }

    /// A job is about to be published; `headers` go on its message, and stay
    /// on it through retries, delays and into the dead letter.
    fn before_enqueue(&self, enqueue: &Enqueue<'_>, headers: &mut Headers) {
        let _ = (enqueue, headers);
    }

    /// An enqueue ended: `Ok` once the broker confirmed the message, with
    /// the time from publishing to the confirm.
    fn after_enqueue(&self, enqueue: &Enqueue<'_>, result: Result<(), &Error>, latency: Duration) {
        let _ = (enqueue, result, latency);
    }
}

impl<H: Hook + ?Sized> Hook for Arc<H> {
    fn attempt_span(&self, attempt: &Attempt<'_>, span: &tracing::Span) {
        (**self).attempt_span(attempt, span);
    }
    fn before_attempt(&self, attempt: &Attempt<'_>) {
        (**self).before_attempt(attempt);
    }
    fn after_attempt(&self, attempt: &Attempt<'_>, outcome: &AttemptOutcome<'_>, duration: Duration) {
        (**self).after_attempt(attempt, outcome, duration);
    }
    fn on_retry(&self, attempt: &Attempt<'_>, delay: Duration, error: &str) {
        (**self).on_retry(attempt, delay, error);
    }
    fn on_dead_letter(&self, attempt: &Attempt<'_>, reason: DeadReason, error: &str) {
        (**self).on_dead_letter(attempt, reason, error);
    }
    fn before_enqueue(&self, enqueue: &Enqueue<'_>, headers: &mut Headers) {
        (**self).before_enqueue(enqueue, headers);
    }
    fn after_enqueue(&self, enqueue: &Enqueue<'_>, result: Result<(), &Error>, latency: Duration) {
        (**self).after_enqueue(enqueue, result, latency);
    }
}

/// One attempt of one job, as hooks see it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub(crate) name: Option<&'a str>,
    pub(crate) id: JobId,
    pub(crate) queue: &'a str,
    pub(crate) attempt: u32,
    pub(crate) worker: &'a str,
    pub(crate) properties: &'a BasicProperties,
    /// The job's name as registered, when it is: a metric label without a copy.
    pub(crate) registered_name: Option<&'static str>,
    /// The queue's name as the worker shares it: a metric label without a copy.
    pub(crate) shared_queue: Option<&'a Arc<str>>,
}

impl<'a> Attempt<'a> {
    pub(crate) fn new(properties: &'a BasicProperties, id: JobId, queue: &'a str, worker: &'a str) -> Self {
        Attempt {
            name: message::job_name(properties),
            id,
            queue,
            attempt: message::attempt(properties),
            worker,
            properties,
            registered_name: None,
            shared_queue: None,
        }
    }

    /// A worker's attempt, of a job of `registry` on `queue` (the full
    /// name, which the worker shares).
    #[cfg(feature = "worker")]
    pub(crate) fn of_worker(
        properties: &'a BasicProperties,
        id: JobId,
        registry: &crate::Registry,
        queue: &'a Arc<str>,
        worker: &'a str,
    ) -> Self {
        let mut attempt = Attempt::new(properties, id, queue, worker);
        attempt.registered_name = attempt
            .name
            .and_then(|name| registry.get(name))
            .map(|registration| registration.name);
        attempt.shared_queue = Some(queue);
        attempt
    }

    /// The job's wire name; `None` for a message without a `type` (a
    /// queue's default job, or not a job at all).
    pub fn job_name(&self) -> Option<&'a str> {
        self.name
    }

    /// The job's id, the same on every attempt.
    pub fn job_id(&self) -> JobId {
        self.id
    }

    /// The queue's full name on the broker.
    pub fn queue(&self) -> &'a str {
        self.queue
    }

    /// Which attempt, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The id of the worker running it.
    pub fn worker(&self) -> &'a str {
        self.worker
    }

    /// How long the job waited to start: from when it was enqueued (to the
    /// second, the message's `timestamp`) or, for a retry or a delayed job,
    /// from when it was due (to the millisecond). `None` for a message
    /// without either.
    pub fn queue_wait(&self) -> Option<Duration> {
        let since = message::eta(self.properties).or_else(|| {
            self.properties
                .timestamp()
                .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        })?;
        Some(SystemTime::now().duration_since(since).unwrap_or_default())
    }

    /// A header of the job's message as text (integers in decimal): one a
    /// [`Hook::before_enqueue`] added, for instance.
    pub fn header(&self, name: &str) -> Option<String> {
        let value = message::header(self.properties, name)?;
        message::text(value).or_else(|| message::integer(value).map(|n| n.to_string()))
    }
}

/// How an attempt ended, as [`Hook::after_attempt`] hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome<'a> {
    /// The handler returned `Ok`.
    Succeeded,
    /// It failed, and the job runs again after `delay` (also a job this
    /// worker does not know, held for one that does).
    Retried {
        /// How the attempt failed.
        reason: DeadReason,
        /// The error text.
        error: &'a str,
        /// The wait before the next attempt.
        delay: Duration,
    },
    /// It failed for good: the job goes to the dead-letter queue.
    Dead {
        /// Why.
        reason: DeadReason,
        /// The error text.
        error: &'a str,
    },
}

impl AttemptOutcome<'_> {
    /// `succeeded`, `retried` or `dead`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retried { .. } => "retried",
            AttemptOutcome::Dead { .. } => "dead",
        }
    }
}

/// One enqueue, as hooks see it.
#[derive(Debug, Clone, Copy)]
pub struct Enqueue<'a> {
    pub(crate) name: &'static str,
    pub(crate) id: JobId,
    /// Borrowed when the client has no queue prefix: the job's own queue.
    pub(crate) queue: &'a Cow<'static, str>,
    pub(crate) due: Option<SystemTime>,
}

impl<'a> Enqueue<'a> {
    /// The job's wire name.
    pub fn job_name(&self) -> &'a str {
        self.name
    }

    /// The id the job will have.
    pub fn job_id(&self) -> JobId {
        self.id
    }

    /// The queue's full name on the broker.
    pub fn queue(&self) -> &'a str {
        self.queue
    }

    /// When the job is due, if it is delayed.
    pub fn due(&self) -> Option<SystemTime> {
        self.due
    }
}

/// Text headers a [`Hook::before_enqueue`] puts on a job's message.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// Sets header `name` to `value`, replacing a value set before. Names
    /// starting with `warren-` (warren's own) or `x-` (RabbitMQ's) are
    /// refused, and so are names longer than 255 bytes.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> Result<(), HeaderError> {
        let name = name.into();
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("warren-") || lower.starts_with("x-") {
            return Err(HeaderError::Reserved { name });
        }
        if name.is_empty() || name.len() > 255 {
            return Err(HeaderError::InvalidName { name });
        }
        let value = value.into();
        match self.entries.iter_mut().find(|(known, _)| *known == name) {
            Some((_, old)) => *old = value,
            None => self.entries.push((name, value)),
        }
        Ok(())
    }

    /// The value set for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether no header is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds the headers to a message's properties.
    pub(crate) fn apply(&self, properties: BasicProperties) -> BasicProperties {
        if self.entries.is_empty() {
            return properties;
        }
        let mut headers = properties.headers().clone().unwrap_or_default();
        for (name, value) in &self.entries {
            headers.insert(name.as_str().into(), AMQPValue::LongString(value.as_str().into()));
        }
        properties.with_headers(headers)
    }
}

/// Why [`Headers::insert`] refused a header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The name is warren's (`warren-…`) or RabbitMQ's (`x-…`).
    #[error("header `{name}` is reserved: names starting with `warren-` are warren's and `x-` RabbitMQ's")]
    Reserved {
        /// The name refused.
        name: String,
    },
    /// The name is empty or longer than AMQP's 255 bytes.
    #[error("header name `{name}` must be 1 to 255 bytes long")]
    InvalidName {
        /// The name refused.
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_header_names_are_refused_with_the_reason() {
        let mut headers = Headers::default();
        for name in ["warren-attempt", "X-Death", "x-delay"] {
            let error = headers.insert(name, "1").expect_err("reserved");
            assert!(error.to_string().contains("reserved"), "{error}");
        }
        assert!(headers.insert("", "1").is_err());
        headers.insert("tenant", "a").expect("allowed");
        headers.insert("tenant", "b").expect("allowed");
        assert_eq!(headers.get("tenant"), Some("b"));
    }
}

#[cfg(test)]
mod hook_tests {
    use std::sync::{Arc, Mutex};

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::testing::InMemoryBroker;
    use crate::{Handler, Job, JobContext, JobError, Registry};

    #[derive(Debug, Serialize, Deserialize, Job)]
    #[job(name = "hooked_flaky", queue = "hooked", retries = 1, backoff = "1s")]
    struct Flaky {
        fail: u32,
    }

    impl Handler for Flaky {
        async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
            if ctx.attempt() <= self.fail {
                return Err(JobError::msg(format!("failed attempt {}", ctx.attempt())));
            }
            Ok(())
        }
    }

    /// Records every event as a line.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Recorder {
        fn push(&self, line: String) {
            self.0.lock().expect("not poisoned").push(line);
        }
        fn lines(&self) -> Vec<String> {
            self.0.lock().expect("not poisoned").clone()
        }
    }

    impl Hook for Recorder {
        fn before_attempt(&self, attempt: &Attempt<'_>) {
            let tenant = attempt.header("tenant").unwrap_or_default();
            self.push(format!("before {} tenant={tenant}", attempt.attempt()));
        }
        fn after_attempt(&self, attempt: &Attempt<'_>, outcome: &AttemptOutcome<'_>, _: Duration) {
            self.push(format!("after {} {}", attempt.attempt(), outcome.as_str()));
        }
        fn on_retry(&self, _: &Attempt<'_>, _: Duration, error: &str) {
            self.push(format!("retry: {error}"));
        }
        fn on_dead_letter(&self, _: &Attempt<'_>, reason: DeadReason, _: &str) {
            self.push(format!("dead {reason}"));
        }
        fn before_enqueue(&self, enqueue: &Enqueue<'_>, headers: &mut Headers) {
            self.push(format!("enqueue {} on {}", enqueue.job_name(), enqueue.queue()));
            headers.insert("tenant", "acme").expect("allowed");
        }
        fn after_enqueue(&self, _: &Enqueue<'_>, result: Result<(), &Error>, _: Duration) {
            self.push(format!("enqueued ok={}", result.is_ok()));
        }
    }

    /// Panics in every method.
    struct Broken;

    impl Hook for Broken {
        fn before_attempt(&self, _: &Attempt<'_>) {
            panic!("broken hook");
        }
        fn before_enqueue(&self, _: &Enqueue<'_>, _: &mut Headers) {
            panic!("broken hook");
        }
    }

    fn broker() -> InMemoryBroker {
        InMemoryBroker::new().with_registry(Registry::builder().job::<Flaky>().build().expect("registry"))
    }

    #[tokio::test]
    async fn hooks_hear_every_attempt_retry_and_dead_letter_in_order() {
        let recorder = Arc::new(Recorder::default());
        let broker = broker().with_hook(Arc::clone(&recorder));
        let client = broker.client();
        client.enqueue(Flaky { fail: 2 }).await.expect("enqueued");
        broker.drain_allowing_failures().await.expect("drained");
        assert_eq!(
            recorder.lines(),
            [
                "enqueue hooked_flaky on hooked",
                "enqueued ok=true",
                "before 1 tenant=acme",
                "after 1 retried",
                "retry: failed attempt 1",
                "before 2 tenant=acme",
                "after 2 dead",
                "dead failed",
            ]
        );
    }

    #[tokio::test]
    async fn a_panicking_hook_loses_no_job_and_the_hooks_after_it_still_run() {
        let recorder = Arc::new(Recorder::default());
        let broker = broker().with_hook(Broken).with_hook(Arc::clone(&recorder));
        broker.client().enqueue(Flaky { fail: 0 }).await.expect("enqueued");
        let drained = broker.drain().await.expect("drained");
        assert_eq!(drained.done::<Flaky>(), 1);
        assert!(
            recorder.lines().contains(&"after 1 succeeded".to_owned()),
            "{:?}",
            recorder.lines()
        );
    }
}
