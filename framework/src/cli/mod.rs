//! The command line of a worker binary made by [`main!`](crate::main).

pub(crate) mod dead;

use std::future::Future;
use std::io::IsTerminal;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::amqp::backoff::Backoff;
use crate::amqp::connect::{Endpoint, Refusals, TlsFiles, with_retries};
use crate::error::redact;
use crate::job::attempt::Runner;
use crate::worker::consumer::WorkerSettings;
use crate::worker::signals::Signals;
use crate::worker::supervisor::{Exit, FIRST_WAIT, MAX_BACKOFF, Supervisor};
use crate::{AckMode, Client, EnqueueOptions, Error, Registry, State};
use dead::{DeadCommand, DeadError};

/// Exit code of a run that failed: broker unreachable for a command, bad
/// job, conflicting registrations.
const EXIT_FAILURE: u8 = 1;
/// Exit code of bad usage, as clap uses for bad arguments, and of a
/// configuration that cannot work (a malformed URL, a missing TLS file).
const EXIT_USAGE: u8 = 2;
/// Exit code after a second signal or a drain that overran its timeout.
const EXIT_FORCED: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    about = "warren worker: run, enqueue and list background jobs, and handle dead letters",
    version
)]
struct Cli {
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run workers that consume the job queues.
    Work(WorkArgs),
    /// Enqueue one job, given as JSON; prints its id once RabbitMQ confirmed it.
    Enqueue {
        /// The job's name (see `jobs`).
        job: String,
        /// The job as JSON, e.g. '{"path": "cat.png", "width": 640}'.
        json: String,
        /// Run it no earlier than this from now, e.g. `90s` or `2h` (at most 30 days).
        #[arg(long, value_parser = humantime::parse_duration)]
        delay: Option<Duration>,
        /// Retries after a failure, instead of the job's own.
        #[arg(long)]
        retries: Option<u32>,
    },
    /// List the registered job types and their options.
    Jobs,
    /// List, retry or delete dead letters: jobs that failed for good.
    Dead {
        #[command(subcommand)]
        command: DeadCommand,
    },
}

#[derive(Debug, Args)]
struct WorkArgs {
    /// Queues to consume, comma-separated [default: the queues of all registered jobs].
    #[arg(long, env = "WARREN_QUEUES", value_delimiter = ',')]
    queues: Vec<String>,
    /// Workers (consumers, each on its own channel) per queue [default: number of CPU cores].
    #[arg(long, env = "WARREN_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
    /// Unacknowledged deliveries per worker; also the number of jobs a worker runs at once.
    #[arg(long, env = "WARREN_PREFETCH", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
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
    /// This process's name in worker ids (`<name>.<n>`) and consumer tags [default: the process id].
    #[arg(long, env = "WARREN_WORKER_NAME")]
    name: Option<String>,
}

/// Why `work` found no job, with the likely cause: jobs in a library crate
/// that the binary never names, so the linker drops the crate and its
/// registrations with it (dtolnay/inventory#7).
const NO_JOBS: &str = "no jobs are registered in this binary, so there is no queue to consume. \
If the jobs are in a library crate, the binary must refer to it or the linker drops their registrations: \
name it in `warren::main!(jobs = [my_jobs])`, or add `use my_jobs as _;`. \
Otherwise derive `Job` on a type, or pass --queues";

/// The setup hook of `main!(setup = ...)`, run on the I/O runtime; its error as text.
type Setup<'a> = Box<dyn FnOnce(&Handle) -> Result<State, String> + 'a>;

/// Parses the command line and runs the command. The body of `main!()`.
pub fn run_main() -> ExitCode {
    run(None)
}

/// Like [`run_main`], with a setup hook that `work` runs once before it
/// consumes, giving handlers the [`State`] it returns. The body of
/// `main!(setup = ...)`.
pub fn run_main_with_setup<F, Fut, E>(setup: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<State, E>>,
    E: std::fmt::Display,
{
    // On the I/O runtime, which outlives every arbiter: what the state
    // spawns there (a pool's reaper, a client's connections) lives as long
    // as the worker.
    run(Some(Box::new(move |io: &Handle| {
        io.block_on(setup()).map_err(|error| error.to_string())
    })))
}

fn run(setup: Option<Setup<'_>>) -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let tls = TlsFiles {
        ca: cli.tls_ca,
        client: cli.tls_cert.zip(cli.tls_key),
    };
    let registry = match Registry::from_inventory() {
        Ok(registry) => registry,
        Err(error) => return fail(error),
    };
    let io = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("warren-io")
        .enable_all()
        .build()
    {
        Ok(io) => io,
        Err(error) => return fail(format!("could not start the I/O runtime: {error}")),
    };
    let code = match cli.command {
        Command::Jobs => list_jobs(&registry),
        Command::Enqueue {
            job,
            json,
            delay,
            retries,
        } => {
            let mut options = EnqueueOptions::new();
            if let Some(delay) = delay {
                options = options.delay(delay);
            }
            if let Some(retries) = retries {
                options = options.retries(retries);
            }
            io.block_on(enqueue(
                &cli.amqp_url,
                &tls,
                &cli.queue_prefix,
                &registry,
                &job,
                &json,
                &options,
            ))
        }
        Command::Dead { command } => {
            match io.block_on(dead::run(&cli.amqp_url, &tls, &cli.queue_prefix, &registry, command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error @ DeadError::Unconfirmed) => usage(error),
                Err(DeadError::Broker(error)) => connect_failed(error),
                Err(error) => fail(error),
            }
        }
        Command::Work(args) => work(
            &cli.amqp_url,
            &tls,
            &cli.queue_prefix,
            registry,
            args,
            io.handle().clone(),
            setup,
        ),
    };
    io.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Logs to stderr at `RUST_LOG`'s level, by default `info`, and nothing of
/// lapin's: it logs every closed connection and channel as an error with a
/// debug dump (a refused login three times, a passive declare's probe of a
/// missing queue), while warren reports each failure it acts on itself.
/// `RUST_LOG=info,lapin=debug` shows them.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,lapin=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second subscriber (in tests that call this twice) is not an error worth failing on.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    error!("{error}");
    eprintln!("error: {error}");
    ExitCode::from(EXIT_FAILURE)
}

fn usage(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(EXIT_USAGE)
}

/// A failure to reach the broker: exit 2 when the configuration given
/// cannot work (see [`Error::is_configuration`]), else 1.
fn connect_failed(error: Error) -> ExitCode {
    if error.is_configuration() {
        usage(error)
    } else {
        fail(error)
    }
}

fn list_jobs(registry: &Registry) -> ExitCode {
    match write_jobs(registry, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`jobs | head`) has what it wanted.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => fail(format!("could not write the job list: {error}")),
    }
}

fn write_jobs(registry: &Registry, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:<20} {:<10} {:<6} {:<10} {:<8} {:<8} {:<14} TYPE",
        "NAME", "QUEUE", "QUEUE TYPE", "FORMAT", "TIMEOUT", "RETRIES", "BACKOFF", "QUEUE DEFAULT"
    )?;
    for job in registry.jobs() {
        let options = job.options;
        writeln!(
            out,
            "{:<24} {:<20} {:<10} {:<6} {:<10} {:<8} {:<8} {:<14} {}",
            job.name,
            job.queue,
            options.queue_type.as_str(),
            options.format.as_str(),
            humantime::format_duration(options.effective_timeout()).to_string(),
            options.effective_retries(),
            humantime::format_duration(options.effective_backoff()).to_string(),
            if options.queue_default { "yes" } else { "no" },
            job.type_name,
        )?;
    }
    Ok(())
}

async fn enqueue(
    url: &str,
    tls: &TlsFiles,
    prefix: &str,
    registry: &Registry,
    name: &str,
    json: &str,
    options: &EnqueueOptions,
) -> ExitCode {
    let Some(job) = registry.get(name) else {
        let known: Vec<_> = registry.jobs().iter().map(|job| job.name).collect();
        return fail(format!("no job named `{name}`; registered jobs: {}", known.join(", ")));
    };
    let body = match job.encode_json(json) {
        Ok(body) => body,
        Err(error) => return fail(error),
    };
    let client = match Client::builder(url)
        .tls_files(tls.clone())
        .queue_prefix(prefix)
        .connection_name("warren enqueue")
        .connect()
        .await
    {
        Ok(client) => client,
        Err(error) => return connect_failed(error),
    };
    let result = client
        .publish_job(job.name, job.queue, &job.options, &body, options)
        .await;
    client.close().await;
    match result {
        Ok(id) => {
            println!("{id}");
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}

fn work(
    url: &str,
    tls: &TlsFiles,
    prefix: &str,
    registry: Registry,
    args: WorkArgs,
    io: Handle,
    setup: Option<Setup<'_>>,
) -> ExitCode {
    // Before anything else: a URL or TLS file that cannot work is reported
    // at once, not after the setup hook or as a wait for the broker.
    // (A worker builder takes the same `TlsFiles`: `Endpoint::with_tls` for
    // the consumer connection, `ClientBuilder::tls_files` for its publisher.)
    let endpoint =
        Endpoint::new(url, format!("warren worker {}", worker_name(&args)), io.clone()).with_tls(tls.clone());
    if let Err(error) = endpoint.check() {
        return connect_failed(error);
    }
    let queues: Vec<&'static str> = if args.queues.is_empty() {
        registry.queues()
    } else {
        args.queues.iter().map(|queue| &*queue.clone().leak()).collect()
    };
    if queues.is_empty() {
        return fail(NO_JOBS);
    }
    let missing = registry.missing_handlers(&queues);
    if !missing.is_empty() {
        let errors: Vec<String> = missing
            .into_iter()
            .map(|job| crate::RegistryError::missing_handler(job).to_string())
            .collect();
        return fail(format!(
            "{}; or leave their queues out with --queues",
            errors.join("; ")
        ));
    }
    for queue in &queues {
        // The longest name warren derives from a queue is its longest hold queue's.
        let longest = crate::amqp::hold::queue_name(&format!("{prefix}{queue}"), crate::amqp::hold::LONGEST_HOLD);
        if let Err(error) = crate::amqp::short(&longest) {
            return fail(format!("cannot consume queue `{prefix}{queue}`: {error}"));
        }
        if !registry.jobs().iter().any(|job| job.queue == *queue) {
            warn!(
                queue,
                "no registered job uses this queue; only messages typed with a registered job name will run"
            );
        }
    }
    // After the checks above: a hook may connect to databases, which is
    // wasted on a worker that cannot start.
    let state = match setup {
        Some(setup) => {
            info!("running the setup hook");
            match std::panic::catch_unwind(AssertUnwindSafe(|| setup(&io))) {
                Ok(Ok(state)) => state,
                Ok(Err(error)) => return fail(format!("the setup hook failed: {error}")),
                Err(panic) => {
                    return fail(format!(
                        "the setup hook {}",
                        crate::job::attempt::panic_message(&*panic)
                    ));
                }
            }
        }
        None => State::new(),
    };
    info!(state = ?state, "handlers' state");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = args.workers.map_or(cores, usize::from);
    let name = worker_name(&args);
    let settings = Arc::new(WorkerSettings {
        registry,
        ack: args.ack,
        prefetch: args.prefetch,
        shutdown_timeout: args.shutdown_timeout,
        unknown_job_window: args.unknown_job_window,
    });
    let system = actix::System::new();
    let exit = system.block_on(async move {
        let signals = Signals::install();
        let connection = match until_connected(&endpoint.name, || endpoint.connect(), signals.clone()).await {
            Ok(Some(connection)) => connection,
            Ok(None) => return Ok(Exit::Drained),
            Err(error) => return Err(connect_failed(error)),
        };
        // Each worker consumes on a channel of its own: past the broker's
        // limit, the ones over it would fail and restart for ever.
        let channels = workers.saturating_mul(queues.len());
        let channel_max = usize::from(connection.configuration().channel_max());
        if channel_max > 0 && channels >= channel_max {
            let _ = connection.close(200, "too many workers".into()).await;
            return Err(usage(format!(
                "{workers} workers for each of {} queues need {channels} channels and one to declare queues on, and RabbitMQ allows {channel_max} per connection (its `channel_max`); lower --workers, split the queues over processes, or raise `channel_max` on the broker",
                queues.len(),
            )));
        }
        let publisher = Client::builder(url)
            .tls_files(tls.clone())
            .queue_prefix(prefix)
            .connection_name(format!("warren worker {name} (publisher)"))
            .runtime(io.clone());
        let connected = until_connected("warren worker publisher", || publisher.clone().connect(), signals.clone());
        let client = match connected.await {
            Ok(Some(client)) => client,
            Ok(None) => return Ok(Exit::Drained),
            Err(error) => return Err(connect_failed(error)),
        };
        let mut runners = Vec::new();
        for queue in &queues {
            for _ in 0..workers {
                runners.push(Runner {
                    queue: (*queue).into(),
                    full_queue: client.queue_name(queue).into(),
                    queue_type: settings.registry.queue_type(queue),
                    worker: format!("{name}.{}", runners.len() + 1).into(),
                    client: client.clone(),
                    state: state.clone(),
                });
            }
        }
        info!(url = %redact(url), queues = ?queues, workers, prefetch = settings.prefetch, ack = %settings.ack, "worker starting");
        let (sender, receiver) = oneshot::channel();
        actix::Actor::start(Supervisor::new(endpoint, Arc::new(connection), settings, runners, signals, sender));
        let exit = receiver.await.unwrap_or(Exit::Forced);
        if exit == Exit::Drained {
            client.close().await;
        }
        // Forced: the process exits now; the broker notices the closed
        // sockets, and a stalled network must not hold the exit.
        Ok(exit)
    });
    match exit {
        Err(code) => code,
        Ok(Exit::Drained) => {
            info!("worker stopped");
            ExitCode::SUCCESS
        }
        Ok(Exit::Forced) => ExitCode::from(EXIT_FORCED),
    }
}

/// This process's name in worker ids and connection names.
fn worker_name(args: &WorkArgs) -> String {
    args.name.clone().unwrap_or_else(|| std::process::id().to_string())
}

/// Retries `connect` while its failures are transient, with the backoff of
/// every reconnection loop; `Ok(None)` if a shutdown signal comes first, an
/// error at once if the broker refuses the connection or the configuration
/// cannot work.
async fn until_connected<T, F, Fut>(connection: &str, connect: F, mut signals: Signals) -> Result<Option<T>, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let backoff = Backoff::new(FIRST_WAIT, MAX_BACKOFF);
    tokio::select! {
        connected = with_retries(connection, backoff, Refusals::Fail, connect) => connected.map(Some),
        () = signals.received(1) => Ok(None),
    }
}
