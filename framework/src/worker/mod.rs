//! Running jobs: the public builder and the handle of a started worker,
//! the supervisor actor and its connection, the worker actors that consume,
//! run and settle deliveries, ack modes and shutdown requests.

mod ack;
mod builder;
mod coalesce;
pub(crate) mod consumer;
mod error;
pub(crate) mod heartbeat;
mod run;
pub(crate) mod scheduler;
pub(crate) mod signals;
pub(crate) mod supervisor;

pub use ack::AckMode;
pub use builder::{Worker, WorkerBuilder};
pub use error::WorkerError;
pub use run::{Exit, WorkerHandle};
