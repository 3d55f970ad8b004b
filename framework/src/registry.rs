//! The jobs a binary knows, collected from every `#[derive(Job)]` it links.

use std::collections::HashMap;
use std::fmt;

use futures_util::future::BoxFuture;

use crate::{Handler, Job, JobContext, JobError, JobOptions, codec};

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
        }
        Ok(registry)
    }

    /// The job with this wire name.
    pub fn get(&self, name: &str) -> Option<&Registration> {
        self.by_name.get(name)
    }

    /// The job that handles untyped messages on `queue` (unprefixed).
    pub fn queue_default(&self, queue: &str) -> Option<&Registration> {
        self.default_by_queue.get(queue)
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
