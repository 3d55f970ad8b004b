//! The jobs a binary knows, collected from every `#[derive(Job)]` it links.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use futures_util::future::BoxFuture;

use crate::job::codec;
use crate::{Error, Handler, Job, JobContext, JobError, JobOptions, QueueType};

/// The future of one attempt, or why the body could not be decoded.
pub(crate) type Attempt = Result<BoxFuture<'static, Result<(), JobError>>, String>;

/// One registered job type. `#[derive(Job)]` submits one per type.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The job's wire name.
    pub name: &'static str,
    /// The job's queue (before any prefix).
    pub queue: &'static str,
    /// The job's options.
    pub options: JobOptions,
    /// The Rust path of the type, for messages that name it.
    pub type_name: &'static str,
    start: fn(&[u8], JobContext) -> Attempt,
    encode_json: fn(&str) -> Result<Vec<u8>, String>,
}

impl Registration {
    /// The registration of a job type that has a handler.
    #[doc(hidden)]
    pub const fn of<J: Handler>(type_name: &'static str) -> Self {
        Registration {
            name: J::NAME,
            queue: J::QUEUE,
            options: J::OPTIONS,
            type_name,
            start: start::<J>,
            encode_json: encode_json::<J>,
        }
    }

    /// Decodes `body` and starts the handler; the future runs one attempt.
    pub(crate) fn start(&self, body: &[u8], ctx: JobContext) -> Attempt {
        (self.start)(body, ctx)
    }

    /// Turns a job given as JSON (as on the command line) into its message
    /// body, checking that it decodes as the job type.
    pub(crate) fn encode_json(&self, json: &str) -> Result<Vec<u8>, String> {
        (self.encode_json)(json)
    }
}

fn start<J: Handler>(body: &[u8], ctx: JobContext) -> Attempt {
    let job = codec::decode::<J>(body)?;
    Ok(Box::pin(async move { job.perform(&ctx).await }))
}

fn encode_json<J: Job>(json: &str) -> Result<Vec<u8>, String> {
    let job: J = serde_json::from_str(json).map_err(|e| format!("invalid JSON for job `{}`: {e}", J::NAME))?;
    codec::encode(&job).map_err(|e| e.to_string())
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .field("queue", &self.queue)
            .field("options", &self.options)
            .field("type_name", &self.type_name)
            .finish_non_exhaustive()
    }
}

inventory::collect!(Registration);

/// Every job type registered in this binary, checked for conflicts.
#[derive(Debug, Clone)]
pub struct Registry {
    by_name: HashMap<&'static str, Registration>,
    default_by_queue: HashMap<&'static str, Registration>,
    /// The first job (by name) of each queue, whose type the queue has.
    type_by_queue: HashMap<&'static str, Registration>,
}

/// Two registrations that cannot both be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two job types share a wire name.
    #[error(
        "job name `{name}` is registered twice: by `{first}` and by `{second}`; give one of them another #[job(name = \"...\")]"
    )]
    DuplicateName {
        /// The shared name.
        name: &'static str,
        /// One type.
        first: &'static str,
        /// The other type.
        second: &'static str,
    },
    /// Two job types claim the untyped messages of one queue.
    #[error(
        "queue `{queue}` has two default jobs: `{first}` and `{second}`; only one job per queue may set #[job(queue_default)]"
    )]
    DuplicateQueueDefault {
        /// The queue.
        queue: &'static str,
        /// One type.
        first: &'static str,
        /// The other type.
        second: &'static str,
    },
    /// Two job types on one queue want it declared as different kinds of
    /// queue; RabbitMQ would refuse one of the two declarations.
    #[error(
        "queue `{queue}` is declared as two kinds of queue: {first_type} by `{first}` and {second_type} by `{second}`; give every job of the queue the same #[job(queue_type = \"...\")]"
    )]
    ConflictingQueueType {
        /// The queue.
        queue: &'static str,
        /// One type.
        first: &'static str,
        /// The kind of queue it wants.
        first_type: QueueType,
        /// The other type.
        second: &'static str,
        /// The kind of queue that one wants.
        second_type: QueueType,
    },
}

impl Registry {
    /// The registry of every job linked into this binary.
    pub fn from_inventory() -> Result<Self, RegistryError> {
        Self::from_registrations(inventory::iter::<Registration>.into_iter().copied())
    }

    /// A registry of the given jobs.
    pub fn from_registrations(registrations: impl IntoIterator<Item = Registration>) -> Result<Self, RegistryError> {
        let mut registry = Registry {
            by_name: HashMap::new(),
            default_by_queue: HashMap::new(),
            type_by_queue: HashMap::new(),
        };
        let mut all: Vec<Registration> = registrations.into_iter().collect();
        // inventory's order depends on link order; sort so errors are stable.
        all.sort_by_key(|r| (r.name, r.type_name));
        for registration in all {
            if let Some(first) = registry.by_name.insert(registration.name, registration) {
                return Err(RegistryError::DuplicateName {
                    name: registration.name,
                    first: first.type_name,
                    second: registration.type_name,
                });
            }
            if registration.options.queue_default
                && let Some(first) = registry.default_by_queue.insert(registration.queue, registration)
            {
                return Err(RegistryError::DuplicateQueueDefault {
                    queue: registration.queue,
                    first: first.type_name,
                    second: registration.type_name,
                });
            }
            let first = *registry.type_by_queue.entry(registration.queue).or_insert(registration);
            if first.options.queue_type != registration.options.queue_type {
                return Err(RegistryError::ConflictingQueueType {
                    queue: registration.queue,
                    first: first.type_name,
                    first_type: first.options.queue_type,
                    second: registration.type_name,
                    second_type: registration.options.queue_type,
                });
            }
        }
        Ok(registry)
    }

    /// The registry of every job type linked into this program, built once.
    pub(crate) fn linked() -> Result<&'static Registry, Error> {
        static LINKED: OnceLock<Result<Registry, RegistryError>> = OnceLock::new();
        LINKED
            .get_or_init(Registry::from_inventory)
            .as_ref()
            .map_err(|error| Error::Registry(error.clone()))
    }

    /// The job with this wire name.
    pub fn get(&self, name: &str) -> Option<&Registration> {
        self.by_name.get(name)
    }

    /// The job that handles untyped messages on `queue` (unprefixed).
    pub fn queue_default(&self, queue: &str) -> Option<&Registration> {
        self.default_by_queue.get(queue)
    }

    /// The kind of queue `queue` (unprefixed) is declared as: the one its
    /// jobs name; classic for a queue no job uses.
    pub fn queue_type(&self, queue: &str) -> QueueType {
        self.type_by_queue
            .get(queue)
            .map_or(QueueType::Classic, |registration| registration.options.queue_type)
    }

    /// All jobs, sorted by name.
    pub fn jobs(&self) -> Vec<&Registration> {
        let mut jobs: Vec<_> = self.by_name.values().collect();
        jobs.sort_by_key(|r| r.name);
        jobs
    }

    /// The distinct queues of all jobs, sorted.
    pub fn queues(&self) -> Vec<&'static str> {
        let mut queues: Vec<_> = self.by_name.values().map(|r| r.queue).collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    /// A job on `queue` of kind `TYPE`, with its handler; written by hand,
    /// as the derive names `::warren`, which this crate cannot.
    macro_rules! job {
        ($name:ident, $queue:literal, $queue_type:expr) => {
            #[derive(Serialize, Deserialize)]
            struct $name;

            impl Job for $name {
                const NAME: &'static str = stringify!($name);
                const QUEUE: &'static str = $queue;
                const OPTIONS: JobOptions = JobOptions::new().with_queue_type($queue_type);
            }

            impl Handler for $name {
                async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
                    Ok(())
                }
            }
        };
    }

    job!(Charge, "payments", QueueType::Quorum);
    job!(Refund, "payments", QueueType::Quorum);
    job!(Receipt, "payments", QueueType::Classic);
    job!(Resize, "images", QueueType::Classic);

    #[test]
    fn a_queue_has_the_type_its_jobs_name_and_unknown_queues_are_classic() {
        let registry = Registry::from_registrations([
            Registration::of::<Charge>("billing::Charge"),
            Registration::of::<Refund>("billing::Refund"),
            Registration::of::<Resize>("images::Resize"),
        ])
        .expect("no conflict");
        assert_eq!(registry.queue_type("payments"), QueueType::Quorum);
        assert_eq!(registry.queue_type("images"), QueueType::Classic);
        assert_eq!(registry.queue_type("elsewhere"), QueueType::Classic);
    }

    #[test]
    fn two_kinds_of_queue_for_one_queue_are_refused_naming_both() {
        let error = Registry::from_registrations([
            Registration::of::<Receipt>("billing::Receipt"),
            Registration::of::<Resize>("images::Resize"),
            Registration::of::<Charge>("billing::Charge"),
        ])
        .expect_err("a conflict");
        // By name: `Charge` comes first whatever the order of registration.
        assert_eq!(
            error,
            RegistryError::ConflictingQueueType {
                queue: "payments",
                first: "billing::Charge",
                first_type: QueueType::Quorum,
                second: "billing::Receipt",
                second_type: QueueType::Classic,
            }
        );
        assert_eq!(
            error.to_string(),
            "queue `payments` is declared as two kinds of queue: quorum by `billing::Charge` and classic by \
             `billing::Receipt`; give every job of the queue the same #[job(queue_type = \"...\")]"
        );
    }
}
