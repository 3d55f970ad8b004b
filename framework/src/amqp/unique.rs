//! Unique jobs: a per-key lock held on RabbitMQ while a job is pending,
//! delayed or running, and never longer than its `unique_for`.
//!
//! The lock of job `name` with key hash `k` on queue `q` is a classic queue
//! `q.unique.<name>.<k>` declared with `x-max-length = 1` and `x-overflow =
//! reject-publish`: of any number of concurrent publishes to an empty lock
//! queue the broker confirms exactly one and nacks the rest, whichever
//! process or connection they come from. That one is the holder; its
//! message's `message_id` is its job id.
//!
//! A nacked enqueue must learn the holder's id, but reading the lock's
//! message would take it out of the ready count, which is all
//! `x-max-length` counts, and let a concurrent publish in. So the holder
//! also writes its id to a second queue, `<lock>.id` (`x-max-length = 1`,
//! dropping the older), which duplicates read with `basic.get` and put back;
//! one that finds it empty (the holder has not written it yet, or another
//! duplicate is reading it) reads it again, with growing waits, without
//! publishing to the lock again (see below why).
//!
//! # A lock with no recorded holder
//!
//! The two writes are not one: the id's may fail after the lock was taken,
//! or the lock's confirm may be lost (the message may be in the lock queue
//! with no id written). Left so, every later enqueue of the key would be
//! nacked and find no id until `unique_for` ends. Each case is closed:
//!
//! - A holder whose id write fails frees the lock itself (a purge: it knows
//!   it holds it) and fails the enqueue.
//! - An acquisition whose lock publish has an unknown outcome tries again:
//!   taken, the lock is this job's; nacked, the repair below finds this
//!   job's own id in it, and the job is the holder.
//! - A duplicate that is nacked and has found the id queue empty for
//!   [`REPAIR_AFTER`] (far longer than a holder takes from its lock's
//!   confirm to its id write) repairs the record: it takes the lock's
//!   message with `basic.get`, writes its `message_id` to the id queue
//!   (confirmed), puts the message back, and answers with that id. A lock
//!   found empty then is free, unless another duplicate's repair has its
//!   message out: that one writes the id before it puts the message back,
//!   so the id queue is read a few more times (tens of milliseconds)
//!   before the enqueue tries to take the lock again.
//!
//! The repair's one weakness: while the lock's message is out for that
//! round trip (milliseconds), the lock queue counts no ready message, and
//! a new enqueue of the key is accepted; both jobs then run, and the
//! put-back message sits beside the new one until a release or
//! `unique_for` takes it. Duplicates waiting for an id do not publish to
//! the lock (they would be the likeliest to fall in the window), so this
//! needs a repair (a lost confirm or write first, or an id queue that
//! many duplicates kept out of reach for a whole [`REPAIR_AFTER`]) and a
//! fresh enqueue of the key within the same milliseconds. A design without the window needs a way to read a queue's
//! message without taking it from the ready count; RabbitMQ has none for
//! classic queues (streams can be read in place but know no
//! `reject-publish`), and routing one publish to both queues through an
//! exchange makes a refused publish overwrite the holder's id. So the
//! repair stays, and logs a warning each time it runs.
//!
//! Both queues have `x-message-ttl = unique_for`, so a lock whose worker
//! crashed ends by itself, and `x-expires` so unused lock queues go away.
//! The key hash and `unique_for` are part of the name, so changing a job's
//! `unique_for` makes new locks rather than a declaration RabbitMQ refuses.
//!
//! A worker releases the lock when the job succeeds or is dead-lettered,
//! reading the lock queue itself rather than the id queue (which a
//! duplicate may be reading, or which may have lost the id): it takes the
//! lock's message and acks it if it is its own job's, or puts it back if a
//! later job took the lock after it expired; then it takes its own id out
//! of the id queue, looking again a few times if it finds it empty (a
//! duplicate may have it out), so that the next holder's duplicates are
//! not told a finished job's id before that holder writes its own.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString};

use crate::amqp::topology::QueueSpec;

/// The header naming the lock queue a unique job holds.
pub(crate) const LOCK_HEADER: &str = "warren-unique-lock";

/// How long a nacked enqueue finds no holder's id before it repairs the
/// record from the lock itself: far longer than a holder takes from its
/// lock's confirm to its id write, so that a repair runs only after a failure.
pub(crate) const REPAIR_AFTER: Duration = Duration::from_secs(1);

/// How long an unused lock queue outlives its `unique_for`.
const EXPIRES_AFTER: Duration = Duration::from_secs(60);

/// The key of a job enqueued without one: its arguments, as encoded.
pub(crate) fn key_hash(bytes: &[u8]) -> u64 {
    // FNV-1a: stable across processes, builds and versions, unlike std's
    // hasher, and the queue name needs no more than a well-spread 64 bits.
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The lock of one job name and key on one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lock {
    /// The lock queue's full name.
    pub(crate) queue: String,
    unique_for: Duration,
}

impl Lock {
    /// The lock of job `name` with key hash `key` on the job queue `full_queue`.
    pub(crate) fn new(full_queue: &str, name: &str, key: u64, unique_for: Duration) -> Self {
        let millis = u64::try_from(unique_for.as_millis()).unwrap_or(u64::MAX);
        let key = key_hash(&[key.to_be_bytes(), millis.to_be_bytes()].concat());
        Lock {
            queue: format!("{full_queue}.unique.{name}.{key:016x}"),
            unique_for,
        }
    }

    /// The lock named in a job's `warren-unique-lock` header.
    #[cfg(feature = "worker")]
    pub(crate) fn named(queue: &str) -> Self {
        Lock {
            queue: queue.to_owned(),
            unique_for: Duration::ZERO,
        }
    }

    /// The queue holding the holder's id.
    pub(crate) fn id_queue(&self) -> String {
        format!("{}.id", self.queue)
    }

    /// The two queues, to declare before every acquisition (which also
    /// restarts their idle expiry).
    pub(crate) fn specs(&self) -> [QueueSpec; 2] {
        let ttl = u32::try_from(self.unique_for.as_millis()).unwrap_or(u32::MAX).max(1);
        let expires = u32::try_from((self.unique_for + EXPIRES_AFTER).as_millis()).unwrap_or(u32::MAX);
        let arguments = |overflow: &str| {
            let mut arguments = FieldTable::default();
            arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
            arguments.insert("x-overflow".into(), AMQPValue::LongString(LongString::from(overflow)));
            arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl.into()));
            arguments.insert("x-expires".into(), AMQPValue::LongLongInt(expires.into()));
            arguments
        };
        [
            QueueSpec {
                name: self.queue.clone(),
                arguments: arguments("reject-publish"),
                expires: true,
            },
            QueueSpec {
                name: self.id_queue(),
                arguments: arguments("drop-head"),
                expires: true,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_stably() {
        assert_eq!(key_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(key_hash(b"user-1"), key_hash(b"user-2"));
    }

    #[test]
    fn a_lock_is_named_by_queue_job_key_and_duration() {
        let ten = Duration::from_secs(600);
        let lock = Lock::new("prod-emails", "send_welcome", key_hash(b"user-1"), ten);
        assert!(
            lock.queue.starts_with("prod-emails.unique.send_welcome."),
            "{}",
            lock.queue
        );
        assert_eq!(lock.queue.len(), "prod-emails.unique.send_welcome.".len() + 16);
        assert_eq!(lock, Lock::new("prod-emails", "send_welcome", key_hash(b"user-1"), ten));
        let other_key = Lock::new("prod-emails", "send_welcome", key_hash(b"user-2"), ten);
        let other_duration = Lock::new("prod-emails", "send_welcome", key_hash(b"user-1"), ten * 2);
        assert_ne!(lock.queue, other_key.queue);
        assert_ne!(
            lock.queue, other_duration.queue,
            "no clash with locks declared before a change"
        );
        assert_eq!(lock.id_queue(), format!("{}.id", lock.queue));
    }

    #[test]
    fn locks_hold_one_message_for_at_most_unique_for() {
        let lock = Lock::new("q", "j", 1, Duration::from_secs(600));
        let [held, id] = lock.specs();
        let argument = |spec: &QueueSpec, name: &str| spec.arguments.inner().get(name).cloned();
        assert_eq!(argument(&held, "x-max-length"), Some(AMQPValue::LongLongInt(1)));
        assert_eq!(
            argument(&held, "x-overflow"),
            Some(AMQPValue::LongString("reject-publish".into()))
        );
        assert_eq!(
            argument(&id, "x-overflow"),
            Some(AMQPValue::LongString("drop-head".into()))
        );
        assert_eq!(argument(&held, "x-message-ttl"), Some(AMQPValue::LongLongInt(600_000)));
        assert_eq!(argument(&held, "x-expires"), Some(AMQPValue::LongLongInt(660_000)));
    }
}
