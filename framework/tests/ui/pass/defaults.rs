//! A job with no `#[job(...)]` attribute: snake_case name, default queue, no options.

use warren::prelude::*;

#[derive(Debug, Serialize, Deserialize, Job)]
struct ResizeImage {
    path: String,
    width: u32,
}

impl Handler for ResizeImage {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {
    assert_eq!(ResizeImage::NAME, "resize_image");
    assert_eq!(ResizeImage::QUEUE, warren::DEFAULT_QUEUE);
    assert_eq!(ResizeImage::QUEUE, "default");
    assert_eq!(ResizeImage::OPTIONS, warren::JobOptions::new());
    assert_eq!(ResizeImage::OPTIONS.queue_type, warren::QueueType::Classic);
}
