//! The jobs, the handler-side probe and the payload shared by `warren-bench`,
//! its warren worker (`bench-worker`) and its raw lapin worker.
//!
//! Both workers run the same handler bodies and report through the same
//! [`Probe`], so the only difference between the two sides is what sits
//! between the socket and the handler.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use warren::prelude::*;

/// The queue of [`Noop`] jobs.
pub const NOOP_QUEUE: &str = "bench";
/// The queue of [`Spin`] jobs.
pub const CPU_QUEUE: &str = "bench-cpu";

/// Environment variable: how many jobs a worker runs before it reports.
pub const EXPECT_ENV: &str = "WARREN_BENCH_EXPECT";

/// The line prefix a worker prints on stdout once it ran the expected jobs.
pub const DONE_PREFIX: &str = "bench-done";

/// A job that does nothing but tell the probe it ran: the framework's own cost.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(name = "bench_noop", queue = "bench")]
pub struct Noop {
    /// Its place in the run.
    pub seq: u64,
    /// When it was enqueued, in microseconds since the epoch.
    pub sent_us: u64,
    /// Filler that makes the JSON body about 100 bytes.
    pub pad: String,
}

impl Noop {
    /// Job `seq`, stamped now.
    pub fn new(seq: u64) -> Self {
        Noop::padded(seq, 48)
    }

    /// Job `seq` with `pad` bytes of filler: a body of about `pad + 50` bytes.
    pub fn padded(seq: u64, pad: usize) -> Self {
        Noop {
            seq,
            sent_us: now_us(),
            pad: "x".repeat(pad),
        }
    }
}

impl Handler for Noop {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        let probe = Probe::global();
        probe.started(self.sent_us);
        probe.finished();
        Ok(())
    }
}

/// A CPU-bound job: `rounds` rounds of hashing.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(name = "bench_spin", queue = "bench-cpu")]
pub struct Spin {
    /// Its place in the run.
    pub seq: u64,
    /// When it was enqueued, in microseconds since the epoch.
    pub sent_us: u64,
    /// How much hashing it does.
    pub rounds: u32,
}

impl Handler for Spin {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        let probe = Probe::global();
        probe.started(self.sent_us);
        std::hint::black_box(spin(self.seq, self.rounds));
        probe.finished();
        Ok(())
    }
}

/// The CPU work of a [`Spin`] job: hashes its own output `rounds` times.
pub fn spin(seed: u64, rounds: u32) -> u64 {
    let mut value = seed;
    for round in 0..rounds {
        let mut hasher = DefaultHasher::new();
        (value, round).hash(&mut hasher);
        value = hasher.finish();
    }
    value
}

/// Microseconds since the epoch: comparable across the processes of one machine.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
}

/// What the handlers of one worker process record: enqueue-to-start latency
/// of every job, when the first started and the last finished. Once the
/// expected number of jobs ([`EXPECT_ENV`]) finished, it prints one
/// [`Report`] line on stdout.
///
/// Per job it costs a clock read, a short lock and an atomic add, the same
/// on both sides.
#[derive(Debug)]
pub struct Probe {
    expect: u64,
    finished: AtomicU64,
    first_start_us: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

impl Probe {
    /// The process's probe, expecting [`EXPECT_ENV`] jobs (never reports without it).
    pub fn global() -> &'static Probe {
        static PROBE: OnceLock<Probe> = OnceLock::new();
        PROBE.get_or_init(|| {
            let expect = std::env::var(EXPECT_ENV)
                .ok()
                .and_then(|expect| expect.parse().ok())
                .unwrap_or(u64::MAX);
            Probe {
                expect,
                finished: AtomicU64::new(0),
                first_start_us: AtomicU64::new(0),
                latencies_us: Mutex::new(Vec::with_capacity(usize::try_from(expect.min(1 << 20)).unwrap_or(0))),
            }
        })
    }

    /// A handler started a job enqueued at `sent_us`.
    pub fn started(&self, sent_us: u64) {
        let now = now_us();
        let _ = self
            .first_start_us
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.latencies_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(now.saturating_sub(sent_us));
    }

    /// A handler finished a job; the last expected one prints the report.
    pub fn finished(&self) {
        if self.finished.fetch_add(1, Ordering::AcqRel) + 1 != self.expect {
            return;
        }
        let last_end_us = now_us();
        let mut latencies = std::mem::take(&mut *self.latencies_us.lock().unwrap_or_else(PoisonError::into_inner));
        latencies.sort_unstable();
        let report = Report {
            first_start_us: self.first_start_us.load(Ordering::Relaxed),
            last_end_us,
            p50_us: percentile(&latencies, 50.0),
            p99_us: percentile(&latencies, 99.0),
        };
        let mut stdout = std::io::stdout().lock();
        // The bench reads this line; if stdout is gone the bench is too.
        let _ = writeln!(stdout, "{}", report.line());
        let _ = stdout.flush();
    }
}

/// The `p`th percentile of sorted values (nearest rank); 0 when empty.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Ranks fit in f64 exactly far beyond any run's size.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What a worker process reports once it ran the expected jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// When the first job started (µs since the epoch).
    pub first_start_us: u64,
    /// When the last job finished (µs since the epoch).
    pub last_end_us: u64,
    /// Median enqueue-to-start latency (µs).
    pub p50_us: u64,
    /// 99th percentile enqueue-to-start latency (µs).
    pub p99_us: u64,
}

impl Report {
    /// The line a worker prints.
    pub fn line(&self) -> String {
        format!(
            "{DONE_PREFIX} {} {} {} {}",
            self.first_start_us, self.last_end_us, self.p50_us, self.p99_us
        )
    }

    /// Reads a worker's line back.
    pub fn parse(line: &str) -> Option<Report> {
        let mut fields = line
            .strip_prefix(DONE_PREFIX)?
            .split_whitespace()
            .map(str::parse::<u64>);
        let mut next = || fields.next()?.ok();
        Some(Report {
            first_start_us: next()?,
            last_end_us: next()?,
            p50_us: next()?,
            p99_us: next()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noop_body_is_about_100_bytes() {
        let body = serde_json::to_vec(&Noop::new(25_000)).unwrap();
        assert!((90..=110).contains(&body.len()), "{} bytes", body.len());
    }

    #[test]
    fn a_report_reads_back() {
        let report = Report {
            first_start_us: 1,
            last_end_us: 2,
            p50_us: 3,
            p99_us: 4,
        };
        assert_eq!(Report::parse(&report.line()), Some(report));
        assert_eq!(Report::parse("something else"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
