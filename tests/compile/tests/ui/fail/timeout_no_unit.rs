use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(timeout = "30")]
struct ResizeImage {
    path: String,
}

impl Handler for ResizeImage {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
