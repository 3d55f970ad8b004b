//! A message's properties for each attempt to publish it.
//!
//! lapin takes a message's properties whole, and a publish may be tried
//! again (on a new connection, or while a quorum queue elects a leader), so
//! every attempt needs properties of its own. Kept properties are copied
//! for each attempt; built ones are built for each, the same every time. An
//! enqueue builds its own: it is spared a copy and its drop, about 2.4k of
//! its instructions (callgrind). Borrowed by each layer of the publish and
//! built when sent, they take room once in its future (in the innermost
//! publish), not in every layer: callers move and box an enqueue's future,
//! which took 5,592 bytes with the properties carried by value through each
//! layer and about 4,000 borrowed (docs/performance.md).

use std::time::SystemTime;

use lapin::BasicProperties;

use crate::amqp::{message, unique};
use crate::observe::Headers;
use crate::{BodyFormat, EnqueueOptions, JobId};

/// The properties of the message a publish sends.
pub(crate) enum Outgoing<'a> {
    /// Copied for each attempt.
    Kept(&'a BasicProperties),
    /// Built for each attempt, the same each time; they carry job `id`.
    Built {
        build: &'a (dyn Fn() -> BasicProperties + Send + Sync),
        id: JobId,
    },
}

impl Outgoing<'_> {
    /// The properties for the next attempt.
    pub(crate) fn next(&mut self) -> BasicProperties {
        match self {
            Outgoing::Kept(properties) => BasicProperties::clone(properties),
            Outgoing::Built { build, .. } => build(),
        }
    }

    /// The id of the job the message carries.
    pub(crate) fn job_id(&self) -> JobId {
        match self {
            Outgoing::Kept(properties) => message::job_id(properties),
            Outgoing::Built { id, .. } => *id,
        }
    }
}

impl<'a> From<&'a BasicProperties> for Outgoing<'a> {
    fn from(properties: &'a BasicProperties) -> Self {
        Outgoing::Kept(properties)
    }
}

/// What an enqueue's message says. Built again for each attempt to publish
/// it, and the same every time (nothing here reads a clock or draws a
/// number), so that every copy the broker may store carries the same id,
/// enqueue time, due time, priority and lock.
pub(crate) struct JobMessage<'a> {
    pub(crate) name: &'a str,
    pub(crate) id: JobId,
    pub(crate) format: BodyFormat,
    /// When the job was enqueued: the message's timestamp.
    pub(crate) at: SystemTime,
    pub(crate) eta: Option<SystemTime>,
    pub(crate) options: &'a EnqueueOptions,
    /// The `before_enqueue` hooks' headers.
    pub(crate) headers: &'a Headers,
    pub(crate) priority: Option<u8>,
    /// A unique job's lock queue, which its message names.
    pub(crate) lock: Option<&'a str>,
}

impl JobMessage<'_> {
    pub(crate) fn properties(&self) -> BasicProperties {
        let properties = message::job_properties_at(self.name, self.id, self.format, self.at);
        let mut properties = self.headers.apply(self.options.apply(properties, self.eta));
        if let Some(priority) = self.priority {
            properties = properties.with_priority(priority);
        }
        if let Some(lock) = self.lock {
            properties = message::with_header(properties, unique::LOCK_HEADER, lock);
        }
        properties
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn built_properties_are_built_the_same_for_every_attempt() {
        let id = JobId::new();
        // Enqueued two seconds ago: built again now, they must say the same.
        let at = SystemTime::now() - Duration::from_secs(2);
        let builds = AtomicUsize::new(0);
        let build = || {
            builds.fetch_add(1, Ordering::Relaxed);
            message::job_properties_at("resize", id, BodyFormat::Json, at)
        };
        let mut outgoing = Outgoing::Built { build: &build, id };
        assert_eq!(builds.load(Ordering::Relaxed), 0, "built when sent");
        let first = outgoing.next();
        assert_eq!(builds.load(Ordering::Relaxed), 1, "the first attempt builds them once");
        let second = outgoing.next();
        assert_eq!(builds.load(Ordering::Relaxed), 2, "another attempt builds them again");
        assert_eq!(first, second, "every attempt sends the same properties");
        assert_eq!((message::job_id(&first), outgoing.job_id()), (id, id));
    }

    #[test]
    fn kept_properties_are_copied_for_every_attempt() {
        let id = JobId::new();
        let properties = message::job_properties("resize", id, BodyFormat::Json);
        let mut outgoing = Outgoing::from(&properties);
        assert_eq!(outgoing.next(), properties);
        assert_eq!(outgoing.next(), properties);
        assert_eq!(outgoing.job_id(), id);
    }

    #[test]
    fn a_job_message_says_what_was_enqueued_when_whenever_it_is_built() {
        let id = JobId::new();
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let eta = at + Duration::from_secs(90);
        let options = EnqueueOptions::new().retries(3).backoff(Duration::from_secs(5));
        let mut headers = Headers::default();
        headers.insert("tenant", "acme").expect("a header");
        let message = JobMessage {
            name: "resize",
            id,
            format: BodyFormat::Json,
            at,
            eta: Some(eta),
            options: &options,
            headers: &headers,
            priority: Some(3),
            lock: Some("images.unique.4f2a"),
        };
        let properties = message.properties();
        // What it was told, not the clock's time when it was built.
        assert_eq!(properties.timestamp(), &Some(1_700_000_000));
        assert_eq!(message::eta(&properties), Some(eta));
        assert_eq!(message::job_id(&properties), id);
        assert_eq!(properties.priority(), &Some(3));
        let headers = properties.headers().as_ref().expect("headers");
        for name in ["tenant", unique::LOCK_HEADER, message::RETRIES] {
            assert!(headers.inner().contains_key(name), "no {name} header: {headers:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(message.properties(), properties, "built again, the same");
    }
}
