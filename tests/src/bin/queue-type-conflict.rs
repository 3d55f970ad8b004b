//! A worker binary with two jobs on one queue, one classic and one quorum,
//! which must refuse to start: RabbitMQ would refuse one of the two
//! declarations.

mod ledger {
    use warren::prelude::*;

    #[derive(Debug, Serialize, Deserialize, Job)]
    #[job(queue = "ledger")]
    pub(crate) struct Post;

    impl Handler for Post {
        async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }

    #[derive(Debug, Serialize, Deserialize, Job)]
    #[job(queue = "ledger", queue_type = "quorum")]
    pub(crate) struct Settle;

    impl Handler for Settle {
        async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }
}

warren::main!();
