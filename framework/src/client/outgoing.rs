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
//! layer and 4,024 borrowed (docs/performance.md).

use lapin::BasicProperties;

use crate::JobId;
use crate::amqp::message;

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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::BodyFormat;

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
}
