//! The jobs the integration tests run. Included (`#[path]`) by the
//! `test-worker` binary, which runs them, and by the tests, which enqueue them.

use std::time::Duration;

use warren::prelude::*;

/// Prints `ran seq=<n> worker=<id>` when it starts and `done seq=<n>` when
/// it ends, after sleeping `sleep_ms`.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work")]
pub struct Record {
    pub seq: u32,
    pub sleep_ms: u64,
}

impl Handler for Record {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!(
            "ran seq={} worker={} attempt={}",
            self.seq,
            ctx.worker_id(),
            ctx.attempt()
        );
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        println!("done seq={} worker={}", self.seq, ctx.worker_id());
        Ok(())
    }
}

/// Always fails with its message.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work")]
pub struct Fail {
    pub message: String,
}

impl Handler for Fail {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Err(JobError::msg(self.message))
    }
}

/// Always panics with its message.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work")]
pub struct Panic {
    pub message: String,
}

impl Handler for Panic {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        panic!("{}", self.message)
    }
}

/// Runs past its one-second timeout.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "work", timeout = "1s")]
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
