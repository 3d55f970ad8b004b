//! warren's command line as parts of your own: the [`Command`]s of the
//! generated worker binary (`work`, `enqueue`, `jobs`, `dead …`,
//! `dashboard`) as a [`clap::Subcommand`], its [`GlobalArgs`] as
//! [`clap::Args`], [`run`] to run a parsed command, and [`init_logging`]
//! for a binary that wants warren's log output. [`main!`](crate::main) is these parts put together.
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use clap::{Parser, Subcommand};
//!
//! /// My service: serves HTTP, and runs warren's commands.
//! #[derive(Parser)]
//! #[command(version)]
//! struct Cli {
//!     #[command(flatten)]
//!     warren: warren::cli::GlobalArgs,
//!     #[command(subcommand)]
//!     command: Command,
//! }
//!
//! #[derive(Subcommand)]
//! enum Command {
//!     /// Serve HTTP.
//!     Serve {
//!         #[arg(long, default_value_t = 8080)]
//!         port: u16,
//!     },
//!     /// warren's commands: `my-service warren work`, `my-service warren enqueue …`.
//!     Warren {
//!         #[command(subcommand)]
//!         command: warren::cli::Command,
//!     },
//! }
//!
//! #[tokio::main]
//! async fn main() -> ExitCode {
//!     let cli = Cli::parse();
//!     // Keep the guard until main returns: it writes out the last lines.
//!     let _logging = warren::cli::init_logging(cli.warren.log_format());
//!     match cli.command {
//!         Command::Serve { port } => {
//!             println!("serving on port {port}");
//!             ExitCode::SUCCESS
//!         }
//!         Command::Warren { command } => warren::cli::run(command, &cli.warren).await,
//!     }
//! }
//! ```
//!
//! Exit codes: `0` success, including a drained shutdown; `1` a failure
//! the message explains; `2` bad usage (clap's own, a malformed URL or a
//! missing TLS file, a queue no job uses, `dead purge` without `--yes` and
//! no terminal, `dashboard` on an open address without `--token`, more
//! workers than the broker has channels for); `3` a forced stop (a second
//! signal, or workers that did not stop in time); `4` a drain the shutdown
//! timeout cut off. A failure is said in one line:
//! `error: …` on stderr, or one JSON event with `--log-format json`.

pub(crate) mod dead;
mod exit;
pub(crate) mod generated;
mod logging;
mod output;
mod schedule;

pub use logging::{LogGuard, init_logging};

use std::future::Future;
use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgMatches, Args, FromArgMatches, Subcommand, ValueEnum};
use futures_util::FutureExt;
use tokio::runtime::Handle;
use tracing::{error, info};

use crate::amqp::connect::TlsFiles;
use crate::amqp::hold;
use crate::duration::Written;
use crate::{AckMode, Client, EnqueueOptions, Exit, Registry, State, Worker, WorkerBuilder, WorkerError};
use dead::{DeadCommand, DeadError};
use exit::{EXIT_CUT_OFF, EXIT_FORCED, Failure};

/// The options every warren command takes: the broker and its TLS files,
/// the queue prefix and the log format, each with an environment fallback. Flatten it into
/// your own [`clap::Parser`] (`#[command(flatten)]`); the options are
/// global, so they go before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// RabbitMQ URL; several, comma-separated (the nodes of a cluster), are tried in turn.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://127.0.0.1:5672/%2f", global = true)]
    amqp_url: String,
    /// CA certificates (PEM) that `amqps://` trusts besides the system's roots: a private CA's.
    #[arg(long, env = "WARREN_TLS_CA", value_name = "PEM", global = true)]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) to present over `amqps://` (mutual TLS); needs --tls-key.
    #[arg(
        long,
        env = "WARREN_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key",
        global = true
    )]
    tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM); needs --tls-cert.
    #[arg(
        long,
        env = "WARREN_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert",
        global = true
    )]
    tls_key: Option<PathBuf>,
    /// Prefix for every queue name (must match the producers' `queue_prefix`).
    #[arg(long, env = "WARREN_QUEUE_PREFIX", default_value = "", global = true)]
    queue_prefix: String,
    /// Log format (level from `RUST_LOG`, default `info`).
    #[arg(long, env = "WARREN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    log_format: LogFormat,
}

impl GlobalArgs {
    /// The broker's URL (`--amqp-url`, `AMQP_URL`), or several, comma-separated.
    pub fn amqp_url(&self) -> &str {
        &self.amqp_url
    }

    /// The CA file that `amqps://` trusts besides the system's roots
    /// (`--tls-ca`, `WARREN_TLS_CA`), for [`ClientBuilder::tls_ca`](crate::ClientBuilder::tls_ca).
    pub fn tls_ca(&self) -> Option<&Path> {
        self.tls_ca.as_deref()
    }

    /// The client certificate and its key for mutual TLS (`--tls-cert`,
    /// `--tls-key`), for [`ClientBuilder::tls_client_cert`](crate::ClientBuilder::tls_client_cert).
    pub fn tls_client_cert(&self) -> Option<(&Path, &Path)> {
        self.tls_cert.as_deref().zip(self.tls_key.as_deref())
    }

    fn tls(&self) -> TlsFiles {
        TlsFiles {
            ca: self.tls_ca.clone(),
            client: self.tls_cert.clone().zip(self.tls_key.clone()),
        }
    }

    /// The prefix of every queue name (`--queue-prefix`, `WARREN_QUEUE_PREFIX`).
    pub fn queue_prefix(&self) -> &str {
        &self.queue_prefix
    }

    /// How logs should look (`--log-format`, `WARREN_LOG_FORMAT`): pass it to [`init_logging`].
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }
}

/// How [`init_logging`] writes log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// One of warren's commands, parsed: `work`, `enqueue <job> <json>`,
/// `jobs`, `dead list|retry|purge` or `dashboard` (with the `dashboard`
/// feature). Embed it in your own CLI as a
/// [`clap::Subcommand`] (nested under a command of yours, or flattened into
/// your subcommands), then [`run`] it.
#[derive(Debug)]
pub struct Command(Commands);

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run workers that consume the job queues.
    Work(WorkArgs),
    /// Enqueue one job, given as JSON; prints its id once RabbitMQ confirmed it.
    Enqueue {
        /// The job's name (see `jobs`).
        job: String,
        /// The job as JSON, e.g. '{"path": "cat.png", "width": 640}'.
        json: String,
        /// Run it no earlier than this from now, e.g. `90s` or `2h` (at most 30 days).
        #[arg(long, value_parser = parse_delay)]
        delay: Option<Duration>,
        /// Retries after a failure, instead of the job's own.
        #[arg(long)]
        retries: Option<u32>,
        /// Run it before waiting jobs of lower priority (0-255; its queue
        /// must take priorities, see `jobs`), instead of the job's own.
        #[arg(long)]
        priority: Option<u8>,
        /// The key of a unique job (see `jobs`): if a job of this name and
        /// key is already pending or running, print its id instead.
        #[arg(long)]
        unique_key: Option<String>,
    },
    /// List the registered job types and their options.
    Jobs,
    /// List, retry or delete dead letters: jobs that failed for good.
    Dead {
        #[command(subcommand)]
        command: DeadCommand,
    },
    /// List, pause or resume the schedules (`#[job(cron = "...")]`, `warren::schedule!`).
    Schedule {
        #[command(subcommand)]
        command: schedule::ScheduleCommand,
    },
    /// Serve the web dashboard: queues, workers and dead letters, live.
    #[cfg(feature = "dashboard")]
    Dashboard(DashboardArgs),
}

#[cfg(feature = "dashboard")]
#[derive(Debug, Args)]
struct DashboardArgs {
    /// The address to serve on; other than loopback, it needs --token.
    #[arg(long, env = "WARREN_DASHBOARD_ADDR", default_value = "127.0.0.1:9465")]
    addr: std::net::SocketAddr,
    /// Require this token of every request (as the basic-auth password, or `Authorization: Bearer`).
    #[arg(long, env = "WARREN_DASHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// RabbitMQ's management API, e.g. http://admin:secret@rabbit:15672 [default: port 15672 of the AMQP URL's host, with its user and password].
    #[arg(long, env = "WARREN_MANAGEMENT_URL")]
    management_url: Option<String>,
}

#[derive(Debug, Args)]
struct WorkArgs {
    /// Queues to consume, comma-separated [default: the queues of all registered jobs].
    #[arg(long, env = "WARREN_QUEUES", value_delimiter = ',')]
    queues: Vec<String>,
    /// Consume a queue given with --queues that no registered job uses
    /// (another producer's queue, whose messages name jobs by their `type`);
    /// without it such a queue is refused as a typo.
    #[arg(long, env = "WARREN_ALLOW_UNKNOWN_QUEUES")]
    allow_unknown_queues: bool,
    /// Workers (consumers, each on its own channel) per queue [default: number of CPU cores].
    #[arg(long, env = "WARREN_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
    /// Unacknowledged deliveries per worker; also the number of jobs a worker runs at once.
    #[arg(long, env = "WARREN_PREFETCH", default_value_t = WorkerBuilder::DEFAULT_PREFETCH, value_parser = clap::value_parser!(u16).range(1..))]
    prefetch: u16,
    /// When deliveries are acknowledged: none (at most once), early (on receipt), late (after the job; at least once).
    #[arg(long, env = "WARREN_ACK", value_enum, default_value_t = AckMode::Late)]
    ack: AckMode,
    /// How long running jobs may take to finish after SIGINT/SIGTERM.
    #[arg(long, env = "WARREN_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    shutdown_timeout: Duration,
    /// How long a job of a name this worker does not know is held for a
    /// worker that knows it (during a rolling deploy) before it goes to the
    /// dead-letter queue as `unknown_job`.
    #[arg(long, env = "WARREN_UNKNOWN_JOB_WINDOW", default_value = "15m", value_parser = humantime::parse_duration)]
    unknown_job_window: Duration,
    /// How long each of the worker's publishes (a retry, a dead letter, an
    /// enqueue) waits for a lost connection to come back or for the broker
    /// to lift a block on publishes (a memory or disk alarm); a retry or
    /// dead letter the broker blocked once sent waits for its confirm past it.
    #[arg(long, env = "WARREN_RECOVERY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    recovery_timeout: Duration,
    /// This process's name in worker ids (`<name>.<n>`) and consumer tags [default: the process id].
    #[arg(long, env = "WARREN_WORKER_NAME")]
    name: Option<String>,
    /// Serve /metrics (Prometheus) and the health probes /health/live and
    /// /health/ready over HTTP at this address, e.g. 0.0.0.0:9464.
    #[arg(long, env = "WARREN_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
}

// By hand rather than derived on a public enum: the commands' arguments
// stay private, free to grow, and the type is all an app needs to name.
impl FromArgMatches for Command {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Commands::from_arg_matches(matches).map(Command)
    }

    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        Commands::from_arg_matches_mut(matches).map(Command)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }

    fn update_from_arg_matches_mut(&mut self, matches: &mut ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches_mut(matches)
    }
}

impl Subcommand for Command {
    fn augment_subcommands(command: clap::Command) -> clap::Command {
        Commands::augment_subcommands(command)
    }

    fn augment_subcommands_for_update(command: clap::Command) -> clap::Command {
        Commands::augment_subcommands_for_update(command)
    }

    fn has_subcommand(name: &str) -> bool {
        Commands::has_subcommand(name)
    }
}

/// Runs a parsed warren command, as the generated binary does, and says how
/// the process should exit (see the [module docs](self) for the codes).
///
/// It prints what the command prints (job ids, listings) to stdout and its
/// errors to stderr; it installs no log subscriber ([`init_logging`]
/// does). `work` runs until SIGINT or SIGTERM has drained it. Call it from
/// within a tokio runtime. With a subscriber of your own, filter out
/// `lapin` (or keep it at `warn`) as [`init_logging`] does: `dead` probes
/// for queues that may not exist, which lapin logs as errors.
pub async fn run(command: Command, global: &GlobalArgs) -> ExitCode {
    run_command(
        command,
        global,
        None::<fn() -> std::future::Ready<Result<State, String>>>,
        None,
    )
    .await
    .unwrap_or_else(|failure| failure.report(global.log_format))
}

/// Like [`run`], with a setup hook that `work` runs once, after checking
/// its options and before it consumes, giving handlers the [`State`] it
/// returns; the other commands do not run it. If it fails or panics, `work`
/// exits with code 1 and the error.
pub async fn run_with_setup<F, Fut, E>(command: Command, global: &GlobalArgs, setup: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<State, E>>,
    E: std::fmt::Display,
{
    run_command(command, global, Some(setup), None)
        .await
        .unwrap_or_else(|failure| failure.report(global.log_format))
}

/// Runs `command`; `io`: a runtime that outlives the worker, for its connections.
async fn run_command<F, Fut, E>(
    command: Command,
    global: &GlobalArgs,
    setup: Option<F>,
    io: Option<Handle>,
) -> Result<ExitCode, Failure>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<State, E>>,
    E: std::fmt::Display,
{
    let registry = Registry::from_inventory().map_err(Failure::failed)?;
    let (url, prefix, tls) = (global.amqp_url.as_str(), global.queue_prefix.as_str(), global.tls());
    match command.0 {
        Commands::Jobs => list_jobs(&registry),
        Commands::Enqueue {
            job,
            json,
            delay,
            retries,
            priority,
            unique_key,
        } => {
            let mut options = EnqueueOptions::new();
            if let Some(delay) = delay {
                options = options.delay(delay);
            }
            if let Some(retries) = retries {
                options = options.retries(retries);
            }
            if let Some(priority) = priority {
                options = options.priority(priority);
            }
            if let Some(key) = unique_key {
                options = options.unique_key(key);
            }
            enqueue(url, &tls, prefix, &registry, &job, &json, &options).await
        }
        Commands::Dead { command } => match dead::run(url, &tls, prefix, &registry, command).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(error @ DeadError::Unconfirmed) => Err(Failure::usage(error)),
            Err(DeadError::Broker(error)) => Err(Failure::connect(error)),
            Err(error) => Err(Failure::failed(error)),
        },
        Commands::Schedule { command } => match schedule::run(url, &tls, prefix, &registry, command).await {
            Ok(lines) => {
                for line in lines {
                    output::line(line).map_err(|error| Failure::failed(format!("could not write: {error}")))?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(schedule::ScheduleError::Broker(error)) => Err(Failure::connect(error)),
            Err(error) => Err(Failure::failed(error)),
        },
        #[cfg(feature = "dashboard")]
        Commands::Dashboard(args) => dashboard(url, tls, prefix, registry, args).await,
        Commands::Work(args) => {
            let mut worker = Worker::builder(url)
                .tls_files(tls)
                .queue_prefix(prefix)
                .registry(registry)
                .prefetch(args.prefetch)
                .ack(args.ack)
                .shutdown_timeout(args.shutdown_timeout)
                .unknown_job_window(args.unknown_job_window)
                .recovery_timeout(args.recovery_timeout)
                .queues(args.queues)
                .allow_unknown_queues(args.allow_unknown_queues);
            if let Some(workers) = args.workers {
                worker = worker.workers_per_queue(usize::from(workers));
            }
            if let Some(name) = args.name {
                worker = worker.name(name);
            }
            if let Some(addr) = args.metrics_addr {
                worker = worker.metrics_addr(addr);
            }
            if let Some(io) = io {
                worker = worker.io_runtime(io);
            }
            work(worker, setup).await
        }
    }
}

/// Serves the dashboard until SIGINT or SIGTERM.
#[cfg(feature = "dashboard")]
async fn dashboard(
    url: &str,
    tls: TlsFiles,
    prefix: &str,
    registry: Registry,
    args: DashboardArgs,
) -> Result<ExitCode, Failure> {
    use crate::dashboard::{Dashboard, DashboardError};
    // Before connecting: an open bind is refused at once.
    crate::dashboard::check_bind(args.addr, args.token.as_deref()).map_err(Failure::usage)?;
    let mut builder = Dashboard::builder(url)
        .tls_files(tls)
        .queue_prefix(prefix)
        .registry(registry);
    if let Some(token) = args.token {
        builder = builder.token(token);
    }
    if let Some(management) = args.management_url {
        builder = builder.management_url(management);
    }
    let dashboard = builder.connect().await.map_err(|error| match error {
        DashboardError::Connect(error) => Failure::connect(error),
        error @ DashboardError::ManagementUrl { .. } => Failure::usage(error),
        error => Failure::failed(error),
    })?;
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(term) => {
                    term.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminated => {}
        }
        info!("dashboard shutting down");
    };
    dashboard.serve(args.addr, shutdown).await.map_err(Failure::failed)?;
    Ok(ExitCode::SUCCESS)
}

/// `enqueue --delay`: refused here, in the words the user wrote, when it
/// is longer than a job can wait.
fn parse_delay(text: &str) -> Result<Duration, String> {
    let delay = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if delay > hold::MAX_DELAY {
        return Err(format!(
            "cannot delay a job by {text}: the longest delay is {}",
            Written(hold::MAX_DELAY)
        ));
    }
    Ok(delay)
}

/// Checks the worker's options, runs the setup hook, then the worker.
async fn work<F, Fut, E>(worker: WorkerBuilder, setup: Option<F>) -> Result<ExitCode, Failure>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<State, E>>,
    E: std::fmt::Display,
{
    let mut plan = worker.plan().map_err(worker_failure)?;
    // Before the setup hook, so that the probes answer while it runs (live,
    // and not ready).
    plan.serve_http().map_err(worker_failure)?;
    // After the checks: a hook may connect to databases, which is wasted
    // on a worker that cannot start.
    if let Some(setup) = setup {
        info!("running the setup hook");
        plan.settings.health.setup_running(true);
        let hook = match std::panic::catch_unwind(AssertUnwindSafe(setup)) {
            Ok(hook) => AssertUnwindSafe(hook).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        plan.state = match hook {
            Ok(Ok(state)) => state,
            Ok(Err(error)) => return Err(Failure::failed(format!("the setup hook failed: {error}"))),
            Err(panic) => {
                return Err(Failure::failed(format!(
                    "the setup hook {}",
                    crate::job::attempt::panic_message(&*panic)
                )));
            }
        };
        plan.settings.health.setup_running(false);
    }
    let exit = match plan.start() {
        Ok(handle) => handle.wait().await,
        Err(error) => Err(error),
    };
    match exit.map_err(worker_failure)? {
        Exit::Drained => Ok(ExitCode::SUCCESS),
        Exit::DrainTimedOut { cut_off, .. } => {
            // Said once more at the end: an operator reads the last line.
            error!(
                cut_off,
                "the shutdown timeout cut running jobs off (the lines above say whether they return to the queue); exit code 4"
            );
            Ok(ExitCode::from(EXIT_CUT_OFF))
        }
        Exit::Forced => Ok(ExitCode::from(EXIT_FORCED)),
    }
}

/// Why a worker could not start or run, with its exit code.
fn worker_failure(error: WorkerError) -> Failure {
    match error {
        // Refusals of the options given, and limits the broker decides: bad usage.
        error @ (WorkerError::TooManyChannels { .. }
        | WorkerError::UnknownQueue { .. }
        | WorkerError::InvalidOption { .. }
        | WorkerError::MetricsAddr { .. }) => Failure::usage(error),
        WorkerError::Connect(error) => Failure::connect(error),
        error => Failure::failed(error),
    }
}

fn list_jobs(registry: &Registry) -> Result<ExitCode, Failure> {
    // A reader that stopped early (`jobs | head`) has what it wanted.
    output::ignore_closed(write_jobs(registry, &mut std::io::stdout().lock()))
        .map_err(|error| Failure::failed(format!("could not write the job list: {error}")))?;
    Ok(ExitCode::SUCCESS)
}

fn write_jobs(registry: &Registry, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:<20} {:<10} {:<6} {:<10} {:<8} {:<8} {:<14} {:<9} {:<10} {:<32} TYPE",
        "NAME",
        "QUEUE",
        "QUEUE TYPE",
        "FORMAT",
        "TIMEOUT",
        "RETRIES",
        "BACKOFF",
        "QUEUE DEFAULT",
        "PRIORITY",
        "UNIQUE FOR",
        "SCHEDULE"
    )?;
    for job in registry.jobs() {
        let options = job.options;
        writeln!(
            out,
            "{:<24} {:<20} {:<10} {:<6} {:<10} {:<8} {:<8} {:<14} {:<9} {:<10} {:<32} {}",
            job.name,
            job.queue,
            options.queue_type.as_str(),
            options.format.as_str(),
            Written(options.effective_timeout()).to_string(),
            options.effective_retries(),
            Written(options.effective_backoff()).to_string(),
            if options.queue_default { "yes" } else { "no" },
            priority_column(&options),
            options
                .unique_for
                .map_or_else(|| "-".to_owned(), |d| Written(d).to_string()),
            schedule_column(registry, job.name),
            job.type_name,
        )?;
    }
    Ok(())
}

/// The `jobs` listing's schedules of job `name`: its own cron
/// (`0 0 8 * * * (Europe/Paris)`), then each named one as `name: cron
/// (zone)`, separated by `; `; `-` for none.
fn schedule_column(registry: &Registry, name: &str) -> String {
    let schedules: Vec<String> = registry
        .schedules()
        .iter()
        .filter(|schedule| schedule.job() == name)
        .map(|schedule| {
            let when = format!("{} ({})", schedule.cron(), schedule.timezone_name());
            if schedule.name() == name {
                when
            } else {
                format!("{}: {when}", schedule.name())
            }
        })
        .collect();
    if schedules.is_empty() {
        "-".to_owned()
    } else {
        schedules.join("; ")
    }
}

/// The `jobs` listing's priority: the job's own out of what its queue
/// takes (`3/10`, `-/10` for none of its own), `-` on a queue without.
fn priority_column(options: &crate::JobOptions) -> String {
    match (options.priority, options.max_priority) {
        (_, None) => "-".to_owned(),
        (Some(priority), Some(max)) => format!("{priority}/{max}"),
        (None, Some(max)) => format!("-/{max}"),
    }
}

async fn enqueue(
    url: &str,
    tls: &TlsFiles,
    prefix: &str,
    registry: &Registry,
    name: &str,
    json: &str,
    options: &EnqueueOptions,
) -> Result<ExitCode, Failure> {
    let Some(job) = registry.get(name) else {
        let known: Vec<_> = registry.jobs().iter().map(|job| job.name).collect();
        return Err(Failure::failed(format!(
            "no job named `{name}`; registered jobs: {}",
            known.join(", ")
        )));
    };
    let body = job.encode_json(json).map_err(Failure::failed)?;
    let client = Client::builder(url)
        .tls_files(tls.clone())
        .queue_prefix(prefix)
        .connection_name("warren enqueue")
        .connect()
        .await
        .map_err(Failure::connect)?;
    let result = client
        .publish_job(job.name, job.queue, &job.options, &body, options)
        .await;
    client.close().await;
    let id = match result {
        Ok(id) => id,
        // Not a failure: the work is on its way. The id goes where an
        // enqueued job's would, so scripts read it either way.
        Err(crate::Error::Duplicate { existing, .. }) => {
            let _ = writeln!(
                std::io::stderr(),
                "note: job `{name}` with this unique key is already enqueued as {existing}; not enqueued again"
            );
            existing
        }
        Err(error) => return Err(Failure::failed(error)),
    };
    output::line(id)
        .map_err(|error| Failure::failed(format!("enqueued job {id}, but could not print its id: {error}")))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser, Subcommand};

    use super::*;

    /// An app's own CLI, with warren's commands folded in both ways.
    #[derive(Debug, Parser)]
    #[command(name = "my-app", version = "2.3.4")]
    struct App {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        #[command(flatten)]
        warren: GlobalArgs,
        #[command(subcommand)]
        command: AppCommand,
    }

    #[derive(Debug, Subcommand)]
    enum AppCommand {
        /// Serve HTTP.
        Serve,
        /// warren's commands, nested.
        Queue {
            #[command(subcommand)]
            command: Command,
        },
        #[command(flatten)]
        Warren(Command),
    }

    fn parse(args: &[&str]) -> App {
        App::try_parse_from(args).unwrap_or_else(|error| panic!("{args:?}: {error}"))
    }

    #[test]
    fn an_app_embeds_the_commands_and_global_options_next_to_its_own() {
        App::command().debug_assert();

        let app = parse(&["my-app", "--port", "9000", "serve"]);
        assert_eq!(app.port, 9000);
        assert!(matches!(app.command, AppCommand::Serve));

        let app = parse(&[
            "my-app",
            "queue",
            "work",
            "--workers",
            "2",
            "--amqp-url",
            "amqp://rabbit:5672/%2f",
            "--queue-prefix",
            "staging-",
            "--recovery-timeout",
            "2s",
        ]);
        let AppCommand::Queue {
            command: Command(Commands::Work(work)),
        } = app.command
        else {
            panic!("{:?}", app.command)
        };
        assert_eq!(work.workers, Some(2));
        assert_eq!(work.recovery_timeout, Duration::from_secs(2));
        assert_eq!(app.warren.amqp_url(), "amqp://rabbit:5672/%2f");
        assert_eq!(app.warren.queue_prefix(), "staging-");

        let app = parse(&["my-app", "--log-format", "json", "enqueue", "resize_image", "{}"]);
        assert!(matches!(
            app.command,
            AppCommand::Warren(Command(Commands::Enqueue { .. }))
        ));
        assert_eq!(app.warren.log_format(), LogFormat::Json);

        let app = parse(&["my-app", "dead", "list"]);
        assert!(matches!(
            app.command,
            AppCommand::Warren(Command(Commands::Dead { .. }))
        ));
    }

    #[test]
    fn the_embedding_app_keeps_its_own_name_and_version() {
        let error = App::try_parse_from(["my-app", "--version"]).expect_err("prints the version");
        assert_eq!(error.kind(), clap::error::ErrorKind::DisplayVersion);
        assert_eq!(error.to_string(), "my-app 2.3.4\n");
    }

    #[test]
    fn commands_and_workers_can_run_in_spawned_tasks() {
        fn send<T: Send + 'static>(_: T) {}
        let app = App::try_parse_from(["my-app", "jobs"]).expect("parses");
        if let AppCommand::Warren(command) = app.command {
            send(async move { run(command, &app.warren).await });
        }
        send(Worker::builder("amqp://x").run());
    }

    #[test]
    fn bad_worker_options_are_usage_errors() {
        let error = App::try_parse_from(["my-app", "work", "--prefetch", "0"]).expect_err("refused");
        assert_eq!(error.exit_code(), 2);
    }
}
