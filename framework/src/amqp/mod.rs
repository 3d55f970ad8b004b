//! Everything that speaks AMQP: connecting (one connector, backoff), a
//! client's sessions, the queues warren declares (job, dead-letter and hold
//! queues) and the wire format of a job message (the one owner of its
//! properties and headers).

pub(crate) mod backoff;
pub(crate) mod block;
pub(crate) mod confirm;
pub(crate) mod connect;
pub(crate) mod hold;
pub(crate) mod message;
pub(crate) mod session;
pub(crate) mod topology;
pub(crate) mod unique;

use lapin::types::ShortString;

use crate::Error;

/// A queue name as AMQP carries it; an error, not lapin's panic, when it is
/// longer than 255 bytes.
pub(crate) fn short(name: &str) -> Result<ShortString, Error> {
    ShortString::try_new(name).map_err(|_| Error::NameTooLong { name: name.to_owned() })
}
