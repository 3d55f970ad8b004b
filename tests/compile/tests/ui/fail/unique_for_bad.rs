use warren::prelude::*;

// Too short to be a lock, not a duration, and not a string.
#[derive(Serialize, Deserialize, Job)]
#[job(queue = "a", unique_for = "10ms")]
struct Blink;

#[derive(Serialize, Deserialize, Job)]
#[job(queue = "b", unique_for = "ten minutes")]
struct Vague;

#[derive(Serialize, Deserialize, Job)]
#[job(queue = "c", unique_for = 600)]
struct Bare;

impl Handler for Blink {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

impl Handler for Vague {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

impl Handler for Bare {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
