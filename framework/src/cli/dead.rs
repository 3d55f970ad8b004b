//! Operating on dead letters: the worker binary's `dead list`, `dead retry`
//! and `dead purge`.
//!
//! Dead letters are read with `basic.get` and stay unacknowledged until the
//! command has settled each one: acked once it is back in its job queue
//! (publisher-confirmed), returned to its place otherwise. If the command
//! dies midway, RabbitMQ returns every unsettled letter itself, so a crash
//! costs at most a duplicate job, never a lost one.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{ArgGroup, Args, Subcommand};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ErrorKind};
use tracing::{info, warn};

use crate::amqp::connect::TlsFiles;
use crate::amqp::message;
use crate::amqp::topology;
use crate::cli::output;
use crate::job::QueueShape;
use crate::{Client, Error, JobId, Registry};

/// Error texts in `dead list` are cut to this many characters.
const MAX_ERROR_CHARS: usize = 80;

/// The `dead` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DeadCommand {
    /// List dead letters, oldest first, leaving them in place.
    List {
        #[command(flatten)]
        queue: QueueArg,
        /// Show at most this many dead letters per queue.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Move dead letters back to their job queue, to run again from attempt 1.
    #[command(group(ArgGroup::new("which").required(true).args(["job_id", "all"])))]
    Retry {
        /// The id of the job to retry.
        job_id: Option<JobId>,
        /// Retry every dead letter of the queue(s).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        queue: QueueArg,
    },
    /// Delete dead letters for good.
    Purge {
        #[command(flatten)]
        queue: QueueArg,
        /// Delete without asking for confirmation (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// The job queue a `dead` command works on.
#[derive(Debug, Args)]
pub(crate) struct QueueArg {
    /// The job queue, as jobs name it (`--queue-prefix` applies) [default: the queues of all registered jobs].
    #[arg(long)]
    queue: Option<String>,
}

impl DeadCommand {
    fn queue(&self) -> Option<&str> {
        let (DeadCommand::List { queue, .. } | DeadCommand::Retry { queue, .. } | DeadCommand::Purge { queue, .. }) =
            self;
        queue.queue.as_deref()
    }

    fn name(&self) -> &'static str {
        match self {
            DeadCommand::List { .. } => "list",
            DeadCommand::Retry { .. } => "retry",
            DeadCommand::Purge { .. } => "purge",
        }
    }
}

/// Why a `dead` command failed.
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

/// Runs a `dead` command against the broker at `url`.
pub(crate) async fn run(
    url: &str,
    tls: &TlsFiles,
    prefix: &str,
    registry: &Registry,
    command: DeadCommand,
) -> Result<(), DeadError> {
    // Checked before connecting: a script that forgot --yes learns it at once.
    if matches!(command, DeadCommand::Purge { yes: false, .. }) && !std::io::stdin().is_terminal() {
        return Err(DeadError::Unconfirmed);
    }
    let queues: Vec<String> = match command.queue() {
        Some(queue) => vec![queue.to_owned()],
        None => registry.queues().into_iter().map(str::to_owned).collect(),
    };
    if queues.is_empty() {
        return Err(DeadError::NoQueues);
    }
    let client = Client::builder(url)
        .tls_files(tls.clone())
        .queue_prefix(prefix)
        .connection_name(format!("warren dead {}", command.name()))
        .connect()
        .await?;
    let dead_queues: Vec<String> = queues
        .iter()
        .map(|queue| topology::dead_queue(&client.queue_name(queue)))
        .collect();
    // lapin panics on names AMQP cannot carry; refuse them here instead.
    if let Some(error) = dead_queues.iter().find_map(|queue| crate::amqp::short(queue).err()) {
        client.close().await;
        return Err(error.into());
    }
    let result = match command {
        DeadCommand::List { limit, .. } => {
            list(
                &client.session().ok_or(DeadError::NotConnected)?.connection,
                &dead_queues,
                limit,
            )
            .await
        }
        DeadCommand::Retry { job_id, .. } => retry(&client, registry, &dead_queues, job_id).await,
        DeadCommand::Purge { yes, .. } => {
            purge(
                &client.session().ok_or(DeadError::NotConnected)?.connection,
                &dead_queues,
                yes,
            )
            .await
        }
    };
    client.close().await;
    result
}

/// One line of `dead list`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    id: String,
    name: String,
    queue: String,
    reason: String,
    attempt: u32,
    dead_at: String,
    error: String,
}

impl Row {
    /// The row of a dead letter, written by a worker (`warren-dead-*`
    /// headers) or by RabbitMQ (`x-death`, e.g. a quorum queue's delivery
    /// limit).
    fn of(dead_queue: &str, properties: &BasicProperties) -> Self {
        let text = |name| message::header(properties, name).and_then(message::text);
        let broker = message::broker_death(properties);
        let dead_at = message::header(properties, message::DEAD_AT)
            .and_then(seconds)
            .or_else(|| broker.as_ref().and_then(|death| death.at))
            .map_or_else(
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
            );
        Row {
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
            dead_at,
            error: text(message::DEAD_ERROR).map_or_else(|| "-".to_owned(), |error| one_line(&error)),
        }
    }
}

fn print_row([id, name, queue, reason, attempt, dead_at, error]: [&str; 7]) -> std::io::Result<()> {
    use std::io::Write as _;
    writeln!(
        std::io::stdout(),
        "{id:<36} {name:<20} {queue:<24} {reason:<11} {attempt:<8} {dead_at:<20} {error}"
    )
}

/// Lists the dead letters; stops quietly when the reader goes away
/// (`dead list | head -1`): it has what it wanted, and what was peeked
/// returns to the dead-letter queue when the channel closes.
async fn list(connection: &Connection, dead_queues: &[String], limit: u32) -> Result<(), DeadError> {
    match write_listing(connection, dead_queues, limit).await {
        Err(DeadError::Output(error)) if output::is_closed(&error) => Ok(()),
        result => result,
    }
}

async fn write_listing(connection: &Connection, dead_queues: &[String], limit: u32) -> Result<(), DeadError> {
    use std::io::Write as _;
    print_row(["JOB ID", "NAME", "QUEUE", "REASON", "ATTEMPTS", "DEAD AT", "ERROR"])?;
    let mut footers = Vec::new();
    for dead_queue in dead_queues {
        let total = ready(connection, dead_queue).await?.unwrap_or(0);
        let rows = peek(connection, dead_queue, limit.min(total)).await?;
        for row in &rows {
            let attempt = row.attempt.to_string();
            print_row([
                &row.id,
                &row.name,
                &row.queue,
                &row.reason,
                &attempt,
                &row.dead_at,
                &row.error,
            ])?;
        }
        footers.push(format!("{} of {} in {dead_queue}", rows.len(), letters(total)));
    }
    for footer in footers {
        writeln!(std::io::stdout(), "{footer}")?;
    }
    Ok(())
}

/// The first `max` dead letters of `dead_queue`, which are all put back.
async fn peek(connection: &Connection, dead_queue: &str, max: u32) -> Result<Vec<Row>, DeadError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let channel = connection.create_channel().await?;
    let mut rows = Vec::new();
    let mut result = Ok(());
    while rows.len() < max as usize {
        match get(&channel, dead_queue).await {
            Ok(Some(delivery)) => rows.push(Row::of(dead_queue, &delivery.properties)),
            Ok(None) => break,
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    put_back(channel).await;
    result.map(|()| rows)
}

async fn retry(
    client: &Client,
    registry: &Registry,
    dead_queues: &[String],
    only: Option<JobId>,
) -> Result<(), DeadError> {
    for dead_queue in dead_queues {
        let retried = retry_from(client, registry, dead_queue, only).await?;
        match only {
            Some(id) if retried > 0 => {
                output::line(format_args!("retried job {id} from {dead_queue}"))?;
                return Ok(());
            }
            Some(_) => {}
            None => output::line(format_args!("retried {} from {dead_queue}", letters(retried)))?,
        }
    }
    match only {
        Some(id) => Err(DeadError::NotFound {
            id,
            searched: dead_queues.to_vec(),
        }),
        None => Ok(()),
    }
}

/// Moves the dead letters of `dead_queue` (those of job `only`, or all) back
/// to their job queues; returns how many.
async fn retry_from(
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
            .publish_declared(&queue, shape, &delivery.data, retry_properties(properties))
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

async fn purge(connection: &Connection, dead_queues: &[String], confirmed: bool) -> Result<(), DeadError> {
    for dead_queue in dead_queues {
        let count = ready(connection, dead_queue).await?.unwrap_or(0);
        if count == 0 {
            output::line(format_args!("no dead letters in {dead_queue}"))?;
            continue;
        }
        if !confirmed && !ask(format!("Delete {} from {dead_queue}? [y/N] ", letters(count))).await? {
            output::line(format_args!("kept {} in {dead_queue}", letters(count)))?;
            continue;
        }
        let channel = connection.create_channel().await?;
        let deleted = channel
            .queue_purge(dead_queue.as_str().into(), QueuePurgeOptions::default())
            .await
            .map_err(|source| DeadError::Read {
                queue: dead_queue.clone(),
                source,
            })?;
        // The channel was only for purging; if closing fails it is gone anyway.
        let _ = channel.close(200, "purged".into()).await;
        info!(queue = %dead_queue, deleted, "dead letters purged");
        output::line(format_args!("deleted {} from {dead_queue}", letters(deleted)))?;
    }
    Ok(())
}

/// Asks `question` on the terminal; true for `y` or `yes`.
async fn ask(question: String) -> Result<bool, DeadError> {
    let answer = tokio::task::spawn_blocking(move || {
        let mut stderr = std::io::stderr();
        write!(stderr, "{question}")?;
        stderr.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        Ok(answer)
    })
    .await
    .map_err(|error| DeadError::Prompt(std::io::Error::other(error)))?
    .map_err(DeadError::Prompt)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// Messages ready in `queue`; `None` if there is no such queue.
async fn ready(connection: &Connection, queue: &str) -> Result<Option<u32>, DeadError> {
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

/// The first line of `text`, cut to [`MAX_ERROR_CHARS`]; `…` marks a cut.
fn one_line(text: &str) -> String {
    let mut lines = text.trim().lines();
    let first = lines.next().unwrap_or_default();
    let mut line: String = first.chars().take(MAX_ERROR_CHARS).collect();
    if line.len() < first.len() || lines.next().is_some() {
        line.push('…');
    }
    line
}

/// "1 dead letter", "2 dead letters".
fn letters(count: u32) -> String {
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
        let row = Row::of("prod-payments.dead", &dead);
        assert_eq!(row.name, "charge");
        assert_eq!(row.queue, "prod-payments");
        assert_eq!(row.reason, "failed");
        assert_eq!(row.attempt, 4);
        assert_eq!(row.dead_at, "2023-11-14T22:13:20Z");
        assert_eq!(row.error, "card declined…");
        assert_eq!(Some(row.id.parse().unwrap()), letter_id(&dead));
    }

    #[test]
    fn a_foreign_dead_letter_lists_with_placeholders_and_goes_back_by_its_queue_name() {
        let row = Row::of("prod-emails.dead", &BasicProperties::default());
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
        let row = Row::of("prod-payments.dead", &dead_lettered_by_the_broker());
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
        let row = Row::of("prod-payments.dead", &without_x_death);
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
    fn errors_are_cut_to_one_short_line() {
        assert_eq!(one_line("boom"), "boom");
        assert_eq!(one_line(&"é".repeat(MAX_ERROR_CHARS)), "é".repeat(MAX_ERROR_CHARS));
        assert_eq!(
            one_line(&"é".repeat(MAX_ERROR_CHARS + 1)),
            format!("{}…", "é".repeat(MAX_ERROR_CHARS))
        );
        assert_eq!(one_line(""), "");
    }

    #[test]
    fn counts_read_as_english() {
        assert_eq!(letters(0), "0 dead letters");
        assert_eq!(letters(1), "1 dead letter");
        assert_eq!(letters(7), "7 dead letters");
    }
}
