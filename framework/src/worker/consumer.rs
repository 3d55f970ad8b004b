//! The worker actor: one consumer on one channel, running up to `prefetch`
//! jobs at once and settling each delivery by the ack mode.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Message, Recipient, WrapFuture};
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::{Instrument, debug, error, info, warn};

use crate::DeadReason;
use crate::amqp::backoff::Backoff;
use crate::amqp::hold;
use crate::amqp::message;
use crate::amqp::session::OnBlock;
use crate::amqp::topology;
use crate::duration::Written;
use crate::job::attempt::{Outcome, Runner};
use crate::observe::health::Health;
use crate::observe::{Attempt, AttemptOutcome, job_span};
use crate::worker::coalesce::{Acks, Settlement};
use crate::worker::heartbeat::Counters;
use crate::{AckMode, Error, JobId, Registry};

/// How often a worker checks that its channel is still open.
const HEALTH_CHECK: Duration = Duration::from_secs(1);

/// The first wait before a job's next step (its retry, its dead letter, its
/// next hop) that could not be published is published again; the waits
/// grow to [`NEXT_STEP_MAX_WAIT`].
const NEXT_STEP_FIRST_WAIT: Duration = Duration::from_secs(1);
const NEXT_STEP_MAX_WAIT: Duration = Duration::from_secs(60);

/// What every worker of a process shares.
#[derive(Debug)]
pub(crate) struct WorkerSettings {
    pub(crate) registry: Registry,
    pub(crate) ack: AckMode,
    pub(crate) prefetch: u16,
    pub(crate) shutdown_timeout: Duration,
    /// How long a job of a name no worker knows is held for one that does
    /// (a rolling deploy) before it is dead-lettered as `unknown_job`.
    pub(crate) unknown_job_window: Duration,
    /// What `/health/ready` answers.
    pub(crate) health: Arc<Health>,
    /// Jobs in flight, done and failed, for the heartbeat.
    pub(crate) counters: Arc<Counters>,
}

/// Tells the supervisor a worker has stopped, and why.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct WorkerStopped {
    pub(crate) slot: usize,
    /// After a drain, how many jobs the shutdown timeout cut off; otherwise
    /// what killed the worker's channel or consumer.
    pub(crate) result: Result<usize, Stopped>,
}

/// Why a worker's consumer stopped, other than a drain.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Stopped {
    /// RabbitMQ cancelled the consumer, e.g. because its queue was deleted.
    #[error("RabbitMQ cancelled the consumer of queue `{queue}` (was the queue deleted?)")]
    ConsumerCancelled {
        /// The queue.
        queue: String,
    },
    /// The channel or connection was closed under it.
    #[error("the channel consuming queue `{queue}` was closed")]
    ChannelClosed {
        /// The queue.
        queue: String,
    },
    /// Declaring, opening the channel or consuming failed.
    #[error(transparent)]
    Broker(#[from] Error),
}

impl From<lapin::Error> for Stopped {
    fn from(error: lapin::Error) -> Self {
        Stopped::Broker(error.into())
    }
}

/// Asks a worker to stop taking jobs and finish the ones it has.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Drain;

/// One consumer on its own channel.
#[derive(Debug)]
pub(crate) struct Worker {
    slot: usize,
    runner: Runner,
    settings: Arc<WorkerSettings>,
    connection: Arc<Connection>,
    supervisor: Recipient<WorkerStopped>,
    drain: watch::Sender<bool>,
}

impl Worker {
    pub(crate) fn new(
        slot: usize,
        runner: Runner,
        settings: Arc<WorkerSettings>,
        connection: Arc<Connection>,
        supervisor: Recipient<WorkerStopped>,
    ) -> Self {
        Worker {
            slot,
            runner,
            settings,
            connection,
            supervisor,
            drain: watch::Sender::new(false),
        }
    }
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let consume = consume(
            self.slot,
            self.runner.clone(),
            Arc::clone(&self.settings),
            Arc::clone(&self.connection),
            self.drain.subscribe(),
        );
        ctx.spawn(consume.into_actor(self).map(|result, worker, ctx| {
            worker.settings.health.consumer(worker.slot, false);
            worker.supervisor.do_send(WorkerStopped {
                slot: worker.slot,
                result,
            });
            ctx.stop();
        }));
    }
}

impl actix::Handler<Drain> for Worker {
    type Result = ();

    fn handle(&mut self, _: Drain, _: &mut Self::Context) {
        self.drain.send_replace(true);
    }
}

/// Consumes until the channel dies (an error) or a drain completes (`Ok`,
/// with the number of jobs the shutdown timeout cut off).
async fn consume(
    slot: usize,
    runner: Runner,
    settings: Arc<WorkerSettings>,
    connection: Arc<Connection>,
    mut drain: watch::Receiver<bool>,
) -> Result<usize, Stopped> {
    let queue = runner.full_queue.to_string();
    topology::declare(&connection, &topology::worker_queues(&queue, runner.shape)).await?;
    let channel = connection.create_channel().await?;
    let ack = settings.ack;
    if ack.ack_required() {
        // Per consumer (global = false): quorum queues reject global QoS.
        channel
            .basic_qos(settings.prefetch, BasicQosOptions { global: false })
            .await?;
    } else {
        warn!(worker = %runner.worker, %queue, "ack mode `none`: RabbitMQ ignores prefetch without acks and pushes the whole queue to this worker; jobs it holds are lost if it dies");
    }
    crate::amqp::short(&queue)?;
    // A consumer tag is an AMQP short string too; it only has to be unique
    // on this worker's own channel, so a long one is cut.
    let mut tag = format!("warren-{}-{queue}", runner.worker);
    while tag.len() > 255 {
        tag.pop();
    }
    let options = BasicConsumeOptions {
        no_ack: !ack.ack_required(),
        ..BasicConsumeOptions::default()
    };
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            tag.as_str().into(),
            options,
            FieldTable::default(),
        )
        .await?;
    settings.health.consumer(slot, true);
    info!(worker = %runner.worker, %queue, prefetch = settings.prefetch, ack = %ack, "worker consuming");
    // This channel's acknowledgements, coalesced.
    let acks = Acks::new(channel.clone());

    // Runs at most `prefetch` jobs at once, also in ack mode `none`, where
    // the broker does not limit what it pushes.
    let slots = Arc::new(Semaphore::new(settings.prefetch.into()));
    // lapin's consumer stream can stay silent when the broker closes the
    // connection, so the channel's state is checked on a tick as well.
    let mut health = tokio::time::interval(HEALTH_CHECK);
    let channel_lost = || Stopped::ChannelClosed { queue: queue.clone() };
    let healthy = || channel.status().connected() && connection.status().connected();
    loop {
        // Also while every slot is busy with long jobs: a dead channel must
        // not go unnoticed until they end.
        let permit = loop {
            tokio::select! {
                biased;
                _ = drain.wait_for(|draining| *draining) => break None,
                permit = Arc::clone(&slots).acquire_owned() => break Some(permit.expect("the semaphore is never closed")),
                _ = health.tick() => if !healthy() { return Err(channel_lost()) },
            }
        };
        let Some(permit) = permit else { break };
        let next = loop {
            tokio::select! {
                biased;
                _ = drain.wait_for(|draining| *draining) => break None,
                next = consumer.next() => break Some(next),
                _ = health.tick() => if !healthy() { return Err(channel_lost()) },
            }
        };
        let Some(next) = next else { break };
        match next {
            // lapin yields deliveries buffered before a channel error first;
            // they cannot be acked, and RabbitMQ redelivers them elsewhere.
            Some(Ok(delivery)) if ack.ack_required() && !delivery.acker.usable() => {}
            Some(Ok(delivery)) => {
                // Under ack mode `none` nothing is ever settled: registering
                // would only grow the coalescer by one entry per job.
                if ack.ack_required() {
                    acks.received(delivery.delivery_tag);
                }
                tokio::task::spawn_local(settle(
                    delivery,
                    runner.clone(),
                    Arc::clone(&settings),
                    acks.clone(),
                    permit,
                ));
            }
            Some(Err(error)) => return Err(error.into()),
            None => return Err(Stopped::ConsumerCancelled { queue }),
        }
    }

    info!(worker = %runner.worker, %queue, "draining: no new jobs, waiting for running ones");
    // Errors here mean the channel is already gone: nothing left to cancel.
    let _ = channel
        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await;
    let deadline = tokio::time::Instant::now() + settings.shutdown_timeout;
    let mut cut_off = 0;
    if !ack.ack_required() {
        // Without acks the jobs already pushed to us exist nowhere else: run them.
        let mut lost = Vec::new();
        while let Ok(Some(Ok(delivery))) = tokio::time::timeout_at(deadline, consumer.next()).await {
            let Ok(Ok(permit)) = tokio::time::timeout_at(deadline, Arc::clone(&slots).acquire_owned()).await else {
                // Taken from the consumer, and no slot came free in time.
                lost.push(message::job_id(&delivery.properties).to_string());
                break;
            };
            tokio::task::spawn_local(settle(
                delivery,
                runner.clone(),
                Arc::clone(&settings),
                acks.clone(),
                permit,
            ));
        }
        while let Some(Some(Ok(delivery))) = consumer.next().now_or_never() {
            lost.push(message::job_id(&delivery.properties).to_string());
        }
        cut_off += lost.len();
        if !lost.is_empty() {
            error!(worker = %runner.worker, %queue, count = lost.len(), jobs = %lost.join(","), "shutdown timeout reached with jobs pushed to this worker but not run; under ack mode `none` they are lost");
        }
    }
    let all = u32::from(settings.prefetch);
    if tokio::time::timeout_at(deadline, slots.acquire_many(all))
        .await
        .is_err()
    {
        let running = usize::from(settings.prefetch) - slots.available_permits();
        cut_off += running;
        if ack == AckMode::Late {
            warn!(worker = %runner.worker, %queue, running, "shutdown timeout reached with jobs still running; they return to the queue");
        } else {
            error!(worker = %runner.worker, %queue, running, ack = %ack, "shutdown timeout reached with jobs still running; they were acknowledged already and are lost");
        }
    }
    // Unacked deliveries (prefetched, never started) go back to the queue.
    let _ = channel.close(200, "worker drained".into()).await;
    info!(worker = %runner.worker, %queue, "worker drained");
    Ok(cut_off)
}

/// Runs one delivery and settles it by the ack mode.
///
/// Every delivery's future is moved into a task of its own, so its size is
/// a per-job cost: the paths that publish (a retry, a dead letter, a job
/// not due yet) are boxed, and only jobs that take them pay for it. They
/// hold lapin's publish and declare futures and made this one 8.5 KB.
async fn settle(
    delivery: Delivery,
    runner: Runner,
    settings: Arc<WorkerSettings>,
    acks: Acks,
    _permit: OwnedSemaphorePermit,
) {
    let acks = &acks;
    let properties = &delivery.properties;
    // Computed once: a foreign message without a message_id gets a fresh id,
    // which the log, the handler and the dead letter must all share.
    let id = message::job_id(properties);
    let attempt = message::attempt(properties);
    let observed = Attempt::of_worker(properties, id, &settings.registry, &runner.full_queue, &runner.worker);
    let hooks = runner.client.hooks_of();
    let span = job_span(&observed);
    hooks.attempt_span(&observed, &span);
    async {
        let ack = settings.ack;
        // A long delay is waited out in several hops: a job back before it
        // is due goes to the hold queue for the rest of its wait.
        if let Some(eta) = message::eta(properties)
            && hold::due_in(eta) > hold::EARLY_TOLERANCE
        {
            if hold::due_in(eta) > hold::MAX_DELAY + hold::CLOCK_SLACK {
                // No warren producer sets this: waiting for it would park the
                // job in hold queues for ever.
                let error = format!(
                    "its warren-eta header is {} ahead, past the longest delay ({})",
                    Written(Duration::from_secs(hold::due_in(eta).as_secs())),
                    Written(hold::MAX_DELAY)
                );
                error!(%error, "job cannot be scheduled; moving it to the dead-letter queue");
                hooks.on_dead_letter(&observed, DeadReason::Undecodable, &error);
                let buried = Box::pin(bury(
                    &delivery,
                    acks,
                    &runner,
                    id,
                    DeadReason::Undecodable,
                    &error,
                    ack.ack_required(),
                ))
                .await;
                if buried {
                    release_unique(&runner, properties, id).await;
                }
                return;
            }
            debug!(due_in_ms = millis(hold::due_in(eta)), "job not due yet; holding it again");
            // As a retry is: without `expiration`, a foreign `user_id`, CC/BCC.
            let hop = &message::hop_properties(properties, id);
            let held = || hold(&runner, &delivery.data, hop, eta);
            Box::pin(hand_over(&delivery, acks, ack.ack_required(), held)).await;
            return;
        }
        if ack == AckMode::Early && !acknowledge(&delivery, acks).await {
            return;
        }
        // At debug: at info it would double the lines (and the cost) of
        // every job; "job done" says how long it ran, and the in-flight
        // gauge shows what runs now.
        debug!("job started");
        let _running = settings.counters.running();
        hooks.before_attempt(&observed);
        let started = Instant::now();
        let outcome = runner
            .attempt(&settings.registry, id, properties, &delivery.data, delivery.redelivered)
            .await;
        let duration = started.elapsed();
        let duration_ms = millis(duration);
        let unacked = ack == AckMode::Late;
        match outcome {
            Outcome::Done => {
                settings.counters.done();
                hooks.after_attempt(&observed, &AttemptOutcome::Succeeded, duration);
                info!(duration_ms, "job done");
                // A delivery whose ack did not go out comes back: its job is
                // still pending, so its unique key stays taken.
                if !unacked || acknowledge(&delivery, acks).await {
                    release_unique(&runner, properties, id).await;
                }
            }
            Outcome::Retry { delay, reason, error } => {
                settings.counters.failed();
                hooks.after_attempt(&observed, &outcome_retried(reason, &error, delay), duration);
                warn!(duration_ms, reason = reason.as_str(), %error, retry_in_ms = millis(delay), "job failed; retrying it");
                let eta = SystemTime::now() + delay;
                let retry = &message::retry_properties(properties, id, attempt.saturating_add(1), &error, eta);
                let held = || hold(&runner, &delivery.data, retry, eta);
                Box::pin(hand_over(&delivery, acks, unacked, held)).await;
            }
            Outcome::Dead {
                reason: DeadReason::UnknownJob,
                error,
            } if let Some((since, wait)) = hold_unknown(properties, settings.unknown_job_window) => {
                hooks.after_attempt(&observed, &outcome_retried(DeadReason::UnknownJob, &error, wait), duration);
                // During a rolling deploy, a newer worker knows it.
                warn!(%error, retry_in_ms = millis(wait), "no job of this name here; holding it for a worker that knows it");
                let eta = SystemTime::now() + wait;
                let held = &message::unknown_properties(properties, id, since, eta);
                let publish = || hold(&runner, &delivery.data, held, eta);
                Box::pin(hand_over(&delivery, acks, unacked, publish)).await;
            }
            Outcome::Dead { reason, error } => {
                settings.counters.failed();
                hooks.after_attempt(&observed, &AttemptOutcome::Dead { reason, error: &error }, duration);
                // At error: the job will not run again unless someone acts.
                error!(duration_ms, reason = reason.as_str(), %error, "job failed for good; moving it to the dead-letter queue");
                // Redelivered instead when its channel died first: still pending.
                if Box::pin(bury(&delivery, acks, &runner, id, reason, &error, unacked)).await {
                    release_unique(&runner, properties, id).await;
                }
            }
        }
    }
    .instrument(span)
    .await;
}

/// A duration in whole milliseconds, as log fields give them (a number in
/// JSON, not a Debug string).
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn outcome_retried(reason: DeadReason, error: &str, delay: Duration) -> AttemptOutcome<'_> {
    AttemptOutcome::Retried { reason, error, delay }
}

/// Whether a job of a name this worker does not know is held again rather
/// than dead-lettered, and if so since when it is unknown and how long it
/// waits: for `window` from the first time a worker did not know it, with
/// waits growing with the time already waited (1 s up to a minute), then
/// it goes to the dead-letter queue as `unknown_job`.
fn hold_unknown(properties: &BasicProperties, window: Duration) -> Option<(SystemTime, Duration)> {
    const STEPS: [u64; 6] = [1, 2, 5, 10, 30, 60];
    let now = SystemTime::now();
    // A time in the future (another producer's, or a clock far ahead) would
    // hold the job for ever: it counts from now instead.
    let since = message::unknown_since(properties)
        .filter(|since| *since <= now)
        .unwrap_or(now);
    let waited = now.duration_since(since).unwrap_or_default();
    let left = window.checked_sub(waited).filter(|left| !left.is_zero())?;
    let step = STEPS
        .iter()
        .map(|&secs| Duration::from_secs(secs))
        .find(|&step| step >= waited)
        .unwrap_or(Duration::from_secs(60));
    Some((since, step.min(left)))
}

/// Frees the unique key a job held, once it succeeded or died. A failure
/// leaves the lock to expire after the job's `unique_for`.
async fn release_unique(runner: &Runner, properties: &BasicProperties, id: JobId) {
    match runner.client.release_held(properties, id).await {
        Ok(true) => debug!("unique key released"),
        Ok(false) => {}
        Err(error) => warn!(%error, "could not release the job's unique key; it expires after the job's unique_for"),
    }
}

/// Moves a delivery's job to the dead-letter queue, with why; `false` when
/// the job is redelivered instead (see `hand_over`).
async fn bury(
    delivery: &Delivery,
    acks: &Acks,
    runner: &Runner,
    id: JobId,
    reason: DeadReason,
    error: &str,
    unacked: bool,
) -> bool {
    let properties = &delivery.properties;
    let dead = &message::dead_letter_properties(properties, id, &runner.full_queue, reason, error, &runner.worker);
    let published = || {
        runner
            .client
            .publish_dead_letter(&runner.full_queue, runner.shape, &delivery.data, dead)
    };
    hand_over(delivery, acks, unacked, published).await
}

/// Publishes a delivery's body with `properties` to its job queue's hold
/// queue, due at `eta`: a worker's hand-over, which waits past the recovery
/// timeout for the confirm of a publish the broker blocked.
async fn hold(runner: &Runner, body: &[u8], properties: &BasicProperties, eta: SystemTime) -> Result<(), Error> {
    let mut properties = properties.into();
    (runner.client)
        .publish_held(
            &runner.full_queue,
            runner.shape,
            body,
            &mut properties,
            eta,
            OnBlock::AwaitAnswer,
        )
        .await
}

/// Moves a delivery's job elsewhere (`publish`: to a hold queue or the
/// dead-letter queue), then acks the delivery once that is confirmed;
/// `false` when the delivery is not settled (its channel died first, or its
/// ack did not go out) and RabbitMQ redelivers the job.
///
/// A publish that fails is tried again, with growing waits, for as long as
/// it takes: the job keeps its slot and its delivery, and its handler does
/// not run again (a broker limit or a full disk must not repeat a job's side
/// effects every few seconds). Each try publishes the same message, with
/// the same job id and attempt, so a publish whose confirm was lost with
/// its connection is at worst stored twice, never a new chain of retries.
/// If the delivery's channel dies meanwhile, RabbitMQ redelivers it.
///
/// While the broker blocks publishes (a memory or disk alarm), each try
/// waits for the block to lift and is tried again at once, quietly: the
/// publisher's connection logs the block once. The delivery, on the
/// consuming connection, which the broker does not block, stays unacked.
/// A publish the broker blocked once sent is not tried again: `publish`
/// waits for its confirm however long the block lasts
/// ([`OnBlock::AwaitAnswer`]), as the broker stores it once it lifts the
/// block, and a second try would store the job's next step twice.
async fn hand_over<F, Fut>(delivery: &Delivery, acks: &Acks, unacked: bool, mut publish: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut backoff = Backoff::new(NEXT_STEP_FIRST_WAIT, NEXT_STEP_MAX_WAIT);
    loop {
        // RabbitMQ redelivers an unacked delivery whose channel died: moving
        // its job elsewhere as well would run it twice (and, for a retry,
        // start a second chain of retries).
        if unacked && !delivery.acker.usable() {
            warn!("the job's channel closed before it could be moved on; RabbitMQ redelivers it");
            return false;
        }
        match publish().await {
            Ok(()) if unacked => return acknowledge(delivery, acks).await,
            Ok(()) => return true,
            // The connection logged the block once; the next publish waits
            // for it to lift (up to its recovery timeout), which paces this.
            Err(error) if error.is_publish_blocked() && unacked => {
                debug!(%error, "the broker blocks publishes; holding the job until its next step is stored");
                tokio::time::sleep(NEXT_STEP_FIRST_WAIT).await;
            }
            Err(error) => {
                let wait = backoff.next_wait();
                if unacked {
                    warn!(%error, retry_in_ms = millis(wait), "could not store the job's next step; holding the job and trying again");
                } else {
                    // Already acknowledged: this worker holds the only copy.
                    error!(%error, retry_in_ms = millis(wait), body_bytes = delivery.data.len(), "could not store the job's next step, and it was acknowledged already (it is lost if this worker stops first); trying again");
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Acks a delivery, coalesced with the channel's other settled
/// deliveries; `false` when the channel is gone (RabbitMQ then redelivers
/// the message to another consumer).
async fn acknowledge(delivery: &Delivery, acks: &Acks) -> bool {
    let acked = acks.settle(delivery.delivery_tag, Settlement::Ack).await;
    if !acked {
        warn!("could not acknowledge the delivery, its channel is closed; RabbitMQ will redeliver it");
    }
    acked
}
