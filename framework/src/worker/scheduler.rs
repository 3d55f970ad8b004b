//! Periodic jobs: one scheduler across every worker process, elected on
//! RabbitMQ.
//!
//! Every worker that consumes the queue of a scheduled job
//! (`#[job(cron = "...")]`, [`schedule!`](crate::schedule)) stands for
//! election: it consumes the quorum queue `warren.scheduler`, declared with
//! `x-single-active-consumer`, at prefetch 1, and publishes a token
//! message to it. RabbitMQ delivers only to the active consumer, which
//! keeps one token unacknowledged for as long as it lives: holding a token
//! is leading. When the leader's connection dies, RabbitMQ makes the next
//! consumer active and hands it the token, within the time it takes to
//! notice the connection is gone (at once for a killed process, a heartbeat
//! for a cut network).
//!
//! The leader fires each slot of each schedule by recording the slot in
//! `warren.schedule.<schedule>` (one message, the newest slot's time) and
//! then enqueueing the job under a job id derived from
//! `cron:<schedule>:<slot>`; a `#[job(cron)]` job's schedule is named after
//! the job, a named schedule ([`Schedule`](crate::Schedule)) has its own
//! name, so one job type can have several with different arguments. A
//! new leader reads the record, so a slot fires at most once across a
//! change of leader, and the slots missed since (while no leader ran) are
//! fired at once, up to [`MAX_CATCH_UP`] per schedule. A message in
//! `warren.schedule.<schedule>.paused` pauses the schedule: its slots are
//! recorded but not enqueued.

use std::fmt;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use futures_util::StreamExt;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use tracing::{info, warn};

use crate::amqp::topology::{self, QueueSpec};
use crate::amqp::{confirm, message, short, unique};
use crate::{Client, EnqueueOptions, Error, JobId, JobOptions, Registration, Registry, Schedule};

/// The most missed slots of one schedule a new leader fires: the latest
/// ones. A schedule every minute that had no leader for an hour runs ten
/// times, not sixty.
pub(crate) const MAX_CATCH_UP: usize = 10;

/// The election queue, under the worker's queue prefix.
const ELECTION_QUEUE: &str = "warren.scheduler";

/// How often the leader swaps its token for a new one, well inside
/// RabbitMQ's consumer timeout (a delivery unacknowledged for 30 minutes
/// closes its channel).
const TOKEN_REFRESH: Duration = Duration::from_secs(10 * 60);

/// How often a scheduler checks that its channel is alive.
const HEALTH_CHECK: Duration = Duration::from_secs(1);

/// The longest schedule name: its paused queue's name,
/// `warren.schedule.<name>.paused`, leaves room for a queue prefix within
/// AMQP's 255 bytes. The same bound as the `schedule!` macro's.
const MAX_SCHEDULE_NAME_LEN: usize = 200;

/// One schedule, ready to fire: what to enqueue, and when.
pub(crate) struct Entry {
    /// The schedule's name, which keys its state and its slots' ids.
    pub(crate) name: String,
    /// The name of the job it enqueues.
    pub(crate) job: &'static str,
    queue: &'static str,
    options: JobOptions,
    /// The cron expression, as written.
    pub(crate) expression: String,
    /// The time zone's name, as written (`UTC` when none).
    pub(crate) timezone_name: String,
    timezone: TimeZone,
    cron: Cron,
    /// The job's message body, encoded when the schedule was registered.
    pub(crate) body: Vec<u8>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("job", &self.job)
            .field("expression", &self.expression)
            .field("timezone", &self.timezone_name)
            .finish_non_exhaustive()
    }
}

/// The schedules of `registry` whose job's queue is among `queues` (all of
/// them for `None`): `Err` names a schedule that cannot work, and why.
pub(crate) fn entries(registry: &Registry, queues: Option<&[String]>) -> Result<Vec<Entry>, (String, String)> {
    let mut entries = Vec::new();
    for schedule in registry.schedules() {
        let Some(job) = registry.get(schedule.job()) else {
            // The registry keeps only schedules of its jobs.
            continue;
        };
        if queues.is_some_and(|queues| !queues.iter().any(|queue| queue == job.queue)) {
            continue;
        }
        let entry = entry(schedule, job).map_err(|reason| (schedule.name().to_owned(), reason))?;
        entries.push(entry);
    }
    Ok(entries)
}

/// `schedule` of `job`, checked: why not, if it cannot work.
fn entry(schedule: &Schedule, job: &Registration) -> Result<Entry, String> {
    let name = schedule.name();
    check_name(name)?;
    let expression = schedule.cron();
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expression)
        .map_err(|error| format!("has an invalid cron expression \"{expression}\": {error}"))?;
    let timezone_name = schedule.timezone_name();
    let timezone = TimeZone::get(timezone_name)
        .map_err(|error| format!("has a time zone this system does not know, \"{timezone_name}\": {error}"))?;
    let body = schedule.body().map_err(str::to_owned)?.to_vec();
    Ok(Entry {
        name: name.to_owned(),
        job: job.name,
        queue: job.queue,
        options: job.options,
        expression: expression.to_owned(),
        timezone_name: timezone_name.to_owned(),
        timezone,
        cron,
        body,
    })
}

/// Whether `name` can name a schedule: it goes into queue names and job ids.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("has an empty name".to_owned());
    }
    if name.len() > MAX_SCHEDULE_NAME_LEN {
        return Err(format!(
            "has a name of {} bytes; a schedule name can be at most {MAX_SCHEDULE_NAME_LEN}",
            name.len()
        ));
    }
    match name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        Some(c) => Err(format!(
            "has {c:?} in its name; use ASCII letters, digits, `_`, `-`, `.` and `:`"
        )),
        None => Ok(()),
    }
}

impl Entry {
    /// The first slot strictly after `after`.
    pub(crate) fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned = after.to_zoned(self.timezone.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|next| next.timestamp())
    }

    /// The last slot at or before `at`.
    fn previous_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        let zoned = at.to_zoned(self.timezone.clone());
        self.cron
            .find_previous_occurrence(&zoned, true)
            .ok()
            .map(|previous| previous.timestamp())
    }

    /// The slots after `after` up to `now` included, the latest
    /// [`MAX_CATCH_UP`] of them in order, and whether older ones were left
    /// out.
    ///
    /// It walks back from `now`, so its cost is bounded by
    /// [`MAX_CATCH_UP`] whatever the gap: a per-second schedule idle for a
    /// month would otherwise be 2.6 million steps.
    pub(crate) fn missed(&self, after: Timestamp, now: Timestamp) -> (Vec<Timestamp>, bool) {
        let mut missed = Vec::with_capacity(MAX_CATCH_UP);
        let mut at = now;
        let skipped = loop {
            let Some(slot) = self.previous_at_or_before(at).filter(|slot| *slot > after) else {
                break false;
            };
            if missed.len() == MAX_CATCH_UP {
                break true;
            }
            missed.push(slot);
            // Just before this slot: the search includes its start.
            let Ok(before) = slot.checked_sub(jiff::SignedDuration::from_nanos(1)) else {
                break false;
            };
            at = before;
        };
        missed.reverse();
        (missed, skipped)
    }

    /// The id of the job of `slot`: the same in every process.
    pub(crate) fn slot_id(&self, slot: Timestamp) -> JobId {
        JobId::derived(&format!("cron:{}:{}", self.name, slot.as_second()))
    }

    /// Where the last fired slot is recorded.
    pub(crate) fn record_queue(&self, prefix: &str) -> String {
        format!("{prefix}warren.schedule.{}", self.name)
    }

    /// Where a message pauses the schedule.
    pub(crate) fn paused_queue(&self, prefix: &str) -> String {
        format!("{}.paused", self.record_queue(prefix))
    }

    /// The two queues of the schedule's state: one message each at most.
    pub(crate) fn state_queues(&self, prefix: &str) -> [QueueSpec; 2] {
        let single = || {
            let mut arguments = FieldTable::default();
            arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
            arguments
        };
        [
            QueueSpec {
                name: self.record_queue(prefix),
                arguments: single(),
                expires: false,
            },
            QueueSpec {
                name: self.paused_queue(prefix),
                arguments: single(),
                expires: false,
            },
        ]
    }
}

/// The election queue's declaration.
fn election_queue(prefix: &str) -> QueueSpec {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
    arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    // Tokens are interchangeable: one waiting is enough.
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
    QueueSpec {
        name: format!("{prefix}{ELECTION_QUEUE}"),
        arguments,
        expires: false,
    }
}

/// The last slot recorded in `queue`, read and put back.
pub(crate) async fn last_slot(channel: &Channel, queue: &str) -> Result<Option<Timestamp>, Error> {
    let Some(got) = channel
        .basic_get(short(queue)?, BasicGetOptions { no_ack: false })
        .await?
    else {
        return Ok(None);
    };
    let slot = std::str::from_utf8(&got.delivery.data)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .and_then(|secs| Timestamp::from_second(secs).ok());
    channel
        .basic_reject(got.delivery.delivery_tag, BasicRejectOptions { requeue: true })
        .await?;
    Ok(slot)
}

/// Whether the schedule whose paused queue is `queue` is paused.
pub(crate) async fn paused(channel: &Channel, queue: &str) -> Result<bool, Error> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(short(queue)?, options, FieldTable::default())
        .await?;
    Ok(declared.message_count() > 0)
}

/// Pauses (`true`) or resumes a schedule.
pub(crate) async fn set_paused(channel: &Channel, queue: &str, pause: bool) -> Result<(), Error> {
    if pause {
        let properties = BasicProperties::default().with_delivery_mode(message::PERSISTENT);
        channel
            .basic_publish(
                "".into(),
                short(queue)?,
                BasicPublishOptions::default(),
                b"paused",
                properties,
            )
            .await?
            .await?;
    } else {
        channel.queue_purge(short(queue)?, QueuePurgeOptions::default()).await?;
    }
    Ok(())
}

/// Stands for election for as long as the worker runs, and fires the
/// schedules while leading.
pub(crate) async fn run(client: Client, entries: Vec<Entry>) {
    loop {
        match stand(&client, &entries).await {
            Ok(()) => {}
            Err(Term::ChannelClosed) => warn!("the scheduler's channel closed; standing for election again"),
            Err(Term::Broker(error)) => warn!(%error, "the scheduler lost the broker; standing for election again"),
        }
        tokio::time::sleep(HEALTH_CHECK).await;
    }
}

/// How a term ended.
enum Term {
    /// The election channel closed: the connection died, or the broker
    /// closed the channel.
    ChannelClosed,
    /// An operation failed.
    Broker(Error),
}

impl From<Error> for Term {
    fn from(error: Error) -> Self {
        Term::Broker(error)
    }
}

impl From<lapin::Error> for Term {
    fn from(error: lapin::Error) -> Self {
        Term::Broker(error.into())
    }
}

/// One term: waits to be elected, then leads until the channel dies.
async fn stand(client: &Client, entries: &[Entry]) -> Result<(), Term> {
    let Some(session) = client.session() else {
        // An in-memory client: nothing to elect on.
        std::future::pending::<()>().await;
        return Ok(());
    };
    let prefix = client.queue_prefix();
    let election = election_queue(prefix);
    let mut queues = vec![election.clone()];
    queues.extend(entries.iter().flat_map(|entry| entry.state_queues(prefix)));
    topology::declare(&session.connection, &queues).await?;
    let channel = session.connection.create_channel().await?;
    // Confirms: the leader records each slot on this channel and enqueues
    // only once the record is confirmed (see `fire`).
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let election = short(&election.name)?;
    publish_token(&channel, &election).await?;
    channel.basic_qos(1, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            election.clone(),
            "warren-scheduler".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    info!("scheduler standing for election");
    let mut health = tokio::time::interval(HEALTH_CHECK);
    let lost = || Term::ChannelClosed;
    let mut token = loop {
        tokio::select! {
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => break delivery,
                Some(Err(error)) => return Err(error.into()),
                None => return Err(lost()),
            },
            _ = health.tick() => if !channel.status().connected() { return Err(lost()) },
        }
    };
    info!("scheduler leading: this process fires the periodic jobs");

    let mut last = Vec::with_capacity(entries.len());
    let now = Timestamp::now();
    for entry in entries {
        let recorded = last_slot(&channel, &entry.record_queue(prefix)).await?;
        match recorded {
            Some(recorded) => {
                let (missed, skipped) = entry.missed(recorded, now);
                if skipped {
                    warn!(
                        schedule = %entry.name,
                        job.name = entry.job,
                        since = recorded.as_second(),
                        fired = missed.len(),
                        "more slots were missed than the catch-up bound: only the latest are fired, the older are skipped"
                    );
                }
                for slot in &missed {
                    fire(client, &channel, entry, *slot).await?;
                }
                last.push(missed.last().copied().unwrap_or(recorded));
            }
            // Never fired: from now on.
            None => last.push(now),
        }
    }
    let mut refreshed = tokio::time::Instant::now();
    loop {
        let due = entries
            .iter()
            .zip(&last)
            .enumerate()
            .filter_map(|(i, (entry, last))| entry.next_after(*last).map(|slot| (slot, i)))
            .min();
        let wait = due.map_or(HEALTH_CHECK, |(slot, _)| {
            let millis = slot.as_millisecond().saturating_sub(Timestamp::now().as_millisecond());
            Duration::from_millis(u64::try_from(millis).unwrap_or(0))
        });
        tokio::select! {
            () = tokio::time::sleep(wait.min(HEALTH_CHECK)) => {
                if !channel.status().connected() {
                    return Err(lost());
                }
                if let Some((slot, i)) = due && slot <= Timestamp::now() {
                    fire(client, &channel, &entries[i], slot).await?;
                    last[i] = slot;
                }
                if refreshed.elapsed() > TOKEN_REFRESH {
                    // The new token comes to this consumer once the old is acked.
                    publish_token(&channel, &election).await?;
                    channel.basic_ack(token.delivery_tag, BasicAckOptions::default()).await?;
                    refreshed = tokio::time::Instant::now();
                }
            }
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => token = delivery,
                Some(Err(error)) => return Err(error.into()),
                None => return Err(lost()),
            },
        }
    }
}

/// Publishes a token to the election queue and waits for its confirm: on
/// a confirm channel, an unawaited confirm would leave the token's fate
/// unknown to the leader, which then waits forever for a token that never came.
async fn publish_token(channel: &Channel, election: &lapin::types::ShortString) -> Result<(), Error> {
    publish_confirmed(channel, election, b"token").await
}

/// Publishes `body` to `queue` on the confirm channel `channel`, persistent,
/// and waits for the broker's confirm.
async fn publish_confirmed(channel: &Channel, queue: &lapin::types::ShortString, body: &[u8]) -> Result<(), Error> {
    let properties = BasicProperties::default().with_delivery_mode(message::PERSISTENT);
    confirm::publish(channel, queue, body, properties).await
}

/// Fires `slot` of `entry`: records it, then enqueues the job, unless the
/// schedule is paused.
///
/// The record goes over the election channel, never the client's
/// reconnecting session: a leader whose election connection died has lost
/// its token, and another process may lead and have read the record
/// already. Writing through a connection the client opened since would
/// let that old leader record (and then enqueue) a slot the new leader
/// fires too, or overwrite the new leader's record with an older slot. On
/// the election channel the record fails with the connection; and the job
/// is enqueued only once the record is confirmed, so a slot is never
/// enqueued that a new leader could not see as fired.
async fn fire(client: &Client, channel: &Channel, entry: &Entry, slot: Timestamp) -> Result<(), Error> {
    let prefix = client.queue_prefix();
    let record = short(&entry.record_queue(prefix))?;
    publish_confirmed(channel, &record, slot.as_second().to_string().as_bytes()).await?;
    if paused(channel, &entry.paused_queue(prefix)).await? {
        info!(
            schedule = %entry.name,
            job.name = entry.job,
            slot = slot.as_second(),
            "schedule paused; slot skipped"
        );
        return Ok(());
    }
    let id = entry.slot_id(slot);
    let options = EnqueueOptions::new().job_id(id);
    match client
        .publish_job(entry.job, entry.queue, &entry.options, &entry.body, &options)
        .await
    {
        Ok(_) | Err(Error::Duplicate { .. }) => {
            info!(
                schedule = %entry.name,
                job.name = entry.job,
                job.id = %id,
                slot = slot.as_second(),
                "periodic job enqueued"
            );
            Ok(())
        }
        Err(error) => {
            // Recorded but not enqueued: the slot is lost, said loudly.
            warn!(
                schedule = %entry.name,
                job.name = entry.job,
                slot = slot.as_second(),
                %error,
                "periodic job not enqueued"
            );
            Ok(())
        }
    }
}

/// A unique key for `text`, for [`JobId::derived`].
pub(crate) fn id_bytes(text: &str) -> [u8; 16] {
    let high = unique::key_hash(text.as_bytes());
    let low = unique::key_hash(format!("{text}\u{0}").as_bytes());
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(expression: &'static str, timezone: &'static str) -> Entry {
        Entry {
            name: "report".to_owned(),
            job: "report",
            queue: "reports",
            options: JobOptions::new(),
            expression: expression.to_owned(),
            timezone_name: timezone.to_owned(),
            timezone: TimeZone::get(timezone).expect("a known zone"),
            cron: CronParser::builder()
                .seconds(Seconds::Optional)
                .build()
                .parse(expression)
                .expect("a valid expression"),
            body: Vec::new(),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    #[test]
    fn slots_follow_the_expression_in_its_time_zone() {
        let daily = entry("0 0 3 * * *", "Europe/Paris");
        // 03:00 in Paris is 01:00 UTC in summer.
        let next = daily.next_after(at("2026-07-01T12:00:00Z")).unwrap();
        assert_eq!(next, at("2026-07-02T01:00:00Z"));
        let every_second = entry("* * * * * *", "UTC");
        assert_eq!(
            every_second.next_after(at("2026-07-01T12:00:00Z")).unwrap(),
            at("2026-07-01T12:00:01Z")
        );
    }

    #[test]
    fn a_new_leader_catches_up_at_most_the_latest_ten_missed_slots() {
        let every_second = entry("* * * * * *", "UTC");
        let (missed, skipped) = every_second.missed(at("2026-07-01T12:00:00Z"), at("2026-07-01T12:00:03Z"));
        assert_eq!(
            missed,
            [
                at("2026-07-01T12:00:01Z"),
                at("2026-07-01T12:00:02Z"),
                at("2026-07-01T12:00:03Z")
            ]
        );
        assert!(!skipped);
        let (missed, skipped) = every_second.missed(at("2026-07-01T12:00:00Z"), at("2026-07-01T12:01:00Z"));
        assert_eq!(missed.len(), MAX_CATCH_UP);
        assert!(skipped);
        assert_eq!(missed.first(), Some(&at("2026-07-01T12:00:51Z")));
        assert_eq!(missed.last(), Some(&at("2026-07-01T12:01:00Z")));
        // Exactly the bound: nothing skipped.
        let (missed, skipped) = every_second.missed(at("2026-07-01T12:00:00Z"), at("2026-07-01T12:00:10Z"));
        assert_eq!((missed.len(), skipped), (MAX_CATCH_UP, false));
    }

    #[test]
    fn a_month_idle_per_second_schedule_catches_up_its_latest_ten_slots_at_once() {
        let every_second = entry("* * * * * *", "UTC");
        let started = std::time::Instant::now();
        let (missed, skipped) = every_second.missed(at("2026-06-01T00:00:00Z"), at("2026-07-01T00:00:00.5Z"));
        let expected: Vec<Timestamp> = (0..10)
            .rev()
            .map(|back| at("2026-07-01T00:00:00Z") - jiff::SignedDuration::from_secs(back))
            .collect();
        assert_eq!(missed, expected);
        assert!(skipped, "some were skipped");
        // Ten steps, not 2.6 million: far under a second even unoptimised on
        // a loaded machine.
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[test]
    fn a_daily_schedule_walks_back_across_days() {
        let daily = entry("0 0 3 * * *", "Europe/Paris");
        let (missed, skipped) = daily.missed(at("2026-07-01T01:00:00Z"), at("2026-07-03T12:00:00Z"));
        assert_eq!(missed, [at("2026-07-02T01:00:00Z"), at("2026-07-03T01:00:00Z")]);
        assert!(!skipped);
    }

    #[test]
    fn each_slot_has_its_own_id_the_same_everywhere() {
        let every_second = entry("* * * * * *", "UTC");
        let slot = at("2026-07-01T12:00:01Z");
        assert_eq!(every_second.slot_id(slot), every_second.slot_id(slot));
        assert_ne!(
            every_second.slot_id(slot),
            every_second.slot_id(at("2026-07-01T12:00:02Z"))
        );
    }

    /// A job with arguments, written by hand.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Greet {
        lang: String,
    }

    impl crate::Job for Greet {
        const NAME: &'static str = "greet";
        const QUEUE: &'static str = "greetings";
        const OPTIONS: JobOptions = JobOptions::new();
    }

    impl crate::Handler for Greet {
        async fn perform(self, _ctx: &crate::JobContext) -> Result<(), crate::JobError> {
            Ok(())
        }
    }

    fn greet(name: &str, cron: &str, timezone: &str) -> Schedule {
        Schedule::new(name, cron, Greet { lang: "fr".into() }).timezone(timezone)
    }

    fn checked(schedule: Schedule) -> Result<Vec<Entry>, (String, String)> {
        let registry = Registry::builder().job::<Greet>().schedule(schedule).build().unwrap();
        entries(&registry, None)
    }

    #[test]
    fn a_named_schedule_keys_its_state_and_slots_by_its_own_name() {
        let checked = checked(greet("greet_fr", "* * * * * *", "Europe/Paris")).expect("valid");
        let entry = &checked[0];
        assert_eq!((entry.name.as_str(), entry.job), ("greet_fr", "greet"));
        assert_eq!(entry.body, br#"{"lang":"fr"}"#);
        assert_eq!(entry.record_queue("p."), "p.warren.schedule.greet_fr");
        let slot = at("2026-07-01T12:00:01Z");
        assert_eq!(entry.slot_id(slot), JobId::derived("cron:greet_fr:1782907201"));
        let registry = Registry::builder()
            .job::<Greet>()
            .schedule(greet("greet_fr", "* * * * * *", "UTC"));
        let registry = registry.build().unwrap();
        assert!(entries(&registry, Some(&["elsewhere".to_owned()])).unwrap().is_empty());
    }

    #[test]
    fn a_schedule_that_cannot_work_is_refused_naming_it() {
        let refused = |schedule| checked(schedule).expect_err("refused");
        let (name, reason) = refused(greet("greet_fr", "0 0 25 * * *", "UTC"));
        assert_eq!(name, "greet_fr");
        assert!(
            reason.starts_with("has an invalid cron expression \"0 0 25 * * *\""),
            "{reason}"
        );
        let (_, reason) = refused(greet("greet_fr", "* * * * * *", "Europe/Atlantis"));
        assert!(
            reason.starts_with("has a time zone this system does not know, \"Europe/Atlantis\""),
            "{reason}"
        );
        let (_, reason) = refused(greet("greet fr", "* * * * * *", "UTC"));
        assert_eq!(
            reason,
            "has ' ' in its name; use ASCII letters, digits, `_`, `-`, `.` and `:`"
        );
        let (_, reason) = refused(greet("", "* * * * * *", "UTC"));
        assert_eq!(reason, "has an empty name");
        let (_, reason) = refused(greet(&"g".repeat(201), "* * * * * *", "UTC"));
        assert!(reason.contains("at most 200"), "{reason}");
    }
}
