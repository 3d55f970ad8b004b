use warren::prelude::*;

// Zero, out of a u8, and on a quorum queue: each is refused where written.
#[derive(Serialize, Deserialize, Job)]
#[job(queue = "a", max_priority = 0)]
struct Zero;

#[derive(Serialize, Deserialize, Job)]
#[job(queue = "b", max_priority = 300)]
struct TooHigh;

#[derive(Serialize, Deserialize, Job)]
#[job(queue = "c", queue_type = "quorum", max_priority = 5)]
struct OnQuorum;

#[derive(Serialize, Deserialize, Job)]
#[job(queue = "d", max_priority = "high")]
struct NotANumber;

impl Handler for Zero {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

impl Handler for TooHigh {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

impl Handler for OnQuorum {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

impl Handler for NotANumber {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
