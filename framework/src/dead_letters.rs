//! Dead letters, read and moved with the guarantee the `dead` commands and
//! the dashboard share: dead letters are read with `basic.get` and stay
//! unacknowledged until each one is settled: acked once it is back in its
//! job queue (publisher-confirmed), returned to its place otherwise. If the
//! process dies midway, RabbitMQ returns every unsettled letter itself, so a
//! crash costs at most a duplicate job, never a lost one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ErrorKind};
use tracing::{info, warn};

use crate::amqp::message;
use crate::job::QueueShape;
use crate::{Client, Error, JobId, Registry};

/// A dead letter's body is shown up to this many bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why an operation on dead letters failed (the `dead` commands', the dashboard's).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeadError {
    /// The client has no connection of its own to open channels on (an
    /// in-memory client; the commands always connect one).
    #[error("the dead-letter commands need a connection to RabbitMQ")]
    NotConnected,
    /// No `--queue` and no registered job to take queues from.
    #[error(
        "no jobs are registered in this binary, so there is no dead-letter queue to look at; pass --queue, or, if the jobs are in a library crate, name it in `warren::main!(jobs = [my_jobs])` so that it is linked"
    )]
    NoQueues,
    /// `dead retry <id>` found no such dead letter.
    #[error("no dead letter of job {id} in {}", .searched.join(", "))]
    NotFound {
        /// The job id asked for.
        id: JobId,
        /// The dead-letter queues searched.
        searched: Vec<String>,
    },
    /// `dead purge` without `--yes` and no terminal to ask on: bad usage.
    #[error(
        "stdin is not a terminal, so `dead purge` cannot ask for confirmation; pass --yes to delete without asking"
    )]
    Unconfirmed,
    /// The confirmation could not be read.
    #[error("could not read the answer from stdin: {0}")]
    Prompt(#[source] std::io::Error),
    /// Reading or purging a dead-letter queue failed.
    #[error("could not read queue `{queue}`: {source}")]
    Read {
        /// The dead-letter queue.
        queue: String,
        /// What lapin reported.
        #[source]
        source: lapin::Error,
    },
    /// A dead letter could not be put back in its job queue; it stays dead.
    #[error(
        "retried {} from `{dead_queue}`, then could not move job {id} to `{queue}` (it stays a dead letter): {source}",
        letters(*.retried)
    )]
    Publish {
        /// How many were retried before.
        retried: u32,
        /// The dead-letter queue.
        dead_queue: String,
        /// The job that stays dead.
        id: String,
        /// The queue it was meant for.
        queue: String,
        /// Why.
        #[source]
        source: Error,
    },
    /// A job was put back but its dead letter could not be removed.
    #[error(
        "job {id} is back in `{queue}`, but its dead letter could not be removed from `{dead_queue}` and stays there as a duplicate; purge or ignore it"
    )]
    Ack {
        /// The job.
        id: String,
        /// Its job queue.
        queue: String,
        /// The dead-letter queue.
        dead_queue: String,
    },
    /// Writing the output failed.
    #[error("could not write the output: {0}")]
    Output(#[from] std::io::Error),
    /// Connecting or talking to the broker failed.
    #[error(transparent)]
    Broker(#[from] Error),
}

impl From<lapin::Error> for DeadError {
    fn from(source: lapin::Error) -> Self {
        DeadError::Broker(Error::from(source))
    }
}

/// What a dead letter says about its job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Letter {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) queue: String,
    pub(crate) reason: String,
    pub(crate) attempt: u32,
    pub(crate) enqueued_at: String,
    pub(crate) dead_at: String,
    /// The whole error text.
    pub(crate) error: String,
    /// The body, as text (invalid UTF-8 replaced), cut to [`MAX_BODY_BYTES`].
    pub(crate) body: String,
}

impl Letter {
    /// A dead letter, written by a worker (`warren-dead-*` headers) or by
    /// RabbitMQ (`x-death`, e.g. a quorum queue's delivery limit).
    pub(crate) fn of(dead_queue: &str, properties: &BasicProperties, body: &[u8]) -> Self {
        let text = |name| message::header(properties, name).and_then(message::text);
        let broker = message::broker_death(properties);
        let dead_at = message::header(properties, message::DEAD_AT)
            .and_then(seconds)
            .or_else(|| broker.as_ref().and_then(|death| death.at));
        let enqueued_at = properties
            .timestamp()
            .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)));
        let cut = body.len() > MAX_BODY_BYTES;
        let mut body = String::from_utf8_lossy(&body[..body.len().min(MAX_BODY_BYTES)]).into_owned();
        if cut {
            body.push('…');
        }
        Letter {
            id: properties
                .message_id()
                .as_ref()
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            name: message::job_name(properties).unwrap_or("-").to_owned(),
            queue: origin_queue(dead_queue, properties),
            reason: text(message::DEAD_REASON)
                .or_else(|| broker.map(|death| death.reason))
                .unwrap_or_else(|| "-".to_owned()),
            attempt: message::attempt(properties),
            enqueued_at: time(enqueued_at),
            dead_at: time(dead_at),
            error: text(message::DEAD_ERROR).unwrap_or_else(|| "-".to_owned()),
            body,
        }
    }
}

/// A time as RFC 3339 to the second; `-` if unknown.
fn time(at: Option<SystemTime>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |at| {
            // humantime cannot write years past 9999 (and would make
            // `to_string` panic): show such a date as raw seconds.
            use std::fmt::Write as _;
            let mut formatted = String::new();
            match write!(formatted, "{}", humantime::format_rfc3339_seconds(at)) {
                Ok(()) => formatted,
                Err(_) => at
                    .duration_since(UNIX_EPOCH)
                    .map_or_else(|_| "-".to_owned(), |d| format!("@{}", d.as_secs())),
            }
        },
    )
}

/// The dead letters of `dead_queue` after the first `skip`, at most `max`;
/// every one is put back in its place.
pub(crate) async fn peek(
    connection: &Connection,
    dead_queue: &str,
    skip: u32,
    max: u32,
) -> Result<Vec<Letter>, DeadError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let channel = connection.create_channel().await?;
    let mut letters = Vec::new();
    let mut seen = 0;
    let mut result = Ok(());
    while letters.len() < max as usize {
        match get(&channel, dead_queue).await {
            Ok(Some(delivery)) => {
                seen += 1;
                if seen > skip {
                    letters.push(Letter::of(dead_queue, &delivery.properties, &delivery.data));
                }
            }
            Ok(None) => break,
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    put_back(channel).await;
    result.map(|()| letters)
}

/// Deletes the dead letter of job `id` from `dead_queue`; false if there is
/// none. Every other letter read on the way is put back in its place.
#[cfg(feature = "dashboard")]
pub(crate) async fn delete(connection: &Connection, dead_queue: &str, id: JobId) -> Result<bool, DeadError> {
    let Some(present) = ready(connection, dead_queue).await? else {
        return Ok(false);
    };
    let channel = connection.create_channel().await?;
    let mut result = Ok(false);
    for _ in 0..present {
        match get(&channel, dead_queue).await {
            Ok(Some(delivery)) if letter_id(&delivery.properties) == Some(id) => {
                result = match delivery.acker.ack(BasicAckOptions::default()).await {
                    Ok(_) => {
                        info!(job.id = %id, dead_queue, "dead letter deleted");
                        Ok(true)
                    }
                    Err(source) => Err(DeadError::Read {
                        queue: dead_queue.to_owned(),
                        source,
                    }),
                };
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    put_back(channel).await;
    result
}

/// Deletes every dead letter of `dead_queue`; returns how many.
pub(crate) async fn purge(connection: &Connection, dead_queue: &str) -> Result<u32, DeadError> {
    let channel = connection.create_channel().await?;
    let deleted = channel
        .queue_purge(dead_queue.into(), QueuePurgeOptions::default())
        .await
        .map_err(|source| DeadError::Read {
            queue: dead_queue.to_owned(),
            source,
        })?;
    // The channel was only for purging; if closing fails it is gone anyway.
    let _ = channel.close(200, "purged".into()).await;
    info!(queue = %dead_queue, deleted, "dead letters purged");
    Ok(deleted)
}

/// Moves the dead letters of `dead_queue` (those of job `only`, or all) back
/// to their job queues; returns how many.
pub(crate) async fn retry_from(
    client: &Client,
    registry: &Registry,
    dead_queue: &str,
    only: Option<JobId>,
) -> Result<u32, DeadError> {
    let session = client.session().ok_or(DeadError::NotConnected)?;
    let connection = &session.connection;
    let Some(present) = ready(connection, dead_queue).await? else {
        return Ok(0);
    };
    let channel = connection.create_channel().await?;
    let result = move_back(client, registry, &channel, dead_queue, present, only).await;
    put_back(channel).await;
    result
}

async fn move_back(
    client: &Client,
    registry: &Registry,
    channel: &Channel,
    dead_queue: &str,
    present: u32,
    only: Option<JobId>,
) -> Result<u32, DeadError> {
    let mut retried = 0;
    // Only the letters there at the start: a retried job that fails again at
    // once lands behind them and must not be retried round and round.
    for _ in 0..present {
        let Some(delivery) = get(channel, dead_queue).await? else {
            break;
        };
        let properties = &delivery.properties;
        let id = letter_id(properties);
        if only.is_some_and(|only| id != Some(only)) {
            // Left unacknowledged: put back, in its place, at the end.
            continue;
        }
        let id = id.map_or_else(|| "-".to_owned(), |id| id.to_string());
        let queue = origin_queue(dead_queue, properties);
        if queue == dead_queue {
            warn!(job.id = %id, queue = %dead_queue, "the dead letter names its own dead-letter queue as its origin; left in place");
            continue;
        }
        let shape = job_queue_shape(client, registry, &queue);
        if let Err(source) = client
            .publish_declared(
                &queue,
                shape,
                &delivery.data,
                &mut (&retry_properties(properties)).into(),
            )
            .await
        {
            return Err(DeadError::Publish {
                retried,
                dead_queue: dead_queue.to_owned(),
                id,
                queue,
                source,
            });
        }
        // The job is confirmed back in its queue; only now does its dead
        // letter go. A failure in between leaves a duplicate, not a loss.
        if !matches!(delivery.acker.ack(BasicAckOptions::default()).await, Ok(true)) {
            return Err(DeadError::Ack {
                id,
                queue,
                dead_queue: dead_queue.to_owned(),
            });
        }
        info!(job.id = %id, queue = %queue, dead_queue, "dead letter retried");
        retried += 1;
        if only.is_some() {
            break;
        }
    }
    Ok(retried)
}

/// Messages ready in `queue`; `None` if there is no such queue.
pub(crate) async fn ready(connection: &Connection, queue: &str) -> Result<Option<u32>, DeadError> {
    // A passive declare of a missing queue closes its channel: this one is
    // for that alone.
    let channel = connection.create_channel().await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
    {
        Ok(declared) => {
            let _ = channel.close(200, "counted".into()).await;
            Ok(Some(declared.message_count()))
        }
        Err(source) if is_not_found(&source) => Ok(None),
        Err(source) => Err(DeadError::Read {
            queue: queue.to_owned(),
            source,
        }),
    }
}

fn is_not_found(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404)
}

/// Takes the next dead letter, unacknowledged.
async fn get(channel: &Channel, dead_queue: &str) -> Result<Option<lapin::message::Delivery>, DeadError> {
    let got = channel
        .basic_get(dead_queue.into(), BasicGetOptions { no_ack: false })
        .await
        .map_err(|source| DeadError::Read {
            queue: dead_queue.to_owned(),
            source,
        })?;
    Ok(got.map(|got| got.delivery))
}

/// Returns every letter still unacknowledged on `channel` to its place in
/// its queue, and closes the channel.
async fn put_back(channel: Channel) {
    // Delivery tag 0 with `multiple`: every unacknowledged delivery.
    let all = BasicNackOptions {
        multiple: true,
        requeue: true,
    };
    if let Err(error) = channel.basic_nack(0, all).await {
        warn!(%error, "could not return the dead letters; RabbitMQ returns them as the channel closes");
    }
    let _ = channel.close(200, "dead letters returned".into()).await;
}

/// The job id of a dead letter, if it has a valid one.
fn letter_id(properties: &BasicProperties) -> Option<JobId> {
    properties.message_id().as_ref()?.as_str().parse().ok()
}

/// The job queue a dead letter came from: its `warren-dead-queue` header,
/// else the dead-letter queue's name without `.dead`.
fn origin_queue(dead_queue: &str, properties: &BasicProperties) -> String {
    message::header(properties, message::DEAD_QUEUE)
        .and_then(message::text)
        .filter(|queue| !queue.is_empty())
        .unwrap_or_else(|| {
            // The inverse of `topology::dead_queue`.
            dead_queue.strip_suffix(".dead").unwrap_or(dead_queue).to_owned()
        })
}

/// The shape of the job queue `full` (a full name): as the registered jobs
/// of that queue declare it.
fn job_queue_shape(client: &Client, registry: &Registry, full: &str) -> QueueShape {
    full.strip_prefix(client.queue_prefix())
        .map_or_else(QueueShape::default, |queue| registry.queue_shape(queue))
}

/// Whether a header records a failure rather than the job: dropped when the
/// job is retried, so that it starts afresh. Besides warren's own, that is
/// RabbitMQ's record of dead-lettering (`x-death` and friends) and a quorum
/// queue's count of deliveries.
fn is_failure_bookkeeping(header: &str) -> bool {
    header.starts_with("warren-dead-")
        || [message::FIRST_FAILURE_AT, message::LAST_ERROR, message::ETA].contains(&header)
        || message::is_broker_bookkeeping(header)
}

/// The properties of a retried dead letter: its own, persistent, without
/// the failure bookkeeping and on attempt 1. The job id stays.
fn retry_properties(dead: &BasicProperties) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in dead.headers().iter().flat_map(FieldTable::inner) {
        if !is_failure_bookkeeping(name.as_str()) {
            headers.insert(name.clone(), value.clone());
        }
    }
    headers.insert(message::ATTEMPT.into(), AMQPValue::LongLongInt(1));
    dead.clone()
        .with_delivery_mode(message::PERSISTENT)
        .with_headers(headers)
}

/// A timestamp header (seconds since the epoch), however it was typed.
fn seconds(value: &AMQPValue) -> Option<SystemTime> {
    let secs = match *value {
        AMQPValue::Timestamp(secs) => secs,
        _ => u64::try_from(message::integer(value)?).ok()?,
    };
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// "1 dead letter", "2 dead letters".
pub(crate) fn letters(count: u32) -> String {
    match count {
        1 => "1 dead letter".to_owned(),
        n => format!("{n} dead letters"),
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::LongString;

    use super::*;

    fn dead_letter() -> BasicProperties {
        let mut headers = FieldTable::default();
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        headers.insert(message::ATTEMPT.into(), AMQPValue::LongLongInt(4));
        headers.insert(message::DEAD_REASON.into(), text("failed"));
        headers.insert(message::DEAD_ERROR.into(), text("card declined\nat line 3"));
        headers.insert(message::DEAD_AT.into(), AMQPValue::Timestamp(1_700_000_000));
        headers.insert(message::DEAD_QUEUE.into(), text("prod-payments"));
        headers.insert(message::DEAD_WORKER.into(), text("host.1"));
        headers.insert("warren-first-failure-at".into(), AMQPValue::Timestamp(1_699_999_000));
        headers.insert("warren-last-error".into(), text("card declined"));
        headers.insert("warren-eta".into(), AMQPValue::LongLongInt(1_700_000_500_000));
        headers.insert("warren-retries".into(), AMQPValue::LongLongInt(2));
        headers.insert("tenant".into(), text("acme"));
        BasicProperties::default()
            .with_type("charge".into())
            .with_message_id(JobId::new().to_string().into())
            .with_delivery_mode(1)
            .with_timestamp(1_699_998_000)
            .with_headers(headers)
    }

    #[test]
    fn a_retried_job_starts_afresh_as_the_same_job() {
        let dead = dead_letter();
        let retried = retry_properties(&dead);
        let names: Vec<&str> = retried
            .headers()
            .iter()
            .flat_map(FieldTable::inner)
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["tenant", "warren-attempt", "warren-retries"]);
        assert_eq!(message::attempt(&retried), 1);
        assert_eq!(retried.message_id(), dead.message_id());
        assert_eq!(message::job_name(&retried), Some("charge"));
        assert_eq!(retried.timestamp(), dead.timestamp(), "still says when it was enqueued");
        assert_eq!(*retried.delivery_mode(), Some(message::PERSISTENT));
    }

    #[test]
    fn a_listed_dead_letter_says_what_why_where_and_when() {
        let dead = dead_letter();
        let row = Letter::of("prod-payments.dead", &dead, b"{}");
        assert_eq!(row.name, "charge");
        assert_eq!(row.queue, "prod-payments");
        assert_eq!(row.reason, "failed");
        assert_eq!(row.attempt, 4);
        assert_eq!(row.dead_at, "2023-11-14T22:13:20Z");
        assert_eq!(row.error, "card declined\nat line 3");
        assert_eq!(row.enqueued_at, "2023-11-14T21:40:00Z");
        assert_eq!(row.body, "{}");
        assert_eq!(Some(row.id.parse().unwrap()), letter_id(&dead));
    }

    #[test]
    fn a_foreign_dead_letter_lists_with_placeholders_and_goes_back_by_its_queue_name() {
        let row = Letter::of("prod-emails.dead", &BasicProperties::default(), b"");
        assert_eq!(
            (row.id.as_str(), row.name.as_str(), row.reason.as_str()),
            ("-", "-", "-")
        );
        assert_eq!(row.queue, "prod-emails");
        assert_eq!(row.attempt, 1);
    }

    /// A job dead-lettered by a quorum queue's delivery limit after it had
    /// waited in a hold queue, with the headers RabbitMQ 3.10 gives it.
    fn dead_lettered_by_the_broker() -> BasicProperties {
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        let death = |queue: &str, reason: &str, time: u64| {
            let mut death = FieldTable::default();
            death.insert("count".into(), AMQPValue::LongLongInt(1));
            death.insert("exchange".into(), text(""));
            death.insert("queue".into(), text(queue));
            death.insert("reason".into(), text(reason));
            death.insert("time".into(), AMQPValue::Timestamp(time));
            AMQPValue::FieldTable(death)
        };
        let mut headers = FieldTable::default();
        headers.insert(message::ATTEMPT.into(), AMQPValue::LongLongInt(1));
        headers.insert("tenant".into(), text("acme"));
        let mut deaths = lapin::types::FieldArray::default();
        deaths.push(death("prod-payments", "delivery_limit", 1_700_000_000));
        deaths.push(death("prod-payments.retry.1000", "expired", 1_699_999_990));
        headers.insert("x-death".into(), AMQPValue::FieldArray(deaths));
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(0));
        headers.insert("x-first-death-exchange".into(), text(""));
        headers.insert("x-first-death-queue".into(), text("prod-payments.retry.1000"));
        headers.insert("x-first-death-reason".into(), text("expired"));
        BasicProperties::default()
            .with_type("charge".into())
            .with_message_id(JobId::new().to_string().into())
            .with_delivery_mode(2)
            .with_headers(headers)
    }

    #[test]
    fn a_letter_the_broker_dead_lettered_lists_its_last_reason_and_time() {
        let row = Letter::of("prod-payments.dead", &dead_lettered_by_the_broker(), b"");
        assert_eq!(row.reason, "delivery_limit", "not the hold queue's `expired`");
        assert_eq!(row.dead_at, "2023-11-14T22:13:20Z");
        assert_eq!(row.queue, "prod-payments");
        assert_eq!((row.attempt, row.error.as_str()), (1, "-"));

        let mut headers = FieldTable::default();
        headers.insert(
            "x-first-death-reason".into(),
            AMQPValue::LongString(LongString::from("rejected")),
        );
        let without_x_death = BasicProperties::default().with_headers(headers);
        let row = Letter::of("prod-payments.dead", &without_x_death, b"");
        assert_eq!((row.reason.as_str(), row.dead_at.as_str()), ("rejected", "-"));
    }

    #[test]
    fn a_retried_broker_dead_letter_drops_the_brokers_bookkeeping() {
        let retried = retry_properties(&dead_lettered_by_the_broker());
        let names: Vec<&str> = retried
            .headers()
            .iter()
            .flat_map(FieldTable::inner)
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["tenant", "warren-attempt"]);
    }

    #[test]
    fn a_long_body_is_cut_and_marked() {
        let body = vec![b'x'; MAX_BODY_BYTES + 1];
        let letter = Letter::of("q.dead", &BasicProperties::default(), &body);
        assert_eq!(letter.body.len(), MAX_BODY_BYTES + '…'.len_utf8());
        assert!(letter.body.ends_with('…'));
    }

    #[test]
    fn counts_read_as_english() {
        assert_eq!(letters(0), "0 dead letters");
        assert_eq!(letters(1), "1 dead letter");
        assert_eq!(letters(7), "7 dead letters");
    }
}
