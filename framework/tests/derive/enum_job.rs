//! An enum job: one name and queue for all its variants.

use std::time::Duration;

use warren::prelude::*;

#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "billing", timeout = "2m")]
enum Invoice {
    Issue { customer: u64 },
    Void(u64),
    Remind,
}

impl Handler for Invoice {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        match self {
            Invoice::Issue { .. } | Invoice::Void(_) | Invoice::Remind => Ok(()),
        }
    }
}

#[test]
fn an_enum_has_one_name_and_queue_for_all_its_variants() {
    assert_eq!(Invoice::NAME, "invoice");
    assert_eq!(Invoice::QUEUE, "billing");
    assert_eq!(Invoice::OPTIONS.timeout, Some(Duration::from_secs(120)));
}
