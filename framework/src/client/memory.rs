//! The in-memory broker's store: the messages clients published, in order,
//! each due at a time on a virtual clock, and the dead letters.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use lapin::BasicProperties;

use crate::job::codec::{self, DecodeError};
use crate::{DeadReason, Job, JobId};

/// What an [`InMemoryBroker`](crate::testing::InMemoryBroker) holds; shared
/// by its clients.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    store: Mutex<Store>,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    /// Messages not yet run, in the order they were published.
    pub(crate) pending: Vec<Message>,
    /// Jobs that failed for good.
    pub(crate) dead: Vec<DeadLetter>,
    /// The virtual clock: how much time has passed, as far as jobs can tell.
    pub(crate) now: Duration,
    next_seq: u64,
}

/// A message as it would have been published: its queue (full name), body
/// and properties, and when it is due on the virtual clock.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) seq: u64,
    pub(crate) queue: String,
    pub(crate) body: Vec<u8>,
    pub(crate) properties: BasicProperties,
    pub(crate) due: Duration,
}

impl Memory {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a message for `queue`, due `due_in` from the virtual now.
    pub(crate) fn publish(&self, queue: &str, body: &[u8], properties: BasicProperties, due_in: Duration) {
        self.lock().push(queue.to_owned(), body.to_vec(), properties, due_in);
    }
}

impl Store {
    pub(crate) fn push(&mut self, queue: String, body: Vec<u8>, properties: BasicProperties, due_in: Duration) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let due = self.now.saturating_add(due_in);
        self.pending.push(Message {
            seq,
            queue,
            body,
            properties,
            due,
        });
    }

    /// Takes the message due first (the earliest published among equals)
    /// and moves the clock forward to its due time if that is ahead.
    pub(crate) fn take_next(&mut self) -> Option<Message> {
        let (index, _) = self
            .pending
            .iter()
            .enumerate()
            .min_by_key(|(_, message)| (message.due, message.seq))?;
        let message = self.pending.remove(index);
        self.now = self.now.max(message.due);
        Some(message)
    }
}

/// A job that failed for good in a drain: what a worker would have put in
/// `<queue>.dead`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The job's wire name.
    pub name: String,
    /// Its id.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Why it died.
    pub reason: DeadReason,
    /// The last attempt's error.
    pub error: String,
    /// How many attempts it had.
    pub attempts: u32,
    /// The message body.
    pub body: Vec<u8>,
}

impl DeadLetter {
    /// Decodes the body as job type `J`.
    pub fn decode<J: Job>(&self) -> Result<J, DecodeError> {
        codec::decode(&self.body).map_err(DecodeError::new)
    }
}
