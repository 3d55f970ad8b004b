//! A [`JobContext`] for calling a handler directly.

use std::sync::Arc;

use crate::testing::InMemoryBroker;
use crate::{Client, DEFAULT_QUEUE, Job, JobContext, JobId, State};

/// Builds the [`JobContext`] a test passes to `job.perform(&ctx).await`.
///
/// Start from [`InMemoryBroker::context`], which gives the context the
/// broker's client (so follow-up jobs land in the broker) and its state, or
/// from [`TestContext::new`], which has a broker of its own.
///
/// ```
/// use warren::prelude::*;
/// use warren::testing::InMemoryBroker;
///
/// struct Greeting(&'static str);
///
/// #[derive(Debug, Serialize, Deserialize, Job)]
/// struct Greet;
///
/// impl Handler for Greet {
///     async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
///         let Greeting(text) = ctx.state()?;
///         println!("{text} (attempt {})", ctx.attempt());
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), JobError> {
/// let broker = InMemoryBroker::new().with_state(State::new().with(Greeting("hello")));
/// let ctx = broker.context::<Greet>().attempt(2).build();
/// Greet.perform(&ctx).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TestContext {
    id: JobId,
    name: &'static str,
    queue: String,
    attempt: u32,
    redelivered: bool,
    worker: String,
    client: Client,
    state: State,
}

impl TestContext {
    /// A context for a job named `test_job` on the default queue, first
    /// attempt, a fresh id, no state, and the client of a new
    /// [`InMemoryBroker`] that nothing else can see: to look at the jobs a
    /// handler enqueues, take the context from
    /// [`InMemoryBroker::context`] instead, or pass `.client(broker.client())`.
    pub fn new() -> Self {
        TestContext::with_client(InMemoryBroker::new().client(), State::new())
    }

    pub(crate) fn with_client(client: Client, state: State) -> Self {
        TestContext {
            id: JobId::new(),
            name: "test_job",
            queue: DEFAULT_QUEUE.to_owned(),
            attempt: 1,
            redelivered: false,
            worker: "test.1".to_owned(),
            client,
            state,
        }
    }

    /// The name and queue of job type `J`.
    pub fn job<J: Job>(mut self) -> Self {
        self.name = J::NAME;
        self.queue = J::QUEUE.to_owned();
        self
    }

    /// The job id the handler sees.
    pub fn job_id(mut self, id: JobId) -> Self {
        self.id = id;
        self
    }

    /// Which attempt this is, from 1 (to test what a handler does on a retry).
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt.max(1);
        self
    }

    /// Whether the delivery is marked redelivered.
    pub fn redelivered(mut self, redelivered: bool) -> Self {
        self.redelivered = redelivered;
        self
    }

    /// The state the handler reaches with [`JobContext::state`].
    pub fn with_state(mut self, state: State) -> Self {
        self.state = state;
        self
    }

    /// The client for follow-up jobs, e.g. another broker's
    /// ([`InMemoryBroker::client`]).
    pub fn client(mut self, client: Client) -> Self {
        self.client = client;
        self
    }

    /// The context to pass to `perform`.
    pub fn build(&self) -> JobContext {
        JobContext::new(
            self.id,
            self.name,
            Arc::from(self.queue.as_str()),
            self.attempt,
            self.redelivered,
            Arc::from(self.worker.as_str()),
            self.client.clone(),
            self.state.clone(),
        )
    }
}

impl Default for TestContext {
    fn default() -> Self {
        Self::new()
    }
}
