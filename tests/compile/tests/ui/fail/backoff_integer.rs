use warren::prelude::*;

#[derive(Debug, Serialize, Deserialize, Job)]
#[job(backoff = 10)]
struct Charge;

impl Handler for Charge {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
