//! The expansion passes the lints this workspace holds its own code to, so a
//! crate with the same settings can derive `Job`.

#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms,
    unused_qualifications
)]
#![deny(clippy::all)]

use warren::prelude::*;

/// Resizes an image.
#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "images", timeout = "30s", retries = 3, format = "json", queue_default)]
pub struct ResizeImage {
    /// Where the image is.
    pub path: String,
}

impl Handler for ResizeImage {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

/// Sends an email; declared as a contract, its handler bound below.
#[derive(Debug, Serialize, Deserialize, Job)]
#[job(contract, queue = "emails")]
pub struct SendEmail {
    /// To whom.
    pub to: String,
}

async fn send_email(_job: SendEmail, _ctx: &JobContext) -> Result<(), JobError> {
    Ok(())
}

warren::handler!(SendEmail => send_email);

fn main() {
    assert_eq!(ResizeImage::NAME, "resize_image");
    assert_eq!(SendEmail::NAME, "send_email");
}
