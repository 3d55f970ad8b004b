use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(queue = "payments", queue_type = "quorom")]
struct Charge {
    cents: u64,
}

impl Handler for Charge {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
