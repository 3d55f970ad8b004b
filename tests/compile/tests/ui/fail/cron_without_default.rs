use warren::prelude::*;

// A periodic job is enqueued with its Default value: it needs one.
#[derive(Serialize, Deserialize, Job)]
#[job(queue = "reports", cron = "0 0 3 * * *")]
struct Report {
    day: u32,
}

impl Handler for Report {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
