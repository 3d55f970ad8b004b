use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(contract)]
struct ResizeImage {
    path: String,
}

// Takes the context by value.
async fn resize_image(_job: ResizeImage, _ctx: JobContext) -> Result<(), JobError> {
    Ok(())
}

warren::handler!(ResizeImage => resize_image);

#[derive(Serialize, Deserialize, Job)]
#[job(contract)]
struct SendEmail {
    to: String,
}

// Returns no `Result`.
async fn send_email(_job: SendEmail, _ctx: &JobContext) {}

warren::handler!(SendEmail => send_email);

fn main() {}
