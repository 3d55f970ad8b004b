//! Every key of `#[job(...)]`, spread over two attributes.

use std::time::Duration;

use warren::prelude::*;
use warren::{BodyFormat, JobOptions, QueueType};

#[derive(Debug, Serialize, Deserialize, Job)]
#[job(name = "images.resize:v2", queue = "images-high_priority", retries = 5)]
#[job(timeout = "1h 30m 250ms", format = "json", queue_default, queue_type = "quorum")]
struct ResizeImage {
    path: String,
}

impl Handler for ResizeImage {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[test]
fn every_key_spread_over_two_attributes_is_taken() {
    assert_eq!(ResizeImage::NAME, "images.resize:v2");
    assert_eq!(ResizeImage::QUEUE, "images-high_priority");
    let expected = JobOptions::new()
        .with_timeout(Duration::from_millis(5_400_250))
        .with_retries(5)
        .with_format(BodyFormat::Json)
        .with_queue_default()
        .with_queue_type(QueueType::Quorum);
    assert_eq!(ResizeImage::OPTIONS, expected);
}
