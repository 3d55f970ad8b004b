use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(retries = 5_000_000_000)]
struct ResizeImage {
    path: String,
}

impl Handler for ResizeImage {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
