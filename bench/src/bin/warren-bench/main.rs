//! warren against its ceiling: a raw lapin producer and consumer with the
//! same guarantees (durable queue, persistent messages, pipelined publisher
//! confirms, manual acks after the handler, same prefetch, same ~100-byte
//! JSON payload), alternately, in one run, on one broker.
//!
//! ```text
//! cargo build --release -p warren-bench --bins
//! cargo run --release -p warren-bench --bin warren-bench -- --json target/bench.json
//! ```
//!
//! Each phase prints `<phase> raw=<figure> warren=<figure> ratio=<warren/raw>`.
//! See docs/performance.md for the method and the latest figures.

mod broker;
mod setup;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;
use warren::Client;
use warren_bench::{CPU_QUEUE, NOOP_QUEUE, Noop, Report, Spin, now_us};

use crate::broker::{BoxError, Broker, Side, WorkerProcess, WorkerSpec, drive, warren_properties};

#[derive(Debug, Parser)]
#[command(about = "warren against raw lapin with the same guarantees, in one run")]
struct Args {
    /// RabbitMQ URL; a vhost of its own keeps the bench and other users apart.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/warren-bench"
    )]
    amqp_url: String,
    /// Management API port on the broker's host, used once to create a missing vhost.
    #[arg(long, default_value_t = 15672)]
    management_port: u16,
    /// A first look in under a minute: 5,000 jobs, one round, 100 cpu jobs,
    /// 3 s of latency load (explicit options still win).
    #[arg(long)]
    quick: bool,
    /// Jobs per measurement of `enqueue`, `drain` and `e2e` [default: 50,000; 5,000 with --quick].
    #[arg(long)]
    jobs: Option<u64>,
    /// Phases to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Phase::Enqueue, Phase::Drain, Phase::E2e, Phase::Cpu, Phase::Rss])]
    phases: Vec<Phase>,
    /// Measurements per side and phase, alternating raw and warren; the median is reported.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Seconds of offered load in the e2e latency measurement, at most [default: 10; 3 with --quick].
    #[arg(long)]
    latency_secs: Option<f64>,
    /// Unconfirmed publishes at once, for both producers.
    #[arg(long, default_value_t = 1000)]
    window: usize,
    /// Workers (consumers) per worker process [default: number of cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Jobs of the `cpu` phase [default: 500; 100 with --quick].
    #[arg(long)]
    cpu_jobs: Option<u64>,
    /// Hashing rounds per `cpu` job.
    #[arg(long, default_value_t = 250_000)]
    cpu_rounds: u32,
    /// Offered load of the e2e latency measurement in jobs/s [default: half the raw drain rate at prefetch 100].
    #[arg(long)]
    rate: Option<f64>,
    /// `RUST_LOG` of the warren worker (`info` logs a line per job).
    #[arg(long, default_value = "warn")]
    worker_log: String,
    /// Runs each worker process under this command, e.g. `--worker-wrapper
    /// "valgrind --tool=callgrind"` for instruction counts (stopped with
    /// SIGTERM, so that it writes its output).
    #[arg(long, value_delimiter = ' ', num_args = 1)]
    worker_wrapper: Vec<String>,
    /// One producer for both sides' `enqueue` and `e2e` jobs, instead of
    /// each side its own: with the same producer, a gap in e2e latency is
    /// the worker's; with the same worker, the producer's.
    #[arg(long, value_enum)]
    producer: Option<Side>,
    /// Prints each drain's voluntary context switches by worker thread
    /// (`lapin-io-loop`, `warren-io`, the arbiters…) on stderr, and the
    /// e2e latency runs' per job: which thread waits for which.
    #[arg(long)]
    switches_by_thread: bool,
    /// Writes every figure to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Confirmed enqueues per second.
    Enqueue,
    /// Draining a pre-filled queue, at prefetch 100 and 1.
    Drain,
    /// Producer and workers together: throughput, then latency at a fixed load.
    E2e,
    /// A CPU-bound handler: one worker vs one per core.
    Cpu,
    /// Idle worker RSS.
    Rss,
    /// Draining at prefetch 100 with 1 KiB and with 100 KiB bodies (a tenth of the jobs).
    Bodies,
    /// 100 queues, one worker each, in one process: drain rate, RSS, channels.
    Queues,
    /// 10,000 delayed jobs over 1,000 distinct delays (warren only): hold
    /// queues created, enqueue rate, the hold queues' memory on the broker.
    Delays,
    /// warren's drain at prefetch 100 with `RUST_LOG=info` (a `job done`
    /// line per job) next to `warn`: the figure's `raw` column is `warn`,
    /// its `warren` column `info`, its ratio info / warn.
    Log,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
struct Figure {
    phase: String,
    unit: &'static str,
    raw: f64,
    warren: f64,
    ratio: f64,
    /// The 1-minute load average after the measurement.
    load: f64,
}

#[derive(Debug, Serialize)]
struct Machine {
    nproc: usize,
    cpu: String,
    rabbitmq: String,
    load_before: f64,
}

#[derive(Debug, Serialize)]
struct Output<'a> {
    machine: &'a Machine,
    jobs: u64,
    rounds: usize,
    workers: usize,
    figures: &'a [Figure],
}

struct Bench {
    args: Args,
    broker: Broker,
    client: Client,
    workers: usize,
    figures: Vec<Figure>,
    timeout: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}").into())
        .and_then(|runtime| runtime.block_on(run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // A sentence, not a Debug dump.
            eprintln!("warren-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

impl Args {
    fn jobs(&self) -> u64 {
        self.jobs.unwrap_or(if self.quick { 5_000 } else { 50_000 })
    }

    fn cpu_jobs(&self) -> u64 {
        self.cpu_jobs.unwrap_or(if self.quick { 100 } else { 500 })
    }

    fn latency_secs(&self) -> f64 {
        self.latency_secs.unwrap_or(if self.quick { 3.0 } else { 10.0 })
    }
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The bench's connection; a missing vhost is created once, through the
/// management API, or the error says what to run.
async fn connect(args: &Args) -> Result<Broker, BoxError> {
    let url = &args.amqp_url;
    let shown = redacted(url);
    match Broker::connect(url).await {
        Ok(broker) => Ok(broker),
        Err(error) if setup::vhost_missing(&error.to_string()) => {
            setup::create_vhost(url, args.management_port).await?;
            Broker::connect(url)
                .await
                .map_err(|error| format!("could not connect to {shown} after creating its vhost: {error}").into())
        }
        Err(error) => Err(format!("could not connect to RabbitMQ at {shown}: {error} (is it running, and are the URL's user and password right?)").into()),
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let machine = Machine {
        nproc: std::thread::available_parallelism().map_or(1, usize::from),
        cpu: cpu_model(),
        rabbitmq: rabbitmq_version(),
        load_before: load(),
    };
    println!(
        "# {} cores, {}, RabbitMQ {}, load {:.2}, {} jobs, {} round(s)",
        machine.nproc,
        machine.cpu,
        machine.rabbitmq,
        machine.load_before,
        args.jobs(),
        args.rounds
    );
    let broker = connect(&args).await?;
    let client = Client::builder(&args.amqp_url)
        .connection_name("warren-bench")
        .connect()
        .await
        .map_err(|error| format!("warren's client could not connect: {error}"))?;
    let workers = args.workers.unwrap_or(machine.nproc);
    let mut bench = Bench {
        broker,
        client,
        workers,
        figures: Vec::new(),
        timeout: Duration::from_secs(600),
        args,
    };
    bench.broker.reset(NOOP_QUEUE).await?;
    bench.broker.reset(CPU_QUEUE).await?;
    let phases = bench.args.phases.clone();
    if phases.contains(&Phase::Enqueue) {
        bench.enqueue().await?;
    }
    if phases.contains(&Phase::Drain) {
        bench.drain(100).await?;
        bench.drain(1).await?;
    }
    if phases.contains(&Phase::E2e) {
        bench.e2e().await?;
    }
    if phases.contains(&Phase::Cpu) {
        bench.cpu().await?;
    }
    if phases.contains(&Phase::Bodies) {
        bench.bodies().await?;
    }
    if phases.contains(&Phase::Queues) {
        bench.many_queues().await?;
    }
    if phases.contains(&Phase::Delays) {
        bench.delays().await?;
    }
    if phases.contains(&Phase::Rss) {
        bench.idle_rss().await?;
    }
    if phases.contains(&Phase::Log) {
        bench.log_cost().await?;
    }
    // The figures are written before the clean-up, which a broker restart may fail.
    if let Some(path) = &bench.args.json {
        let output = Output {
            machine: &machine,
            jobs: bench.args.jobs(),
            rounds: bench.args.rounds,
            workers: bench.workers,
            figures: &bench.figures,
        };
        std::fs::write(path, serde_json::to_string_pretty(&output)?)?;
    }
    bench.broker.reset(NOOP_QUEUE).await?;
    bench.broker.reset(CPU_QUEUE).await?;
    bench.client.close().await;
    Ok(())
}

impl Bench {
    /// Records and prints one figure, the median of each side's samples.
    fn record(&mut self, phase: &str, unit: &'static str, raw: &[f64], warren: &[f64]) -> (f64, f64) {
        let (raw, warren) = (median(raw), median(warren));
        let figure = Figure {
            phase: phase.to_owned(),
            unit,
            raw,
            warren,
            ratio: warren / raw,
            load: load(),
        };
        println!(
            "{phase} raw={} warren={} ratio={:.2}  ({unit}, load {:.2})",
            round(raw),
            round(warren),
            figure.ratio,
            figure.load
        );
        self.figures.push(figure);
        (raw, warren)
    }

    fn spec(&self, queue: &'static str, prefetch: u16, workers: usize, expect: u64) -> WorkerSpec<'_> {
        WorkerSpec {
            url: &self.args.amqp_url,
            queue,
            prefetch,
            workers,
            expect,
            log: &self.args.worker_log,
            wrapper: &self.args.worker_wrapper,
            switches_by_thread: self.args.switches_by_thread,
        }
    }

    /// Publishes `jobs` jobs from `side`'s producer (or `--producer`), at most `window` unconfirmed.
    async fn produce(&self, side: Side, jobs: u64, rate: Option<f64>) -> Result<Duration, BoxError> {
        let window = self.args.window;
        match self.args.producer.unwrap_or(side) {
            Side::Raw => {
                drive(jobs, window, rate, |seq| {
                    let body = serde_json::to_vec(&Noop::new(seq));
                    // The same message warren sends: only the code around it differs.
                    let properties = warren_properties("bench_noop");
                    async move { self.broker.publish(NOOP_QUEUE, &body?, properties).await }
                })
                .await
            }
            Side::Warren => {
                drive(jobs, window, rate, |seq| {
                    let enqueue = self.client.enqueue(Noop::new(seq));
                    async move { enqueue.await.map(drop).map_err(|error| error.to_string().into()) }
                })
                .await
            }
        }
    }

    /// Fills `queue` with `jobs` jobs as warren's client would have, untimed.
    async fn prefill(&self, queue: &'static str, jobs: u64) -> Result<(), BoxError> {
        self.prefill_padded(queue, jobs, 48).await
    }

    /// As [`Bench::prefill`], with `pad` bytes of filler in each noop body.
    async fn prefill_padded(&self, queue: &'static str, jobs: u64, pad: usize) -> Result<(), BoxError> {
        self.broker.reset(queue).await?;
        let rounds = self.args.cpu_rounds;
        drive(jobs, self.args.window, None, |seq| async move {
            if queue == CPU_QUEUE {
                let job = Spin {
                    seq,
                    sent_us: now_us(),
                    rounds,
                };
                let body = serde_json::to_vec(&job)?;
                self.broker.publish(queue, &body, warren_properties("bench_spin")).await
            } else {
                let body = serde_json::to_vec(&Noop::padded(seq, pad))?;
                self.broker.publish(queue, &body, warren_properties("bench_noop")).await
            }
        })
        .await?;
        Ok(())
    }

    async fn enqueue(&mut self) -> Result<(), BoxError> {
        if let Some(producer) = self.args.producer {
            println!(
                "# enqueue: skipped, --producer {} would time the same producer on both sides",
                producer.as_str()
            );
            return Ok(());
        }
        let jobs = self.args.jobs();
        // Declarations (the client's first enqueue declares) are not measured.
        self.broker.reset(NOOP_QUEUE).await?;
        self.client
            .enqueue(Noop::new(0))
            .await
            .map_err(|error| error.to_string())?;
        let (mut raw, mut warren) = (Vec::new(), Vec::new());
        for _ in 0..self.args.rounds {
            for side in [Side::Raw, Side::Warren] {
                self.broker.reset(NOOP_QUEUE).await?;
                let took = self.produce(side, jobs, None).await?;
                samples(side, &mut raw, &mut warren).push(rate(jobs, took));
            }
        }
        self.broker.reset(NOOP_QUEUE).await?;
        self.record("enqueue", "jobs/s", &raw, &warren);
        Ok(())
    }

    /// Drains a pre-filled queue; also records the warren worker's RSS at the end.
    async fn drain(&mut self, prefetch: u16) -> Result<(), BoxError> {
        let jobs = self.args.jobs();
        let (mut raw, mut warren) = (Vec::new(), Vec::new());
        let (mut raw_rss, mut warren_rss) = (Vec::new(), Vec::new());
        let (mut raw_switches, mut warren_switches) = (Vec::new(), Vec::new());
        for _ in 0..self.args.rounds {
            for side in [Side::Raw, Side::Warren] {
                self.prefill(NOOP_QUEUE, jobs).await?;
                let mut worker = WorkerProcess::spawn(side, &self.spec(NOOP_QUEUE, prefetch, self.workers, jobs))?;
                let report = worker.report(self.timeout).await?;
                samples(side, &mut raw_rss, &mut warren_rss).push(worker.rss_mib()?);
                #[allow(clippy::cast_precision_loss, reason = "a count per job, printed to three figures")]
                let per_job = worker.voluntary_switches()? as f64 / jobs as f64;
                samples(side, &mut raw_switches, &mut warren_switches).push(per_job);
                worker.stop().await;
                samples(side, &mut raw, &mut warren).push(busy_rate(jobs, &report));
            }
        }
        self.broker.reset(NOOP_QUEUE).await?;
        self.record(&format!("drain-p{prefetch}"), "jobs/s", &raw, &warren);
        self.record(
            &format!("drain-p{prefetch}-sleeps"),
            "voluntary context switches/job",
            &raw_switches,
            &warren_switches,
        );
        if prefetch == 100 {
            self.record("rss-after-drain", "MiB", &raw_rss, &warren_rss);
        }
        Ok(())
    }

    /// warren's drain at `warn` and at `info`, alternating; recorded as
    /// `raw` = warn and `warren` = info.
    async fn log_cost(&mut self) -> Result<(), BoxError> {
        let jobs = self.args.jobs();
        let (mut warn, mut info) = (Vec::new(), Vec::new());
        for _ in 0..self.args.rounds {
            for level in ["warn", "info"] {
                self.prefill(NOOP_QUEUE, jobs).await?;
                let spec = WorkerSpec {
                    log: level,
                    ..self.spec(NOOP_QUEUE, 100, self.workers, jobs)
                };
                let mut worker = WorkerProcess::spawn(Side::Warren, &spec)?;
                let report = worker.report(self.timeout).await?;
                worker.stop().await;
                let samples = if level == "warn" { &mut warn } else { &mut info };
                samples.push(busy_rate(jobs, &report));
            }
        }
        self.broker.reset(NOOP_QUEUE).await?;
        self.record("drain-p100-log-info-vs-warn", "jobs/s", &warn, &info);
        Ok(())
    }

    /// Starts a worker on an empty queue and waits until it consumes.
    async fn ready_worker(&self, side: Side, expect: u64) -> Result<WorkerProcess, BoxError> {
        self.broker.reset(NOOP_QUEUE).await?;
        let worker = WorkerProcess::spawn(side, &self.spec(NOOP_QUEUE, 100, self.workers, expect))?;
        let consumers = u32::try_from(self.workers)?;
        self.broker
            .await_consumers(NOOP_QUEUE, consumers, Duration::from_secs(30))
            .await?;
        Ok(worker)
    }

    async fn e2e(&mut self) -> Result<(), BoxError> {
        let jobs = self.args.jobs();
        let (mut raw, mut warren) = (Vec::new(), Vec::new());
        for _ in 0..self.args.rounds {
            for side in [Side::Raw, Side::Warren] {
                let mut worker = self.ready_worker(side, jobs).await?;
                let start_us = now_us();
                self.produce(side, jobs, None).await?;
                let report = worker.report(self.timeout).await?;
                worker.stop().await;
                samples(side, &mut raw, &mut warren).push(rate_us(jobs, report.last_end_us.saturating_sub(start_us)));
            }
        }
        self.record("e2e", "jobs/s", &raw, &warren);

        let offered = match self.args.rate {
            Some(rate) => rate,
            None => match self.figures.iter().find(|figure| figure.phase == "drain-p100") {
                Some(drain) => drain.raw / 2.0,
                None => return Err("e2e latency needs the drain phase or --rate".into()),
            },
        };
        // At most `latency_secs` of offered load.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let paced = jobs.min((offered * self.args.latency_secs()) as u64).max(1);
        println!("# e2e latency: {paced} jobs offered at {} jobs/s", round(offered));
        let (mut raw_p50, mut warren_p50, mut raw_p99, mut warren_p99) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..self.args.rounds {
            for side in [Side::Raw, Side::Warren] {
                let mut worker = self.ready_worker(side, paced).await?;
                self.produce(side, paced, Some(offered)).await?;
                let report = worker.report(self.timeout).await?;
                if self.args.switches_by_thread {
                    let per_job = worker.voluntary_switches()? as f64 / paced as f64;
                    eprintln!(
                        "# {} e2e latency: {per_job:.2} voluntary context switches/job",
                        side.as_str()
                    );
                }
                worker.stop().await;
                samples(side, &mut raw_p50, &mut warren_p50).push(millis(report.p50_us));
                samples(side, &mut raw_p99, &mut warren_p99).push(millis(report.p99_us));
            }
        }
        self.record("e2e-latency-p50", "ms", &raw_p50, &warren_p50);
        self.record("e2e-latency-p99", "ms", &raw_p99, &warren_p99);
        self.broker.reset(NOOP_QUEUE).await?;
        Ok(())
    }

    async fn cpu(&mut self) -> Result<(), BoxError> {
        let jobs = self.args.cpu_jobs();
        let mut rates: BTreeMap<(&str, usize), Vec<f64>> = BTreeMap::new();
        for _ in 0..self.args.rounds {
            for side in [Side::Raw, Side::Warren] {
                for workers in [1, self.workers] {
                    self.prefill(CPU_QUEUE, jobs).await?;
                    let mut worker = WorkerProcess::spawn(side, &self.spec(CPU_QUEUE, 10, workers, jobs))?;
                    let report = worker.report(self.timeout).await?;
                    worker.stop().await;
                    rates
                        .entry((side.as_str(), workers))
                        .or_default()
                        .push(busy_rate(jobs, &report));
                }
            }
        }
        self.broker.reset(CPU_QUEUE).await?;
        let many = self.workers;
        let (raw_one, warren_one) = self.record("cpu-1-worker", "jobs/s", &rates[&("raw", 1)], &rates[&("warren", 1)]);
        let (raw_many, warren_many) = self.record(
            &format!("cpu-{many}-workers"),
            "jobs/s",
            &rates[&("raw", many)],
            &rates[&("warren", many)],
        );
        self.record("cpu-speedup", "x", &[raw_many / raw_one], &[warren_many / warren_one]);
        Ok(())
    }

    /// Drain rate at prefetch 100 with bodies of 1 KiB and 100 KiB: how
    /// the cost per job grows with its size (frames, copies, decoding).
    async fn bodies(&mut self) -> Result<(), BoxError> {
        for (label, bytes, jobs) in [
            ("1KiB", 1024, self.args.jobs()),
            ("100KiB", 100 * 1024, (self.args.jobs() / 10).max(1)),
        ] {
            let (mut raw, mut warren) = (Vec::new(), Vec::new());
            for _ in 0..self.args.rounds {
                for side in [Side::Raw, Side::Warren] {
                    self.prefill_padded(NOOP_QUEUE, jobs, bytes - 50).await?;
                    let mut worker = WorkerProcess::spawn(side, &self.spec(NOOP_QUEUE, 100, self.workers, jobs))?;
                    let report = worker.report(self.timeout).await?;
                    worker.stop().await;
                    samples(side, &mut raw, &mut warren).push(busy_rate(jobs, &report));
                }
            }
            self.broker.reset(NOOP_QUEUE).await?;
            self.record(&format!("drain-p100-{label}"), "jobs/s", &raw, &warren);
        }
        Ok(())
    }

    /// 100 queues with one worker (consumer) each, in one process, draining
    /// the same number of jobs in all: what each queue costs.
    async fn many_queues(&mut self) -> Result<(), BoxError> {
        const QUEUES: u64 = 100;
        // `prefill` takes the 'static names of the bench's queues; these
        // live as long as the run.
        let names: Vec<&'static str> = (0..QUEUES)
            .map(|queue| &*Box::leak(format!("bench-many-{queue}").into_boxed_str()))
            .collect();
        let all: &'static str = Box::leak(names.join(",").into_boxed_str());
        let per_queue = (self.args.jobs() / QUEUES).max(1);
        let jobs = per_queue * QUEUES;
        let (mut raw, mut warren) = (Vec::new(), Vec::new());
        let (mut raw_rss, mut warren_rss) = (Vec::new(), Vec::new());
        let (mut raw_channels, mut warren_channels) = (Vec::new(), Vec::new());
        for _ in 0..self.args.rounds {
            for side in [Side::Raw, Side::Warren] {
                for name in &names {
                    self.prefill(name, per_queue).await?;
                }
                let before = broker::channels_in_vhost(&self.args.amqp_url)?;
                let mut worker = WorkerProcess::spawn(side, &self.spec(all, 100, 1, jobs))?;
                let report = worker.report(self.timeout).await?;
                samples(side, &mut raw_rss, &mut warren_rss).push(worker.rss_mib()?);
                let after = broker::channels_in_vhost(&self.args.amqp_url)?;
                #[allow(clippy::cast_precision_loss, reason = "a count of channels")]
                samples(side, &mut raw_channels, &mut warren_channels).push(after.saturating_sub(before) as f64);
                worker.stop().await;
                samples(side, &mut raw, &mut warren).push(busy_rate(jobs, &report));
            }
        }
        for name in &names {
            // Warren's worker declared each queue's dead-letter queue too.
            self.broker.delete(name).await?;
            self.broker.delete(&format!("{name}.dead")).await?;
        }
        self.record("queues-100-drain", "jobs/s", &raw, &warren);
        self.record("queues-100-rss", "MiB", &raw_rss, &warren_rss);
        self.record("queues-100-channels", "channels", &raw_channels, &warren_channels);
        Ok(())
    }

    /// Enqueues 10,000 jobs (a fifth with --quick) delayed by 1 to 1,000
    /// seconds, then counts the hold queues and their memory, and deletes
    /// them (their jobs would come back into later phases).
    async fn delays(&mut self) -> Result<(), BoxError> {
        const DELAYS: u64 = 1000;
        let jobs: u64 = if self.args.quick { 2_000 } else { 10_000 };
        self.broker.reset(NOOP_QUEUE).await?;
        let before = broker::hold_queues(&self.args.amqp_url)?;
        let client = &self.client;
        let took = drive(jobs, self.args.window, None, |seq| {
            let delay = Duration::from_secs(1 + seq % DELAYS);
            let enqueue = client.enqueue_in(delay, Noop::new(seq));
            async move { enqueue.await.map(drop).map_err(|error| error.to_string().into()) }
        })
        .await?;
        let after = broker::hold_queues(&self.args.amqp_url)?;
        let created = after.len().saturating_sub(before.len());
        #[allow(clippy::cast_precision_loss, reason = "bytes, printed in MiB")]
        let memory_mib: f64 = after.iter().map(|(_, bytes)| *bytes as f64).sum::<f64>() / (1024.0 * 1024.0);
        println!(
            "delays jobs={jobs} distinct={DELAYS} hold-queues={created} enqueue={} jobs/s hold-queue-memory={memory_mib:.1} MiB  (warren only, load {:.2})",
            round(rate(jobs, took)),
            load()
        );
        for (name, _) in &after {
            self.broker.delete(name).await?;
        }
        Ok(())
    }

    async fn idle_rss(&mut self) -> Result<(), BoxError> {
        let (mut raw, mut warren) = (Vec::new(), Vec::new());
        for _ in 0..self.args.rounds {
            for side in [Side::Raw, Side::Warren] {
                let worker = self.ready_worker(side, u64::MAX).await?;
                // Settled: connections open, consumers registered, nothing running.
                tokio::time::sleep(Duration::from_secs(2)).await;
                samples(side, &mut raw, &mut warren).push(worker.rss_mib()?);
                worker.stop().await;
            }
        }
        self.record("rss-idle", "MiB", &raw, &warren);
        Ok(())
    }
}

fn samples<'a>(side: Side, raw: &'a mut Vec<f64>, warren: &'a mut Vec<f64>) -> &'a mut Vec<f64> {
    match side {
        Side::Raw => raw,
        Side::Warren => warren,
    }
}

// Counts and durations of a bench run fit in f64 without loss that matters.
#[allow(clippy::cast_precision_loss)]
fn rate(jobs: u64, took: Duration) -> f64 {
    jobs as f64 / took.as_secs_f64()
}

#[allow(clippy::cast_precision_loss)]
fn rate_us(jobs: u64, took_us: u64) -> f64 {
    jobs as f64 / (took_us.max(1) as f64 / 1e6)
}

/// Jobs per second while the worker was busy: first job started to last finished.
fn busy_rate(jobs: u64, report: &Report) -> f64 {
    rate_us(jobs, report.last_end_us.saturating_sub(report.first_start_us))
}

#[allow(clippy::cast_precision_loss)]
fn millis(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Three significant figures or so, for the printed line.
fn round(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                line.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, model)| model.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn rabbitmq_version() -> String {
    std::process::Command::new("rabbitmqctl")
        .arg("version")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}
