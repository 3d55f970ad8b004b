//! A job declared inside a function body is still registered with the binary.

use warren::Registry;
use warren::prelude::*;

#[test]
fn a_job_declared_in_a_function_body_is_registered() {
    #[derive(Debug, Serialize, Deserialize, Job)]
    #[job(queue = "local")]
    struct LocalJob {
        id: u64,
    }

    impl Handler for LocalJob {
        async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }

    assert_eq!(LocalJob::NAME, "local_job");
    let registry = Registry::from_inventory().expect("no conflicts");
    let registration = registry.get("local_job").expect("LocalJob is registered");
    assert_eq!(registration.queue, "local");
    assert!(
        registration.type_name.ends_with("::LocalJob"),
        "{}",
        registration.type_name
    );
    assert!(registry.queues().contains(&"local"), "{:?}", registry.queues());
}
