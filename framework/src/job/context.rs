//! What a running job knows about itself.

use std::sync::Arc;

use crate::{Client, JobId, MissingState, State};

/// Passed to [`Handler::perform`](crate::Handler::perform): which job and
/// attempt this is, the worker's shared [`State`], and a client for
/// enqueueing follow-up jobs.
///
/// Tests make one with [`testing::TestContext`](crate::testing::TestContext).
#[derive(Debug, Clone)]
pub struct JobContext {
    id: JobId,
    name: &'static str,
    queue: Arc<str>,
    attempt: u32,
    redelivered: bool,
    worker: Arc<str>,
    client: Client,
    state: State,
}

impl JobContext {
    #[allow(
        clippy::too_many_arguments,
        reason = "one per field, called from two places (dispatch and testing)"
    )]
    pub(crate) fn new(
        id: JobId,
        name: &'static str,
        queue: Arc<str>,
        attempt: u32,
        redelivered: bool,
        worker: Arc<str>,
        client: Client,
        state: State,
    ) -> Self {
        JobContext {
            id,
            name,
            queue,
            attempt,
            redelivered,
            worker,
            client,
            state,
        }
    }

    /// The job's id, the same on every attempt.
    pub fn job_id(&self) -> JobId {
        self.id
    }

    /// The job's wire name.
    pub fn job_name(&self) -> &'static str {
        self.name
    }

    /// The queue the job was consumed from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Which attempt this is, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether RabbitMQ delivered this message before (to a worker that did
    /// not acknowledge it, e.g. because it died): the job may have run
    /// partly already.
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// The id of the worker running the job (`<name>.<n>`).
    pub fn worker_id(&self) -> &str {
        &self.worker
    }

    /// A client for enqueueing follow-up jobs.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The worker's shared value of type `T` (a database pool, a
    /// configuration), from the [`State`] its setup hook built.
    ///
    /// A worker without one fails the attempt with an error naming `T`:
    ///
    /// ```
    /// # use warren::prelude::*;
    /// struct Db;
    /// # #[derive(Debug, Serialize, Deserialize, Job)] struct Archive;
    /// impl Handler for Archive {
    ///     async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
    ///         let db: &Db = ctx.state()?;
    ///         # let _ = db;
    ///         Ok(())
    ///     }
    /// }
    /// ```
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, MissingState> {
        self.state.require()
    }

    /// All of the worker's shared state.
    pub fn shared_state(&self) -> &State {
        &self.state
    }
}
