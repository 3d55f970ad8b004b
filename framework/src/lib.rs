//! warren: background jobs for Rust on RabbitMQ.
//!
//! Define a job with `#[derive(Job)]` and a [`Handler`], enqueue it with a
//! [`Client`], and run the generated worker binary ([`main!`]): RabbitMQ
//! holds the jobs in durable queues, supervised worker actors run them.
//!
//! ```no_run
//! use warren::prelude::*;
//!
//! #[derive(Debug, Serialize, Deserialize, Job)]
//! #[job(queue = "images", timeout = "30s")]
//! struct ResizeImage { path: String, width: u32 }
//!
//! impl Handler for ResizeImage {
//!     async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
//!         println!("resizing {} to {}px (attempt {})", self.path, self.width, ctx.attempt());
//!         Ok(())
//!     }
//! }
//!
//! # async fn enqueue() -> Result<(), Box<dyn std::error::Error>> {
//! // In a service: returns once RabbitMQ has confirmed the message.
//! let client = Client::connect("amqp://127.0.0.1:5672/%2f").await?;
//! let id = client.enqueue(ResizeImage { path: "cat.png".into(), width: 640 }).await?;
//! # Ok(()) }
//! ```
//!
//! The worker binary is one line, `warren::main!();` (or
//! `warren::main!(setup = my_app::setup);` to build shared [`State`] for the
//! handlers), run as `my-worker work --workers 4 --prefetch 10 --ack late`.
//! A program of your own (a web service, say) runs workers with
//! [`Worker::builder`] instead, and an app with its own command line folds
//! warren's commands into it with [`cli`]: see [embedding](guide::embedding).
//! Handlers are tested without a broker with [`testing`]. The [`guide`]
//! explains the rest.

// Lets the derive's `::warren::…` paths resolve in this crate's own unit tests.
#[cfg(test)]
extern crate self as warren;

mod amqp;
#[cfg(feature = "cli")]
pub mod cli;
mod client;
#[cfg(feature = "dashboard")]
pub mod dashboard;
#[cfg(feature = "cli")]
mod dead_letters;
mod duration;
mod error;
mod job;
pub mod observe;
pub mod testing;
#[cfg(feature = "worker")]
mod worker;

pub use client::{Client, ClientBuilder, EnqueueOptions};
pub use error::{AmqpError, EnqueueError, Error};
pub use job::{
    BodyFormat, Contract, DEFAULT_QUEUE, DeadReason, Handler, Job, JobContext, JobError, JobId, JobOptions,
    MissingState, QueueType, Registration, Registry, RegistryBuilder, RegistryError, Schedule, State,
};
#[cfg(feature = "worker")]
pub use worker::{AckMode, Exit, Worker, WorkerBuilder, WorkerError, WorkerHandle};

/// Derives [`Job`] and registers the type with the worker binary.
///
/// Attributes, all optional:
/// - `name = "..."`: the wire name (default: the type name in snake_case);
/// - `queue = "..."`: the queue (default: [`DEFAULT_QUEUE`]);
/// - `timeout = "30s"`: how long one attempt may run (default: 10 minutes);
/// - `retries = N`: retries after a failed attempt (default
///   [`JobOptions::DEFAULT_RETRIES`]);
/// - `backoff = "10s"`: the wait before the first retry, doubling after
///   (default [`JobOptions::DEFAULT_BACKOFF`]);
/// - `format = "json" | "text"`: the body format (default JSON);
/// - `queue_default`: this job handles messages on its queue that carry no
///   `type` property, as plain AMQP producers send them;
/// - `queue_type = "classic" | "quorum"`: the kind of queue its queue is
///   declared as (default classic; quorum for a RabbitMQ cluster, see
///   [`QueueType`] and the [quorum queues](guide::concepts#quorum-queues)
///   guide). Every job of one queue must name the same type.
/// - `max_priority = N` (1-255): its queue takes priorities up to `N`
///   (declared with `x-max-priority`; classic queues only). Every job of
///   one queue must say the same; queues without it take no priorities.
/// - `priority = N`: the priority its messages carry unless the enqueue
///   sets one ([`EnqueueOptions::priority`]); at most `max_priority`. See
///   [scheduling](guide::scheduling).
/// - `unique_for = "10m"`: while a job of this name and key is pending,
///   delayed or running (and at most this long), another enqueue of it is
///   refused with its id ([`Error::Duplicate`]); the key is
///   [`EnqueueOptions::unique_key`], or else the job's arguments. See
///   [scheduling](guide::scheduling#unique-jobs).
/// - `cron = "0 */5 * * * *"`, `timezone = "Europe/Paris"`: the job runs by
///   itself, its `Default` value enqueued at each slot by one worker of the
///   fleet. To enqueue it with other arguments, or on several schedules,
///   use [`schedule!`]. See [scheduling](guide::scheduling#periodic-jobs).
/// - `contract`: the type has no [`Handler`]: it is declared in a crate
///   that producers and workers share, and the worker's crate binds its
///   handler with [`handler!`] (see [`Contract`] and the
///   [contract crates](guide::getting_started#9-share-job-types-contract-crates)
///   guide).
pub use warren_macros::Job;

/// Registers a schedule that enqueues a job value with given arguments, at
/// item level, like [`handler!`](crate::handler):
///
/// ```
/// use warren::prelude::*;
///
/// #[derive(Debug, Serialize, Deserialize, Job)]
/// #[job(queue = "reports")]
/// struct SalesReport { region: String }
/// # impl Handler for SalesReport {
/// #     async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> { Ok(()) }
/// # }
///
/// warren::schedule!(
///     name = "sales_europe",
///     cron = "0 0 7 * * *",
///     timezone = "Europe/Paris",
///     job = SalesReport { region: "eu".into() },
/// );
/// warren::schedule!(name = "sales_americas", cron = "0 0 7 * * *", job = SalesReport { region: "us".into() });
/// # let registry = warren::Registry::from_inventory().unwrap();
/// # let names: Vec<_> = registry.schedules().iter().map(|s| s.name()).collect();
/// # assert_eq!(names, ["sales_americas", "sales_europe"]);
/// ```
///
/// Every program that links it sees the schedule: the worker fires it, and
/// the generated binary's `schedule list|pause|resume` and `jobs` show it.
/// `name` and `cron` are required, `timezone` is optional (UTC), `job` is
/// an expression of a registered job type, evaluated and encoded once when
/// the registry is built. A malformed name, cron expression or time zone
/// is a compile error at the literal, and a time zone the system does not
/// know stops the worker at start-up, naming the schedule; two schedules
/// of one name make the registry fail, naming both jobs. See [`Schedule`] for the same without
/// a macro.
pub use warren_macros::schedule;

/// The traits and types a job module needs: `use warren::prelude::*;`.
pub mod prelude {
    pub use crate::{Client, Handler, Job, JobContext, JobError, JobId, State};
    pub use serde::{Deserialize, Serialize};
}

/// Expands to the `main` of a worker binary with warren's command line:
/// `work`, `enqueue <job> <json>`, `jobs` and `dead list|retry|purge`.
///
/// ```no_run
/// warren::main!();
/// ```
///
/// The binary has the name and version of the package that expands the
/// macro (`--version` prints them), logs as [`cli::init_logging`] sets up,
/// and runs the commands of [`cli::Command`]; `work` runs a [`Worker`]. To
/// keep `main` for yourself, use those parts directly: see
/// [embedding](guide::embedding).
///
/// With `setup = path::to::setup`, `work` first runs
/// `async fn setup() -> Result<State, E>` (any `E: Display`) once, and
/// handlers reach what it built with [`JobContext::state`]. If it fails,
/// the worker exits with code 1 and the error, before consuming anything.
///
/// ```no_run
/// use warren::State;
///
/// struct Config { smtp_host: String }
///
/// async fn setup() -> Result<State, std::env::VarError> {
///     let smtp_host = std::env::var("SMTP_HOST")?;
///     Ok(State::new().with(Config { smtp_host }))
/// }
///
/// warren::main!(setup = setup);
/// ```
///
/// With `jobs = [crate, ...]`, the binary links the library crates that
/// define its jobs even if nothing else in it names them: `inventory`
/// registrations in a crate the binary never refers to are dropped by the
/// linker, and the worker would find no jobs. It combines with `setup`, in
/// either order.
///
/// ```no_run
/// # extern crate serde as my_jobs;
/// # extern crate serde_json as billing_jobs;
/// # async fn setup() -> Result<warren::State, std::io::Error> { Ok(warren::State::new()) }
/// warren::main!(jobs = [my_jobs, billing_jobs], setup = setup);
/// ```
///
/// A crate named in `jobs` must be a dependency (an unresolved import
/// otherwise), and anything else in the parentheses is a compile error
/// that lists the forms above:
///
/// ```compile_fail,E0432
/// warren::main!(jobs = [no_such_crate]);
/// ```
///
/// ```compile_fail
/// warren::main!(job = [my_jobs]);
/// ```
#[cfg(feature = "cli")]
#[macro_export]
macro_rules! main {
    (jobs = [$($job_crate:ident),* $(,)?] $(,)?) => {
        $(use ::$job_crate as _;)*
        $crate::main!();
    };
    (jobs = [$($job_crate:ident),* $(,)?], setup = $setup:expr $(,)?) => {
        $(use ::$job_crate as _;)*
        $crate::main!(setup = $setup);
    };
    (setup = $setup:expr, jobs = [$($job_crate:ident),* $(,)?] $(,)?) => {
        $(use ::$job_crate as _;)*
        $crate::main!(setup = $setup);
    };
    () => {
        fn main() -> ::std::process::ExitCode {
            $crate::__private::run_main(::std::env!("CARGO_PKG_NAME"), ::std::env!("CARGO_PKG_VERSION"))
        }
    };
    (setup = $setup:expr $(,)?) => {
        fn main() -> ::std::process::ExitCode {
            $crate::__private::run_main_with_setup(
                ::std::env!("CARGO_PKG_NAME"),
                ::std::env!("CARGO_PKG_VERSION"),
                $setup,
            )
        }
    };
    ($($other:tt)*) => {
        ::core::compile_error!(
            "expected `warren::main!()`, `warren::main!(setup = path::to::setup)`, `warren::main!(jobs = [job_crate, ...])`, or `jobs` and `setup` together, separated by a comma"
        );
    };
}

/// The user guide, from the repository's `docs/` (its examples are tested).
pub mod guide {
    #[doc = include_str!("../docs/getting-started.md")]
    pub mod getting_started {}
    #[doc = include_str!("../docs/concepts.md")]
    pub mod concepts {}
    #[doc = include_str!("../docs/embedding.md")]
    #[cfg(feature = "cli")]
    pub mod embedding {}
    #[doc = include_str!("../docs/testing.md")]
    pub mod testing {}
    #[doc = include_str!("../docs/reliability.md")]
    pub mod reliability {}
    #[doc = include_str!("../docs/scheduling.md")]
    pub mod scheduling {}
    #[doc = include_str!("../docs/operations.md")]
    #[cfg(feature = "http")]
    pub mod operations {}
    #[doc = include_str!("../docs/deployment.md")]
    pub mod deployment {}
    #[doc = include_str!("../docs/dashboard.md")]
    #[cfg(feature = "dashboard")]
    pub mod dashboard {}
    #[doc = include_str!("../docs/architecture.md")]
    pub mod architecture {}
}

#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "cli")]
    pub use crate::cli::generated::{run_main, run_main_with_setup};
    pub use crate::job::contract::{BoundHandler, start as start_bound};
    pub use crate::job::registry::Registration;
    pub use crate::job::schedule::ScheduleDeclaration;
    pub use inventory;

    /// For the fuzz target: reads a delivery's properties as a worker does
    /// and builds its retry and dead letter, fitted to `frame_max`.
    pub fn inspect_delivery(properties: &lapin::BasicProperties, frame_max: u32) {
        crate::amqp::message::inspect(properties, frame_max);
    }

    /// For the fuzz target: decodes a message body as job type `J`, as a
    /// worker does before running it.
    pub fn decode_body<J: crate::Job>(body: &[u8]) -> Result<J, String> {
        crate::job::codec::decode(body)
    }
}
