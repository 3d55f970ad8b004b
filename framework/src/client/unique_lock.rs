//! Taking and releasing the lock of a unique job (see [`unique`] for how
//! the lock works on RabbitMQ).

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicRejectOptions, QueuePurgeOptions};
use tokio::time::Instant as Deadline;

use super::{Backend, Client};
use crate::amqp::unique::Lock;
use crate::amqp::{message, short, topology};
use crate::{Error, JobId};

/// The wait before a duplicate that found no holder's id yet tries again:
/// the holder writes its id right after taking the lock.
const RETRY_WAIT: Duration = Duration::from_millis(10);

/// How long a release waits for the holder's id that a duplicate is
/// reading at that moment.
const RELEASE_PATIENCE: Duration = Duration::from_secs(2);

impl Client {
    /// Takes `lock` for job `id`; [`Error::Duplicate`] with the holder's
    /// id when another job holds it. An in-memory client takes every lock.
    pub(super) async fn acquire(&self, lock: &Lock, job: &str, id: JobId, deadline: Deadline) -> Result<(), Error> {
        let Backend::Amqp(amqp) = &self.inner.backend else {
            return Ok(());
        };
        let body = id.to_string();
        let properties = BasicProperties::default()
            .with_delivery_mode(message::PERSISTENT)
            .with_message_id(body.clone().into());
        let waited_since = Deadline::now();
        loop {
            // Every time: the declaration restarts the queues' idle expiry,
            // and the client's cache of declared queues would grow by one
            // entry per key.
            let specs = lock.specs();
            amqp.sessions
                .run(deadline, |session| {
                    let specs = &specs;
                    async move { topology::declare(&session.connection, specs).await }
                })
                .await?;
            match self
                .publish(&lock.queue, body.as_bytes(), properties.clone(), deadline)
                .await
            {
                Ok(()) => {
                    let recorded = self
                        .publish(&lock.id_queue(), body.as_bytes(), properties.clone(), deadline)
                        .await;
                    if let Err(error) = recorded {
                        let _ = self.release(lock, id).await;
                        return Err(error);
                    }
                    return Ok(());
                }
                Err(Error::Nacked { .. }) => {
                    if let Some(existing) = self.holder(lock, deadline).await? {
                        return Err(Error::Duplicate {
                            job: job.to_owned(),
                            existing,
                        });
                    }
                }
                Err(error) => return Err(error),
            }
            if Deadline::now() + RETRY_WAIT >= deadline {
                return Err(Error::NoAnswer {
                    waited: waited_since.elapsed(),
                });
            }
            tokio::time::sleep(RETRY_WAIT).await;
        }
    }

    /// The id of the job holding `lock`, read from its id queue and put
    /// back; `None` when it is not there (not written yet, or being read).
    async fn holder(&self, lock: &Lock, deadline: Deadline) -> Result<Option<JobId>, Error> {
        let Backend::Amqp(amqp) = &self.inner.backend else {
            return Ok(None);
        };
        let id_queue = short(&lock.id_queue())?;
        amqp.sessions
            .run(deadline, |session| {
                let id_queue = id_queue.clone();
                async move {
                    let got = session
                        .channel
                        .basic_get(id_queue, BasicGetOptions { no_ack: false })
                        .await?;
                    let Some(got) = got else { return Ok(None) };
                    let holder = std::str::from_utf8(&got.delivery.data)
                        .ok()
                        .and_then(|text| text.parse().ok());
                    session
                        .channel
                        .basic_reject(got.delivery.delivery_tag, BasicRejectOptions { requeue: true })
                        .await?;
                    Ok(holder)
                }
            })
            .await
    }

    /// Releases `lock` if job `id` holds it: when the job succeeded or was
    /// dead-lettered. Whether it did; a lock that expired and was taken by
    /// a later job is left to that one.
    pub(crate) async fn release(&self, lock: &Lock, id: JobId) -> Result<bool, Error> {
        let Backend::Amqp(amqp) = &self.inner.backend else {
            return Ok(false);
        };
        let (queue, id_queue) = (short(&lock.queue)?, short(&lock.id_queue())?);
        let give_up = Deadline::now() + RELEASE_PATIENCE;
        amqp.sessions
            .run(self.deadline(), |session| {
                let (queue, id_queue) = (queue.clone(), id_queue.clone());
                async move {
                    // A channel of its own: a lock queue that expired
                    // meanwhile is a 404, which closes the channel.
                    let channel = session.connection.create_channel().await?;
                    let released = async {
                        loop {
                            let got = channel
                                .basic_get(id_queue.clone(), BasicGetOptions { no_ack: false })
                                .await?;
                            let Some(got) = got else {
                                if Deadline::now() >= give_up {
                                    return Ok(false);
                                }
                                tokio::time::sleep(RETRY_WAIT).await;
                                continue;
                            };
                            let tag = got.delivery.delivery_tag;
                            let holder = std::str::from_utf8(&got.delivery.data).ok().map(str::to_owned);
                            if holder != Some(id.to_string()) {
                                channel.basic_reject(tag, BasicRejectOptions { requeue: true }).await?;
                                return Ok(false);
                            }
                            // The lock first, then its id: a duplicate that
                            // meets the lock still held still finds an id.
                            channel.queue_purge(queue.clone(), QueuePurgeOptions::default()).await?;
                            channel.basic_ack(tag, BasicAckOptions::default()).await?;
                            return Ok::<_, Error>(true);
                        }
                    }
                    .await;
                    let _ = channel.close(200, "released".into()).await;
                    released
                }
            })
            .await
    }

    /// Releases the lock a delivered job names in its header, if any.
    #[cfg(feature = "worker")]
    pub(crate) async fn release_held(&self, properties: &BasicProperties, id: JobId) -> Result<bool, Error> {
        match message::header(properties, crate::amqp::unique::LOCK_HEADER).and_then(message::text) {
            Some(queue) => self.release(&Lock::named(&queue), id).await,
            None => Ok(false),
        }
    }
}
