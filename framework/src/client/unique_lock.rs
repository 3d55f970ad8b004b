//! Taking and releasing the lock of a unique job (see [`unique`] for how
//! the lock works on RabbitMQ, and why a duplicate may repair it).
//!
//! [`unique`]: crate::amqp::unique

use std::time::Duration;

use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicRejectOptions, QueuePurgeOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel};
use tokio::time::Instant as Deadline;
use tracing::{debug, warn};

use super::{Backend, Client};
use crate::amqp::session::OnBlock;
use crate::amqp::unique::{Lock, REPAIR_AFTER};
use crate::amqp::{confirm, message, short, topology};
use crate::{Error, JobId};

/// The first wait before a duplicate that found no holder's id tries
/// again; it doubles up to [`MAX_RETRY_WAIT`], so that many duplicates
/// reading the id one after the other do not keep it out of the queue.
const RETRY_WAIT: Duration = Duration::from_millis(10);

/// The longest wait between two tries of a duplicate.
const MAX_RETRY_WAIT: Duration = Duration::from_millis(100);

/// How often a release (or a repair) that finds the lock queue empty looks
/// again (at the id queue, for a repair): the holder's message may be out
/// with a duplicate repairing the id, a round trip of a few milliseconds.
/// Short: a release holds the worker's job slot.
const RELEASE_TRIES: u32 = 4;

/// The wait between those tries.
const RELEASE_RETRY_WAIT: Duration = Duration::from_millis(25);

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
                .publish(
                    &lock.queue,
                    body.as_bytes(),
                    &mut (&properties).into(),
                    deadline,
                    OnBlock::Fail,
                )
                .await
            {
                Ok(()) => {
                    let recorded = self
                        .publish(
                            &lock.id_queue(),
                            body.as_bytes(),
                            &mut (&properties).into(),
                            deadline,
                            OnBlock::Fail,
                        )
                        .await;
                    if let Err(error) = recorded {
                        // This job holds the lock but no duplicate could
                        // learn it: free it rather than leave it to a repair.
                        self.free(lock).await;
                        return Err(error);
                    }
                    return Ok(());
                }
                Err(Error::Nacked { .. }) => {
                    if let Some(existing) = self.await_holder(lock, deadline, waited_since).await? {
                        return held_by(job, id, existing);
                    }
                    // The lock was found free: take it.
                }
                // The lock's message may be in the queue, this job's id
                // with it: the next try is nacked then, and the repair
                // finds that id, the key's holder being this job.
                Err(Error::OutcomeUnknown { .. }) => {
                    debug!(queue = %lock.queue, "the lock's confirm was lost; trying again");
                    no_answer_by(deadline, RETRY_WAIT, waited_since)?;
                    tokio::time::sleep(RETRY_WAIT).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The holder of `lock`, which refused this client's publish: read from
    /// the id queue, waiting for the holder to write it; repaired from the
    /// lock itself when it stays missing for [`REPAIR_AFTER`]. `None` when
    /// the lock turns out free.
    ///
    /// It does not publish to the lock meanwhile: a repair takes the lock's
    /// message out for a moment, and a duplicate trying again then would
    /// take the key beside the holder. So only a lock found empty, and no
    /// id written by a concurrent repair soon after, counts as free.
    async fn await_holder(
        &self,
        lock: &Lock,
        deadline: Deadline,
        waited_since: Deadline,
    ) -> Result<Option<JobId>, Error> {
        let no_holder_since = Deadline::now();
        let mut wait = RETRY_WAIT;
        loop {
            if let Some(existing) = self.holder(lock, deadline).await? {
                return Ok(Some(existing));
            }
            if no_holder_since.elapsed() >= REPAIR_AFTER {
                if let Some(existing) = self.repair(lock, deadline).await? {
                    return Ok(Some(existing));
                }
                // Empty: free, or out with another duplicate's repair,
                // which writes the id before it puts the message back.
                for _ in 0..RELEASE_TRIES {
                    no_answer_by(deadline, RELEASE_RETRY_WAIT, waited_since)?;
                    tokio::time::sleep(RELEASE_RETRY_WAIT).await;
                    if let Some(existing) = self.holder(lock, deadline).await? {
                        return Ok(Some(existing));
                    }
                }
                return Ok(None);
            }
            no_answer_by(deadline, wait, waited_since)?;
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_RETRY_WAIT);
        }
    }

    /// The id of the job holding `lock`, read from its id queue and put
    /// back; `None` when it is not there (not written yet, being read, or
    /// lost).
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
                    let holder = job_id(&got);
                    session
                        .channel
                        .basic_reject(got.delivery.delivery_tag, BasicRejectOptions { requeue: true })
                        .await?;
                    Ok(holder)
                }
            })
            .await
    }

    /// Writes the holder's id to the lock's id queue again, read from the
    /// lock's own message: the id queue stayed empty for
    /// [`REPAIR_AFTER`], so the holder failed to write it (see
    /// [`unique`](crate::amqp::unique) for the one weakness of this).
    /// `None` when the lock queue is empty: the key is free again.
    async fn repair(&self, lock: &Lock, deadline: Deadline) -> Result<Option<JobId>, Error> {
        let Backend::Amqp(amqp) = &self.inner.backend else {
            return Ok(None);
        };
        let (queue, id_queue) = (short(&lock.queue)?, short(&lock.id_queue())?);
        amqp.sessions
            .run(deadline, |session| {
                let (queue, id_queue) = (queue.clone(), id_queue.clone());
                async move {
                    let channel = &session.channel;
                    let Some(got) = channel
                        .basic_get(queue.clone(), BasicGetOptions { no_ack: false })
                        .await?
                    else {
                        return Ok(None);
                    };
                    let tag = got.delivery.delivery_tag;
                    let Some(holder) = job_id(&got) else {
                        // Not a lock message of warren's: put it back and
                        // wait for its expiry, as before the repair.
                        channel.basic_reject(tag, BasicRejectOptions { requeue: true }).await?;
                        return Ok(None);
                    };
                    // If this fails, the channel closes and RabbitMQ puts the
                    // lock's message back by itself.
                    let recorded = publish_confirmed(channel, &id_queue, &holder).await;
                    channel.basic_reject(tag, BasicRejectOptions { requeue: true }).await?;
                    recorded?;
                    warn!(
                        queue = %queue,
                        job.id = %holder,
                        "a unique key's holder was not recorded; recorded it again from the lock"
                    );
                    Ok(Some(holder))
                }
            })
            .await
    }

    /// Frees `lock`, which this client took a moment ago.
    async fn free(&self, lock: &Lock) {
        let Backend::Amqp(amqp) = &self.inner.backend else {
            return;
        };
        let Ok(queue) = short(&lock.queue) else { return };
        let purged = amqp
            .sessions
            .run(self.deadline(), |session| {
                let queue = queue.clone();
                async move { Ok(session.channel.queue_purge(queue, QueuePurgeOptions::default()).await?) }
            })
            .await;
        if let Err(error) = purged {
            warn!(queue = %lock.queue, %error, "could not free a unique key whose holder was not recorded; a duplicate repairs it");
        }
    }

    /// Releases `lock` if job `id` holds it: when the job succeeded or was
    /// dead-lettered. Whether it did; a lock that expired and was taken by
    /// a later job is left to that one.
    ///
    /// It reads the lock queue itself, not the id queue, which a duplicate
    /// may be reading or which may have lost the id.
    pub(crate) async fn release(&self, lock: &Lock, id: JobId) -> Result<bool, Error> {
        let Backend::Amqp(amqp) = &self.inner.backend else {
            return Ok(false);
        };
        let (queue, id_queue) = (short(&lock.queue)?, short(&lock.id_queue())?);
        amqp.sessions
            .run(self.deadline(), |session| {
                let (queue, id_queue) = (queue.clone(), id_queue.clone());
                async move {
                    // A channel of its own: a lock queue that expired
                    // meanwhile is a 404, which closes the channel.
                    let channel = session.connection.create_channel().await?;
                    let released = async {
                        let released = take_if_ours(&channel, &queue, id, RELEASE_TRIES).await?;
                        // The lock first, then its id: a duplicate that
                        // meets the lock still held still finds an id. An id
                        // queue found empty may have the id out with a
                        // duplicate reading it: looked at again, so that a
                        // finished holder's id is not handed to the
                        // duplicates of the next one before it writes its own.
                        take_if_ours(&channel, &id_queue, id, RELEASE_TRIES).await?;
                        Ok::<_, Error>(released)
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

/// [`Error::NoAnswer`] if a wait of `wait` would end past `deadline`.
fn no_answer_by(deadline: Deadline, wait: Duration, waited_since: Deadline) -> Result<(), Error> {
    if Deadline::now() + wait >= deadline {
        return Err(Error::NoAnswer {
            waited: waited_since.elapsed(),
        });
    }
    Ok(())
}

/// What a nacked acquisition of job `id` tells its caller, the lock being
/// held by `existing`: this job itself after a lost confirm, or another.
fn held_by(job: &str, id: JobId, existing: JobId) -> Result<(), Error> {
    if existing == id {
        return Ok(());
    }
    Err(Error::Duplicate {
        job: job.to_owned(),
        existing,
    })
}

/// The job id a lock or id message carries: its `message_id`, or its body.
fn job_id(got: &BasicGetMessage) -> Option<JobId> {
    let properties = &got.delivery.properties;
    properties
        .message_id()
        .as_ref()
        .and_then(|id| id.as_str().parse().ok())
        .or_else(|| std::str::from_utf8(&got.delivery.data).ok()?.parse().ok())
}

/// Takes the message of the one-message queue `queue` if it carries job
/// `id` (acked: gone), else puts it back; whether it was `id`'s. An empty
/// queue is looked at `tries` times in all, a short wait apart.
async fn take_if_ours(channel: &Channel, queue: &ShortString, id: JobId, tries: u32) -> Result<bool, Error> {
    for tried in 1..=tries {
        let got = channel
            .basic_get(queue.clone(), BasicGetOptions { no_ack: false })
            .await?;
        let Some(got) = got else {
            if tried < tries {
                tokio::time::sleep(RELEASE_RETRY_WAIT).await;
            }
            continue;
        };
        let tag = got.delivery.delivery_tag;
        if job_id(&got) == Some(id) {
            channel.basic_ack(tag, BasicAckOptions::default()).await?;
            return Ok(true);
        }
        channel.basic_reject(tag, BasicRejectOptions { requeue: true }).await?;
        return Ok(false);
    }
    Ok(false)
}

/// Publishes job `id` to `queue` on the confirm channel `channel` and
/// waits for the confirm.
async fn publish_confirmed(channel: &Channel, queue: &ShortString, id: &JobId) -> Result<(), Error> {
    let body = id.to_string();
    let properties = BasicProperties::default()
        .with_delivery_mode(message::PERSISTENT)
        .with_message_id(body.clone().into());
    confirm::publish(channel, queue, body.as_bytes(), properties).await
}
