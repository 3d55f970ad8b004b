//! Running jobs: the supervisor actor and its connection, the worker actors
//! that consume, run and settle deliveries, ack modes and shutdown signals.

mod ack;
pub(crate) mod consumer;
pub(crate) mod signals;
pub(crate) mod supervisor;

pub use ack::AckMode;
