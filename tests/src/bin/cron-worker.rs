//! A worker binary with one periodic job, every second, for the scheduler's
//! tests: a binary of its own, so that the other tests' workers do not
//! stand for election.

use warren::prelude::*;

/// Prints `tick id=<job id>` each second.
#[derive(Debug, Default, Serialize, Deserialize, Job)]
#[job(queue = "ticks", cron = "* * * * * *", timezone = "Europe/Paris")]
struct Tick;

impl Handler for Tick {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!("tick id={}", ctx.job_id());
        Ok(())
    }
}

warren::main!();
