//! The in-memory broker: records what clients enqueue, for assertions.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use lapin::BasicProperties;

use crate::amqp::message;
use crate::client::memory::{Memory, Message};
use crate::job::codec::{self, DecodeError};
use crate::observe::{Hook, Hooks};
use crate::testing::{DeadLetter, TestContext};
use crate::{Client, Job, JobId, Registry, State};

/// Stands in for RabbitMQ in tests: a [`Client`] whose enqueues are
/// recorded here, typed assertions on them, and [`drain`](Self::drain) to
/// run them inline.
///
/// Clones share the recorded jobs. Queue names are the jobs' own (the
/// in-memory client has no queue prefix).
///
/// ```
/// use std::time::Duration;
/// use warren::prelude::*;
/// use warren::testing::InMemoryBroker;
///
/// #[derive(Debug, Serialize, Deserialize, Job)]
/// #[job(queue = "emails")]
/// struct SendEmail { to: String }
/// # impl Handler for SendEmail {
/// #     async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> { Ok(()) }
/// # }
///
/// // The code under test takes a `Client`, as in production.
/// async fn sign_up(client: &Client, email: &str) -> Result<(), Box<dyn std::error::Error>> {
///     client.enqueue_in(Duration::from_secs(60), SendEmail { to: email.into() }).await?;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let broker = InMemoryBroker::new();
/// sign_up(&broker.client(), "ada@example.com").await?;
///
/// let emails = broker.assert_enqueued::<SendEmail>(1);
/// assert_eq!(emails[0].to, "ada@example.com");
/// assert_eq!(broker.count_in("emails"), 1);
/// assert_eq!(broker.enqueued_jobs()[0].due_in, Duration::from_secs(60));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct InMemoryBroker {
    pub(crate) memory: Arc<Memory>,
    pub(crate) client: Client,
    pub(crate) state: State,
    pub(crate) registry: Option<Registry>,
    pub(crate) max_steps: usize,
    hooks: Hooks,
}

impl InMemoryBroker {
    /// How many attempts one [`drain`](Self::drain) runs at most, unless
    /// [`with_max_steps`](Self::with_max_steps) says otherwise.
    pub const DEFAULT_MAX_STEPS: usize = 10_000;

    /// An empty broker, with no state, draining through every job linked
    /// into the test binary ([`Registry::from_inventory`]).
    pub fn new() -> Self {
        let memory = Arc::new(Memory::default());
        InMemoryBroker {
            client: Client::in_memory(Arc::clone(&memory), Hooks::default()),
            memory,
            state: State::new(),
            registry: None,
            max_steps: Self::DEFAULT_MAX_STEPS,
            hooks: Hooks::default(),
        }
    }

    /// Calls `hook` around this broker's enqueues and the attempts its
    /// drains run, as a client and a worker would (see
    /// [`observe`](crate::observe)): to test a hook without RabbitMQ. Clients
    /// taken before this call do not call it.
    pub fn with_hook(mut self, hook: impl Hook) -> Self {
        self.hooks = self.hooks.with(hook);
        self.client = Client::in_memory(Arc::clone(&self.memory), self.hooks.clone());
        self
    }

    /// The state handlers get, when drained or called through
    /// [`context`](Self::context).
    pub fn with_state(mut self, state: State) -> Self {
        self.state = state;
        self
    }

    /// Drains through these jobs only, rather than every job linked into
    /// the test binary; a job missing from it ends in the dead letters as
    /// an unknown job. [`Registry::builder`] makes one from job types:
    /// `Registry::builder().job::<SignUp>().build()?`.
    pub fn with_registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Stops a drain after this many attempts (default
    /// [`DEFAULT_MAX_STEPS`](Self::DEFAULT_MAX_STEPS)), so that jobs that
    /// keep enqueueing each other fail the test instead of hanging it.
    pub fn with_max_steps(mut self, max_steps: usize) -> Self {
        self.max_steps = max_steps;
        self
    }

    /// A client that records its enqueues in this broker. It has the API of
    /// a connected one; its `close` does nothing.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The state given to [`with_state`](Self::with_state).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// A [`TestContext`] for job type `J`, with this broker's client and state.
    pub fn context<J: Job>(&self) -> TestContext {
        TestContext::with_client(self.client(), self.state.clone()).job::<J>()
    }

    /// Every job enqueued and not yet drained, in the order enqueued.
    pub fn enqueued_jobs(&self) -> Vec<EnqueuedJob> {
        let store = self.memory.lock();
        let now = store.now;
        store
            .pending
            .iter()
            .map(|message| EnqueuedJob::of(message, now))
            .collect()
    }

    /// The jobs of type `J` enqueued and not yet drained, decoded, in the
    /// order enqueued.
    ///
    /// # Panics
    ///
    /// If one does not decode as `J` (which the client checks when it
    /// enqueues, so only a job published under `J`'s name by other means).
    #[track_caller]
    pub fn enqueued<J: Job>(&self) -> Vec<J> {
        self.enqueued_jobs()
            .iter()
            .filter(|job| job.name == J::NAME)
            .map(|job| match job.decode::<J>() {
                Ok(decoded) => decoded,
                Err(error) => panic!("recorded job {job} does not decode: {error}"),
            })
            .collect()
    }

    /// How many jobs of type `J` are enqueued and not yet drained.
    pub fn count<J: Job>(&self) -> usize {
        self.memory
            .lock()
            .pending
            .iter()
            .filter(|message| message::job_name(&message.properties) == Some(J::NAME))
            .count()
    }

    /// How many jobs are enqueued on `queue` (as jobs name it) and not yet drained.
    pub fn count_in(&self, queue: &str) -> usize {
        self.memory
            .lock()
            .pending
            .iter()
            .filter(|message| message.queue == queue)
            .count()
    }

    /// How many jobs are enqueued and not yet drained.
    pub fn len(&self) -> usize {
        self.memory.lock().pending.len()
    }

    /// Whether no job is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asserts that exactly `expected` jobs of type `J` are enqueued, and
    /// returns them decoded. The failure message lists what is enqueued.
    #[track_caller]
    pub fn assert_enqueued<J: Job>(&self, expected: usize) -> Vec<J> {
        let found = self.count::<J>();
        if found != expected {
            panic!(
                "expected {expected} `{}` job(s) enqueued, found {found}; {}",
                J::NAME,
                self.listing()
            );
        }
        self.enqueued()
    }

    /// Asserts that exactly one job of type `J` is enqueued, and returns it.
    #[track_caller]
    pub fn assert_enqueued_one<J: Job>(&self) -> J {
        let mut jobs = self.assert_enqueued::<J>(1);
        match jobs.pop() {
            Some(job) => job,
            None => panic!("expected one `{}` job enqueued; {}", J::NAME, self.listing()),
        }
    }

    /// Asserts that `queue` holds exactly `expected` jobs.
    #[track_caller]
    pub fn assert_queue_len(&self, queue: &str, expected: usize) {
        let found = self.count_in(queue);
        if found != expected {
            panic!(
                "expected {expected} job(s) on queue `{queue}`, found {found}; {}",
                self.listing()
            );
        }
    }

    /// Asserts that no job is waiting.
    #[track_caller]
    pub fn assert_empty(&self) {
        if !self.is_empty() {
            panic!("expected no jobs enqueued; {}", self.listing());
        }
    }

    /// The jobs that failed for good in drains so far, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.memory.lock().dead.clone()
    }

    /// How far the virtual clock has moved: the backoffs and delays drains
    /// skipped instead of waiting.
    pub fn elapsed(&self) -> Duration {
        self.memory.lock().now
    }

    /// Forgets every enqueued job and dead letter (the clock keeps its time).
    pub fn clear(&self) {
        let mut store = self.memory.lock();
        store.pending.clear();
        store.dead.clear();
    }

    /// "enqueued: …" with one line per waiting job, for failure messages.
    pub(crate) fn listing(&self) -> String {
        let jobs = self.enqueued_jobs();
        if jobs.is_empty() {
            return "nothing is enqueued".to_owned();
        }
        let mut listing = format!("enqueued ({}):", jobs.len());
        for job in &jobs {
            let _ = write!(listing, "\n  - {job}");
        }
        listing
    }
}

impl Default for InMemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = self.memory.lock();
        f.debug_struct("InMemoryBroker")
            .field("enqueued", &store.pending.len())
            .field("dead_letters", &store.dead.len())
            .field("elapsed", &store.now)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A job waiting in the [`InMemoryBroker`], as it would be on RabbitMQ.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EnqueuedJob {
    /// The job's wire name.
    pub name: String,
    /// Its id.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// The attempt it is waiting for (1 unless it is a retry).
    pub attempt: u32,
    /// How long until it is due, on the broker's virtual clock.
    pub due_in: Duration,
    /// The message body, as it would be published.
    pub body: Vec<u8>,
    properties: BasicProperties,
}

impl EnqueuedJob {
    fn of(message: &Message, now: Duration) -> Self {
        EnqueuedJob {
            name: message::job_name(&message.properties).unwrap_or_default().to_owned(),
            id: message::job_id(&message.properties),
            queue: message.queue.clone(),
            attempt: message::attempt(&message.properties),
            due_in: message.due.saturating_sub(now),
            body: message.body.clone(),
            properties: message.properties.clone(),
        }
    }

    /// Decodes the body as job type `J`, as a worker would.
    pub fn decode<J: Job>(&self) -> Result<J, DecodeError> {
        codec::decode(&self.body).map_err(DecodeError::new)
    }

    /// A header of the message as text (integers in decimal), e.g.
    /// `warren-retries` for a job enqueued with [`EnqueueOptions::retries`](crate::EnqueueOptions::retries).
    pub fn header(&self, name: &str) -> Option<String> {
        let value = message::header(&self.properties, name)?;
        message::text(value).or_else(|| message::integer(value).map(|n| n.to_string()))
    }
}

impl fmt::Display for EnqueuedJob {
    /// `` `name` on `queue` (id …, attempt n[, due in …]): body ``
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` on `{}` (id {}, attempt {}",
            self.name, self.queue, self.id, self.attempt
        )?;
        if !self.due_in.is_zero() {
            write!(f, ", due in {}", crate::duration::Written(self.due_in))?;
        }
        write!(f, "): {}", String::from_utf8_lossy(&self.body))
    }
}
