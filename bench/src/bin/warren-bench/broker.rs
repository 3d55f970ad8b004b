//! The bench's own view of the broker: the raw lapin producer, queue
//! chores (declare, purge, count consumers), and the worker processes.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use warren_bench::{DONE_PREFIX, EXPECT_ENV, Report};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The bench's connection: a confirm-mode channel for the raw producer and
/// a plain one for queue chores.
#[derive(Debug)]
pub(crate) struct Broker {
    _connection: Connection,
    publisher: Channel,
    chores: Channel,
}

impl Broker {
    pub(crate) async fn connect(url: &str) -> Result<Self, BoxError> {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let publisher = connection.create_channel().await?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await?;
        let chores = connection.create_channel().await?;
        Ok(Broker {
            _connection: connection,
            publisher,
            chores,
        })
    }

    /// Declares `queue` as warren does (durable, classic, no arguments) and empties it.
    pub(crate) async fn reset(&self, queue: &str) -> Result<(), BoxError> {
        self.chores
            .queue_declare(queue.into(), QueueDeclareOptions::durable(), FieldTable::default())
            .await?;
        self.chores
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await?;
        Ok(())
    }

    /// Deletes `queue`.
    pub(crate) async fn delete(&self, queue: &str) -> Result<(), BoxError> {
        self.chores
            .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
            .await?;
        Ok(())
    }

    /// How many consumers `queue` has, by a passive declaration.
    pub(crate) async fn consumers(&self, queue: &str) -> Result<u32, BoxError> {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let queue = self
            .chores
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await?;
        Ok(queue.consumer_count())
    }

    /// Waits until `queue` has `count` consumers: the workers are ready.
    pub(crate) async fn await_consumers(&self, queue: &str, count: u32, timeout: Duration) -> Result<(), BoxError> {
        let deadline = Instant::now() + timeout;
        while self.consumers(queue).await? < count {
            if Instant::now() > deadline {
                return Err(format!("{queue} did not get {count} consumers within {timeout:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Publishes one persistent, mandatory message and waits for its confirm.
    pub(crate) async fn publish(&self, queue: &str, body: &[u8], properties: BasicProperties) -> Result<(), BoxError> {
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = self
            .publisher
            .basic_publish("".into(), queue.into(), options, body, properties)
            .await?;
        match confirm.await? {
            Confirmation::Ack(None) => Ok(()),
            other => Err(format!("publish to {queue} not confirmed: {other:?}").into()),
        }
    }
}

/// Open channels in the vhost of `amqp_url`, all connections together
/// (`rabbitmqctl list_channels`; the broker must run on this machine).
pub(crate) fn channels_in_vhost(amqp_url: &str) -> Result<u64, BoxError> {
    let uri: lapin::uri::AMQPUri = amqp_url.parse()?;
    let output = std::process::Command::new("rabbitmqctl")
        .args([
            "list_channels",
            "--quiet",
            "--no-table-headers",
            "-p",
            &uri.vhost,
            "number",
        ])
        .output()
        .map_err(|error| format!("cannot run rabbitmqctl to count channels: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "rabbitmqctl list_channels failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let channels = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count();
    Ok(u64::try_from(channels)?)
}

/// The hold queues (`*.retry.*`) of the vhost of `amqp_url` with the memory
/// each takes on the broker, in bytes (`rabbitmqctl list_queues`).
pub(crate) fn hold_queues(amqp_url: &str) -> Result<Vec<(String, u64)>, BoxError> {
    let uri: lapin::uri::AMQPUri = amqp_url.parse()?;
    let output = std::process::Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "--quiet",
            "--no-table-headers",
            "-p",
            &uri.vhost,
            "name",
            "memory",
        ])
        .output()
        .map_err(|error| format!("cannot run rabbitmqctl to list the hold queues: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "rabbitmqctl list_queues failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, memory) = line.split_once('\t')?;
            name.contains(".retry.")
                .then(|| (name.to_owned(), memory.trim().parse().unwrap_or(0)))
        })
        .collect())
}

/// Properties of a job message as warren's `Client` sets them (see
/// warren's `message` module): persistent, JSON, the job's name, a job id,
/// a timestamp and the attempt header. Both producers send the same
/// message, and pre-filled queues are the same for both workers.
pub(crate) fn warren_properties(name: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("warren-attempt".into(), AMQPValue::LongLongInt(1));
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_type(name.into())
        .with_message_id(warren::JobId::new().to_string().into())
        .with_content_type("application/json".into())
        .with_timestamp(warren_bench::now_us() / 1_000_000)
        .with_headers(headers)
}

/// Runs `publish(seq)` for `jobs` jobs, each future publishing and awaiting
/// its confirm, at most `window` unconfirmed at once; at `rate` jobs per
/// second if given (each job created when it is due), else as fast as
/// confirms allow. Returns how long until the last confirm.
pub(crate) async fn drive<F, Fut>(
    jobs: u64,
    window: usize,
    rate: Option<f64>,
    mut publish: F,
) -> Result<Duration, BoxError>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    let start = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut next = 0u64;
    while next < jobs || !in_flight.is_empty() {
        // Jobs in flight are cheap to hold; the window bounds them.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let due = rate.map_or(jobs, |rate| {
            ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(jobs)
        });
        while next < due && in_flight.len() < window {
            in_flight.push(publish(next));
            next += 1;
        }
        let idle = next >= due || in_flight.len() >= window;
        if in_flight.is_empty() {
            tokio::time::sleep(Duration::from_micros(200)).await;
            continue;
        }
        if rate.is_some() && next < jobs && idle {
            // Paced: wake for the next due job even if no confirm comes.
            tokio::select! {
                confirmed = in_flight.next() => if let Some(result) = confirmed { result? },
                () = tokio::time::sleep(Duration::from_micros(500)) => {}
            }
        } else if let Some(result) = in_flight.next().await {
            result?;
        }
    }
    Ok(start.elapsed())
}

/// A worker process, its stdout read for the probe's report.
#[derive(Debug)]
pub(crate) struct WorkerProcess {
    child: Child,
    /// Run under a wrapper (a profiler): stopped with SIGTERM, so that it writes its output.
    wrapped: bool,
    /// Prints the voluntary context switches by thread (`--switches-by-thread`).
    switches_by_thread: bool,
    lines: Lines<BufReader<ChildStdout>>,
}

/// Which worker (or producer) to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Side {
    /// Hand-written lapin.
    Raw,
    /// warren.
    Warren,
}

impl Side {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Side::Raw => "raw",
            Side::Warren => "warren",
        }
    }
}

/// How to start a worker process.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSpec<'a> {
    pub(crate) url: &'a str,
    pub(crate) queue: &'a str,
    pub(crate) prefetch: u16,
    pub(crate) workers: usize,
    pub(crate) expect: u64,
    /// `RUST_LOG` of the warren worker.
    pub(crate) log: &'a str,
    /// A command the worker runs under (e.g. `valgrind --tool=callgrind`).
    pub(crate) wrapper: &'a [String],
    /// Prints the drain phases' context switches by thread.
    pub(crate) switches_by_thread: bool,
}

impl WorkerProcess {
    pub(crate) fn spawn(side: Side, spec: &WorkerSpec<'_>) -> Result<Self, BoxError> {
        let binary = sibling(match side {
            Side::Raw => "raw-worker",
            Side::Warren => "bench-worker",
        })?;
        let mut command = match spec.wrapper.split_first() {
            Some((program, arguments)) => {
                let mut command = Command::new(program);
                command.args(arguments).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        match side {
            Side::Raw => {
                command
                    .arg(spec.url)
                    .arg(spec.queue)
                    .arg(spec.prefetch.to_string())
                    .arg(spec.workers.to_string());
            }
            Side::Warren => {
                command
                    .args(["work", "--ack", "late", "--queues", spec.queue, "--amqp-url", spec.url])
                    .arg("--allow-unknown-queues")
                    .args(["--prefetch", &spec.prefetch.to_string()])
                    .args(["--workers", &spec.workers.to_string()])
                    .env("RUST_LOG", spec.log);
            }
        }
        let mut child = command
            .env(EXPECT_ENV, spec.expect.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("the worker has no stdout")?;
        Ok(WorkerProcess {
            child,
            wrapped: !spec.wrapper.is_empty(),
            switches_by_thread: spec.switches_by_thread,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// Waits for the probe's report.
    pub(crate) async fn report(&mut self, timeout: Duration) -> Result<Report, BoxError> {
        let read = async {
            while let Some(line) = self.lines.next_line().await? {
                if let Some(report) = line.starts_with(DONE_PREFIX).then(|| Report::parse(&line)).flatten() {
                    return Ok(report);
                }
            }
            Err::<Report, BoxError>("the worker exited before it ran every job".into())
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| format!("the worker did not run every job within {timeout:?}"))?
    }

    /// The process's resident set size in MiB (`VmRSS`).
    pub(crate) fn rss_mib(&self) -> Result<f64, BoxError> {
        let pid = self.child.id().ok_or("the worker has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or("no VmRSS in /proc/<pid>/status")?;
        Ok(kib / 1024.0)
    }

    /// Voluntary context switches of all the process's threads so far: how
    /// often a thread went to sleep waiting for another (a wake across
    /// threads, a syscall that blocks). Counts, not time, so the load of
    /// the machine moves it less than a duration.
    pub(crate) fn voluntary_switches(&self) -> Result<u64, BoxError> {
        let pid = self.child.id().ok_or("the worker has exited")?;
        let mut total = 0;
        // By thread name, for `--switches-by-thread`.
        let mut by_thread = std::collections::BTreeMap::<String, u64>::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let status = std::fs::read_to_string(task?.path().join("status"))?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned()
            };
            let switches = field("voluntary_ctxt_switches:").parse::<u64>().unwrap_or(0);
            total += switches;
            *by_thread.entry(field("Name:")).or_default() += switches;
        }
        if self.switches_by_thread {
            eprintln!("# voluntary context switches by thread: {by_thread:?}");
        }
        Ok(total)
    }

    /// Kills the process: what it had not acked returns to the queue, which is purged next.
    pub(crate) async fn stop(mut self) {
        if self.wrapped
            && let Some(pid) = self.child.id()
        {
            // A profiler writes its output only if the process ends by itself.
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            if tokio::time::timeout(Duration::from_secs(120), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// A binary built next to this one.
fn sibling(name: &str) -> Result<PathBuf, BoxError> {
    let path = std::env::current_exe()?
        .parent()
        .ok_or("the bench binary has no directory")?
        .join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing; build the bench's binaries first: cargo build --release -p warren-bench --bins",
            path.display()
        )
        .into())
    }
}
