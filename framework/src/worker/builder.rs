//! The public way to run workers from any program: [`Worker::builder`],
//! its options, and the checks made before anything connects.

#[cfg(feature = "http")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tracing::warn;

use crate::amqp::connect::{self, TlsFiles};
use crate::amqp::hold;
use crate::duration::Written;
#[cfg(feature = "http")]
use crate::observe::http;
use crate::observe::{Hook, Hooks};
use crate::worker::consumer::WorkerSettings;
use crate::worker::scheduler;
use crate::worker::{Exit, WorkerError, WorkerHandle, run};
use crate::{AckMode, QueueType, Registry, RegistryError, State};

/// Runs jobs: consumes their queues and runs each delivery's handler,
/// supervised, from any program.
///
/// Start from [`Worker::builder`]. The generated binary ([`main!`](crate::main))
/// runs the same builder from its `work` command.
///
/// ```no_run
/// use std::time::Duration;
/// use warren::{AckMode, Exit, Worker};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let exit = Worker::builder("amqp://127.0.0.1:5672/%2f")
///     .queues(["images"])
///     .workers_per_queue(4)
///     .prefetch(10)
///     .ack(AckMode::Late)
///     .shutdown_timeout(Duration::from_secs(60))
///     .run() // until SIGINT/SIGTERM, then drains
///     .await?;
/// assert_eq!(exit, Exit::Drained);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Worker {
    _never: (),
}

impl Worker {
    /// A worker for the broker at `url` (several URLs, comma-separated, are
    /// a cluster's nodes, tried in turn), with the defaults of
    /// [`WorkerBuilder`]'s methods.
    pub fn builder(url: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder::new(url.into())
    }
}

/// Configures a worker; [`run`](Self::run) or [`start`](Self::start) it.
///
/// Nothing is read from the command line or the environment: the caller
/// decides. Options the worker cannot run with are refused before anything
/// connects (see [`WorkerError`]).
#[derive(Debug, Clone)]
#[must_use = "a worker builder does nothing until it is run or started"]
pub struct WorkerBuilder {
    url: String,
    tls: TlsFiles,
    queues: Vec<String>,
    workers_per_queue: Option<usize>,
    prefetch: u16,
    ack: AckMode,
    shutdown_timeout: Duration,
    unknown_job_window: Duration,
    recovery_timeout: Duration,
    state: State,
    queue_prefix: String,
    name: Option<String>,
    registry: Option<Registry>,
    handle_signals: bool,
    allow_unknown_queues: bool,
    /// The runtime that drives the RabbitMQ connections, when the caller
    /// guarantees it outlives the worker (the generated binary's); `None`:
    /// one of the worker's own.
    io: Option<Handle>,
    hooks: Hooks,
    #[cfg(feature = "http")]
    metrics_addr: Option<SocketAddr>,
}

impl WorkerBuilder {
    /// Deliveries each worker holds unacknowledged, and jobs it runs at once, unless set.
    pub const DEFAULT_PREFETCH: u16 = 10;
    /// How long running jobs may take to finish after a shutdown request, unless set.
    pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
    /// How long a job of a name no linked job has is held for a worker that knows it, unless set.
    pub const DEFAULT_UNKNOWN_JOB_WINDOW: Duration = Duration::from_secs(15 * 60);
    /// How long each of the worker's publishes waits for a lost connection to come back, unless set.
    pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);

    fn new(url: String) -> Self {
        WorkerBuilder {
            url,
            tls: TlsFiles::default(),
            queues: Vec::new(),
            workers_per_queue: None,
            prefetch: Self::DEFAULT_PREFETCH,
            ack: AckMode::default(),
            shutdown_timeout: Self::DEFAULT_SHUTDOWN_TIMEOUT,
            unknown_job_window: Self::DEFAULT_UNKNOWN_JOB_WINDOW,
            recovery_timeout: Self::DEFAULT_RECOVERY_TIMEOUT,
            state: State::new(),
            queue_prefix: String::new(),
            name: None,
            registry: None,
            handle_signals: true,
            allow_unknown_queues: false,
            io: None,
            hooks: Hooks::default(),
            #[cfg(feature = "http")]
            metrics_addr: None,
        }
    }

    /// Calls `hook` around every attempt this worker runs, and every
    /// enqueue of its handlers' follow-up jobs, after the hooks added
    /// before (see [`observe`](crate::observe)).
    pub fn hook(mut self, hook: impl Hook) -> Self {
        self.hooks = self.hooks.with(hook);
        self
    }

    /// Serves `/metrics` (Prometheus text format) and the health probes
    /// `/health/live` and `/health/ready` over HTTP at `addr`, from start to
    /// exit; the generated binary's `work --metrics-addr`. Port 0 picks a
    /// free port, which the log line `serving /metrics…` names. Default:
    /// no server. See the [operations guide](crate::guide::operations).
    ///
    /// The server installs a Prometheus recorder as the process's `metrics`
    /// recorder, unless the program installed one first.
    #[cfg(feature = "http")]
    pub fn metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.metrics_addr = Some(addr);
        self
    }

    /// The queues to consume, as jobs name them (without the prefix).
    /// Default, and for an empty list: the queues of every registered job.
    /// A queue no registered job uses is refused (a typo, most likely)
    /// unless [`allow_unknown_queues`](Self::allow_unknown_queues).
    pub fn queues<I>(mut self, queues: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// Workers (consumers, each on its own channel) per queue. Default: the
    /// number of CPU cores.
    pub fn workers_per_queue(mut self, workers: usize) -> Self {
        self.workers_per_queue = Some(workers);
        self
    }

    /// Unacknowledged deliveries per worker, which is also the number of
    /// jobs a worker runs at once. Default [`DEFAULT_PREFETCH`](Self::DEFAULT_PREFETCH).
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// When deliveries are acknowledged, and so what a crash can cost.
    /// Default [`AckMode::Late`] (at least once).
    pub fn ack(mut self, ack: AckMode) -> Self {
        self.ack = ack;
        self
    }

    /// How long running jobs may take to finish once a shutdown is asked
    /// for; the jobs still running then are cut off (see
    /// [`Exit::DrainTimedOut`](crate::Exit::DrainTimedOut)). Default
    /// [`DEFAULT_SHUTDOWN_TIMEOUT`](Self::DEFAULT_SHUTDOWN_TIMEOUT).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long a job whose name this worker does not know is held for a
    /// worker that knows it (a newer version, during a rolling deploy)
    /// before it goes to the dead-letter queue as `unknown_job`. Default
    /// [`DEFAULT_UNKNOWN_JOB_WINDOW`](Self::DEFAULT_UNKNOWN_JOB_WINDOW).
    pub fn unknown_job_window(mut self, window: Duration) -> Self {
        self.unknown_job_window = window;
        self
    }

    /// How long each of the worker's publishes (a retry, a dead letter, a
    /// job not due yet held again, its handlers' enqueues, its heartbeats)
    /// waits for a lost publishing connection to come back, or for the
    /// broker to lift a block on publishes (a memory or disk alarm), before
    /// it fails; the generated binary's `work --recovery-timeout`. Default
    /// [`DEFAULT_RECOVERY_TIMEOUT`](Self::DEFAULT_RECOVERY_TIMEOUT).
    ///
    /// A retry or dead letter that failed is tried again for as long as it
    /// takes, its job keeping its delivery; one the broker blocked once
    /// sent waits for its confirm past this timeout instead, as the broker
    /// stores it when it lifts the block (trying again would store it
    /// twice). An enqueue fails as a [`Client`](crate::Client)'s does.
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.recovery_timeout = timeout;
        self
    }

    /// What handlers reach with [`JobContext::state`](crate::JobContext::state):
    /// a database pool, an HTTP client, configuration. Default: empty.
    pub fn state(mut self, state: State) -> Self {
        self.state = state;
        self
    }

    /// A prefix for every queue name; producers must use the same
    /// ([`ClientBuilder::queue_prefix`](crate::ClientBuilder::queue_prefix)).
    /// Default: none.
    pub fn queue_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.queue_prefix = prefix.into();
        self
    }

    /// This process's name: worker ids are `<name>.<n>`, and the connections
    /// show as `warren worker <name>` in RabbitMQ. Default: the process id.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The jobs this worker runs. Default: every job linked into the
    /// program ([`Registry::from_inventory`]).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Whether SIGINT and SIGTERM shut the worker down: the first drains,
    /// the second stops at once. Default `true`. Turn it off when the
    /// program handles signals itself and calls [`WorkerHandle::shutdown`].
    ///
    /// Once installed, the handlers stay for the life of the process (tokio
    /// never removes them): after the worker has exited, these signals no
    /// longer end the process by themselves.
    pub fn handle_signals(mut self, handle: bool) -> Self {
        self.handle_signals = handle;
        self
    }

    /// Consumes queues that no registered job uses instead of refusing
    /// them; only messages whose `type` names a registered job run there.
    /// Default `false`; the generated binary's `work --allow-unknown-queues`.
    pub fn allow_unknown_queues(mut self, allow: bool) -> Self {
        self.allow_unknown_queues = allow;
        self
    }

    /// Trusts the CA certificates in the PEM file at `path`, besides the
    /// system's roots, to verify the broker over `amqps://`; as
    /// [`ClientBuilder::tls_ca`](crate::ClientBuilder::tls_ca), for both of
    /// the worker's connections.
    pub fn tls_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca = Some(path.into());
        self
    }

    /// Presents this client certificate over `amqps://` (mutual TLS): `cert`
    /// and `key` are PEM files, as for
    /// [`ClientBuilder::tls_client_cert`](crate::ClientBuilder::tls_client_cert).
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.client = Some((cert.into(), key.into()));
        self
    }

    /// All the TLS files at once, as the command line gives them.
    #[cfg(feature = "cli")]
    pub(crate) fn tls_files(mut self, tls: TlsFiles) -> Self {
        self.tls = tls;
        self
    }

    /// Drives the connections on `io`, which the caller keeps running until
    /// the worker has exited, instead of on a runtime of the worker's own.
    #[cfg(feature = "cli")]
    pub(crate) fn io_runtime(mut self, io: Handle) -> Self {
        self.io = Some(io);
        self
    }

    /// Runs the worker until a shutdown request (a signal, see
    /// [`handle_signals`](Self::handle_signals)) has drained it, and says
    /// how it ended.
    ///
    /// Awaitable from any async code, on any runtime: the worker runs on
    /// threads of its own (its actors need an actix system, and its
    /// connections a runtime that outlives them). Broker outages do not end
    /// it: it reconnects for as long as it takes. Dropping the future asks
    /// the worker to drain, without waiting for it.
    pub async fn run(self) -> Result<Exit, WorkerError> {
        self.start()?.wait().await
    }

    /// Starts the worker on threads of its own and returns at once, with a
    /// handle to shut it down and wait for it.
    ///
    /// Errors here are the options the worker cannot run with; the ones
    /// that need the broker to tell (the channel limit) come from
    /// [`WorkerHandle::wait`].
    pub fn start(self) -> Result<WorkerHandle, WorkerError> {
        self.plan()?.start()
    }

    /// Checks the options, without connecting.
    pub(crate) fn plan(self) -> Result<Plan, WorkerError> {
        // First: a URL or TLS file that cannot work is the thing to fix.
        connect::check(&self.url, &self.tls).map_err(WorkerError::Connect)?;
        if self.prefetch == 0 {
            return Err(WorkerError::InvalidOption {
                option: "prefetch",
                reason: "must be at least 1",
            });
        }
        if self.recovery_timeout.is_zero() {
            return Err(WorkerError::InvalidOption {
                option: "recovery timeout",
                reason: "must be more than 0",
            });
        }
        if self.workers_per_queue == Some(0) {
            return Err(WorkerError::InvalidOption {
                option: "workers per queue",
                reason: "must be at least 1",
            });
        }
        let registry = match self.registry {
            Some(registry) => registry,
            None => Registry::from_inventory()?,
        };
        let queues = if self.queues.is_empty() {
            registry.queues().into_iter().map(str::to_owned).collect()
        } else {
            let mut queues = self.queues;
            // Twice the same queue would double its workers, not what anyone asks for.
            let mut seen = std::collections::HashSet::new();
            queues.retain(|queue| seen.insert(queue.clone()));
            queues
        };
        if queues.is_empty() {
            return Err(WorkerError::NoQueues);
        }
        let consumed: Vec<&str> = queues.iter().map(String::as_str).collect();
        let missing = registry.missing_handlers(&consumed);
        if !missing.is_empty() {
            return Err(WorkerError::MissingHandlers(
                missing.into_iter().map(RegistryError::missing_handler).collect(),
            ));
        }
        let prefix = &self.queue_prefix;
        for queue in &queues {
            // The longest name warren derives from a queue is its longest
            // (classic) hold queue's.
            let longest = hold::queue_name(&format!("{prefix}{queue}"), QueueType::Classic, hold::LONGEST_HOLD);
            if crate::amqp::short(&longest).is_err() {
                return Err(WorkerError::QueueNameTooLong {
                    queue: format!("{prefix}{queue}"),
                    longest,
                });
            }
            if !registry.jobs().iter().any(|job| job.queue == queue) {
                if !self.allow_unknown_queues {
                    return Err(WorkerError::UnknownQueue {
                        queue: queue.clone(),
                        known: registry.queues().into_iter().map(str::to_owned).collect(),
                    });
                }
                warn!(
                    queue,
                    "no registered job uses this queue; only messages typed with a registered job name will run"
                );
            }
        }
        warn_of_consumer_timeout(&registry, &consumed);
        let schedule = scheduler::entries(&registry, Some(&queues))
            .map_err(|(schedule, reason)| WorkerError::InvalidSchedule { schedule, reason })?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Plan {
            url: self.url,
            tls: self.tls,
            prefix: self.queue_prefix,
            name: self.name.unwrap_or_else(|| std::process::id().to_string()),
            queues,
            workers: self.workers_per_queue.unwrap_or(cores),
            settings: Arc::new(WorkerSettings {
                registry,
                ack: self.ack,
                prefetch: self.prefetch,
                shutdown_timeout: self.shutdown_timeout,
                unknown_job_window: self.unknown_job_window,
                health: Arc::default(),
                counters: Arc::default(),
            }),
            state: self.state,
            schedule,
            recovery_timeout: self.recovery_timeout,
            handle_signals: self.handle_signals,
            io: self.io,
            hooks: self.hooks,
            #[cfg(feature = "http")]
            metrics_addr: self.metrics_addr,
            #[cfg(feature = "http")]
            server: None,
        })
    }
}

/// RabbitMQ's default `consumer_timeout`: how long a delivery may stay
/// unacknowledged before the broker closes the channel that holds it.
/// AMQP does not tell a client the broker's value, and the per-queue
/// setting (`x-consumer-timeout`) needs RabbitMQ 3.12 (3.11.15), so a job
/// whose timeout is longer is warned about against this default.
pub(crate) const BROKER_CONSUMER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Warns, per job of the `consumed` queues, when its timeout is longer
/// than the broker's consumer timeout: a late-acked attempt running that
/// long has its channel closed under it, and the job runs again elsewhere.
fn warn_of_consumer_timeout(registry: &Registry, consumed: &[&str]) {
    for job in registry.jobs() {
        if let Some(message) =
            consumer_timeout_problem(job.name, job.options.effective_timeout(), consumed.contains(&job.queue))
        {
            warn!(job.name = job.name, queue = job.queue, "{message}");
        }
    }
}

/// What to say about a job of timeout `timeout`, if anything.
fn consumer_timeout_problem(job: &str, timeout: Duration, consumed: bool) -> Option<String> {
    (consumed && timeout > BROKER_CONSUMER_TIMEOUT).then(|| {
        format!(
            "job `{job}` may run for {} (its timeout), longer than RabbitMQ's consumer_timeout ({} unless \
             the broker sets another): the broker would close the channel of an attempt still running then, \
             and the job would run again elsewhere. Raise consumer_timeout in rabbitmq.conf above the \
             job's timeout (RabbitMQ 3.12+ can also set it per queue with a `consumer-timeout` policy), \
             or lower the job's #[job(timeout)]",
            Written(timeout),
            Written(BROKER_CONSUMER_TIMEOUT)
        )
    })
}

/// A worker whose options passed the checks, ready to start.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) url: String,
    pub(crate) tls: TlsFiles,
    pub(crate) prefix: String,
    pub(crate) name: String,
    pub(crate) queues: Vec<String>,
    pub(crate) workers: usize,
    pub(crate) settings: Arc<WorkerSettings>,
    /// Settable until the start: the generated binary runs its setup hook
    /// after the checks, which may connect to databases in vain otherwise.
    pub(crate) state: State,
    /// The schedules of the jobs of the queues it consumes, for its scheduler.
    pub(crate) schedule: Vec<scheduler::Entry>,
    /// The publishing client's recovery timeout.
    pub(crate) recovery_timeout: Duration,
    pub(crate) handle_signals: bool,
    pub(crate) io: Option<Handle>,
    pub(crate) hooks: Hooks,
    #[cfg(feature = "http")]
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// The HTTP server, once started; it stops when the worker has exited.
    #[cfg(feature = "http")]
    pub(crate) server: Option<http::Server>,
}

impl Plan {
    /// Starts the HTTP server, if the worker has an address for it and it
    /// has not started yet: the generated binary starts it before its setup
    /// hook, so that the probes answer (not ready) while the hook runs.
    #[cfg(feature = "http")]
    pub(crate) fn serve_http(&mut self) -> Result<(), WorkerError> {
        if let (Some(addr), None) = (self.metrics_addr, &self.server) {
            let server = http::serve(addr, Arc::clone(&self.settings.health))
                .map_err(|source| WorkerError::MetricsAddr { addr, source })?;
            self.server = Some(server);
        }
        Ok(())
    }

    /// Starts the supervisor on a thread of its own.
    pub(crate) fn start(self) -> Result<WorkerHandle, WorkerError> {
        run::start(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JobOptions;

    #[test]
    fn a_job_that_outlasts_the_consumer_timeout_is_named_with_both_values_and_the_fix() {
        let hour = Duration::from_secs(3600);
        let message = consumer_timeout_problem("nightly_export", hour, true).expect("a warning");
        assert!(
            message.starts_with(
                "job `nightly_export` may run for 1h (its timeout), longer than RabbitMQ's consumer_timeout (30m"
            ),
            "{message}"
        );
        assert!(message.contains("Raise consumer_timeout in rabbitmq.conf"), "{message}");
        assert_eq!(
            consumer_timeout_problem("nightly_export", hour, false),
            None,
            "not consumed here"
        );
        assert_eq!(
            consumer_timeout_problem("resize", JobOptions::DEFAULT_TIMEOUT, true),
            None
        );
        assert_eq!(consumer_timeout_problem("edge", BROKER_CONSUMER_TIMEOUT, true), None);
    }

    fn refusal(builder: WorkerBuilder) -> WorkerError {
        builder.plan().expect_err("refused")
    }

    #[test]
    fn a_worker_with_nothing_to_consume_is_refused_before_connecting() {
        let empty = Registry::from_registrations([]).expect("empty registry");
        let error = refusal(Worker::builder("amqp://127.0.0.1:1").registry(empty.clone()));
        assert!(matches!(error, WorkerError::NoQueues), "{error}");
        assert!(error.to_string().contains("no jobs are registered"), "{error}");

        let error = refusal(Worker::builder("amqp://127.0.0.1:1").registry(empty).queues(["images"]));
        assert!(
            matches!(&error, WorkerError::UnknownQueue { queue, .. } if queue == "images"),
            "{error}"
        );
    }

    #[test]
    fn a_url_that_cannot_work_is_refused_before_anything_else() {
        let error = refusal(Worker::builder("amq://127.0.0.1:5672").workers_per_queue(0));
        assert!(matches!(error, WorkerError::Connect(_)), "{error}");
        assert!(error.to_string().contains("unknown scheme `amq`"), "{error}");
    }

    #[test]
    fn zero_workers_or_prefetch_are_refused() {
        let error = refusal(Worker::builder("amqp://x").workers_per_queue(0));
        assert_eq!(error.to_string(), "workers per queue must be at least 1");
        let error = refusal(Worker::builder("amqp://x").prefetch(0));
        assert_eq!(error.to_string(), "prefetch must be at least 1");
        let error = refusal(Worker::builder("amqp://x").recovery_timeout(Duration::ZERO));
        assert_eq!(error.to_string(), "recovery timeout must be more than 0");
    }

    #[test]
    fn a_queue_whose_hold_queues_would_not_fit_an_amqp_name_is_refused() {
        let empty = Registry::from_registrations([]).expect("empty registry");
        let error = refusal(
            Worker::builder("amqp://x")
                .registry(empty)
                .queue_prefix("p".repeat(250))
                .queues(["q"])
                .allow_unknown_queues(true),
        );
        assert!(matches!(error, WorkerError::QueueNameTooLong { .. }), "{error}");
        assert!(error.to_string().contains("255"), "{error}");
    }

    #[test]
    fn unknown_queues_may_be_allowed_and_repeated_queues_count_once() {
        let empty = Registry::from_registrations([]).expect("empty registry");
        let plan = Worker::builder("amqp://x")
            .registry(empty)
            .queues(["a", "b", "a"])
            .allow_unknown_queues(true)
            .workers_per_queue(2)
            .name("billing")
            .plan()
            .expect("allowed");
        assert_eq!(plan.queues, ["a", "b"]);
        assert_eq!((plan.workers, plan.name.as_str()), (2, "billing"));
        assert_eq!(plan.settings.prefetch, WorkerBuilder::DEFAULT_PREFETCH);
        assert_eq!(plan.settings.ack, AckMode::Late);
        assert_eq!(plan.recovery_timeout, WorkerBuilder::DEFAULT_RECOVERY_TIMEOUT);
    }
}
