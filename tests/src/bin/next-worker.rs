//! A worker binary of a newer version of the test jobs: everything the
//! `test-worker` runs, plus `coming_soon`, which the old one does not know.
//! The rolling-deploy tests run the two side by side.

#[path = "../jobs.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "job fields are read only by the tests that enqueue them"
)]
mod jobs;

use warren::prelude::*;

/// Prints `ran coming_soon seq=<n>`.
#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "work")]
struct ComingSoon {
    seq: u32,
}

impl Handler for ComingSoon {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        println!("ran coming_soon seq={}", self.seq);
        Ok(())
    }
}

warren::main!();
