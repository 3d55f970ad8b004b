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

/// The scheduling keys: a periodic, unique job on a queue that takes priorities.
#[derive(Debug, Default, Serialize, Deserialize, Job)]
#[job(queue = "reports", max_priority = 10, priority = 3)]
#[job(unique_for = "1h", cron = "0 0 3 * * *", timezone = "Europe/Paris")]
struct NightlyReport;

impl Handler for NightlyReport {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[test]
fn the_scheduling_keys_are_taken() {
    let expected = JobOptions::new()
        .with_priority(3)
        .with_max_priority(10)
        .with_unique_for(Duration::from_secs(3600))
        .with_cron("0 0 3 * * *")
        .with_timezone("Europe/Paris");
    assert_eq!(NightlyReport::OPTIONS, expected);
}
