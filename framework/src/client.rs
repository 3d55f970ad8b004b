//! Enqueueing jobs: persistent messages on durable queues, confirmed by the broker.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use tokio::runtime::Handle;
use tokio::sync::OnceCell;

use crate::{EnqueueError, Error, Job, JobId, codec, message, runtime, topology};

/// Publishes jobs to RabbitMQ.
///
/// Cheap to clone and safe to share: clones use one connection and one
/// confirm-mode channel, and concurrent enqueues are pipelined on it, each
/// waiting only for its own confirm. Each queue is declared (durable) once.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Connection,
    channel: Channel,
    queue_prefix: String,
    declared: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
}

/// Settings for a [`Client`]; start with [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    queue_prefix: String,
    connection_name: String,
    runtime: Option<Handle>,
}

impl ClientBuilder {
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

    /// Runs the connection's I/O on this runtime rather than the caller's.
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
        let connection = runtime::connect(&self.url, &self.connection_name, handle).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Client {
            inner: Arc::new(Inner {
                connection,
                channel,
                queue_prefix: self.queue_prefix,
                declared: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl Client {
    /// Connects to the broker at `url` (e.g. `amqp://127.0.0.1:5672/%2f`).
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
        }
    }

    /// The prefix prepended to queue names.
    pub fn queue_prefix(&self) -> &str {
        &self.inner.queue_prefix
    }

    /// The full name on the broker of the job queue `queue`.
    pub fn queue_name(&self, queue: &str) -> String {
        format!("{}{queue}", self.inner.queue_prefix)
    }

    /// The client's connection, for commands that open channels of their own.
    pub(crate) fn connection(&self) -> &Connection {
        &self.inner.connection
    }

    /// Enqueues a job; returns its id once RabbitMQ has confirmed that it
    /// stored the (persistent) message. On failure the job is handed back
    /// inside the error.
    pub async fn enqueue<J: Job>(&self, job: J) -> Result<JobId, EnqueueError<J>> {
        match codec::encode(&job) {
            Ok(body) => self
                .publish_job(J::NAME, J::QUEUE, J::OPTIONS.format, &body)
                .await
                .map_err(|error| EnqueueError::new(job, error)),
            Err(error) => Err(EnqueueError::new(job, error)),
        }
    }

    /// Enqueues several jobs, publishing them all before waiting for the
    /// broker's confirms. On failure, the error hands back exactly the jobs
    /// that were not confirmed; the others are on the broker.
    pub async fn enqueue_many<J: Job>(
        &self,
        jobs: impl IntoIterator<Item = J>,
    ) -> Result<Vec<JobId>, EnqueueError<Vec<J>>> {
        let jobs: Vec<J> = jobs.into_iter().collect();
        if let Err(error) = self.declare_once(&self.queue_name(J::QUEUE)).await {
            return Err(EnqueueError::new(jobs, error));
        }
        let publishes = jobs.iter().map(|job| async move {
            let body = codec::encode(job)?;
            self.publish_job(J::NAME, J::QUEUE, J::OPTIONS.format, &body).await
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
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            None => Ok(ids),
            Some(error) => Err(EnqueueError::new(failed, error)),
        }
    }

    /// Publishes an already encoded job (the `enqueue` command) and waits
    /// for the confirm.
    pub(crate) async fn publish_job(
        &self,
        name: &str,
        queue: &str,
        format: crate::BodyFormat,
        body: &[u8],
    ) -> Result<JobId, Error> {
        let id = JobId::new();
        let properties = message::job_properties(name, id, format);
        self.publish_declared(&self.queue_name(queue), body, properties).await?;
        Ok(id)
    }

    /// Publishes to a queue by its full name and waits for the confirm.
    ///
    /// `mandatory` makes the broker return a message it cannot route (its
    /// queue was deleted), which is an error here, never a silent drop.
    pub(crate) async fn publish(&self, queue: &str, body: &[u8], properties: BasicProperties) -> Result<(), Error> {
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = self
            .inner
            .channel
            .basic_publish("".into(), queue.into(), options, body, properties)
            .await?;
        match confirm.await? {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_returned)) => {
                self.forget_declared(queue);
                Err(Error::Unroutable {
                    queue: queue.to_owned(),
                })
            }
            Confirmation::Nack(_) => Err(Error::Nacked {
                queue: queue.to_owned(),
            }),
        }
    }

    /// Declares the queue `full` (a full name) unless this client already
    /// has, then publishes to it and waits for the confirm.
    pub(crate) async fn publish_declared(
        &self,
        full: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), Error> {
        self.declare_once(full).await?;
        self.publish(full, body, properties).await
    }

    /// Declares the queue `full` (a full name) unless this client already has.
    async fn declare_once(&self, full: &str) -> Result<(), Error> {
        let full = full.to_owned();
        let cell = {
            let mut declared = self.inner.declared.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(declared.entry(full.clone()).or_default())
        };
        cell.get_or_try_init(|| async { topology::declare(&self.inner.connection, &[full.as_str()]).await })
            .await
            .map(|_| ())
    }

    fn forget_declared(&self, full_queue: &str) {
        let mut declared = self.inner.declared.lock().unwrap_or_else(PoisonError::into_inner);
        declared.remove(full_queue);
    }

    /// Closes the connection (waiting at most five seconds for the broker);
    /// enqueues after this fail.
    pub async fn close(&self) {
        // Closing an already closed connection fails; either way it is
        // closed. A broker that does not answer gets five seconds.
        let close = self.inner.connection.close(200, "client closed".into());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), close).await;
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("queue_prefix", &self.inner.queue_prefix)
            .field("connected", &self.inner.connection.status().connected())
            .finish_non_exhaustive()
    }
}
