//! The supervisor actor: owns the consumer connection, starts one worker per
//! slot spread over arbiters, restarts workers whose channel dies, and drains
//! them all on a shutdown request (SIGINT/SIGTERM, or a `WorkerHandle`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, WrapFuture};
use actix_rt::{Arbiter, ArbiterHandle};
use lapin::Connection;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::amqp::backoff::Backoff;
use crate::amqp::connect::{Endpoint, Refusals, with_retries};
use crate::job::attempt::Runner;
use crate::observe::metrics;
use crate::worker::Exit;
use crate::worker::consumer::{Drain, Worker, WorkerSettings, WorkerStopped, millis};
use crate::worker::signals::Signals;

/// A worker restarted after running this long starts its backoff afresh.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// The first wait's ceiling before restarting a worker or reconnecting (full jitter).
pub(crate) const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait before restarting a worker or reconnecting.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long closing the connection may take at exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra time after the shutdown timeout for channels to close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// One worker's place: which queue it consumes and how often it restarted.
#[derive(Debug)]
struct Slot {
    runner: Runner,
    arbiter: usize,
    worker: Option<Addr<Worker>>,
    /// The waits between this worker's restarts.
    restarts: Backoff,
    started_at: Instant,
}

/// Supervises the workers of one process.
#[derive(Debug)]
pub(crate) struct Supervisor {
    endpoint: Endpoint,
    connection: Arc<Connection>,
    settings: Arc<WorkerSettings>,
    arbiters: Vec<Arbiter>,
    slots: Vec<Slot>,
    /// Slots waiting for the connection to come back.
    waiting: Vec<usize>,
    reconnecting: bool,
    draining: bool,
    /// Jobs that drained workers reported cut off by the shutdown timeout.
    cut_off: usize,
    signals: Signals,
    exit: Option<oneshot::Sender<Exit>>,
}

impl Supervisor {
    pub(crate) fn new(
        endpoint: Endpoint,
        connection: Arc<Connection>,
        settings: Arc<WorkerSettings>,
        runners: Vec<Runner>,
        signals: Signals,
        exit: oneshot::Sender<Exit>,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        // Actors on one arbiter never run in parallel: one arbiter per core.
        let arbiters = (0..runners.len().min(cores))
            .map(|_| Arbiter::new())
            .collect::<Vec<_>>();
        let slots = runners
            .into_iter()
            .enumerate()
            .map(|(i, runner)| Slot {
                runner,
                arbiter: i % arbiters.len(),
                worker: None,
                restarts: restart_backoff(),
                started_at: Instant::now(),
            })
            .collect();
        Supervisor {
            endpoint,
            connection,
            settings,
            arbiters,
            slots,
            waiting: Vec::new(),
            reconnecting: false,
            draining: false,
            cut_off: 0,
            signals,
            exit: Some(exit),
        }
    }

    fn start_worker(&mut self, slot: usize, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        if !self.connection.status().connected() {
            self.waiting.push(slot);
            self.reconnect(ctx);
            return;
        }
        let arbiter: ArbiterHandle = self.arbiters[self.slots[slot].arbiter].handle();
        let runner = self.slots[slot].runner.clone();
        let settings = Arc::clone(&self.settings);
        let connection = Arc::clone(&self.connection);
        let supervisor = ctx.address().recipient();
        let worker = Worker::start_in_arbiter(&arbiter, move |_| {
            Worker::new(slot, runner, settings, connection, supervisor)
        });
        let slot = &mut self.slots[slot];
        slot.worker = Some(worker);
        slot.started_at = Instant::now();
    }

    /// Opens a new consumer connection, then starts the waiting workers.
    fn reconnect(&mut self, ctx: &mut Context<Self>) {
        if self.reconnecting {
            return;
        }
        // The node that was lost is tried last (with several URLs).
        self.endpoint.fail_over();
        self.reconnecting = true;
        self.settings.health.connected(false);
        let endpoint = self.endpoint.clone();
        // A worker that ran keeps trying even when the broker refuses it:
        // see `Refusals::Retry`.
        let connect = async move {
            with_retries(
                &endpoint.name,
                Backoff::new(FIRST_WAIT, MAX_BACKOFF),
                Refusals::Retry,
                || endpoint.connect(),
            )
            .await
        };
        let url = crate::error::redact(&self.endpoint.url);
        ctx.spawn(connect.into_actor(self).map(move |result, supervisor, ctx| {
            let Ok(connection) = result else {
                // `Refusals::Retry` returns only once connected.
                return;
            };
            info!(%url, "reconnected to RabbitMQ");
            supervisor.connection = Arc::new(connection);
            supervisor.reconnecting = false;
            supervisor.settings.health.connected(true);
            for slot in std::mem::take(&mut supervisor.waiting) {
                supervisor.start_worker(slot, ctx);
            }
        }));
    }

    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        self.draining = true;
        self.settings.health.draining();
        let running: Vec<_> = self.slots.iter().filter_map(|slot| slot.worker.clone()).collect();
        info!(
            workers = running.len(),
            timeout_ms = millis(self.settings.shutdown_timeout),
            "shutting down: draining workers"
        );
        for worker in running {
            worker.do_send(Drain);
        }
        ctx.run_later(self.settings.shutdown_timeout + CLOSE_GRACE, |supervisor, ctx| {
            error!("workers did not drain in time; exiting");
            supervisor.finish(Exit::Forced, ctx);
        });
        self.finish_if_drained(ctx);
    }

    fn finish_if_drained(&mut self, ctx: &mut Context<Self>) {
        if self.draining && self.slots.iter().all(|slot| slot.worker.is_none()) {
            let exit = match self.cut_off {
                0 => Exit::Drained,
                cut_off => Exit::DrainTimedOut { cut_off },
            };
            self.finish(exit, ctx);
        }
    }

    fn finish(&mut self, exit: Exit, ctx: &mut Context<Self>) {
        let Some(sender) = self.exit.take() else {
            return;
        };
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        if exit == Exit::Forced {
            // At once, whatever the connection does: a stalled broker must
            // not hold a second signal up. Unacked jobs return to RabbitMQ
            // when the process's sockets close.
            let _ = sender.send(exit);
            ctx.stop();
            return;
        }
        let connection = Arc::clone(&self.connection);
        ctx.spawn(
            async move {
                // Closing fails only if the connection is already gone; a
                // broker that does not answer must not keep the process up.
                let close = connection.close(200, "worker shutting down".into());
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
            }
            .into_actor(self)
            .map(move |(), _, ctx| {
                let _ = sender.send(exit);
                ctx.stop();
            }),
        );
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        for slot in 0..self.slots.len() {
            self.start_worker(slot, ctx);
        }
        let mut first = self.signals.clone();
        let mut second = self.signals.clone();
        ctx.spawn(
            async move { first.received(1).await }
                .into_actor(self)
                .map(|(), supervisor, ctx| supervisor.drain(ctx)),
        );
        ctx.spawn(
            async move { second.received(2).await }
                .into_actor(self)
                .map(|(), supervisor, ctx| {
                    warn!("second shutdown request: exiting now; unfinished jobs return to the queue");
                    supervisor.finish(Exit::Forced, ctx);
                }),
        );
    }
}

impl actix::Handler<WorkerStopped> for Supervisor {
    type Result = ();

    fn handle(&mut self, stopped: WorkerStopped, ctx: &mut Self::Context) {
        let slot = &mut self.slots[stopped.slot];
        slot.worker = None;
        if self.draining {
            if let Ok(cut_off) = stopped.result {
                self.cut_off += cut_off;
            }
            self.finish_if_drained(ctx);
            return;
        }
        let error = match stopped.result {
            Ok(_) => "stopped".to_owned(),
            Err(error) => error.to_string(),
        };
        if slot.started_at.elapsed() > STABLE_AFTER {
            slot.restarts = restart_backoff();
        }
        let delay = slot.restarts.next_wait();
        metrics::worker_restarted();
        warn!(worker = %slot.runner.worker, queue = %slot.runner.full_queue, %error, restart_in_ms = millis(delay), "worker stopped; restarting it");
        let index = stopped.slot;
        ctx.run_later(delay, move |supervisor, ctx| supervisor.start_worker(index, ctx));
    }
}

/// The waits before restarting a worker: up to 1 s, 2 s, 4 s, … up to
/// [`MAX_BACKOFF`], jittered, so that the workers whose channels a broker
/// restart closed together do not all come back at one instant.
fn restart_backoff() -> Backoff {
    Backoff::new(FIRST_WAIT, MAX_BACKOFF)
}
