//! Enqueueing jobs: persistent messages on durable queues, confirmed by the broker.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use tokio::runtime::Handle;
use tokio::sync::OnceCell;
use tokio::time::Instant as Deadline;

pub(crate) mod memory;
mod options;
mod outgoing;
mod unique_lock;

pub use options::EnqueueOptions;

use crate::amqp::connect::{Endpoint, TlsFiles};
#[cfg(feature = "cli")]
use crate::amqp::session::Session;
use crate::amqp::session::{self, OnBlock, Sessions};
use crate::amqp::topology::{self, QueueSpec};
use crate::amqp::unique::{self, Lock};
use crate::amqp::{confirm, hold, message, short};
use crate::job::QueueShape;
use crate::job::codec;
use crate::observe::{Enqueue, Hook, Hooks, enqueue_span};
use crate::{EnqueueError, Error, Job, JobId, JobOptions, QueueType, Registry};
use memory::Memory;
use outgoing::{JobMessage, Outgoing};
use tracing::Instrument;

/// Publishes jobs to RabbitMQ.
///
/// Cheap to clone and safe to share: clones use one connection and one
/// confirm-mode channel, and concurrent enqueues are pipelined on it, each
/// waiting only for its own confirm. Each queue is declared (durable, of the
/// job's [`QueueType`](crate::QueueType)) once.
///
/// When the connection dies (a broker restart, a network cut), the client
/// reconnects and publishes again, for up to the recovery timeout (30 s by
/// default): an enqueue is at least once, and a job published twice keeps
/// its id, so a duplicate can be told apart.
///
/// When the broker blocks publishers (a memory or disk alarm; in a
/// cluster, on any node), an enqueue waits for the block to lift, for up
/// to the recovery timeout, then fails with [`Error::PublishBlocked`]
/// ("RabbitMQ is blocking publishes"), the job handed back; the client
/// logs the block once, as a warning, and its lifting. An enqueue already
/// sent when the broker blocked it fails outcome-unknown instead
/// ([`Error::is_publish_blocked`] sees both): the broker stores it once
/// the alarm clears.
///
/// In tests, [`testing::InMemoryBroker::client`](crate::testing::InMemoryBroker::client)
/// gives a client with the same API that records jobs instead of publishing them.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    queue_prefix: String,
    hooks: Hooks,
}

/// Where a client's messages go.
enum Backend {
    /// RabbitMQ (boxed: it is far larger than the other variant).
    Amqp(Box<Amqp>),
    /// A [`testing::InMemoryBroker`](crate::testing::InMemoryBroker)'s store.
    Memory(Arc<Memory>),
}

/// A RabbitMQ client's connection and what it declared.
struct Amqp {
    sessions: Sessions,
    /// Queues this client declared.
    declared: Mutex<HashMap<String, Arc<OnceCell<Declared>>>>,
}

/// When a queue was declared: in which session (its generation), and at what time.
type Declared = (u64, Instant);

/// Settings for a [`Client`]; start with [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    queue_prefix: String,
    connection_name: String,
    runtime: Option<Handle>,
    recovery_timeout: Duration,
    tls: TlsFiles,
    hooks: Hooks,
}

impl ClientBuilder {
    /// Calls `hook` around every enqueue of this client, after the hooks
    /// added before (see [`observe`](crate::observe)).
    pub fn hook(mut self, hook: impl Hook) -> Self {
        self.hooks = self.hooks.with(hook);
        self
    }

    /// Replaces the hooks: a worker's publisher gets the worker's.
    #[cfg(feature = "worker")]
    pub(crate) fn hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Prepends `prefix` to every queue name, e.g. to keep environments or
    /// test runs apart on one broker. Workers must use the same prefix
    /// (`--queue-prefix` / `WARREN_QUEUE_PREFIX`).
    pub fn queue_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.queue_prefix = prefix.into();
        self
    }

    /// The connection name shown by `rabbitmqctl list_connections name`.
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }

    /// How long an enqueue waits for a lost connection to come back, or for
    /// the broker to lift a block on publishes, before it fails and hands
    /// the job back (default 30 s).
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.recovery_timeout = timeout;
        self
    }

    /// Trusts the CA certificates in the PEM file at `path`, besides the
    /// system's roots, to verify the broker's certificate over `amqps://`:
    /// for a broker whose certificate a private CA signed.
    ///
    /// An `amqps://` URL is always TLS, verified; this only widens whom it
    /// trusts. The file is read on every connection attempt (a renewed CA is
    /// used from the next reconnection on); a missing file, or one without a
    /// certificate, fails [`connect`](Self::connect) with
    /// [`Error::TlsFile`]. With TLS files set, a plain `amqp://` URL is
    /// refused ([`Error::InvalidUrl`]) rather than used in clear.
    pub fn tls_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca = Some(path.into());
        self
    }

    /// Presents this client certificate over `amqps://` (mutual TLS): `cert`
    /// is a PEM file with the certificate (and its chain), `key` a PEM file
    /// with its private key (PKCS#8, PKCS#1 or SEC1, unencrypted).
    ///
    /// The broker verifies it against its own CA; with
    /// `?auth_mechanism=external` in the URL, RabbitMQ also takes the user
    /// name from it (its `rabbitmq_auth_mechanism_ssl` plugin), and the URL
    /// needs no password.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.client = Some((cert.into(), key.into()));
        self
    }

    /// All the TLS files at once, as the command line gives them.
    #[cfg(feature = "cli")]
    pub(crate) fn tls_files(mut self, tls: TlsFiles) -> Self {
        self.tls = tls;
        self
    }

    /// Runs the connection's I/O on this runtime rather than the caller's.
    #[cfg(feature = "worker")]
    pub(crate) fn runtime(mut self, handle: Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Connects and opens the confirm-mode channel.
    ///
    /// Call it from within a tokio runtime: the connection runs on it.
    pub async fn connect(self) -> Result<Client, Error> {
        let handle = match self.runtime {
            Some(handle) => handle,
            None => Handle::try_current().map_err(|_| Error::NoRuntime)?,
        };
        let endpoint = Endpoint::publisher(self.url, self.connection_name, handle).with_tls(self.tls);
        let sessions = Sessions::open(endpoint, self.recovery_timeout).await?;
        Ok(Client {
            inner: Arc::new(Inner {
                backend: Backend::Amqp(Box::new(Amqp {
                    sessions,
                    declared: Mutex::new(HashMap::new()),
                })),
                queue_prefix: self.queue_prefix,
                hooks: self.hooks,
            }),
        })
    }
}

impl Client {
    /// Connects to the broker at `url` (e.g. `amqp://127.0.0.1:5672/%2f`).
    /// Several URLs separated by commas (the nodes of a cluster) are tried
    /// in turn, at first and on every reconnection.
    pub async fn connect(url: &str) -> Result<Client, Error> {
        Client::builder(url).connect().await
    }

    /// A client with settings other than the defaults.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            queue_prefix: String::new(),
            connection_name: "warren client".into(),
            runtime: None,
            recovery_timeout: Duration::from_secs(30),
            tls: TlsFiles::default(),
            hooks: Hooks::default(),
        }
    }

    /// When an operation starting now must be done: the recovery timeout
    /// from now (an in-memory client never waits).
    pub(crate) fn deadline(&self) -> Deadline {
        match &self.inner.backend {
            Backend::Amqp(amqp) => amqp.sessions.deadline(),
            Backend::Memory(_) => Deadline::now(),
        }
    }

    /// A client whose enqueues are recorded in `memory`, for tests.
    pub(crate) fn in_memory(memory: Arc<Memory>, hooks: Hooks) -> Client {
        Client {
            inner: Arc::new(Inner {
                backend: Backend::Memory(memory),
                queue_prefix: String::new(),
                hooks,
            }),
        }
    }

    /// The hooks called around this client's enqueues.
    pub(crate) fn hooks_of(&self) -> &Hooks {
        &self.inner.hooks
    }

    /// The prefix prepended to queue names.
    pub fn queue_prefix(&self) -> &str {
        &self.inner.queue_prefix
    }

    /// The full name on the broker of the job queue `queue`.
    pub fn queue_name(&self, queue: &str) -> String {
        format!("{}{queue}", self.inner.queue_prefix)
    }

    /// [`Client::queue_name`] of a job's own queue, without a copy when
    /// there is no prefix: every enqueue names it, for its hooks too.
    fn job_queue_name(&self, queue: &'static str) -> Cow<'static, str> {
        if self.inner.queue_prefix.is_empty() {
            Cow::Borrowed(queue)
        } else {
            Cow::Owned(self.queue_name(queue))
        }
    }

    /// The client's current session, for commands that open channels of
    /// their own on its connection.
    #[cfg(feature = "cli")]
    pub(crate) fn session(&self) -> Option<Arc<Session>> {
        match &self.inner.backend {
            Backend::Amqp(amqp) => Some(amqp.sessions.current()),
            Backend::Memory(_) => None,
        }
    }

    /// Encodes a job for its message; for an in-memory client, also checks
    /// that it decodes again, so that a job that cannot make the trip fails
    /// in tests where it is enqueued rather than in a worker in production.
    fn encode<J: Job>(&self, job: &J) -> Result<Vec<u8>, Error> {
        let body = codec::encode(job)?;
        if let Backend::Memory(_) = self.inner.backend {
            codec::decode::<J>(&body).map_err(|reason| Error::Encode {
                job: J::NAME,
                reason: format!("it does not decode from its own encoding: {reason}"),
            })?;
        }
        Ok(body)
    }

    /// Enqueues a job; returns its id once RabbitMQ has confirmed that it
    /// stored the (persistent) message. On failure the job is handed back
    /// inside the error.
    pub async fn enqueue<J: Job>(&self, job: J) -> Result<JobId, EnqueueError<J>> {
        self.enqueue_with(job, EnqueueOptions::new()).await
    }

    /// Enqueues a job to run no earlier than `delay` from now (up to 30
    /// days). The job waits on the broker, in a hold queue, not in any
    /// worker; a short delay is never held up behind a long one.
    pub async fn enqueue_in<J: Job>(&self, delay: Duration, job: J) -> Result<JobId, EnqueueError<J>> {
        self.enqueue_with(job, EnqueueOptions::new().delay(delay)).await
    }

    /// Enqueues a job to run no earlier than `at` (up to 30 days ahead; a
    /// time already past runs at once).
    pub async fn enqueue_at<J: Job>(&self, at: SystemTime, job: J) -> Result<JobId, EnqueueError<J>> {
        self.enqueue_with(job, EnqueueOptions::new().at(at)).await
    }

    /// Enqueues a job with per-enqueue [`EnqueueOptions`]: a delay, retries
    /// and backoff other than the job's own.
    pub async fn enqueue_with<J: Job>(&self, job: J, options: EnqueueOptions) -> Result<JobId, EnqueueError<J>> {
        match self.encode(&job) {
            Ok(body) => self
                .publish_job(J::NAME, J::QUEUE, &J::OPTIONS, &body, &options)
                .await
                .map_err(|error| EnqueueError::new(job, error)),
            Err(error) => Err(EnqueueError::new(job, error)),
        }
    }

    /// Enqueues a job by its wire name, with its fields as JSON — what
    /// Celery calls `send_task`: for code that knows a job only by name (an
    /// admin tool, a bridge from another system). The job type must be
    /// linked into this program (a contract crate is enough, no handler
    /// needed), which gives its queue and options, and `json` must decode as
    /// it; otherwise nothing is published.
    ///
    /// ```no_run
    /// # async fn run(client: &warren::Client) -> Result<(), warren::Error> {
    /// use warren::EnqueueOptions;
    ///
    /// let id = client
    ///     .enqueue_raw("resize_image", r#"{"path": "cat.png", "width": 640}"#, EnqueueOptions::new())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_raw(&self, name: &str, json: &str, options: EnqueueOptions) -> Result<JobId, Error> {
        let registry = Registry::linked()?;
        let job = registry.get(name).ok_or_else(|| Error::UnknownJob {
            name: name.to_owned(),
            known: registry
                .jobs()
                .iter()
                .map(|job| job.name)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let body = job
            .encode_json(json)
            .map_err(|reason| Error::Encode { job: job.name, reason })?;
        self.publish_job(job.name, job.queue, &job.options, &body, &options)
            .await
    }

    /// Enqueues several jobs, publishing them all before waiting for the
    /// broker's confirms. On failure, the error hands back exactly the jobs
    /// that were not confirmed; the others are on the broker. When any of
    /// them may have been stored after all, the error is outcome-unknown
    /// ([`EnqueueError::is_outcome_unknown`]); its [`job_id`](EnqueueError::job_id)
    /// names one of them only, so enqueue such jobs one by one with
    /// [`enqueue`](Self::enqueue) when a duplicate must carry the same id.
    pub async fn enqueue_many<J: Job>(
        &self,
        jobs: impl IntoIterator<Item = J>,
    ) -> Result<Vec<JobId>, EnqueueError<Vec<J>>> {
        let jobs: Vec<J> = jobs.into_iter().collect();
        let declared = self
            .declare_job_queue(&self.queue_name(J::QUEUE), QueueShape::of(&J::OPTIONS), self.deadline())
            .await;
        if let Err(error) = declared {
            return Err(EnqueueError::new(jobs, error));
        }
        let options = EnqueueOptions::new();
        let publishes = jobs.iter().map(|job| async move {
            let body = self.encode(job)?;
            self.publish_job(J::NAME, J::QUEUE, &J::OPTIONS, &body, &options).await
        });
        let results = join_all(publishes).await;
        let mut ids = Vec::with_capacity(jobs.len());
        let mut failed = Vec::new();
        let mut first_error = None;
        for (job, result) in jobs.into_iter().zip(results) {
            match result {
                Ok(id) => ids.push(id),
                Err(error) => {
                    failed.push(job);
                    // If any was perhaps stored, the caller must hear that
                    // rather than "not enqueued".
                    let unknown = matches!(error, Error::OutcomeUnknown { .. });
                    if first_error.is_none() || unknown {
                        first_error = Some(error);
                    }
                }
            }
        }
        match first_error {
            None => Ok(ids),
            Some(error) => Err(EnqueueError::new(failed, error)),
        }
    }

    /// Publishes an already encoded job (also the `enqueue` command's) to
    /// `queue` (unprefixed), declared as `job` says, and waits for the confirm.
    pub(crate) async fn publish_job(
        &self,
        name: &'static str,
        queue: &'static str,
        job: &JobOptions,
        body: &[u8],
        options: &EnqueueOptions,
    ) -> Result<JobId, Error> {
        let now = SystemTime::now();
        let eta = options.eta_from(now)?;
        let id = options.id();
        let full = self.job_queue_name(queue);
        let enqueue = Enqueue {
            name,
            id,
            queue: &full,
            due: eta,
        };
        let span = enqueue_span(name, id, &full);
        let headers = span.in_scope(|| self.inner.hooks.before_enqueue(&enqueue));
        let priority = options.priority_for(name, queue, job)?;
        let lock = match (job.unique_for, options.unique_key_hash()) {
            (Some(unique_for), key) => {
                let key = key.unwrap_or_else(|| unique::key_hash(body));
                Some(Lock::new(&full, name, key, unique_for))
            }
            (None, Some(_)) => return Err(Error::NotUnique { job: name.to_owned() }),
            (None, None) => None,
        };
        // Built for each attempt to publish (see `Outgoing`). A unique job's
        // properties carry its lock, which is taken before the first attempt.
        let message = JobMessage {
            name,
            id,
            format: job.format,
            at: now,
            eta,
            options,
            headers: &headers,
            priority,
            lock: lock.as_ref().map(|lock| lock.queue.as_str()),
        };
        let build = || message.properties();
        let started = Instant::now();
        // The hooks see every enqueue they were told of end, a duplicate
        // refused by its unique key included.
        let published = async {
            if let Some(lock) = &lock {
                // Boxed, as below: only unique jobs take a lock.
                Box::pin(self.acquire(lock, name, id, self.deadline())).await?;
            }
            let mut properties = Outgoing::Built { build: &build, id };
            let published = self
                .publish_job_message(&full, job, body, &mut properties, eta, now)
                .await;
            if let (Some(lock), Err(error)) = (&lock, &published) {
                // Not stored: the key is free again. (Perhaps stored: the lock
                // stays, as the job may run.)
                if !matches!(error, Error::OutcomeUnknown { .. }) {
                    let _ = Box::pin(self.release(lock, id)).await;
                }
            }
            published
        }
        .instrument(span.clone())
        .await;
        span.in_scope(|| {
            self.inner
                .hooks
                .after_enqueue(&enqueue, published.as_ref().map(|_| ()), started.elapsed());
        });
        published.map(|()| id)
    }

    /// Publishes a job's message to `full` (a full queue name), or to a
    /// hold queue when it is due at `eta`.
    async fn publish_job_message(
        &self,
        full: &str,
        job: &JobOptions,
        body: &[u8],
        properties: &mut Outgoing<'_>,
        eta: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<(), Error> {
        if let Backend::Memory(memory) = &self.inner.backend {
            // The delay exactly as asked, for tests that assert on it.
            let due_in = eta.map_or(Duration::ZERO, |eta| eta.duration_since(now).unwrap_or_default());
            memory.publish(full, body, properties.next(), due_in);
            return Ok(());
        }
        match eta {
            Some(eta) => {
                self.publish_held(full, QueueShape::of(job), body, properties, eta, OnBlock::Fail)
                    .await?
            }
            None => {
                self.publish_declared(full, QueueShape::of(job), body, properties)
                    .await?
            }
        }
        Ok(())
    }

    /// Publishes a job due at `eta` to the hold queue of `queue` (a full
    /// name, of shape `shape`) that returns it to `queue` when it is
    /// due, or (nearly) then; straight to `queue` if it is due already.
    /// `on_block`: what a publish the broker blocked does at the deadline.
    pub(crate) async fn publish_held(
        &self,
        queue: &str,
        shape: QueueShape,
        body: &[u8],
        properties: &mut Outgoing<'_>,
        eta: SystemTime,
        on_block: OnBlock,
    ) -> Result<(), Error> {
        let remaining = hold::due_in(eta);
        if let Backend::Memory(memory) = &self.inner.backend {
            memory.publish(queue, body, properties.next(), remaining);
            return Ok(());
        }
        // The hold queue drops what it returns to a queue that does not
        // exist, so the job queue is declared as well.
        let deadline = self.deadline();
        self.declare_job_queue(queue, shape, deadline).await?;
        if remaining.is_zero() {
            return self
                .publish_to(queue, shape.queue_type, body, properties, deadline, on_block)
                .await;
        }
        let hold = QueueSpec::hold(queue, shape.queue_type, hold::hold_time(remaining));
        // Boxed: a declaration's future is large, and an enqueue's future
        // would otherwise hold room for it.
        Box::pin(self.declare_once(&hold, deadline)).await?;
        self.publish_to(&hold.name, shape.queue_type, body, properties, deadline, on_block)
            .await
    }

    /// Publishes to a queue of kind `queue_type` by its full name and waits
    /// for the confirm.
    ///
    /// A quorum queue nacks what it is sent while it has no leader (the
    /// election after its leader's node was lost, a few seconds): the
    /// message is published again, with a growing wait, until the deadline.
    /// A classic queue's nack (a full queue with `reject-publish`) is final.
    async fn publish_to(
        &self,
        queue: &str,
        queue_type: QueueType,
        body: &[u8],
        properties: &mut Outgoing<'_>,
        deadline: Deadline,
        on_block: OnBlock,
    ) -> Result<(), Error> {
        let mut wait = Duration::from_millis(100);
        loop {
            let generation = match &self.inner.backend {
                Backend::Amqp(amqp) => Some(amqp.sessions.current().generation),
                Backend::Memory(_) => None,
            };
            match self.publish(queue, body, properties, deadline, on_block).await {
                Err(Error::Nacked { .. }) if queue_type == QueueType::Quorum && Deadline::now() + wait < deadline => {
                    // Boxed: only a publish to a quorum queue without a
                    // leader comes here, and every enqueue's future would
                    // otherwise hold room for it.
                    Box::pin(async {
                        tokio::time::sleep(wait).await;
                        if let (Backend::Amqp(amqp), Some(generation)) = (&self.inner.backend, generation) {
                            // A channel that failed stays on a dead leader; on
                            // failure, the next publish reconnects.
                            let renewing = amqp.sessions.renew_channel(generation);
                            let _ = tokio::time::timeout_at(deadline, renewing).await;
                        }
                    })
                    .await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                published => return published,
            }
        }
    }

    /// Publishes to a queue by its full name and waits for the confirm;
    /// `on_block` says whether a publish the broker blocked fails at
    /// `deadline` (an enqueue) or waits on for its confirm (a worker's
    /// hand-over, which would otherwise publish it again).
    ///
    /// `mandatory` makes the broker return a message it cannot route (its
    /// queue was deleted), which is an error here, never a silent drop.
    pub(crate) async fn publish(
        &self,
        queue: &str,
        body: &[u8],
        properties: &mut Outgoing<'_>,
        deadline: Deadline,
        on_block: OnBlock,
    ) -> Result<(), Error> {
        let routing_key = short(queue)?;
        let options = confirm::mandatory();
        let sessions = match &self.inner.backend {
            Backend::Amqp(amqp) => &amqp.sessions,
            Backend::Memory(memory) => {
                memory.publish(queue, body, properties.next(), Duration::ZERO);
                return Ok(());
            }
        };
        // Once lapin has the message, it may reach the broker whatever
        // happens to this call: a failure after that point leaves the
        // outcome unknown, and the caller must be told so.
        let handed_over = AtomicBool::new(false);
        let confirmation = sessions
            .run_with(deadline, on_block, |session| {
                let routing_key = routing_key.clone();
                let handed_over = &handed_over;
                // A job consumed with the broker's frame size may carry
                // headers too large for this connection's frames.
                let frame_max = session.connection.configuration().frame_max();
                let next = properties.next();
                let properties = message::fit_frame(&next, frame_max).unwrap_or(next);
                async move {
                    // From here lapin may write the message, even if this
                    // call gives up waiting; an error from lapin itself means
                    // it did not (the broker drops a message it did not get whole).
                    let before = handed_over.swap(true, Ordering::Relaxed);
                    let publishing = session
                        .channel
                        .basic_publish("".into(), routing_key, options, body, properties);
                    let confirm = match publishing.await {
                        Ok(confirm) => confirm,
                        Err(error) => {
                            handed_over.store(before, Ordering::Relaxed);
                            return Err(error.into());
                        }
                    };
                    Ok(confirm.await?)
                }
            })
            .await;
        let confirmation = match confirmation {
            Ok(confirmation) => confirmation,
            Err(error) => {
                return Err(publish_failure(error, handed_over.load(Ordering::Relaxed), || {
                    properties.job_id()
                }));
            }
        };
        let outcome = confirm::outcome(confirmation, queue);
        if let Err(Error::Unroutable { .. }) = outcome {
            self.forget_declared(queue);
        }
        outcome
    }

    /// Declares the job queue `full` (a full name) of shape `shape`
    /// unless this client already has, then publishes to it and waits for
    /// the confirm.
    pub(crate) async fn publish_declared(
        &self,
        full: &str,
        shape: QueueShape,
        body: &[u8],
        properties: &mut Outgoing<'_>,
    ) -> Result<(), Error> {
        let deadline = self.deadline();
        self.declare_job_queue(full, shape, deadline).await?;
        self.publish_to(full, shape.queue_type, body, properties, deadline, OnBlock::Fail)
            .await
    }

    /// Publishes a dead letter to the dead-letter queue of the job queue
    /// `queue` (a full name) of shape `shape`, declaring it first unless
    /// this client already has, and waits for the confirm: past the
    /// deadline if the broker blocked it ([`OnBlock::AwaitAnswer`]), as
    /// the worker would otherwise publish it again.
    #[cfg(feature = "worker")]
    pub(crate) async fn publish_dead_letter(
        &self,
        queue: &str,
        shape: QueueShape,
        body: &[u8],
        properties: &lapin::BasicProperties,
    ) -> Result<(), Error> {
        let deadline = self.deadline();
        let dead = QueueSpec::dead(queue, shape.queue_type);
        self.declare_once(&dead, deadline).await?;
        self.publish_to(
            &dead.name,
            shape.queue_type,
            body,
            &mut properties.into(),
            deadline,
            OnBlock::AwaitAnswer,
        )
        .await
    }

    /// Declares the job queue `full` (a full name) of shape `shape`, and
    /// what it needs first (see [`topology::publisher_queues`]), unless this
    /// client already has.
    async fn declare_job_queue(&self, full: &str, shape: QueueShape, deadline: Deadline) -> Result<(), Error> {
        // Every enqueue passes here: once the job queue, declared last, is
        // declared in this session, so is everything before it, and the
        // specs need not be built again.
        if self.declared_in_this_session(full) {
            return Ok(());
        }
        // Boxed: once per queue and session, not in every enqueue's future.
        Box::pin(async {
            for queue in topology::publisher_queues(full, shape) {
                self.declare_once(&queue, deadline).await?;
            }
            Ok(())
        })
        .await
    }

    /// Whether this client declared `queue` (a job or dead-letter queue: they
    /// never expire) on its current session. An in-memory client has every queue.
    fn declared_in_this_session(&self, queue: &str) -> bool {
        let Backend::Amqp(amqp) = &self.inner.backend else {
            return true;
        };
        let generation = amqp.sessions.current().generation;
        let declared = amqp.declared.lock().unwrap_or_else(PoisonError::into_inner);
        declared
            .get(queue)
            .and_then(|cell| cell.get())
            .is_some_and(|&(declared_in, _)| declared_in == generation)
    }

    /// Declares `queue` unless this client already has (a hold queue: in the
    /// last [`hold::REDECLARE_AFTER`], which keeps it from expiring).
    ///
    /// After a reconnection every queue is declared again: the broker may
    /// have lost it (a new node, a reset).
    async fn declare_once(&self, queue: &QueueSpec, deadline: Deadline) -> Result<(), Error> {
        let Backend::Amqp(amqp) = &self.inner.backend else {
            // The in-memory broker has every queue.
            return Ok(());
        };
        let generation = amqp.sessions.current().generation;
        let cell = {
            let mut declared = amqp.declared.lock().unwrap_or_else(PoisonError::into_inner);
            let cell = declared.entry(queue.name.clone()).or_default();
            let stale = |&(declared_in, at): &(u64, Instant)| {
                declared_in != generation || (queue.expires && at.elapsed() > hold::REDECLARE_AFTER)
            };
            if cell.get().is_some_and(stale) {
                *cell = Arc::default();
            }
            Arc::clone(cell)
        };
        cell.get_or_try_init(|| {
            amqp.sessions.run(deadline, |session| async move {
                topology::declare(&session.connection, std::slice::from_ref(queue)).await?;
                Ok((session.generation, Instant::now()))
            })
        })
        .await
        .map(|_| ())
    }

    /// Forgets that `full_queue` was declared, after the broker found no
    /// such queue; and its dead-letter queue, likely deleted with it, which
    /// a quorum queue needs to exist before it dead-letters anything.
    fn forget_declared(&self, full_queue: &str) {
        if let Backend::Amqp(amqp) = &self.inner.backend {
            let mut declared = amqp.declared.lock().unwrap_or_else(PoisonError::into_inner);
            declared.remove(full_queue);
            declared.remove(&topology::dead_queue(full_queue));
        }
    }

    /// Closes the connection (waiting at most five seconds for the broker);
    /// enqueues after this fail. An in-memory client has nothing to close.
    pub async fn close(&self) {
        if let Backend::Amqp(amqp) = &self.inner.backend {
            amqp.sessions.close().await;
        }
    }
}

/// What a publish that failed tells its caller: `error` as it is if the
/// message never reached lapin (`handed_over`) or the broker refused it
/// (closing the channel on it); otherwise the broker may have it, or get
/// it later (a blocked connection is read again once the block lifts), and
/// the outcome is unknown.
fn publish_failure(error: Error, handed_over: bool, job_id: impl FnOnce() -> JobId) -> Error {
    if handed_over && !session::refused_by_broker(&error) {
        Error::OutcomeUnknown {
            job_id: job_id(),
            cause: Box::new(error),
        }
    } else {
        error
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Client");
        debug.field("queue_prefix", &self.inner.queue_prefix);
        match &self.inner.backend {
            Backend::Amqp(amqp) => debug.field("connected", &amqp.sessions.current().connection.status().connected()),
            Backend::Memory(_) => debug.field("backend", &"in-memory"),
        };
        debug.finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Resize;

    impl Job for Resize {
        const NAME: &'static str = "resize";
        const QUEUE: &'static str = "images";
        const OPTIONS: JobOptions = JobOptions::new();
    }

    /// What `/metrics` shows after one enqueue through a client with `prefix`.
    #[cfg(feature = "http")]
    fn metrics_after_one_enqueue(prefix: &str) -> String {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let rendered = recorder.handle();
        let client = Client {
            inner: Arc::new(Inner {
                backend: Backend::Memory(Arc::default()),
                queue_prefix: prefix.to_owned(),
                hooks: Hooks::default(),
            }),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        metrics::with_local_recorder(&recorder, || runtime.block_on(client.enqueue(Resize))).expect("enqueued");
        rendered.render()
    }

    #[cfg(feature = "http")]
    #[test]
    fn an_enqueue_is_counted_under_its_job_and_full_queue_name() {
        let plain = metrics_after_one_enqueue("");
        assert!(
            plain.contains(r#"warren_enqueued_total{job="resize",queue="images"} 1"#),
            "{plain}"
        );
        let prefixed = metrics_after_one_enqueue("staging-");
        assert!(
            prefixed.contains(r#"warren_enqueued_total{job="resize",queue="staging-images"} 1"#),
            "{prefixed}"
        );
        assert!(
            prefixed.contains(r#"warren_enqueue_confirm_seconds_count{job="resize",queue="staging-images"} 1"#),
            "{prefixed}"
        );
    }

    fn blocked() -> Error {
        Error::PublishBlocked {
            reason: "low on memory".to_owned(),
            timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn a_job_not_sent_because_the_broker_blocks_publishes_is_not_enqueued() {
        let id = JobId::new();
        let properties = message::job_properties("resize", id, crate::BodyFormat::Json);
        let error = EnqueueError::new(
            "the job",
            publish_failure(blocked(), false, || message::job_id(&properties)),
        );
        assert!(error.error().is_publish_blocked() && !error.is_outcome_unknown());
        assert_eq!(
            error.to_string(),
            "job not enqueued: RabbitMQ is blocking publishes (low on memory) and did not lift the block \
             within 30s (the client's recovery timeout): a node is low on memory or disk (see \
             `rabbitmq-diagnostics alarms`); consumers still run, and enqueues succeed again once the alarm clears"
        );
    }

    #[test]
    fn a_job_sent_before_the_broker_blocked_it_is_perhaps_enqueued_and_says_why() {
        let id = JobId::new();
        let properties = message::job_properties("resize", id, crate::BodyFormat::Json);
        let error = EnqueueError::new(
            "the job",
            publish_failure(blocked(), true, || message::job_id(&properties)),
        );
        assert!(error.error().is_publish_blocked() && error.is_outcome_unknown());
        assert_eq!(error.job_id(), Some(id));
        let text = error.to_string();
        assert!(
            text.starts_with("job perhaps not enqueued: outcome unknown: ")
                && text.contains("RabbitMQ is blocking publishes (low on memory)"),
            "{text}"
        );
        assert!(error.error().is_transient());
        let lost = publish_failure(
            Error::Unavailable {
                timeout: Duration::from_secs(30),
            },
            true,
            || message::job_id(&properties),
        );
        assert!(!lost.is_publish_blocked());
    }
}
