use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
struct ResizeImage {
    path: String,
}

impl Handler for ResizeImage {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

async fn resize_image(_job: ResizeImage, _ctx: &JobContext) -> Result<(), JobError> {
    Ok(())
}

warren::handler!(ResizeImage => resize_image);

fn main() {}
