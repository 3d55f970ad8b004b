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

fn main() {
    assert_eq!(ResizeImage::NAME, "resize_image");
}
