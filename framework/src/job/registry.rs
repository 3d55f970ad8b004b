//! The jobs a binary knows, collected from every `#[derive(Job)]`,
//! [`handler!`](crate::handler) and [`schedule!`](crate::schedule) it links.

use std::any::{TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use futures_util::future::BoxFuture;

use crate::job::QueueShape;
use crate::job::codec;
use crate::job::contract::{BoundHandler, Contract};
use crate::job::schedule::{Schedule, ScheduleDeclaration};
use crate::{Error, Handler, Job, JobContext, JobError, JobOptions, QueueType};

/// The future of one attempt, or why the body could not be decoded.
pub(crate) type Attempt = Result<BoxFuture<'static, Result<(), JobError>>, String>;

/// Decodes a body and starts one attempt of a job's handler.
pub(crate) type Start = fn(&[u8], JobContext) -> Attempt;

/// Encodes a periodic job's `Default` value.
type EncodeDefault = fn() -> Result<Vec<u8>, String>;

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
    type_id: fn() -> TypeId,
    handling: Handling,
    encode_json: fn(&str) -> Result<Vec<u8>, String>,
    default_body: Option<EncodeDefault>,
}

/// Where a job's handler comes from.
#[derive(Clone, Copy)]
enum Handling {
    /// The job type implements `Handler`.
    Own(Start),
    /// A contract, and the handler `handler!` bound to it (named).
    Bound(Start, &'static str),
    /// A contract with no handler in this program: a producer's view.
    Unbound,
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
            type_id: TypeId::of::<J>,
            handling: Handling::Own(start::<J>),
            encode_json: encode_json::<J>,
            default_body: None,
        }
    }

    /// The registration of a periodic job (`#[job(cron = "...")]`), which
    /// the scheduler enqueues with its `Default` value.
    #[doc(hidden)]
    pub const fn with_default<J: Job + Default>(mut self) -> Self {
        self.default_body = Some(default_body::<J>);
        self
    }

    /// The registration of a contract job type, whose handler (if this
    /// program has one) is bound with `handler!`.
    #[doc(hidden)]
    pub const fn contract<J: Contract>(type_name: &'static str) -> Self {
        Registration {
            name: J::NAME,
            queue: J::QUEUE,
            options: J::OPTIONS,
            type_name,
            type_id: TypeId::of::<J>,
            handling: Handling::Unbound,
            encode_json: encode_json::<J>,
            default_body: None,
        }
    }

    /// Whether the job type is a contract (`#[job(contract)]`), whose
    /// handler is bound with [`handler!`](crate::handler) rather than
    /// implemented on the type.
    pub fn is_contract(&self) -> bool {
        !matches!(self.handling, Handling::Own(_))
    }

    /// Whether this program can run the job: it implements `Handler`, or it
    /// is a contract with a handler bound to it.
    pub fn has_handler(&self) -> bool {
        !matches!(self.handling, Handling::Unbound)
    }

    /// The path of the function [`handler!`](crate::handler) bound to this
    /// contract job; `None` for a job that implements `Handler` itself and
    /// for a contract with no handler in this program.
    pub fn handler(&self) -> Option<&'static str> {
        match self.handling {
            Handling::Bound(_, handler) => Some(handler),
            Handling::Own(_) | Handling::Unbound => None,
        }
    }

    /// Decodes `body` and starts the handler; the future runs one attempt.
    /// `None`: this program has no handler for the job.
    pub(crate) fn start(&self, body: &[u8], ctx: JobContext) -> Option<Attempt> {
        match self.handling {
            Handling::Own(start) | Handling::Bound(start, _) => Some(start(body, ctx)),
            Handling::Unbound => None,
        }
    }

    /// The job type.
    pub(crate) fn type_id(&self) -> TypeId {
        (self.type_id)()
    }

    /// The message body of the job's `Default` value, for a periodic job.
    pub(crate) fn default_body(&self) -> Option<Result<Vec<u8>, String>> {
        self.default_body.map(|body| body())
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

fn default_body<J: Job + Default>() -> Result<Vec<u8>, String> {
    codec::encode(&J::default()).map_err(|e| e.to_string())
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
            .field("contract", &self.is_contract())
            .field("handler", &self.handler())
            .finish_non_exhaustive()
    }
}

inventory::collect!(Registration);

/// Every job type registered in this binary, and their schedules, checked
/// for conflicts.
#[derive(Debug, Clone)]
pub struct Registry {
    by_name: HashMap<&'static str, Registration>,
    /// Every schedule, sorted by name: the `#[job(cron)]` jobs' and the
    /// named ones.
    schedules: Vec<Schedule>,
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
    /// Two job types on one queue want it to take different priorities;
    /// RabbitMQ would refuse one of the two declarations.
    #[error(
        "queue `{queue}` takes {} for `{first}` but {} for `{second}`; give every job of the queue the same #[job(max_priority = N)]",
        priorities_taken(*.first_max),
        priorities_taken(*.second_max)
    )]
    ConflictingMaxPriority {
        /// The queue.
        queue: &'static str,
        /// One type.
        first: &'static str,
        /// The highest priority it wants the queue to take.
        first_max: Option<u8>,
        /// The other type.
        second: &'static str,
        /// The highest priority that one wants.
        second_max: Option<u8>,
    },
    /// Two handlers are bound to one contract job.
    #[error(
        "job `{name}` (`{job}`) has two handlers: `{first}` and `{second}`; keep one `warren::handler!({job} => ...)` per program"
    )]
    DuplicateHandler {
        /// The job's wire name.
        name: &'static str,
        /// The job type.
        job: &'static str,
        /// One handler.
        first: &'static str,
        /// The other handler.
        second: &'static str,
    },
    /// A handler is bound to a job type that implements `Handler` itself.
    #[error(
        "job `{name}` (`{job}`) implements `Handler` and is also bound to `{handler}` by `warren::handler!`; declare the job #[job(contract)] and drop its `impl Handler`, or drop the `handler!`"
    )]
    HandlerForNonContract {
        /// The job's wire name.
        name: &'static str,
        /// The job type.
        job: &'static str,
        /// The handler bound to it.
        handler: &'static str,
    },
    /// A handler is bound to a job type that is not registered.
    #[error(
        "`{handler}` is bound by `warren::handler!` to `{job}`, which is not registered as a job; derive `Job` on it with #[job(contract)]"
    )]
    HandlerWithoutJob {
        /// The job type.
        job: &'static str,
        /// The handler bound to it.
        handler: &'static str,
    },
    /// Two schedules share a name, which keys their state on the broker.
    #[error(
        "schedule `{name}` is registered twice: for job `{first}` and for job `{second}`; give one of them another name (a #[job(cron = \"...\")] job's schedule is named after the job)"
    )]
    DuplicateSchedule {
        /// The shared name.
        name: String,
        /// The job type of one.
        first: &'static str,
        /// The job type of the other.
        second: &'static str,
    },
    /// A schedule enqueues a job type that is not in the registry.
    #[error(
        "schedule `{name}` enqueues `{job}`, which is not registered as a job; derive `Job` on it, or add it to the registry with `.job::<{job}>()`"
    )]
    ScheduleWithoutJob {
        /// The schedule.
        name: String,
        /// The job type.
        job: &'static str,
    },
    /// A contract job that must run here has no handler in this program.
    #[error(
        "job `{name}` (`{job}`) is a contract with no handler in this program; bind one with `warren::handler!({job} => your_handler);` in the crate that runs it"
    )]
    MissingHandler {
        /// The job's wire name.
        name: &'static str,
        /// The job type.
        job: &'static str,
    },
}

impl RegistryError {
    /// The error for a contract job that has no handler here.
    pub(crate) fn missing_handler(job: &Registration) -> Self {
        RegistryError::MissingHandler {
            name: job.name,
            job: job.type_name,
        }
    }
}

/// How a queue's `max_priority` reads in a message.
fn priorities_taken(max: Option<u8>) -> String {
    match max {
        Some(max) => format!("priorities up to {max}"),
        None => "no priorities".to_owned(),
    }
}

impl Registry {
    /// The registry of every job linked into this binary, with the handlers
    /// [`handler!`](crate::handler) bound to its contract jobs and the
    /// schedules of [`schedule!`](crate::schedule) (whose job values are
    /// encoded now).
    pub fn from_inventory() -> Result<Self, RegistryError> {
        Self::join(
            inventory::iter::<Registration>.into_iter().copied(),
            inventory::iter::<BoundHandler>.into_iter().copied(),
            inventory::iter::<ScheduleDeclaration>
                .into_iter()
                .map(|declaration| (declaration.build)()),
        )
    }

    /// A registry of the given jobs, as they are: a contract job keeps the
    /// handler it had in the registry it came from, if any. Its schedules
    /// are those of its `#[job(cron)]` jobs.
    ///
    /// To pick jobs by type, for a test, use [`Registry::builder`].
    pub fn from_registrations(registrations: impl IntoIterator<Item = Registration>) -> Result<Self, RegistryError> {
        Self::join(registrations, [], [])
    }

    /// A registry of the job types you name, rather than of every job
    /// linked into the program: for a test that drains only those jobs
    /// ([`InMemoryBroker::with_registry`](crate::testing::InMemoryBroker::with_registry)).
    ///
    /// ```
    /// use warren::prelude::*;
    /// use warren::Registry;
    ///
    /// #[derive(Debug, Serialize, Deserialize, Job)]
    /// struct SignUp { email: String }
    /// # impl Handler for SignUp {
    /// #     async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> { Ok(()) }
    /// # }
    ///
    /// #[derive(Debug, Serialize, Deserialize, Job)]
    /// #[job(contract)]
    /// struct SendWelcome { to: String }
    ///
    /// async fn send_welcome(_job: SendWelcome, _ctx: &JobContext) -> Result<(), JobError> { Ok(()) }
    /// warren::handler!(SendWelcome => send_welcome);
    ///
    /// let registry = Registry::builder().job::<SignUp>().contract::<SendWelcome>().build()?;
    /// assert_eq!(registry.jobs().len(), 2);
    /// # Ok::<(), warren::RegistryError>(())
    /// ```
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// Binds each handler to its contract job, then checks the jobs against
    /// each other, and the schedules against the jobs and each other.
    fn join(
        registrations: impl IntoIterator<Item = Registration>,
        handlers: impl IntoIterator<Item = BoundHandler>,
        schedules: impl IntoIterator<Item = Schedule>,
    ) -> Result<Self, RegistryError> {
        let mut all: Vec<Registration> = registrations.into_iter().collect();
        // inventory's order depends on link order; sort so errors are stable.
        all.sort_by_key(|r| (r.name, r.type_name));
        let mut handlers: Vec<(&'static str, &'static str, BoundHandler)> = handlers
            .into_iter()
            .map(|handler| ((handler.job_type)(), (handler.handler)(), handler))
            .collect();
        handlers.sort_by_key(|&(job, handler, _)| (job, handler));
        for (job, handler, bound) in handlers {
            let Some(registration) = all.iter_mut().find(|r| (r.type_id)() == (bound.job)()) else {
                return Err(RegistryError::HandlerWithoutJob { job, handler });
            };
            registration.handling = match registration.handling {
                Handling::Unbound => Handling::Bound(bound.start, handler),
                Handling::Bound(_, first) => {
                    return Err(RegistryError::DuplicateHandler {
                        name: registration.name,
                        job: registration.type_name,
                        first,
                        second: handler,
                    });
                }
                Handling::Own(_) => {
                    return Err(RegistryError::HandlerForNonContract {
                        name: registration.name,
                        job: registration.type_name,
                        handler,
                    });
                }
            };
        }

        let mut registry = Registry {
            by_name: HashMap::new(),
            schedules: Vec::new(),
            default_by_queue: HashMap::new(),
            type_by_queue: HashMap::new(),
        };
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
            if first.options.max_priority != registration.options.max_priority {
                return Err(RegistryError::ConflictingMaxPriority {
                    queue: registration.queue,
                    first: first.type_name,
                    first_max: first.options.max_priority,
                    second: registration.type_name,
                    second_max: registration.options.max_priority,
                });
            }
        }
        registry.schedules = registry.check_schedules(schedules)?;
        Ok(registry)
    }

    /// The `#[job(cron)]` jobs' schedules and `named`, sorted by name:
    /// each of a job of this registry, and no two of one name.
    fn check_schedules(&self, named: impl IntoIterator<Item = Schedule>) -> Result<Vec<Schedule>, RegistryError> {
        let mut schedules: Vec<Schedule> = self.jobs().into_iter().filter_map(Schedule::of_job).collect();
        for schedule in named {
            if self
                .by_name
                .get(schedule.job())
                .is_none_or(|job| job.type_id() != schedule.type_id())
            {
                return Err(RegistryError::ScheduleWithoutJob {
                    name: schedule.name().to_owned(),
                    job: schedule.job_type(),
                });
            }
            schedules.push(schedule);
        }
        // Stable: of two of one name, the job's own comes first.
        schedules.sort_by(|a, b| a.name().cmp(b.name()));
        if let Some(pair) = schedules.windows(2).find(|pair| pair[0].name() == pair[1].name()) {
            // Named as the registry names them (checked above: registered).
            let job_type = |schedule: &Schedule| {
                self.by_name
                    .get(schedule.job())
                    .map_or(schedule.job_type(), |job| job.type_name)
            };
            return Err(RegistryError::DuplicateSchedule {
                name: pair[0].name().to_owned(),
                first: job_type(&pair[0]),
                second: job_type(&pair[1]),
            });
        }
        Ok(schedules)
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

    /// What `queue` (unprefixed) is declared with: as its jobs say.
    pub(crate) fn queue_shape(&self, queue: &str) -> QueueShape {
        self.type_by_queue
            .get(queue)
            .map_or_else(QueueShape::default, |registration| {
                QueueShape::of(&registration.options)
            })
    }

    /// All jobs, sorted by name.
    pub fn jobs(&self) -> Vec<&Registration> {
        let mut jobs: Vec<_> = self.by_name.values().collect();
        jobs.sort_by_key(|r| r.name);
        jobs
    }

    /// Every schedule, sorted by name: one per `#[job(cron = "...")]` job
    /// (named after it) and those of [`schedule!`](crate::schedule) or
    /// [`RegistryBuilder::schedule`].
    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    /// The distinct queues of all jobs, sorted.
    pub fn queues(&self) -> Vec<&'static str> {
        let mut queues: Vec<_> = self.by_name.values().map(|r| r.queue).collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }

    /// The contract jobs of `queues` (unprefixed) that have no handler in
    /// this program, sorted by name: a worker consuming those queues could
    /// not run them, and refuses to start.
    pub fn missing_handlers(&self, queues: &[&str]) -> Vec<&Registration> {
        self.jobs()
            .into_iter()
            .filter(|job| !job.has_handler() && queues.contains(&job.queue))
            .collect()
    }
}

/// Builds a [`Registry`] of the job types you name; from [`Registry::builder`].
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    registrations: Vec<Registration>,
    schedules: Vec<Schedule>,
}

impl RegistryBuilder {
    /// Adds a job type that implements [`Handler`].
    pub fn job<J: Handler>(mut self) -> Self {
        // The derive's registration can encode a `#[job(cron)]` job's
        // `Default` value, which this bound cannot ask for.
        let linked = inventory::iter::<Registration>
            .into_iter()
            .find(|linked| linked.type_id() == TypeId::of::<J>());
        self.registrations.push(
            linked
                .copied()
                .unwrap_or_else(|| Registration::of::<J>(type_name::<J>())),
        );
        self
    }

    /// Adds a contract job type, with the handler that
    /// [`handler!`](crate::handler) binds to it in this program.
    pub fn contract<J: Contract>(mut self) -> Self {
        self.registrations.push(Registration::contract::<J>(type_name::<J>()));
        self
    }

    /// Adds a schedule of a job type added with [`job`](Self::job) or
    /// [`contract`](Self::contract): see [`Schedule`]. The
    /// [`schedule!`](crate::schedule)s linked into the program are not
    /// included; a registry you build has the schedules you name (and
    /// those of its `#[job(cron)]` jobs).
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedules.push(schedule);
        self
    }

    /// The registry; fails as [`Registry::from_inventory`] would on
    /// conflicting jobs, and on a contract job with no handler in this
    /// program ([`RegistryError::MissingHandler`]): a registry you build
    /// is for running its jobs.
    pub fn build(self) -> Result<Registry, RegistryError> {
        Self::build_with(
            self.registrations,
            inventory::iter::<BoundHandler>.into_iter().copied(),
            self.schedules,
        )
    }

    fn build_with(
        registrations: Vec<Registration>,
        handlers: impl IntoIterator<Item = BoundHandler>,
        schedules: Vec<Schedule>,
    ) -> Result<Registry, RegistryError> {
        // Only the handlers of the jobs named: the program's other handlers
        // are bound to jobs this registry leaves out.
        let named: Vec<TypeId> = registrations.iter().map(|r| (r.type_id)()).collect();
        let handlers = handlers.into_iter().filter(|handler| named.contains(&(handler.job)()));
        let registry = Registry::join(registrations, handlers, schedules)?;
        match registry.jobs().into_iter().find(|job| !job.has_handler()) {
            Some(unbound) => Err(RegistryError::missing_handler(unbound)),
            None => Ok(registry),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::testing::TestContext;

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

    /// A contract job on `queue`, written by hand like the jobs above.
    macro_rules! contract {
        ($name:ident, $queue:literal) => {
            #[derive(Serialize, Deserialize)]
            struct $name;

            impl Job for $name {
                const NAME: &'static str = stringify!($name);
                const QUEUE: &'static str = $queue;
                const OPTIONS: JobOptions = JobOptions::new();
            }

            impl Contract for $name {}
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

    #[derive(Serialize, Deserialize)]
    struct Page;

    impl Job for Page {
        const NAME: &'static str = "page";
        const QUEUE: &'static str = "images";
        const OPTIONS: JobOptions = JobOptions::new().with_max_priority(10);
    }

    impl Handler for Page {
        async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }

    #[test]
    fn jobs_of_one_queue_must_agree_on_its_priorities() {
        let error = Registry::from_registrations([
            Registration::of::<Resize>("images::Resize"),
            Registration::of::<Page>("alerts::Page"),
        ])
        .expect_err("a conflict");
        assert_eq!(
            error.to_string(),
            "queue `images` takes no priorities for `images::Resize` but priorities up to 10 for \
             `alerts::Page`; give every job of the queue the same #[job(max_priority = N)]"
        );
        let alone = Registry::from_registrations([Registration::of::<Page>("alerts::Page")]).expect("no conflict");
        assert_eq!(alone.queue_shape("images").max_priority, Some(10));
        assert_eq!(alone.queue_shape("elsewhere"), QueueShape::default());
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

    contract!(Thumbnail, "images");
    contract!(Invoice, "billing");

    async fn thumbnail(_job: Thumbnail, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }

    async fn failing_thumbnail(_job: Thumbnail, _ctx: &JobContext) -> Result<(), JobError> {
        Err(JobError::msg("the second handler ran"))
    }

    /// What `warren::handler!(Thumbnail => path)` submits, without putting
    /// it in this test binary's inventory.
    fn bound(handler: fn() -> &'static str) -> BoundHandler {
        fn start(body: &[u8], ctx: JobContext) -> Attempt {
            crate::job::contract::start::<Thumbnail, _, _>(
                body,
                ctx,
                |job, ctx| async move { thumbnail(job, &ctx).await },
            )
        }
        BoundHandler::new::<Thumbnail>(handler, start)
    }

    fn other_thumbnail_handler() -> BoundHandler {
        fn start(body: &[u8], ctx: JobContext) -> Attempt {
            crate::job::contract::start::<Thumbnail, _, _>(body, ctx, |job, ctx| async move {
                failing_thumbnail(job, &ctx).await
            })
        }
        BoundHandler::new::<Thumbnail>(|| "worker::failing_thumbnail", start)
    }

    #[tokio::test]
    async fn a_contract_has_no_handler_until_one_is_bound() {
        let contract = Registration::contract::<Thumbnail>("contracts::Thumbnail");
        let unbound = Registry::join([contract], [], []).expect("a producer's registry");
        let job = unbound.get("Thumbnail").expect("registered");
        assert!(job.is_contract() && !job.has_handler());
        assert_eq!(job.handler(), None);
        assert!(job.start(b"null", TestContext::new().build()).is_none());
        assert_eq!(
            job.encode_json("null"),
            Ok(b"null".to_vec()),
            "a producer can still enqueue it"
        );

        let bound = Registry::join([contract], [bound(|| "worker::thumbnail")], []).expect("a worker's registry");
        let job = bound.get("Thumbnail").expect("registered");
        assert!(job.is_contract() && job.has_handler());
        assert_eq!(job.handler(), Some("worker::thumbnail"));
        let attempt = job.start(b"null", TestContext::new().build()).expect("a handler");
        attempt.expect("decodes").await.expect("the handler ran");

        let own = Registry::join([Registration::of::<Resize>("images::Resize")], [], []).unwrap();
        let job = own.get("Resize").unwrap();
        assert!(!job.is_contract() && job.has_handler() && job.handler().is_none());
    }

    #[test]
    fn two_handlers_for_one_contract_are_refused_naming_both() {
        let error = Registry::join(
            [Registration::contract::<Thumbnail>("contracts::Thumbnail")],
            [other_thumbnail_handler(), bound(|| "worker::thumbnail")],
            [],
        )
        .expect_err("two handlers");
        // Sorted by handler, whatever the link order.
        assert_eq!(
            error,
            RegistryError::DuplicateHandler {
                name: "Thumbnail",
                job: "contracts::Thumbnail",
                first: "worker::failing_thumbnail",
                second: "worker::thumbnail",
            }
        );
        assert_eq!(
            error.to_string(),
            "job `Thumbnail` (`contracts::Thumbnail`) has two handlers: `worker::failing_thumbnail` and \
             `worker::thumbnail`; keep one `warren::handler!(contracts::Thumbnail => ...)` per program"
        );
    }

    #[test]
    fn a_handler_for_a_job_with_its_own_handler_or_for_no_job_is_refused() {
        // A type that implements both `Handler` and (by hand) `Contract`.
        job!(Both, "images", QueueType::Classic);
        impl Contract for Both {}
        fn start(body: &[u8], ctx: JobContext) -> Attempt {
            crate::job::contract::start::<Both, _, _>(body, ctx, |_job, _ctx| async { Ok(()) })
        }
        let error = Registry::join(
            [Registration::of::<Both>("images::Both")],
            [BoundHandler::new::<Both>(|| "worker::both", start)],
            [],
        )
        .expect_err("a handler too many");
        assert_eq!(
            error,
            RegistryError::HandlerForNonContract {
                name: "Both",
                job: "images::Both",
                handler: "worker::both",
            }
        );
        assert!(
            error.to_string().contains("declare the job #[job(contract)]"),
            "{error}"
        );

        let error = Registry::join([], [bound(|| "worker::thumbnail")], []).expect_err("no such job");
        assert_eq!(
            error,
            RegistryError::HandlerWithoutJob {
                job: type_name::<Thumbnail>(),
                handler: "worker::thumbnail",
            }
        );
    }

    #[test]
    fn missing_handlers_are_the_unbound_contracts_of_the_queues_served() {
        let registry = Registry::join(
            [
                Registration::contract::<Thumbnail>("contracts::Thumbnail"),
                Registration::contract::<Invoice>("contracts::Invoice"),
                Registration::of::<Resize>("images::Resize"),
            ],
            [],
            [],
        )
        .unwrap();
        let names =
            |queues: &[&str]| -> Vec<&str> { registry.missing_handlers(queues).iter().map(|job| job.name).collect() };
        assert_eq!(names(&["images", "billing"]), ["Invoice", "Thumbnail"]);
        assert_eq!(names(&["billing"]), ["Invoice"]);
        assert!(names(&["elsewhere"]).is_empty());
        assert_eq!(
            RegistryError::missing_handler(registry.get("Invoice").unwrap()).to_string(),
            "job `Invoice` (`contracts::Invoice`) is a contract with no handler in this program; bind one with \
             `warren::handler!(contracts::Invoice => your_handler);` in the crate that runs it"
        );
    }

    #[test]
    fn a_built_registry_has_only_the_jobs_named_and_their_handlers() {
        let registry = RegistryBuilder::build_with(
            vec![
                Registration::of::<Charge>("billing::Charge"),
                Registration::contract::<Thumbnail>("contracts::Thumbnail"),
            ],
            [bound(|| "worker::thumbnail")],
            Vec::new(),
        )
        .expect("no conflict");
        let names: Vec<_> = registry.jobs().iter().map(|job| job.name).collect();
        assert_eq!(names, ["Charge", "Thumbnail"]);
        assert_eq!(registry.get("Thumbnail").unwrap().handler(), Some("worker::thumbnail"));

        // The program's handler of a job left out is not an error here.
        let unbound = RegistryBuilder::build_with(
            vec![Registration::contract::<Invoice>("contracts::Invoice")],
            [bound(|| "worker::thumbnail")],
            Vec::new(),
        )
        .expect_err("a contract without a handler cannot run");
        assert_eq!(
            unbound,
            RegistryError::MissingHandler {
                name: "Invoice",
                job: "contracts::Invoice",
            }
        );
    }

    /// A job with arguments, for schedules.
    #[derive(Serialize, Deserialize)]
    struct Report {
        region: String,
    }

    impl Job for Report {
        const NAME: &'static str = "report";
        const QUEUE: &'static str = "reports";
        const OPTIONS: JobOptions = JobOptions::new();
    }

    impl Handler for Report {
        async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }

    /// A `#[job(cron)]` job, written by hand.
    #[derive(Default, Serialize, Deserialize)]
    struct Nightly;

    impl Job for Nightly {
        const NAME: &'static str = "nightly";
        const QUEUE: &'static str = "reports";
        const OPTIONS: JobOptions = JobOptions::new().with_cron("0 0 3 * * *").with_timezone("Europe/Paris");
    }

    impl Handler for Nightly {
        async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }

    fn report(name: &str, region: &str) -> Schedule {
        Schedule::new(name, "0 0 7 * * *", Report { region: region.into() })
    }

    fn with_schedules(schedules: Vec<Schedule>) -> Result<Registry, RegistryError> {
        RegistryBuilder::build_with(
            vec![
                Registration::of::<Report>("reports::Report"),
                Registration::of::<Nightly>("reports::Nightly").with_default::<Nightly>(),
            ],
            [],
            schedules,
        )
    }

    #[test]
    fn one_job_has_several_schedules_each_with_its_arguments_encoded_once() {
        let registry = with_schedules(vec![
            report("report_us", "us").timezone("America/New_York"),
            report("report_eu", "eu"),
        ])
        .expect("no conflict");
        let schedules: Vec<_> = registry
            .schedules()
            .iter()
            .map(|s| (s.name(), s.job(), s.cron(), s.timezone_name(), s.body().unwrap()))
            .collect();
        // Sorted by name; the cron job's own is named after it.
        assert_eq!(
            schedules,
            [
                ("nightly", "nightly", "0 0 3 * * *", "Europe/Paris", &b"null"[..]),
                ("report_eu", "report", "0 0 7 * * *", "UTC", br#"{"region":"eu"}"#),
                (
                    "report_us",
                    "report",
                    "0 0 7 * * *",
                    "America/New_York",
                    br#"{"region":"us"}"#
                ),
            ]
        );
        // Without a `Default` (registered without `with_default`), the cron
        // job's schedule says why it cannot fire.
        let registry = Registry::from_registrations([Registration::of::<Nightly>("reports::Nightly")]).unwrap();
        assert_eq!(registry.schedules()[0].body(), Err("has no Default value to enqueue"));
    }

    #[test]
    fn two_schedules_of_one_name_are_refused_naming_both_jobs() {
        let error =
            with_schedules(vec![report("report_eu", "eu"), report("report_eu", "us")]).expect_err("a duplicate");
        assert_eq!(
            error,
            RegistryError::DuplicateSchedule {
                name: "report_eu".into(),
                first: "reports::Report",
                second: "reports::Report",
            }
        );
        // A cron job's schedule has the job's name.
        let error = with_schedules(vec![report("nightly", "eu")]).expect_err("a duplicate");
        assert_eq!(
            error.to_string(),
            "schedule `nightly` is registered twice: for job `reports::Nightly` and for job `reports::Report`; \
             give one of them another name (a #[job(cron = \"...\")] job's schedule is named after the job)"
        );
    }

    #[test]
    fn a_schedule_of_a_job_the_registry_lacks_is_refused() {
        let error = RegistryBuilder::build_with(
            vec![Registration::of::<Resize>("images::Resize")],
            [],
            vec![report("report_eu", "eu")],
        )
        .expect_err("no such job");
        assert_eq!(
            error,
            RegistryError::ScheduleWithoutJob {
                name: "report_eu".into(),
                job: type_name::<Report>(),
            }
        );
        assert!(
            error.to_string().contains("add it to the registry with `.job::<"),
            "{error}"
        );
    }
}
