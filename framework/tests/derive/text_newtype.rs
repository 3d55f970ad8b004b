//! A plain-text job: a newtype around `String` that takes the untyped
//! messages of its queue, as sent by producers that are not warren.

use warren::BodyFormat;
use warren::prelude::*;

#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "log-lines", format = "text", queue_default)]
struct Task(String);

impl Handler for Task {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

#[test]
fn a_text_newtype_takes_its_queues_untyped_messages() {
    assert_eq!(Task::NAME, "task");
    assert_eq!(Task::QUEUE, "log-lines");
    assert_eq!(Task::OPTIONS.format, BodyFormat::Text);
    const { assert!(Task::OPTIONS.queue_default) };
    assert_eq!(Task::OPTIONS.timeout, None);
    assert_eq!(Task::OPTIONS.retries, None);
}
