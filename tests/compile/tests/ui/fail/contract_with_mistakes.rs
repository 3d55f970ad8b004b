// A contract with mistakes in its attribute reports only them: its
// `handler!` does not add "not a contract" to the list.
use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(contract, queue = "amq.images", retries = "5")]
struct ResizeImage {
    path: String,
}

async fn resize_image(_job: ResizeImage, _ctx: &JobContext) -> Result<(), JobError> {
    Ok(())
}

warren::handler!(ResizeImage => resize_image);

fn main() {}
