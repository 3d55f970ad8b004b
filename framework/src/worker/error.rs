//! Why a worker did not start.

use crate::{Error, RegistryError};

/// A worker that cannot run as configured: refused before it consumes
/// anything, with what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The job types linked into the program conflict.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The broker's URL or TLS files cannot work (checked before anything
    /// connects), or the broker refused the connection (credentials, virtual
    /// host); a broker that is only unreachable is waited for instead.
    #[error(transparent)]
    Connect(Error),
    /// No queue to consume: no job is registered and no queue was named.
    /// Jobs in a library crate that the program never refers to are dropped
    /// by the linker, registrations and all.
    #[error(
        "no jobs are registered in this binary, so there is no queue to consume. \
If the jobs are in a library crate, the binary must refer to it or the linker drops their registrations: \
name it in `warren::main!(jobs = [my_jobs])`, or add `use my_jobs as _;`. \
Otherwise derive `Job` on a type, or pass --queues"
    )]
    NoQueues,
    /// Contract jobs of the queues to consume have no handler in this
    /// program ([`handler!`](crate::handler) binds one).
    #[error("{}; or leave their queues out with --queues", join(.0))]
    MissingHandlers(Vec<RegistryError>),
    /// A queue to consume that no registered job uses: a typo, most likely
    /// ([`WorkerBuilder::allow_unknown_queues`](crate::WorkerBuilder::allow_unknown_queues)
    /// consumes it anyway).
    #[error(
        "no registered job uses queue `{queue}` (their queues: {}); check its name, or allow unknown queues (`--allow-unknown-queues`) to consume it anyway",
        .known.join(", ")
    )]
    UnknownQueue {
        /// The queue, as it was given.
        queue: String,
        /// The queues of the registered jobs.
        known: Vec<String>,
    },
    /// A queue's name, with its prefix, leaves no room for the names of its
    /// hold queues within AMQP's 255 bytes.
    #[error(
        "cannot consume queue `{queue}`: the name of its longest hold queue, `{longest}`, is {} bytes long and AMQP allows 255; shorten the queue name or the queue prefix",
        .longest.len()
    )]
    QueueNameTooLong {
        /// The queue's full name.
        queue: String,
        /// The name of its longest hold queue.
        longest: String,
    },
    /// A schedule cannot work here (an unknown time zone, a bad cron
    /// expression or name).
    #[error("schedule `{schedule}` {reason}")]
    InvalidSchedule {
        /// The schedule's name (a `#[job(cron)]` job's is the job's).
        schedule: String,
        /// What is wrong.
        reason: String,
    },
    /// An option has a value the worker cannot run with.
    #[error("{option} {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// What it must be.
        reason: &'static str,
    },
    /// The workers need more channels than the broker allows on one
    /// connection (its `channel_max`).
    #[error(
        "{workers} workers for each of {queues} queues need {channels} channels and one to declare queues on, and RabbitMQ allows {channel_max} per connection (its `channel_max`); lower the workers per queue (--workers), split the queues over processes, or raise `channel_max` on the broker"
    )]
    TooManyChannels {
        /// Workers per queue.
        workers: usize,
        /// Queues to consume.
        queues: usize,
        /// Channels the workers need.
        channels: usize,
        /// Channels the broker allows per connection.
        channel_max: usize,
    },
    /// The metrics and health server cannot listen at its address (in use,
    /// or not this host's).
    #[error("cannot serve metrics and health probes at {addr}: {source}")]
    MetricsAddr {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The worker's threads or runtime could not be started.
    #[error("could not start the worker: {0}")]
    Start(#[source] std::io::Error),
    /// The worker's supervisor thread ended without saying why (a bug in
    /// warren: its log says more).
    #[error("the worker stopped unexpectedly; see the log")]
    Crashed,
}

/// The errors, separated by semicolons.
fn join(errors: &[RegistryError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}
