//! Named schedules: a job value enqueued on a cron schedule, registered
//! with [`schedule!`](crate::schedule) or [`RegistryBuilder::schedule`](crate::RegistryBuilder::schedule).
//!
//! A job type can have several, with different arguments; each is known by
//! its own name, which keys its state on the broker (the last slot fired,
//! the pause flag) and its slots' job ids. A `#[job(cron = "...")]` job has
//! one more, named after the job, that enqueues its `Default` value.

use std::any::{TypeId, type_name};
use std::fmt;

use crate::Job;
use crate::job::codec;
use crate::job::registry::Registration;

/// A job value to enqueue on a cron schedule, under a name of its own.
///
/// The value is encoded once, here; every slot enqueues the same body.
///
/// ```
/// use warren::prelude::*;
/// use warren::{Registry, Schedule};
///
/// #[derive(Debug, Serialize, Deserialize, Job)]
/// #[job(queue = "reports")]
/// struct SalesReport { region: String }
/// # impl Handler for SalesReport {
/// #     async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> { Ok(()) }
/// # }
///
/// let europe = Schedule::new("sales_europe", "0 0 7 * * *", SalesReport { region: "eu".into() })
///     .timezone("Europe/Paris");
/// let americas = Schedule::new("sales_americas", "0 0 7 * * *", SalesReport { region: "us".into() })
///     .timezone("America/New_York");
/// let registry = Registry::builder().job::<SalesReport>().schedule(europe).schedule(americas).build()?;
/// let names: Vec<_> = registry.schedules().iter().map(|s| s.name()).collect();
/// assert_eq!(names, ["sales_americas", "sales_europe"]);
/// # Ok::<(), warren::RegistryError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Schedule {
    name: String,
    cron: String,
    timezone: Option<String>,
    job: &'static str,
    job_type: &'static str,
    type_id: TypeId,
    body: Result<Vec<u8>, String>,
}

impl Schedule {
    /// Enqueues `job` at each slot of the cron expression `cron` (six
    /// fields from the second, or five from the minute), in UTC unless
    /// [`timezone`](Schedule::timezone) says otherwise.
    ///
    /// `name` keys the schedule fleet-wide: `schedule pause <name>` pauses
    /// it, and renaming it starts a new schedule (from its next slot). The
    /// name, expression and time zone are checked when a worker starts (or
    /// a `schedule` command runs), which refuses one it cannot follow,
    /// naming it.
    pub fn new<J: Job>(name: impl Into<String>, cron: impl Into<String>, job: J) -> Self {
        Schedule {
            name: name.into(),
            cron: cron.into(),
            timezone: None,
            job: J::NAME,
            job_type: type_name::<J>(),
            type_id: TypeId::of::<J>(),
            body: codec::encode(&job).map_err(|error| format!("cannot encode its job: {error}")),
        }
    }

    /// The time zone of the cron expression: an IANA name such as
    /// `Europe/Paris`.
    pub fn timezone(mut self, timezone: impl Into<String>) -> Self {
        self.timezone = Some(timezone.into());
        self
    }

    /// The schedule of a `#[job(cron = "...")]` job: named after the job,
    /// enqueueing its `Default` value.
    pub(crate) fn of_job(job: &Registration) -> Option<Self> {
        let cron = job.options.cron?;
        Some(Schedule {
            name: job.name.to_owned(),
            cron: cron.to_owned(),
            timezone: job.options.timezone.map(str::to_owned),
            job: job.name,
            job_type: job.type_name,
            type_id: job.type_id(),
            body: match job.default_body() {
                Some(body) => body.map_err(|error| format!("cannot encode its Default value: {error}")),
                None => Err("has no Default value to enqueue".to_owned()),
            },
        })
    }

    /// The schedule's name, unique in the registry.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cron expression, as written.
    pub fn cron(&self) -> &str {
        &self.cron
    }

    /// The time zone's name, as written; `UTC` when none was given.
    pub fn timezone_name(&self) -> &str {
        self.timezone.as_deref().unwrap_or("UTC")
    }

    /// The wire name of the job it enqueues.
    pub fn job(&self) -> &'static str {
        self.job
    }

    /// The Rust path of the job type, for messages that name it.
    pub(crate) fn job_type(&self) -> &'static str {
        self.job_type
    }

    /// The job type it enqueues.
    pub(crate) fn type_id(&self) -> TypeId {
        self.type_id
    }

    /// The message body every slot enqueues, or why there is none ("cannot
    /// encode its job: …"); a worker refuses to start with such a schedule.
    pub fn body(&self) -> Result<&[u8], &str> {
        self.body.as_deref().map_err(String::as_str)
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("name", &self.name)
            .field("cron", &self.cron)
            .field("timezone", &self.timezone_name())
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

/// A schedule [`schedule!`](crate::schedule) submits: built (and its job
/// value encoded) when the registry collects it.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct ScheduleDeclaration {
    pub(crate) build: fn() -> Schedule,
}

impl ScheduleDeclaration {
    /// The declaration of the schedule `build` returns.
    pub const fn new(build: fn() -> Schedule) -> Self {
        ScheduleDeclaration { build }
    }
}

impl fmt::Debug for ScheduleDeclaration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleDeclaration").finish_non_exhaustive()
    }
}

inventory::collect!(ScheduleDeclaration);
