//! A job with no `#[job(...)]` attribute: snake_case name, default queue, no options.

use warren::prelude::*;

#[derive(Debug, Serialize, Deserialize, Job)]
struct GenerateThumbnail {
    path: String,
    width: u32,
}

impl Handler for GenerateThumbnail {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[test]
fn a_job_without_attributes_gets_its_name_from_the_type_and_the_default_queue() {
    assert_eq!(GenerateThumbnail::NAME, "generate_thumbnail");
    assert_eq!(GenerateThumbnail::QUEUE, warren::DEFAULT_QUEUE);
    assert_eq!(GenerateThumbnail::QUEUE, "default");
    assert_eq!(GenerateThumbnail::OPTIONS, warren::JobOptions::new());
    assert_eq!(GenerateThumbnail::OPTIONS.queue_type, warren::QueueType::Classic);
}
