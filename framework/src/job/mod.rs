//! What a job is: a serde type with a stable wire name, a queue and options.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) mod attempt;
pub(crate) mod codec;
mod context;
pub(crate) mod contract;
mod dead_reason;
mod handler;
pub(crate) mod registry;
pub(crate) mod retry;
pub(crate) mod schedule;
mod state;

pub use context::JobContext;
pub use contract::Contract;
pub use dead_reason::DeadReason;
pub use handler::{Handler, JobError};
pub use registry::{Registration, Registry, RegistryBuilder, RegistryError};
pub use schedule::Schedule;
pub use state::{MissingState, State};

/// The queue a job goes to when its `#[job(queue = "...")]` does not name one.
pub const DEFAULT_QUEUE: &str = "default";

/// A background job: a serde type with a stable name and a queue.
///
/// Implement it with `#[derive(Job)]`, which also registers the type so that
/// the worker binary can find its [`Handler`](crate::Handler):
///
/// ```
/// use warren::prelude::*;
///
/// #[derive(Debug, Serialize, Deserialize, Job)]
/// #[job(queue = "emails", timeout = "30s")]
/// struct SendEmail { to: String }
///
/// impl Handler for SendEmail {
///     async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
///         Ok(())
///     }
/// }
///
/// assert_eq!(SendEmail::NAME, "send_email");
/// assert_eq!(SendEmail::QUEUE, "emails");
/// ```
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// The wire name, sent as the message's `type` property. Stable: renaming
    /// the Rust type does not change it.
    const NAME: &'static str;
    /// The queue the job is published to (before any queue prefix).
    const QUEUE: &'static str;
    /// Options from the `#[job(...)]` attribute.
    const OPTIONS: JobOptions;
}

/// How a job's body is written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BodyFormat {
    /// `application/json`: the job serialised with `serde_json`.
    #[default]
    Json,
    /// `text/plain`: the job serialises to a string (for example a newtype
    /// around `String`) and that string is the whole body. For interop with
    /// producers and consumers that send plain text.
    Text,
}

impl BodyFormat {
    /// The `content_type` property messages of this format carry.
    pub const fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Json => "application/json",
            BodyFormat::Text => "text/plain",
        }
    }

    /// The name used in `#[job(format = "...")]` and in the `jobs` listing.
    pub const fn as_str(self) -> &'static str {
        match self {
            BodyFormat::Json => "json",
            BodyFormat::Text => "text",
        }
    }
}

/// The kind of RabbitMQ queue a job queue is, set with
/// `#[job(queue_type = "...")]`. Every job of one queue must name the same
/// type, and an existing queue keeps the type it was declared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum QueueType {
    /// A classic queue, declared durable with no arguments, so that any
    /// AMQP client declaring it `durable: true` agrees.
    #[default]
    Classic,
    /// A quorum queue, replicated over the nodes of a RabbitMQ cluster,
    /// with a delivery limit ([`QueueType::QUORUM_DELIVERY_LIMIT`]) after
    /// which RabbitMQ moves a message to the dead-letter queue, which is a
    /// quorum queue too.
    Quorum,
}

impl QueueType {
    /// How many times a quorum queue takes a message back unacknowledged
    /// (its `x-delivery-limit`) before RabbitMQ dead-letters it.
    ///
    /// warren's own retries publish a new message, so this counts only the
    /// returns of a delivery: a worker that died holding it (a job that
    /// kills its process each time, which nothing else stops), a worker
    /// that shut down or lost its channel with it prefetched, a failed
    /// hand-over to a hold or dead-letter queue. Five such returns means
    /// something is wrong with the job rather than with a deploy or a
    /// failover, and a crash loop ends after six crashes instead of never.
    ///
    /// It is part of the queue's declaration: changing it would make
    /// RabbitMQ refuse the declaration of every existing quorum queue.
    pub const QUORUM_DELIVERY_LIMIT: u32 = 5;

    /// The name used in `#[job(queue_type = "...")]`, in the `jobs` listing
    /// and by RabbitMQ (`x-queue-type`).
    pub const fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl fmt::Display for QueueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-job options, set with `#[job(...)]`; command-line and environment
/// settings of the worker take precedence, framework defaults fill the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobOptions {
    /// How long one attempt may run before it is stopped and counted as
    /// failed. `None`: [`JobOptions::DEFAULT_TIMEOUT`].
    pub timeout: Option<Duration>,
    /// How many times a failed attempt is retried before the job goes to
    /// the dead-letter queue. `None`: [`JobOptions::DEFAULT_RETRIES`].
    pub retries: Option<u32>,
    /// The wait before the first retry; each further retry waits twice as
    /// long (with jitter). `None`: [`JobOptions::DEFAULT_BACKOFF`].
    pub backoff: Option<Duration>,
    /// The body format.
    pub format: BodyFormat,
    /// Whether this job handles messages on its queue that carry no `type`
    /// property (messages from producers that are not warren).
    pub queue_default: bool,
    /// The kind of queue the job's queue is declared as.
    pub queue_type: QueueType,
    /// The priority its messages carry unless the enqueue sets one
    /// (`#[job(priority = N)]`); `None`: none, which RabbitMQ treats as 0.
    pub priority: Option<u8>,
    /// The highest priority the job's queue takes (its `x-max-priority`,
    /// `#[job(max_priority = N)]`); `None`: the queue takes no priorities
    /// and is declared without the argument. Every job of one queue must
    /// say the same.
    pub max_priority: Option<u8>,
    /// While a job of this name and unique key is pending, delayed or
    /// running, and at most this long, another enqueue of it is refused
    /// with the first one's id (`#[job(unique_for = "10m")]`). The key is
    /// [`EnqueueOptions::unique_key`](crate::EnqueueOptions::unique_key),
    /// or else the job's arguments. `None`: not unique.
    pub unique_for: Option<Duration>,
    /// When the job runs by itself, with its `Default` value: a cron
    /// expression (`#[job(cron = "0 */5 * * * *")]`, seconds optional), in
    /// [`JobOptions::timezone`]. See the [scheduling](crate::guide::scheduling) guide.
    pub cron: Option<&'static str>,
    /// The time zone of [`JobOptions::cron`], an IANA name such as
    /// `Europe/Paris`; `None`: UTC.
    pub timezone: Option<&'static str>,
}

impl JobOptions {
    /// The timeout of a job that does not set one: ten minutes, well inside
    /// RabbitMQ's default 30-minute consumer timeout for unacked deliveries.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

    /// The retries of a job that does not set them: three, so a transient
    /// fault (a deploy, a failover, a rate limit) is ridden out, while a job
    /// that keeps failing reaches the dead-letter queue within about a
    /// minute and a half, where someone can see it and `dead retry` it.
    pub const DEFAULT_RETRIES: u32 = 3;

    /// The wait before the first retry of a job that does not set one: 10 s,
    /// then 20 s, then 40 s (each drawn between half and all of that).
    pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);

    /// No options set: JSON body, framework defaults.
    pub const fn new() -> Self {
        JobOptions {
            timeout: None,
            retries: None,
            backoff: None,
            format: BodyFormat::Json,
            queue_default: false,
            queue_type: QueueType::Classic,
            priority: None,
            max_priority: None,
            unique_for: None,
            cron: None,
            timezone: None,
        }
    }

    /// Sets the timeout of one attempt.
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the number of retries.
    pub const fn with_retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// Sets the wait before the first retry.
    pub const fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Sets the body format.
    pub const fn with_format(mut self, format: BodyFormat) -> Self {
        self.format = format;
        self
    }

    /// Makes the job the handler of untyped messages on its queue.
    pub const fn with_queue_default(mut self) -> Self {
        self.queue_default = true;
        self
    }

    /// Sets the kind of queue the job's queue is declared as.
    pub const fn with_queue_type(mut self, queue_type: QueueType) -> Self {
        self.queue_type = queue_type;
        self
    }

    /// Sets the priority its messages carry unless the enqueue sets one.
    pub const fn with_priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Makes the job's queue a priority queue taking priorities up to `max`.
    pub const fn with_max_priority(mut self, max: u8) -> Self {
        self.max_priority = Some(max);
        self
    }

    /// Makes the job unique per key for at most `unique_for`.
    pub const fn with_unique_for(mut self, unique_for: Duration) -> Self {
        self.unique_for = Some(unique_for);
        self
    }

    /// Runs the job by itself on this cron schedule.
    pub const fn with_cron(mut self, cron: &'static str) -> Self {
        self.cron = Some(cron);
        self
    }

    /// Sets the time zone of the cron schedule.
    pub const fn with_timezone(mut self, timezone: &'static str) -> Self {
        self.timezone = Some(timezone);
        self
    }

    /// The timeout that applies: the job's own or the default.
    pub const fn effective_timeout(&self) -> Duration {
        match self.timeout {
            Some(timeout) => timeout,
            None => Self::DEFAULT_TIMEOUT,
        }
    }

    /// The retries that apply: the job's own or the default.
    pub const fn effective_retries(&self) -> u32 {
        match self.retries {
            Some(retries) => retries,
            None => Self::DEFAULT_RETRIES,
        }
    }

    /// The first retry's wait that applies: the job's own or the default.
    pub const fn effective_backoff(&self) -> Duration {
        match self.backoff {
            Some(backoff) => backoff,
            None => Self::DEFAULT_BACKOFF,
        }
    }
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// What a job queue is declared with: its kind, and whether it takes
/// priorities. Every job of one queue agrees on it (the registry checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct QueueShape {
    pub(crate) queue_type: QueueType,
    pub(crate) max_priority: Option<u8>,
}

impl QueueShape {
    /// The shape of the queue of a job with these options.
    pub(crate) const fn of(options: &JobOptions) -> Self {
        QueueShape {
            queue_type: options.queue_type,
            max_priority: options.max_priority,
        }
    }
}

/// The unique id of one enqueued job, carried in the message's `message_id`.
///
/// A UUIDv7, so ids sort by the time they were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct JobId(uuid::Uuid);

impl JobId {
    /// A new, unique id.
    pub fn new() -> Self {
        JobId(uuid::Uuid::now_v7())
    }

    /// The id derived from `name`, the same in every process: a periodic
    /// job's slot (`cron:<job>:<slot>`) has one id wherever it fires.
    #[cfg(feature = "worker")]
    pub(crate) fn derived(name: &str) -> Self {
        let bytes = crate::worker::scheduler::id_bytes(name);
        JobId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::from_str(s).map(JobId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_unique_and_round_trip_through_text() {
        let a = JobId::new();
        let b = JobId::new();
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<JobId>().unwrap(), a);
    }

    #[test]
    fn job_queues_are_classic_unless_a_job_says_quorum() {
        assert_eq!(JobOptions::new().queue_type, QueueType::Classic);
        assert_eq!(QueueType::default(), QueueType::Classic);
        let quorum = JobOptions::new().with_queue_type(QueueType::Quorum);
        assert_eq!(quorum.queue_type, QueueType::Quorum);
        assert_eq!(quorum.queue_type.to_string(), "quorum");
    }

    #[test]
    fn effective_timeout_falls_back_to_the_default() {
        assert_eq!(JobOptions::new().effective_timeout(), JobOptions::DEFAULT_TIMEOUT);
        let short = JobOptions::new().with_timeout(Duration::from_secs(3));
        assert_eq!(short.effective_timeout(), Duration::from_secs(3));
    }
}
