use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(queue = "events", queue_type = "stream")]
struct Record {
    seq: u64,
}

impl Handler for Record {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
