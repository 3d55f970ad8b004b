use warren::prelude::*;

#[derive(Debug, Serialize, Deserialize, Job)]
#[job(retries = 5, backoff = "0s")]
struct Charge;

impl Handler for Charge {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
