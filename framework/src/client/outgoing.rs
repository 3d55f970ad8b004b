//! A message's properties for each attempt to publish it.
//!
//! lapin takes a message's properties whole, and a publish may be tried
//! again (on a new connection, or while a quorum queue elects a leader), so
//! every attempt but one needs its own properties. Kept properties are
//! copied for each attempt; built ones go whole on the first and are built
//! again for another. An enqueue builds its own: it is spared the copy and
//! the copy's drop, about 2.4k of its instructions (callgrind).

use std::borrow::Cow;

use lapin::BasicProperties;

use crate::JobId;
use crate::amqp::message;

/// The properties of the message a publish sends.
pub(crate) enum Outgoing<'a> {
    /// Copied for each attempt.
    Kept(Cow<'a, BasicProperties>),
    /// `first` for the first attempt, `again` for each other.
    Built {
        first: Option<BasicProperties>,
        again: &'a (dyn Fn() -> BasicProperties + Send + Sync),
    },
}

impl Outgoing<'_> {
    /// The properties for the next attempt.
    pub(crate) fn next(&mut self) -> BasicProperties {
        match self {
            Outgoing::Kept(properties) => properties.as_ref().clone(),
            Outgoing::Built { first, again } => first.take().unwrap_or_else(again),
        }
    }

    /// The id of the job the message carries.
    pub(crate) fn job_id(&self) -> JobId {
        match self {
            Outgoing::Kept(properties) => message::job_id(properties),
            Outgoing::Built {
                first: Some(properties),
                ..
            } => message::job_id(properties),
            Outgoing::Built { first: None, again } => message::job_id(&again()),
        }
    }
}

impl From<BasicProperties> for Outgoing<'_> {
    fn from(properties: BasicProperties) -> Self {
        Outgoing::Kept(Cow::Owned(properties))
    }
}

impl<'a> From<&'a BasicProperties> for Outgoing<'a> {
    fn from(properties: &'a BasicProperties) -> Self {
        Outgoing::Kept(Cow::Borrowed(properties))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::BodyFormat;

    #[test]
    fn built_properties_go_whole_first_and_are_built_again_for_each_other_attempt() {
        let id = JobId::new();
        let builds = AtomicUsize::new(0);
        let build = || {
            builds.fetch_add(1, Ordering::Relaxed);
            message::job_properties("resize", id, BodyFormat::Json)
        };
        let mut outgoing = Outgoing::Built {
            first: Some(build()),
            again: &build,
        };
        assert_eq!(outgoing.job_id(), id);
        let first = outgoing.next();
        assert_eq!(
            builds.load(Ordering::Relaxed),
            1,
            "the first attempt sends what was built"
        );
        let second = outgoing.next();
        assert_eq!(builds.load(Ordering::Relaxed), 2, "another attempt builds them again");
        assert_eq!((message::job_id(&first), message::job_id(&second)), (id, id));
        assert_eq!(first.kind(), second.kind());
        assert_eq!(outgoing.job_id(), id);
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
