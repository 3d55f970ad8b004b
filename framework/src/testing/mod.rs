//! Testing handlers and producers without RabbitMQ, in plain `#[tokio::test]`s.
//!
//! - [`TestContext`] makes the [`JobContext`](crate::JobContext) to call
//!   `job.perform(&ctx).await` directly, with the state, job id and attempt
//!   of the test's choosing.
//! - [`InMemoryBroker`] stands in for RabbitMQ behind the same
//!   [`Client`](crate::Client) API: code that enqueues runs unchanged, and the
//!   test asserts on what it enqueued ([`InMemoryBroker::assert_enqueued`]).
//! - [`InMemoryBroker::drain`] runs the recorded jobs inline through the
//!   worker's own dispatch (registry lookup, decoding, timeout, panic
//!   catching, retries, dead letters), on a virtual clock so that no test
//!   waits out a backoff, and fails with the error of a job that failed for
//!   good.
//!
//! Jobs are encoded as on the wire and must decode again when enqueued, so
//! a job that cannot make the trip fails in a test, not in production.
//!
//! ```rust,standalone_crate
//! use warren::prelude::*;
//! use warren::testing::InMemoryBroker;
//!
//! #[derive(Debug, Serialize, Deserialize, Job)]
//! struct Welcome { user: u64 }
//!
//! impl Handler for Welcome {
//!     async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> { Ok(()) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = InMemoryBroker::new();
//! broker.client().enqueue(Welcome { user: 7 }).await?;
//! assert_eq!(broker.assert_enqueued_one::<Welcome>().user, 7);
//! broker.drain().await?;
//! assert!(broker.is_empty());
//! # Ok(()) }
//! ```
//!
//! The in-memory broker is not RabbitMQ: jobs run one at a time, in the
//! order they are due; there is no prefetch, no ack mode, no redelivery
//! after a crash, no queue prefix, and no connection to lose. The
//! integration tests of the `warren-tests` crate cover those on a real broker.

mod broker;
mod context;
mod drain;
#[cfg(test)]
mod tests;

pub use crate::client::memory::DeadLetter;
pub use crate::job::codec::DecodeError;
pub use broker::{EnqueuedJob, InMemoryBroker};
pub use context::TestContext;
pub use drain::{DrainError, Drained, Run, RunOutcome};
