//! warren's wire format: the AMQP properties and headers a job message carries.
//!
//! A job message is an ordinary AMQP message, readable by any client:
//! `type` is the job name, `message_id` the job id, `delivery_mode` 2
//! (persistent), `content_type` the body format, `timestamp` when it was
//! enqueued, and the header `warren-attempt` which attempt it is for.
//! A delayed job carries `warren-eta`, when it is due; a retried one the
//! time of its first failure and its last error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::retry::RetryPolicy;
use crate::{BodyFormat, JobId};

/// Header: which attempt of the job this message is for (1 on enqueue).
pub(crate) const ATTEMPT: &str = "warren-attempt";
/// Header: the retries of this job, overriding its `#[job(retries)]`.
pub(crate) const RETRIES: &str = "warren-retries";
/// Header: the first retry's wait in milliseconds, overriding `#[job(backoff)]`.
pub(crate) const BACKOFF: &str = "warren-backoff-ms";
/// Header: when a delayed or retried job is due (milliseconds since epoch).
pub(crate) const ETA: &str = "warren-eta";
/// Header of a failed job: when its first attempt failed (seconds since epoch).
pub(crate) const FIRST_FAILURE_AT: &str = "warren-first-failure-at";
/// Header of a retried job: the error of its last attempt.
pub(crate) const LAST_ERROR: &str = "warren-last-error";
/// Header of a dead letter: why the job failed for good.
pub(crate) const DEAD_REASON: &str = "warren-dead-reason";
/// Header of a dead letter: the last error text.
pub(crate) const DEAD_ERROR: &str = "warren-dead-error";
/// Header of a dead letter: when it was dead-lettered (seconds since epoch).
pub(crate) const DEAD_AT: &str = "warren-dead-at";
/// Header of a dead letter: the queue the job was consumed from.
pub(crate) const DEAD_QUEUE: &str = "warren-dead-queue";
/// Header of a dead letter: the worker that gave up on it.
pub(crate) const DEAD_WORKER: &str = "warren-dead-worker";

/// Error texts are cut to this many bytes, so one huge error cannot make a
/// dead letter unpublishable.
const MAX_ERROR_LEN: usize = 4096;

/// RabbitMQ's delivery mode for messages written to disk.
pub(crate) const PERSISTENT: u8 = 2;

/// Why a job ended in the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeadReason {
    /// The handler returned an error.
    Failed,
    /// The handler ran past its timeout.
    Timeout,
    /// The handler panicked.
    Panic,
    /// The body did not decode as the job type.
    Undecodable,
    /// No job with the message's `type` is registered (or the message has no
    /// `type` and the queue has no default job).
    UnknownJob,
    /// The handler said retrying cannot help ([`JobError::reject`](crate::JobError::reject)).
    Rejected,
}

impl DeadReason {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            DeadReason::Failed => "failed",
            DeadReason::Timeout => "timeout",
            DeadReason::Panic => "panic",
            DeadReason::Undecodable => "undecodable",
            DeadReason::UnknownJob => "unknown_job",
            DeadReason::Rejected => "rejected",
        }
    }
}

/// The properties of a freshly enqueued job.
pub(crate) fn job_properties(name: &str, id: JobId, format: BodyFormat) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(ATTEMPT.into(), AMQPValue::LongLongInt(1));
    BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_type(name.into())
        .with_message_id(id.to_string().into())
        .with_content_type(format.content_type().into())
        .with_timestamp(now_secs())
        .with_headers(headers)
}

/// The properties of a dead letter: the original ones (so the job can be
/// retried as it was), persistent, with the job id and why and when it died.
pub(crate) fn dead_letter_properties(
    original: &BasicProperties,
    id: JobId,
    queue: &str,
    reason: DeadReason,
    error: &str,
    worker: &str,
) -> BasicProperties {
    // The error is in DEAD_ERROR; a dead letter is due nowhere.
    let mut headers = carried_headers(original, &[LAST_ERROR, ETA]);
    headers.insert(DEAD_REASON.into(), long_string(reason.as_str()));
    headers.insert(DEAD_ERROR.into(), long_string(truncate(error, MAX_ERROR_LEN)));
    headers.insert(DEAD_AT.into(), AMQPValue::Timestamp(now_secs()));
    headers.insert(DEAD_QUEUE.into(), long_string(queue));
    headers.insert(DEAD_WORKER.into(), long_string(worker));
    if !headers.contains_key(FIRST_FAILURE_AT) {
        headers.insert(FIRST_FAILURE_AT.into(), AMQPValue::Timestamp(now_secs()));
    }
    carried_properties(original, id, headers)
}

/// The properties of the next attempt of a failed job, due at `eta`: the
/// original ones with the attempt counted up and the failure recorded.
pub(crate) fn retry_properties(
    original: &BasicProperties,
    id: JobId,
    next_attempt: u32,
    error: &str,
    eta: SystemTime,
) -> BasicProperties {
    let mut headers = carried_headers(original, &[]);
    headers.insert(ATTEMPT.into(), AMQPValue::LongLongInt(next_attempt.into()));
    headers.insert(LAST_ERROR.into(), long_string(truncate(error, MAX_ERROR_LEN)));
    if !headers.contains_key(FIRST_FAILURE_AT) {
        headers.insert(FIRST_FAILURE_AT.into(), AMQPValue::Timestamp(now_secs()));
    }
    headers.insert(ETA.into(), eta_value(eta));
    carried_properties(original, id, headers)
}

/// `properties` with the job due at `eta`.
pub(crate) fn with_eta(properties: BasicProperties, eta: SystemTime) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(ETA.into(), eta_value(eta));
    properties.with_headers(headers)
}

/// When the job is due, if it was delayed or is a retry.
pub(crate) fn eta(properties: &BasicProperties) -> Option<SystemTime> {
    let millis = header(properties, ETA).and_then(integer)?;
    UNIX_EPOCH.checked_add(Duration::from_millis(u64::try_from(millis).ok()?))
}

/// The job's retry policy: `default` (from its attributes) with the
/// overrides its message carries.
pub(crate) fn retry_policy(properties: &BasicProperties, default: RetryPolicy) -> RetryPolicy {
    let retries = header(properties, RETRIES)
        .and_then(integer)
        .and_then(|n| u32::try_from(n).ok());
    let backoff = header(properties, BACKOFF)
        .and_then(integer)
        .and_then(|n| u64::try_from(n).ok())
        .map(Duration::from_millis);
    RetryPolicy {
        retries: retries.unwrap_or(default.retries),
        backoff: backoff.unwrap_or(default.backoff),
    }
    .bounded()
}

/// Whether a header is RabbitMQ's bookkeeping of a message's trips rather
/// than part of the job: its record of dead-lettering (`x-death` and
/// friends; from hold queues, or a quorum queue's delivery limit) and a
/// quorum queue's count of deliveries (`x-delivery-count`).
pub(crate) fn is_broker_bookkeeping(header: &str) -> bool {
    header == "x-delivery-count"
        || ["x-death", "x-first-death-", "x-last-death-"]
            .iter()
            .any(|prefix| header.starts_with(prefix))
}

/// The headers a job keeps when it is republished (retried or
/// dead-lettered): all but `dropped`, `CC`/`BCC`, which would copy it to
/// other queues, and RabbitMQ's bookkeeping, which would only grow or
/// describe a message that is not this one.
fn carried_headers(original: &BasicProperties, dropped: &[&str]) -> FieldTable {
    let mut headers = FieldTable::default();
    for (name, value) in original.headers().iter().flat_map(FieldTable::inner) {
        let name = name.as_str();
        let keep = !matches!(name, "CC" | "BCC") && !is_broker_bookkeeping(name) && !dropped.contains(&name);
        if keep {
            headers.insert(name.into(), value.clone());
        }
    }
    headers
}

/// The original properties, persistent, with the job id and `headers`.
/// Field by field: `expiration` would expire the copy, and a `user_id`
/// other than the worker's makes the broker refuse it.
fn carried_properties(original: &BasicProperties, id: JobId, headers: FieldTable) -> BasicProperties {
    let mut properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_message_id(id.to_string().into())
        .with_headers(headers);
    if let Some(kind) = original.kind() {
        properties = properties.with_type(kind.clone());
    }
    if let Some(content_type) = original.content_type() {
        properties = properties.with_content_type(content_type.clone());
    }
    if let Some(encoding) = original.content_encoding() {
        properties = properties.with_content_encoding(encoding.clone());
    }
    if let Some(timestamp) = original.timestamp() {
        properties = properties.with_timestamp(*timestamp);
    }
    if let Some(correlation_id) = original.correlation_id() {
        properties = properties.with_correlation_id(correlation_id.clone());
    }
    if let Some(app_id) = original.app_id() {
        properties = properties.with_app_id(app_id.clone());
    }
    properties
}

/// The job name (`type` property), if the message has one.
pub(crate) fn job_name(properties: &BasicProperties) -> Option<&str> {
    properties.kind().as_ref().map(ShortString::as_str)
}

/// The job id (`message_id`); a message from another producer may have none
/// or a foreign one, and gets a fresh id so it can still be told apart in
/// logs and dead letters.
pub(crate) fn job_id(properties: &BasicProperties) -> JobId {
    properties
        .message_id()
        .as_ref()
        .and_then(|id| id.as_str().parse().ok())
        .unwrap_or_default()
}

/// Which attempt this message is for; 1 when the header is absent.
pub(crate) fn attempt(properties: &BasicProperties) -> u32 {
    header(properties, ATTEMPT)
        .and_then(integer)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// A header's value.
pub(crate) fn header<'a>(properties: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    properties.headers().as_ref()?.inner().get(name)
}

/// When and why RabbitMQ last dead-lettered a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerDeath {
    /// `delivery_limit`, `rejected`, `expired` or `maxlen`.
    pub(crate) reason: String,
    /// When, if RabbitMQ said.
    pub(crate) at: Option<SystemTime>,
}

/// RabbitMQ's record of the last time it dead-lettered the message: the
/// first entry of `x-death`, which it keeps most recent first. Not
/// `x-first-death-reason`, which stays that of the first time: `expired`,
/// for a job that once waited in a hold queue. That header is the fallback
/// for a message without `x-death`.
pub(crate) fn broker_death(properties: &BasicProperties) -> Option<BrokerDeath> {
    if let Some(AMQPValue::FieldArray(deaths)) = header(properties, "x-death")
        && let Some(AMQPValue::FieldTable(last)) = deaths.as_slice().first()
        && let Some(reason) = last.inner().get("reason").and_then(text)
    {
        let at = match last.inner().get("time") {
            Some(&AMQPValue::Timestamp(secs)) => UNIX_EPOCH.checked_add(Duration::from_secs(secs)),
            _ => None,
        };
        return Some(BrokerDeath { reason, at });
    }
    let reason = header(properties, "x-first-death-reason").and_then(text)?;
    Some(BrokerDeath { reason, at: None })
}

/// A header's value as text, if it is a string.
pub(crate) fn text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Any integer header, however the producer typed it.
pub(crate) fn integer(value: &AMQPValue) -> Option<i64> {
    match *value {
        AMQPValue::ShortShortInt(n) => Some(n.into()),
        AMQPValue::ShortShortUInt(n) => Some(n.into()),
        AMQPValue::ShortInt(n) => Some(n.into()),
        AMQPValue::ShortUInt(n) => Some(n.into()),
        AMQPValue::LongInt(n) => Some(n.into()),
        AMQPValue::LongUInt(n) => Some(n.into()),
        AMQPValue::LongLongInt(n) => Some(n),
        _ => None,
    }
}

fn eta_value(eta: SystemTime) -> AMQPValue {
    let millis = eta.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    AMQPValue::LongLongInt(i64::try_from(millis).unwrap_or(i64::MAX))
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enqueued_jobs_are_persistent_typed_and_on_their_first_attempt() {
        let id = JobId::new();
        let properties = job_properties("resize_image", id, BodyFormat::Json);
        assert_eq!(*properties.delivery_mode(), Some(PERSISTENT));
        assert_eq!(job_name(&properties), Some("resize_image"));
        assert_eq!(job_id(&properties), id);
        assert_eq!(attempt(&properties), 1);
        assert_eq!(
            properties.content_type().as_ref().map(ShortString::as_str),
            Some("application/json")
        );
    }

    #[test]
    fn republished_jobs_drop_the_brokers_bookkeeping_of_the_old_message() {
        let id = JobId::new();
        let mut headers = job_properties("charge", id, BodyFormat::Json)
            .headers()
            .clone()
            .unwrap_or_default();
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(3));
        headers.insert("x-first-death-reason".into(), long_string("expired"));
        headers.insert("x-death".into(), AMQPValue::FieldArray(Default::default()));
        headers.insert("tenant".into(), long_string("acme"));
        let delivered = BasicProperties::default().with_headers(headers);
        let retry = retry_properties(&delivered, id, 2, "declined", SystemTime::now());
        let dead = dead_letter_properties(&delivered, id, "q", DeadReason::Failed, "declined", "a.1");
        for republished in [retry, dead] {
            let names: Vec<&str> = republished
                .headers()
                .iter()
                .flat_map(FieldTable::inner)
                .map(|(name, _)| name.as_str())
                .collect();
            assert!(names.contains(&"tenant"), "{names:?}");
            assert!(!names.iter().any(|name| name.starts_with("x-")), "{names:?}");
        }
    }

    #[test]
    fn dead_letters_of_foreign_messages_carry_the_id_warren_gave_them_and_no_cc() {
        let mut headers = FieldTable::default();
        headers.insert("CC".into(), long_string("other-queue"));
        let foreign = BasicProperties::default().with_headers(headers);
        let id = JobId::new();
        let dead = dead_letter_properties(&foreign, id, "q", DeadReason::UnknownJob, "no type", "a.1");
        assert_eq!(job_id(&dead), id);
        assert!(header(&dead, "CC").is_none());
    }

    #[test]
    fn retries_count_the_attempt_up_and_remember_the_first_failure() {
        let id = JobId::new();
        let original = job_properties("resize_image", id, BodyFormat::Json);
        let due = SystemTime::now() + Duration::from_secs(10);
        let second = retry_properties(&original, id, 2, "disk full", due);
        assert_eq!(attempt(&second), 2);
        assert_eq!(job_id(&second), id);
        assert_eq!(header(&second, LAST_ERROR).and_then(text).as_deref(), Some("disk full"));
        let first_failure = header(&second, FIRST_FAILURE_AT).cloned();
        assert!(first_failure.is_some());
        let carried = eta(&second).unwrap();
        assert!(due.duration_since(carried).unwrap_or_default() < Duration::from_millis(1));

        let third = retry_properties(&second, id, 3, "disk still full", due);
        assert_eq!(attempt(&third), 3);
        assert_eq!(
            header(&third, FIRST_FAILURE_AT).cloned(),
            first_failure,
            "kept from the first failure"
        );

        let dead = dead_letter_properties(&third, id, "q", DeadReason::Failed, "gave up", "a.1");
        assert_eq!(attempt(&dead), 3);
        assert_eq!(header(&dead, FIRST_FAILURE_AT).cloned(), first_failure);
        assert!(eta(&dead).is_none(), "a dead letter is not due anywhere");
        assert!(header(&dead, LAST_ERROR).is_none(), "the error is in warren-dead-error");
    }

    #[test]
    fn enqueue_time_overrides_beat_the_job_attributes() {
        let default = RetryPolicy {
            retries: 3,
            backoff: Duration::from_secs(10),
        };
        let plain = job_properties("a", JobId::new(), BodyFormat::Json);
        assert_eq!(retry_policy(&plain, default), default);
        let mut headers = plain.headers().clone().unwrap_or_default();
        headers.insert(RETRIES.into(), AMQPValue::LongLongInt(0));
        headers.insert(BACKOFF.into(), AMQPValue::LongLongInt(250));
        let overridden = plain.with_headers(headers);
        let policy = retry_policy(&overridden, default);
        assert_eq!(policy.retries, 0);
        assert_eq!(policy.backoff, Duration::from_millis(250));
    }

    #[test]
    fn foreign_messages_get_defaults() {
        let properties = BasicProperties::default().with_message_id("not-a-uuid".into());
        assert_eq!(job_name(&properties), None);
        assert_eq!(attempt(&properties), 1);
        assert_ne!(job_id(&properties), job_id(&properties), "a fresh id each time");
    }

    #[test]
    fn dead_letters_keep_the_job_and_say_why() {
        let id = JobId::new();
        let original = job_properties("resize_image", id, BodyFormat::Json).with_expiration("60000".into());
        let long_error = "é".repeat(MAX_ERROR_LEN);
        let dead = dead_letter_properties(&original, id, "images", DeadReason::Panic, &long_error, "a.1");
        assert_eq!(*dead.expiration(), None, "a dead letter does not expire");
        assert_eq!(dead.timestamp(), original.timestamp());
        assert_eq!(job_name(&dead), Some("resize_image"));
        assert_eq!(dead.message_id(), original.message_id());
        assert_eq!(header(&dead, DEAD_REASON).and_then(text).as_deref(), Some("panic"));
        assert_eq!(header(&dead, DEAD_QUEUE).and_then(text).as_deref(), Some("images"));
        let error = header(&dead, DEAD_ERROR).and_then(text).unwrap();
        assert!(error.len() <= MAX_ERROR_LEN && error.chars().all(|c| c == 'é'));
        assert_eq!(attempt(&dead), 1);
    }
}
