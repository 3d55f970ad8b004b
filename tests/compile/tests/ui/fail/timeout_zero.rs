use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(timeout = "500us")]
struct ResizeImage {
    path: String,
}

impl Handler for ResizeImage {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
