//! The jobs the integration tests run. Included (`#[path]`) by the
//! `test-worker` binary, which runs them, and by the tests, which enqueue them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warren::prelude::*;

/// Milliseconds since the epoch, for lines that tests time.
fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Prints `ran seq=<n> worker=<id> attempt=<a> at_ms=<t>` when it starts
/// and `done seq=<n>` when it ends, after sleeping `sleep_ms`.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work")]
pub struct Record {
    pub seq: u32,
    pub sleep_ms: u64,
}

impl Handler for Record {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!(
            "ran seq={} worker={} attempt={} at_ms={}",
            self.seq,
            ctx.worker_id(),
            ctx.attempt(),
            now_ms()
        );
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        println!("done seq={} worker={}", self.seq, ctx.worker_id());
        Ok(())
    }
}

/// Always fails with its message, and is never retried.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work", retries = 0)]
pub struct Fail {
    pub message: String,
}

impl Handler for Fail {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Err(JobError::msg(self.message))
    }
}

/// Always panics with its message, and is never retried.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work", retries = 0)]
pub struct Panic {
    pub message: String,
}

impl Handler for Panic {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        panic!("{}", self.message)
    }
}

/// Runs past its one-second timeout, and is never retried.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work", timeout = "1s", retries = 0)]
pub struct Hang;

impl Handler for Hang {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    }
}

/// Enqueues a [`Record`] from inside a job, through the context's client.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work")]
pub struct FollowUp {
    pub seq: u32,
}

impl Handler for FollowUp {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        ctx.client()
            .enqueue(Record {
                seq: self.seq,
                sleep_ms: 0,
            })
            .await?;
        Ok(())
    }
}

/// The default job of queue `plain`: any plain-text message without a
/// `type`, as the RabbitMQ tutorial's producer sends it.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "plain", format = "text", queue_default)]
pub struct Plain(pub String);

impl Handler for Plain {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!("plain body={} worker={}", self.0, ctx.worker_id());
        Ok(())
    }
}

/// Blocks its thread for `ms` (as CPU-bound work would), printing
/// `ran seq=<n> worker=<id>` before and `done seq=<n> …` after.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work")]
pub struct Block {
    pub seq: u32,
    pub ms: u64,
}

impl Handler for Block {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!(
            "ran seq={} worker={} attempt={}",
            self.seq,
            ctx.worker_id(),
            ctx.attempt()
        );
        std::thread::sleep(Duration::from_millis(self.ms));
        println!("done seq={} worker={}", self.seq, ctx.worker_id());
        Ok(())
    }
}

/// Fails its first `failures` attempts, then succeeds; prints
/// `attempt seq=<n> attempt=<a> at_ms=<t>` on every attempt.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work", retries = 3, backoff = "1s")]
pub struct Flaky {
    pub seq: u32,
    pub failures: u32,
}

impl Handler for Flaky {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!("attempt seq={} attempt={} at_ms={}", self.seq, ctx.attempt(), now_ms());
        if ctx.attempt() <= self.failures {
            return Err(JobError::msg(format!("flaked on attempt {}", ctx.attempt())));
        }
        println!("done seq={}", self.seq);
        Ok(())
    }
}

/// Fails every attempt, with two retries 300 ms apart (then 600 ms).
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work", retries = 2, backoff = "300ms")]
pub struct AlwaysFail {
    pub seq: u32,
}

impl Handler for AlwaysFail {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!("attempt seq={} attempt={} at_ms={}", self.seq, ctx.attempt(), now_ms());
        Err(JobError::msg(format!(
            "payment service down (attempt {})",
            ctx.attempt()
        )))
    }
}

/// Says its input is bad: rejected, never retried.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work", retries = 5)]
pub struct Reject {
    pub seq: u32,
}

impl Handler for Reject {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!("attempt seq={} attempt={} at_ms={}", self.seq, ctx.attempt(), now_ms());
        Err(JobError::reject("no such customer"))
    }
}

/// Asks to be retried after `wait_ms` on its first attempt (as a rate limit
/// would), then succeeds.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work")]
pub struct RateLimited {
    pub seq: u32,
    pub wait_ms: u64,
}

impl Handler for RateLimited {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!("attempt seq={} attempt={} at_ms={}", self.seq, ctx.attempt(), now_ms());
        if ctx.attempt() == 1 {
            return Err(JobError::retry_after(
                Duration::from_millis(self.wait_ms),
                "429 Too Many Requests",
            ));
        }
        println!("done seq={}", self.seq);
        Ok(())
    }
}

/// Waits until the file `gate` exists (at most a minute), then fails; one
/// retry, 200 ms later. A test opens the gate once what it wants to happen
/// during the attempt has happened, so that the order does not depend on
/// how fast the machine is.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work", retries = 1, backoff = "200ms")]
pub struct GatedFail {
    pub seq: u32,
    pub gate: String,
}

impl Handler for GatedFail {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!("attempt seq={} attempt={} at_ms={}", self.seq, ctx.attempt(), now_ms());
        let opened = async {
            while !std::path::Path::new(&self.gate).exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(60), opened).await;
        Err(JobError::msg("still failing"))
    }
}

/// Prints `quorum seq=<n> worker=<id> attempt=<a>`. On a quorum queue of its
/// own, so that the classic `work` queue of the other tests stays as it is.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "quorum-work", queue_type = "quorum")]
pub struct QuorumRecord {
    pub seq: u32,
}

impl Handler for QuorumRecord {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!(
            "quorum seq={} worker={} attempt={}",
            self.seq,
            ctx.worker_id(),
            ctx.attempt()
        );
        Ok(())
    }
}

/// Prints `ranked seq=<n>` when it starts; with a `gate`, then waits until
/// that file exists (at most a minute). On a queue of its own that takes
/// priorities up to 10, so that the other queues stay argument-free.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "ranked", max_priority = 10, retries = 0)]
pub struct Ranked {
    pub seq: u32,
    pub gate: Option<String>,
}

impl Handler for Ranked {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        println!("ranked seq={}", self.seq);
        if let Some(gate) = self.gate {
            let opened = async {
                while !std::path::Path::new(&gate).exists() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(60), opened).await;
        }
        Ok(())
    }
}

/// A job of the `ranked` queue that is urgent unless the enqueue says
/// otherwise (`#[job(priority = 9)]`); prints `escalated seq=<n>`.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "ranked", max_priority = 10, priority = 9, retries = 0)]
pub struct Escalated {
    pub seq: u32,
}

impl Handler for Escalated {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        println!("ranked seq={}", self.seq);
        Ok(())
    }
}

/// Prints `unique seq=<n>`. Unique per key for a minute, on a queue of its
/// own.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "unique", unique_for = "1m", retries = 0)]
pub struct Once {
    pub seq: u32,
}

impl Handler for Once {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        println!("unique seq={}", self.seq);
        Ok(())
    }
}

/// Prints `gated unique seq=<n> run=<r>`, counting its runs `r` by the
/// files `<dir>/run-<r>` it leaves, then waits until `<dir>/open-<r>`
/// exists (at most a minute) and fails for good. A test opens each run's
/// gate once what it wants to happen during that run has happened. Unique
/// per key for a minute, on the `unique` queue.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "unique", unique_for = "1m", retries = 0)]
pub struct GatedUnique {
    pub seq: u32,
    pub dir: String,
}

impl Handler for GatedUnique {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        let dir = std::path::Path::new(&self.dir);
        let run = (0..).find(|run| !dir.join(format!("run-{run}")).exists()).unwrap_or(0);
        std::fs::write(dir.join(format!("run-{run}")), b"").map_err(JobError::msg)?;
        println!("gated unique seq={} run={run}", self.seq);
        let gate = dir.join(format!("open-{run}"));
        let opened = async {
            while !gate.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(60), opened).await;
        Err(JobError::msg("still failing"))
    }
}

/// A job allowed to run for an hour, past RabbitMQ's default 30-minute
/// consumer timeout, on a queue of its own.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "long", timeout = "1h")]
pub struct Export;

impl Handler for Export {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

/// The job of the cluster tests, on a quorum queue of its own: prints
/// `ran seq=<n> worker=<id> attempt=<a> at_ms=<t>`, then fails its first
/// attempt when `fail_first` (retried 200 ms later) or prints `done seq=<n>`.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "cluster-work", queue_type = "quorum", retries = 2, backoff = "200ms")]
pub struct ClusterRecord {
    pub seq: u32,
    pub fail_first: bool,
}

impl Handler for ClusterRecord {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!(
            "ran seq={} worker={} attempt={} at_ms={}",
            self.seq,
            ctx.worker_id(),
            ctx.attempt(),
            now_ms()
        );
        if self.fail_first && ctx.attempt() == 1 {
            return Err(JobError::msg("fails once"));
        }
        println!("done seq={} worker={}", self.seq, ctx.worker_id());
        Ok(())
    }
}
