//! warren's wire format: the AMQP properties and headers a job message carries.
//!
//! A job message is an ordinary AMQP message, readable by any client:
//! `type` is the job name, `message_id` the job id, `delivery_mode` 2
//! (persistent), `content_type` the body format, `timestamp` when it was
//! enqueued, and the header `warren-attempt` which attempt it is for.
//! A delayed job carries `warren-eta`, when it is due; a retried one the
//! time of its first failure and its last error.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::job::retry::RetryPolicy;
use crate::{BodyFormat, DeadReason, JobId};

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

/// Header of a job no worker knew: when a worker first found no job of its
/// name (milliseconds since the epoch), to bound how long it is held for a
/// worker that knows it.
pub(crate) const UNKNOWN_SINCE: &str = "warren-unknown-since";
/// Header of a job republished without some of its headers: which were
/// dropped, and how large they were, to fit the publisher's frame.
pub(crate) const TRIMMED: &str = "warren-trimmed";

/// The headers warren reads or writes: kept when a republished job must be
/// trimmed to fit a frame.
const OWN_HEADERS: [&str; 12] = [
    UNKNOWN_SINCE,
    ATTEMPT,
    RETRIES,
    BACKOFF,
    ETA,
    FIRST_FAILURE_AT,
    LAST_ERROR,
    DEAD_REASON,
    DEAD_ERROR,
    DEAD_AT,
    DEAD_QUEUE,
    DEAD_WORKER,
];

/// Error texts are cut to this many bytes, so one huge error cannot make a
/// dead letter unpublishable.
const MAX_ERROR_LEN: usize = 4096;

/// How deep a message's headers may nest (arrays and tables in arrays and
/// tables) for warren to take it as a job. Deeper is a hostile or broken
/// producer; the AMQP parser itself stops descending a little further down
/// (`amq_protocol_types::parsing::MAX_NESTING`, patched in `patches/`).
pub(crate) const MAX_HEADER_DEPTH: usize = 32;

/// How many dropped headers [`TRIMMED`] names; the others are counted.
const TRIMMED_NOTE_NAMES: usize = 8;

/// The most room [`TRIMMED`] takes in the headers: its name, and a note
/// naming at most [`TRIMMED_NOTE_NAMES`] headers of up to 255 bytes each.
const TRIMMED_NOTE_MAX: usize = 3 * 1024;

/// Room left in a frame for everything in a message's properties but the
/// headers: 14 short strings of at most 255 bytes, the fixed fields, the
/// content header's own fields and the frame's framing.
const PROPERTIES_BESIDE_HEADERS: usize = 4096;

/// RabbitMQ's delivery mode for messages written to disk.
pub(crate) const PERSISTENT: u8 = 2;

/// The properties of a freshly enqueued job.
#[cfg(test)]
pub(crate) fn job_properties(name: &str, id: JobId, format: BodyFormat) -> BasicProperties {
    job_properties_at(name, id, format, SystemTime::now())
}

/// The properties of a job enqueued `at`: the same every time they are
/// built for it (an enqueue builds them for each attempt to publish).
pub(crate) fn job_properties_at(name: &str, id: JobId, format: BodyFormat, at: SystemTime) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(ATTEMPT.into(), AMQPValue::LongLongInt(1));
    BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_type(name.into())
        .with_message_id(id.to_string().into())
        .with_content_type(format.content_type().into())
        .with_timestamp(at.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs()))
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

/// The properties of a delayed job sent on to its next hold queue: the
/// original ones, carried as for a retry (no `expiration`, `user_id`,
/// `CC`/`BCC` or broker bookkeeping), its due time kept.
#[cfg(feature = "worker")]
pub(crate) fn hop_properties(original: &BasicProperties, id: JobId) -> BasicProperties {
    carried_properties(original, id, carried_headers(original, &[]))
}

/// The properties of a job no worker knows yet, held until `eta`: the
/// original ones with when it was first found unknown (kept from an
/// earlier hold), and its due time. The attempt does not count up.
#[cfg(feature = "worker")]
pub(crate) fn unknown_properties(
    original: &BasicProperties,
    id: JobId,
    since: SystemTime,
    eta: SystemTime,
) -> BasicProperties {
    let mut headers = carried_headers(original, &[]);
    headers.insert(UNKNOWN_SINCE.into(), eta_value(since));
    headers.insert(ETA.into(), eta_value(eta));
    carried_properties(original, id, headers)
}

/// When a worker first found no job of this message's name, if one did.
#[cfg(feature = "worker")]
pub(crate) fn unknown_since(properties: &BasicProperties) -> Option<SystemTime> {
    let millis = header(properties, UNKNOWN_SINCE).and_then(integer)?;
    UNIX_EPOCH.checked_add(Duration::from_millis(u64::try_from(millis).ok()?))
}

/// `properties` with the job due at `eta`.
pub(crate) fn with_eta(properties: BasicProperties, eta: SystemTime) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(ETA.into(), eta_value(eta));
    properties.with_headers(headers)
}

/// When the job is due, if it was delayed or is a retry: milliseconds since
/// the epoch as warren writes it, or an AMQP timestamp (seconds), as other
/// clients send a date (pika's `datetime`).
pub(crate) fn eta(properties: &BasicProperties) -> Option<SystemTime> {
    let since_epoch = match header(properties, ETA)? {
        AMQPValue::Timestamp(secs) => Duration::from_secs(*secs),
        value => Duration::from_millis(u64::try_from(integer(value)?).ok()?),
    };
    UNIX_EPOCH.checked_add(since_epoch)
}

/// Why a delivered message cannot be taken as a job whatever its body says,
/// if it cannot: its `type` was not valid UTF-8 (the parser replaced the bad
/// bytes by U+FFFD), or its headers nest deeper than [`MAX_HEADER_DEPTH`].
pub(crate) fn malformed(properties: &BasicProperties) -> Option<String> {
    if job_name(properties).is_some_and(|name| name.contains(char::REPLACEMENT_CHARACTER)) {
        return Some("its `type` property is not valid UTF-8".to_owned());
    }
    let headers = properties.headers().as_ref()?;
    if headers
        .inner()
        .values()
        .any(|value| nested_deeper_than(value, MAX_HEADER_DEPTH - 1))
    {
        return Some(format!("its headers nest deeper than {MAX_HEADER_DEPTH} levels"));
    }
    None
}

/// Whether arrays and tables nest more than `levels` deep inside `value`.
/// Recursive, but never deeper than `levels`.
fn nested_deeper_than(value: &AMQPValue, levels: usize) -> bool {
    let mut inner: Box<dyn Iterator<Item = &AMQPValue>> = match value {
        AMQPValue::FieldArray(array) => Box::new(array.as_slice().iter()),
        AMQPValue::FieldTable(table) => Box::new(table.inner().values()),
        _ => return false,
    };
    match levels.checked_sub(1) {
        None => inner.any(|value| matches!(value, AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_))),
        Some(below) => inner.any(|value| nested_deeper_than(value, below)),
    }
}

/// `properties` made to fit one frame of `frame_max` bytes, as a message's
/// properties must: when its headers are too large, other producers'
/// headers are dropped, the largest first, until they fit, and
/// [`TRIMMED`] says which were dropped and their size. warren's own
/// headers are kept. `None` when nothing needs dropping.
///
/// A worker receives what any producer sent, up to the broker's frame size,
/// but publishes with smaller frames (see `runtime::PUBLISHER_FRAME_MAX`):
/// without this, a retry or dead letter of such a message could never be
/// published, and the broker closes the connection on it.
pub(crate) fn fit_frame(properties: &BasicProperties, frame_max: u32) -> Option<BasicProperties> {
    let headers = properties.headers().as_ref()?;
    let budget = usize::try_from(frame_max)
        .unwrap_or(usize::MAX)
        .saturating_sub(PROPERTIES_BESIDE_HEADERS);
    let mut size = table_size(headers);
    if size <= budget {
        return None;
    }
    // Other producers' headers go first, the largest first, and with them
    // any under warren's names but larger than warren writes them (an error
    // text is cut to 4 KiB, the others are numbers); then warren's, the
    // largest first. Everything can go, so the result always fits.
    let mut droppable: Vec<(bool, usize, &str)> = headers
        .inner()
        .iter()
        .map(|(name, value)| {
            let name = name.as_str();
            let entry = 1 + name.len() + value_size(value);
            let warrens = OWN_HEADERS.contains(&name) && entry <= MAX_ERROR_LEN + 64;
            (warrens, entry, name)
        })
        .collect();
    droppable.sort_by_key(|&(warrens, entry, _)| (warrens, std::cmp::Reverse(entry)));
    // The note added below takes room too.
    let budget = budget.saturating_sub(TRIMMED_NOTE_MAX);
    let mut dropped = Vec::new();
    for (_, entry, name) in droppable {
        if size <= budget {
            break;
        }
        size -= entry;
        dropped.push((name, entry));
    }
    let gone: HashSet<&str> = dropped.iter().map(|&(name, _)| name).collect();
    let mut kept = FieldTable::default();
    for (name, value) in headers.inner() {
        if !gone.contains(name.as_str()) {
            kept.insert(name.clone(), value.clone());
        }
    }
    let mut listed: Vec<String> = dropped
        .iter()
        .take(TRIMMED_NOTE_NAMES)
        .map(|(name, entry)| format!("`{name}` ({entry} bytes)"))
        .collect();
    if dropped.len() > TRIMMED_NOTE_NAMES {
        let rest = &dropped[TRIMMED_NOTE_NAMES..];
        let bytes: usize = rest.iter().map(|&(_, entry)| entry).sum();
        listed.push(format!("and {} more ({bytes} bytes)", rest.len()));
    }
    let note = format!("dropped header {} to fit a {frame_max}-byte frame", listed.join(", "));
    kept.insert(TRIMMED.into(), long_string(&note));
    Some(properties.clone().with_headers(kept))
}

/// The encoded size of a field table, as AMQP puts it on the wire.
fn table_size(table: &FieldTable) -> usize {
    4 + table
        .inner()
        .iter()
        .map(|(name, value)| 1 + name.as_str().len() + value_size(value))
        .sum::<usize>()
}

/// The encoded size of a field value, its type byte included.
fn value_size(value: &AMQPValue) -> usize {
    1 + match value {
        AMQPValue::Boolean(_) | AMQPValue::ShortShortInt(_) | AMQPValue::ShortShortUInt(_) => 1,
        AMQPValue::ShortInt(_) | AMQPValue::ShortUInt(_) => 2,
        AMQPValue::LongInt(_) | AMQPValue::LongUInt(_) | AMQPValue::Float(_) => 4,
        AMQPValue::LongLongInt(_) | AMQPValue::Double(_) | AMQPValue::Timestamp(_) => 8,
        AMQPValue::DecimalValue(_) => 5,
        AMQPValue::ShortString(text) => 1 + text.as_str().len(),
        AMQPValue::LongString(text) => 4 + text.as_bytes().len(),
        AMQPValue::ByteArray(bytes) => 4 + bytes.as_slice().len(),
        AMQPValue::FieldArray(array) => 4 + array.as_slice().iter().map(value_size).sum::<usize>(),
        AMQPValue::FieldTable(table) => table_size(table),
        AMQPValue::Void => 0,
    }
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
    // A retried or delayed urgent job stays urgent.
    if let Some(priority) = original.priority() {
        properties = properties.with_priority(*priority);
    }
    properties
}

/// `properties` with the text header `name` set to `value`.
pub(crate) fn with_header(properties: BasicProperties, name: &str, value: &str) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(name.into(), long_string(value));
    properties.with_headers(headers)
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

/// Reads a delivered message's properties as the worker does, and builds
/// its retry and dead letter fitted to `frame_max`: for the fuzz target
/// (`fuzz/`), which checks that no input makes any of it panic, and that a
/// fitted message fits unless only warren's own headers are left.
pub(crate) fn inspect(properties: &BasicProperties, frame_max: u32) {
    let id = job_id(properties);
    let _ = (malformed(properties), job_name(properties), eta(properties));
    let _ = broker_death(properties);
    let _ = retry_policy(properties, RetryPolicy::of(&crate::JobOptions::new()));
    let next = attempt(properties).saturating_add(1);
    let retry = retry_properties(properties, id, next, "failed", SystemTime::now());
    let dead = dead_letter_properties(properties, id, "q", DeadReason::Undecodable, "failed", "w.1");
    for republished in [retry, dead] {
        let fitted = fit_frame(&republished, frame_max).unwrap_or(republished);
        let headers = fitted.headers().clone().unwrap_or_default();
        let fits = table_size(&headers) + PROPERTIES_BESIDE_HEADERS <= frame_max as usize;
        let only_ours = headers
            .inner()
            .keys()
            .all(|name| OWN_HEADERS.contains(&name.as_str()) || name.as_str() == TRIMMED);
        // warren's own headers take at most about 9 KiB.
        assert!(
            fits || (frame_max < 32 * 1024 && only_ours),
            "a fitted message is still too large"
        );
    }
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
    fn an_urgent_job_stays_urgent_when_retried_delayed_or_dead_lettered() {
        let id = JobId::new();
        let urgent = job_properties("page_oncall", id, BodyFormat::Json).with_priority(9);
        let due = SystemTime::now() + Duration::from_secs(10);
        assert_eq!(*retry_properties(&urgent, id, 2, "busy", due).priority(), Some(9));
        let dead = dead_letter_properties(&urgent, id, "q", DeadReason::Failed, "gave up", "a.1");
        assert_eq!(*dead.priority(), Some(9), "so that `dead retry` keeps it");
        let plain = job_properties("resize_image", id, BodyFormat::Json);
        assert_eq!(*retry_properties(&plain, id, 2, "busy", due).priority(), None);
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

    fn nested(depth: usize) -> AMQPValue {
        let mut value = AMQPValue::LongLongInt(1);
        for level in 0..depth {
            value = if level % 2 == 0 {
                AMQPValue::FieldArray(vec![value].into())
            } else {
                let mut table = FieldTable::default();
                table.insert("inner".into(), value);
                AMQPValue::FieldTable(table)
            };
        }
        value
    }

    fn with_header(name: &str, value: AMQPValue) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(name.into(), value);
        job_properties("record", JobId::new(), BodyFormat::Json).with_headers(headers)
    }

    #[test]
    fn headers_nested_past_the_bound_make_a_message_malformed() {
        assert_eq!(malformed(&with_header("deep", nested(MAX_HEADER_DEPTH))), None);
        let reason = malformed(&with_header("deep", nested(MAX_HEADER_DEPTH + 1))).unwrap();
        assert!(reason.contains("nest deeper than 32"), "{reason}");
        assert!(malformed(&with_header("deep", nested(64))).is_some());
        assert_eq!(
            malformed(&job_properties("record", JobId::new(), BodyFormat::Json)),
            None
        );
    }

    #[test]
    fn a_type_that_was_not_utf8_makes_a_message_malformed() {
        let properties = BasicProperties::default().with_type("rec\u{fffd}\u{fffd}ord".into());
        assert_eq!(
            malformed(&properties).as_deref(),
            Some("its `type` property is not valid UTF-8")
        );
    }

    #[test]
    fn an_eta_sent_as_an_amqp_timestamp_is_read_in_seconds() {
        let properties = with_header(ETA, AMQPValue::Timestamp(2_000_000_000));
        assert_eq!(
            eta(&properties),
            UNIX_EPOCH.checked_add(Duration::from_secs(2_000_000_000))
        );
        let millis = with_header(ETA, AMQPValue::LongLongInt(2_000_000_000_000));
        assert_eq!(eta(&millis), eta(&properties));
        assert_eq!(eta(&with_header(ETA, long_string("tomorrow"))), None);
    }

    #[test]
    fn properties_too_large_for_a_frame_drop_foreign_headers_largest_first() {
        let id = JobId::new();
        let mut headers = FieldTable::default();
        headers.insert("small".into(), long_string("kept"));
        headers.insert("big".into(), long_string(&"x".repeat(40_000)));
        headers.insert("bigger".into(), AMQPValue::ByteArray(vec![0; 50_000].into()));
        headers.insert(ATTEMPT.into(), AMQPValue::LongLongInt(2));
        headers.insert(RETRIES.into(), long_string(&"9".repeat(30_000)));
        let original = job_properties("record", id, BodyFormat::Json).with_headers(headers);
        let dead = dead_letter_properties(&original, id, "q", DeadReason::Failed, "boom", "a.1");
        assert!(fit_frame(&dead, 131_072).is_none(), "fits the broker's frame as it is");

        let trimmed = fit_frame(&dead, 32 * 1024).unwrap();
        let table = trimmed.headers().clone().unwrap();
        assert!(table_size(&table) + PROPERTIES_BESIDE_HEADERS <= 32 * 1024);
        assert!(header(&trimmed, "big").is_none() && header(&trimmed, "bigger").is_none());
        assert!(
            header(&trimmed, RETRIES).is_none(),
            "a warren header 30 KB long is another producer's"
        );
        assert_eq!(header(&trimmed, "small").and_then(text).as_deref(), Some("kept"));
        assert_eq!(attempt(&trimmed), 2);
        assert_eq!(header(&trimmed, DEAD_REASON).and_then(text).as_deref(), Some("failed"));
        let note = header(&trimmed, TRIMMED).and_then(text).unwrap();
        assert!(
            note.contains("`bigger` (50012 bytes)") && note.contains("`big` (40009 bytes)"),
            "{note}"
        );
        assert_eq!(job_id(&trimmed), id);
    }

    #[test]
    fn headers_under_warrens_names_but_far_larger_are_dropped_too() {
        // Nine warren-named headers of 4,100 bytes each: 37 KB, which did not
        // fit the worker's 32 KiB frame and closed its publisher connection.
        let names = [
            RETRIES,
            BACKOFF,
            FIRST_FAILURE_AT,
            UNKNOWN_SINCE,
            DEAD_REASON,
            DEAD_AT,
            DEAD_QUEUE,
            DEAD_WORKER,
            ETA,
        ];
        let mut headers = FieldTable::default();
        for name in names {
            headers.insert(name.into(), long_string(&"9".repeat(4_100)));
        }
        headers.insert(ATTEMPT.into(), AMQPValue::LongLongInt(1));
        let id = JobId::new();
        let original = job_properties("always_fail", id, BodyFormat::Json).with_headers(headers);
        let retry = retry_properties(&original, id, 2, "failed", SystemTime::now());
        let fitted = fit_frame(&retry, 32 * 1024).unwrap();
        let size = table_size(fitted.headers().as_ref().unwrap());
        assert!(size + PROPERTIES_BESIDE_HEADERS <= 32 * 1024, "{size} bytes of headers");
        assert_eq!(attempt(&fitted), 2, "the small headers warren wrote stay");
        assert_eq!(header(&fitted, LAST_ERROR).and_then(text).as_deref(), Some("failed"));
        inspect(&original, 32 * 1024);
    }

    #[test]
    fn a_delayed_job_hops_without_what_would_expire_refuse_or_copy_it() {
        let id = JobId::new();
        let mut headers = FieldTable::default();
        headers.insert("CC".into(), long_string("elsewhere"));
        headers.insert(ETA.into(), AMQPValue::LongLongInt(4_000_000_000_000));
        let delivered = job_properties("record", id, BodyFormat::Json)
            .with_headers(headers)
            .with_expiration("1000".into())
            .with_user_id("someone-else".into());
        let hop = hop_properties(&delivered, id);
        assert_eq!(*hop.expiration(), None);
        assert_eq!(*hop.user_id(), None);
        assert!(header(&hop, "CC").is_none());
        assert_eq!(eta(&hop), eta(&delivered), "still due when it was");
        assert_eq!(job_id(&hop), id);
    }

    #[test]
    fn the_note_of_what_was_trimmed_fits_in_the_frame_too() {
        // 200 headers under 250-byte names: 52 KB, within RabbitMQ's 128 KiB
        // frame; a note naming them all would not fit 32 KiB by itself.
        let mut headers = FieldTable::default();
        for n in 0..200 {
            headers.insert(format!("{n:0>250}").into(), AMQPValue::LongLongInt(n));
        }
        let id = JobId::new();
        let original = job_properties("record", id, BodyFormat::Json).with_headers(headers);
        let dead = dead_letter_properties(&original, id, "q", DeadReason::UnknownJob, "no such job", "a.1");
        let trimmed = fit_frame(&dead, 32 * 1024).unwrap();
        let size = table_size(trimmed.headers().as_ref().unwrap());
        assert!(size + PROPERTIES_BESIDE_HEADERS <= 32 * 1024, "{size} bytes of headers");
        let note = header(&trimmed, TRIMMED).and_then(text).unwrap();
        assert!(value_size(header(&trimmed, TRIMMED).unwrap()) < TRIMMED_NOTE_MAX);
        assert!(note.contains(" more ("), "{note}");
    }

    #[test]
    fn short_strings_that_grow_past_255_bytes_when_read_are_cut_and_dead_lettered() {
        // Found by `cargo fuzz run content_header` (fuzz/README.md): 128
        // bytes that are not UTF-8 read as 384 bytes of U+FFFD, and the
        // patched parser panicked making a short string of them, on lapin's
        // I/O thread. Here as a header name and as `type`.
        let not_utf8 = [&[128][..], &[0xff; 128]].concat();
        let mut table = not_utf8.clone();
        table.push(b'l');
        table.extend(7i64.to_be_bytes());
        // The property flags of `headers` and `type`, then their values.
        let mut encoded = 0x2020u16.to_be_bytes().to_vec();
        encoded.extend(u32::try_from(table.len()).unwrap().to_be_bytes());
        encoded.extend(table);
        encoded.extend(&not_utf8);

        let (rest, properties) = lapin::protocol::basic::parse_properties(&encoded[..]).unwrap();
        assert!(rest.is_empty());
        let cut = "\u{fffd}".repeat(85);
        assert_eq!(job_name(&properties), Some(cut.as_str()));
        assert_eq!(header(&properties, &cut), Some(&AMQPValue::LongLongInt(7)));
        assert_eq!(
            malformed(&properties).as_deref(),
            Some("its `type` property is not valid UTF-8")
        );
        inspect(&properties, 32 * 1024);
    }

    /// Names a producer may use: warren's own, RabbitMQ's bookkeeping, the
    /// ones warren reads inside `x-death`, and the ones it drops.
    const KNOWN_NAMES: [&str; 18] = [
        ATTEMPT,
        RETRIES,
        BACKOFF,
        ETA,
        FIRST_FAILURE_AT,
        LAST_ERROR,
        DEAD_REASON,
        DEAD_ERROR,
        DEAD_AT,
        DEAD_QUEUE,
        DEAD_WORKER,
        TRIMMED,
        "x-death",
        "x-first-death-reason",
        "x-delivery-count",
        "reason",
        "time",
        "CC",
    ];

    /// A short string as the parser reads one from any 0..=255 bytes: bad
    /// UTF-8 becomes U+FFFD, and what grows past 255 bytes is cut.
    fn random_short_string(rng: &mut fastrand::Rng) -> ShortString {
        if rng.u8(..4) == 0 {
            return KNOWN_NAMES[rng.usize(..KNOWN_NAMES.len())].into();
        }
        // Mostly short, as names are; up to the 255 bytes a short string holds.
        let len = if rng.bool() {
            rng.usize(..=255)
        } else {
            rng.usize(..=16)
        };
        let mut bytes = vec![0; len];
        rng.fill(&mut bytes);
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        while text.len() > 255 {
            text.pop();
        }
        text.into()
    }

    /// A header value that is not an array or table; strings and byte
    /// arrays of up to `max_len` bytes.
    fn random_scalar(rng: &mut fastrand::Rng, max_len: usize) -> AMQPValue {
        // Filled with one byte: the size matters to warren, not the content.
        let bytes = |rng: &mut fastrand::Rng| vec![rng.u8(..); rng.usize(..=max_len)];
        match rng.u8(..16) {
            0 => AMQPValue::Boolean(rng.bool()),
            1 => AMQPValue::ShortShortInt(rng.i8(..)),
            2 => AMQPValue::ShortShortUInt(rng.u8(..)),
            3 => AMQPValue::ShortInt(rng.i16(..)),
            4 => AMQPValue::ShortUInt(rng.u16(..)),
            5 => AMQPValue::LongInt(rng.i32(..)),
            6 => AMQPValue::LongUInt(rng.u32(..)),
            7 => AMQPValue::LongLongInt(rng.i64(..)),
            8 => AMQPValue::Float(f32::from_bits(rng.u32(..))),
            9 => AMQPValue::Double(f64::from_bits(rng.u64(..))),
            10 => AMQPValue::DecimalValue(lapin::types::DecimalValue {
                scale: rng.u8(..),
                value: rng.u32(..),
            }),
            11 => AMQPValue::ShortString(random_short_string(rng)),
            12 => AMQPValue::LongString(bytes(rng).into()),
            13 => AMQPValue::ByteArray(bytes(rng).into()),
            14 => AMQPValue::Timestamp(rng.u64(..)),
            _ => AMQPValue::Void,
        }
    }

    /// A header value: a scalar inside `depth` arrays and tables, each with
    /// a few small scalars beside it (tables under random names).
    fn random_value(rng: &mut fastrand::Rng, depth: usize, max_len: usize) -> AMQPValue {
        let mut value = random_scalar(rng, max_len);
        for _ in 0..depth {
            let mut items = vec![value];
            for _ in 0..rng.usize(..3) {
                items.insert(rng.usize(..=items.len()), random_scalar(rng, 64));
            }
            value = if rng.bool() {
                AMQPValue::FieldArray(items.into())
            } else {
                let mut table = FieldTable::default();
                for item in items {
                    table.insert(random_short_string(rng), item);
                }
                AMQPValue::FieldTable(table)
            };
        }
        value
    }

    /// The properties of a delivery from any producer: random text
    /// properties and up to 12 headers (200 in one set in forty) of any
    /// type, nested up to 80 levels, most small, one set in eight up to
    /// about 150 KB.
    fn random_properties(rng: &mut fastrand::Rng) -> BasicProperties {
        let (count, mut budget) = match rng.u8(..40) {
            // Many headers, so that many are dropped to fit a frame.
            0 => (rng.usize(..=200), 150_000),
            1..=4 => (rng.usize(..=12), 150_000),
            5..=12 => (rng.usize(..=12), 8_192),
            _ => (rng.usize(..=12), 256),
        };
        let mut headers = FieldTable::default();
        for _ in 0..count {
            let depth = match rng.u8(..8) {
                0 => rng.usize(..=80),
                _ => rng.usize(..3),
            };
            let name = random_short_string(rng);
            let value = if name.as_str() == "x-death" && rng.bool() {
                // Shaped as RabbitMQ writes it, so that warren reads it.
                let mut death = FieldTable::default();
                death.insert("reason".into(), random_scalar(rng, 64));
                death.insert("time".into(), random_scalar(rng, 64));
                AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into())
            } else {
                random_value(rng, depth, budget)
            };
            budget = budget.saturating_sub(value_size(&value));
            headers.insert(name, value);
        }
        let mut properties = BasicProperties::default().with_headers(headers);
        if rng.bool() {
            properties = properties.with_type(random_short_string(rng));
        }
        if rng.bool() {
            let id = if rng.bool() {
                JobId::new().to_string().into()
            } else {
                random_short_string(rng)
            };
            properties = properties.with_message_id(id);
        }
        if rng.bool() {
            properties = properties.with_content_type(random_short_string(rng));
        }
        if rng.bool() {
            properties = properties.with_expiration(random_short_string(rng));
        }
        if rng.bool() {
            properties = properties.with_timestamp(rng.u64(..));
        }
        properties
    }

    /// The fuzz target `content_header` (fuzz/README.md), cheap and
    /// deterministic: many property sets no well-behaved producer would
    /// send, read as a worker reads them, their retry and dead letter fitted
    /// to the worker's frames and RabbitMQ's.
    #[test]
    fn any_properties_are_read_and_their_republished_copies_fit_a_frame() {
        let mut rng = fastrand::Rng::with_seed(13);
        for _ in 0..2_000 {
            let properties = random_properties(&mut rng);
            inspect(&properties, 32 * 1024);
            inspect(&properties, 128 * 1024);
        }
    }

    #[test]
    fn the_size_of_headers_is_their_size_on_the_wire() {
        // Encoded by hand: 4 (table length) + 1 + 1 ("a") + 1 ('l') + 8.
        let mut table = FieldTable::default();
        table.insert("a".into(), AMQPValue::LongLongInt(7));
        assert_eq!(table_size(&table), 15);
        table.insert("b".into(), nested(2));
        // 1 + 1 ("b") + F(1 + 4 + [1 + 5 + "inner"] + A(1 + 4 + l(1 + 8)))
        assert_eq!(table_size(&table), 15 + 2 + 1 + 4 + 6 + 1 + 4 + 9);
    }
}
