//! Choices made per enqueue: when the job runs and how it is retried.

use std::time::{Duration, SystemTime};

use lapin::BasicProperties;
use lapin::types::AMQPValue;

use crate::amqp::hold;
use crate::amqp::message;
use crate::{Error, JobId, JobOptions};

/// Options of one enqueue, for [`Client::enqueue_with`](crate::Client::enqueue_with):
/// a delay, a priority, and retry settings that override the job's `#[job(...)]`.
///
/// ```
/// use std::time::Duration;
/// use warren::EnqueueOptions;
///
/// let options = EnqueueOptions::new()
///     .delay(Duration::from_secs(60))
///     .retries(10)
///     .backoff(Duration::from_secs(1));
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EnqueueOptions {
    when: When,
    retries: Option<u32>,
    backoff: Option<Duration>,
    job_id: Option<JobId>,
    priority: Option<u8>,
    unique_key: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum When {
    #[default]
    Now,
    In(Duration),
    At(SystemTime),
}

impl EnqueueOptions {
    /// Run as soon as a worker is free, with the job's own retry settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run no earlier than `delay` from now (at most 30 days).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.when = When::In(delay);
        self
    }

    /// Run no earlier than `at` (at most 30 days ahead; a time in the past
    /// runs at once).
    pub fn at(mut self, at: SystemTime) -> Self {
        self.when = When::At(at);
        self
    }

    /// Retry a failed attempt this many times, whatever the job's
    /// `#[job(retries)]` says.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// Wait this long before the first retry (doubling after), whatever the
    /// job's `#[job(backoff)]` says.
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Run before the waiting jobs of lower priority on its queue, whatever
    /// the job's `#[job(priority)]` says. The queue must take priorities
    /// (its jobs set `#[job(max_priority = N)]`, at least `priority`);
    /// otherwise the enqueue fails with [`Error::PriorityNotTaken`].
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// The priority the message carries, if any: the enqueue's, else the
    /// job's; refused when the job's queue does not take it.
    pub(crate) fn priority_for(&self, name: &str, queue: &str, job: &JobOptions) -> Result<Option<u8>, Error> {
        let Some(priority) = self.priority.or(job.priority) else {
            return Ok(None);
        };
        match job.max_priority {
            Some(max) if priority <= max => Ok(Some(priority)),
            max => Err(Error::PriorityNotTaken {
                job: name.to_owned(),
                queue: queue.to_owned(),
                priority,
                max,
            }),
        }
    }

    /// The key of a unique job (`#[job(unique_for = "...")]`): while a job
    /// of the same name and key is pending, delayed or running, this
    /// enqueue is refused with its id ([`Error::Duplicate`],
    /// [`EnqueueError::duplicate_of`](crate::EnqueueError::duplicate_of)).
    /// Without a key, a unique job's key is its arguments. Only a hash of
    /// the key is kept.
    pub fn unique_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.unique_key = Some(crate::amqp::unique::key_hash(key.as_ref()));
        self
    }

    /// The hash of the unique key given, if any.
    pub(crate) fn unique_key_hash(&self) -> Option<u64> {
        self.unique_key
    }

    /// Publish the job under this id rather than a new one: to enqueue again
    /// a job whose enqueue ended with its outcome unknown
    /// ([`EnqueueError::is_outcome_unknown`](crate::EnqueueError::is_outcome_unknown)),
    /// so that if both copies were stored, the duplicate carries the same id
    /// and a handler that records the ids it ran can tell.
    pub fn job_id(mut self, id: JobId) -> Self {
        self.job_id = Some(id);
        self
    }

    /// The id to publish the job under: the one given, or a new one.
    pub(crate) fn id(&self) -> JobId {
        self.job_id.unwrap_or_default()
    }

    /// When the job is due, counting from `now`; `None` for now. Fails for delays past
    /// [`hold::MAX_DELAY`].
    pub(crate) fn eta_from(&self, now: SystemTime) -> Result<Option<SystemTime>, Error> {
        let delay = match self.when {
            When::Now => return Ok(None),
            When::In(delay) => delay,
            When::At(at) => at.duration_since(now).unwrap_or_default(),
        };
        if delay > hold::MAX_DELAY {
            return Err(Error::DelayTooLong {
                delay,
                max: hold::MAX_DELAY,
            });
        }
        Ok((!delay.is_zero()).then(|| now + delay))
    }

    /// `properties` with these options written into the message's headers.
    pub(crate) fn apply(&self, properties: BasicProperties, eta: Option<SystemTime>) -> BasicProperties {
        let properties = match eta {
            Some(eta) => message::with_eta(properties, eta),
            None => properties,
        };
        if self.retries.is_none() && self.backoff.is_none() {
            return properties;
        }
        let mut headers = properties.headers().clone().unwrap_or_default();
        if let Some(retries) = self.retries {
            headers.insert(message::RETRIES.into(), AMQPValue::LongLongInt(retries.into()));
        }
        if let Some(backoff) = self.backoff {
            let millis = i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX);
            headers.insert(message::BACKOFF.into(), AMQPValue::LongLongInt(millis));
        }
        properties.with_headers(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_priority_needs_a_queue_that_takes_it() {
        let plain = JobOptions::new();
        let urgent = JobOptions::new().with_max_priority(5).with_priority(2);
        assert_eq!(EnqueueOptions::new().priority_for("a", "q", &plain).unwrap(), None);
        assert_eq!(EnqueueOptions::new().priority_for("a", "q", &urgent).unwrap(), Some(2));
        let asked = EnqueueOptions::new().priority(5);
        assert_eq!(asked.priority_for("a", "q", &urgent).unwrap(), Some(5));
        let refused = asked.priority_for("a", "q", &plain).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "cannot enqueue `a` with priority 5: queue `q` takes no priorities; give its jobs #[job(max_priority = N)]"
        );
        let too_high = EnqueueOptions::new()
            .priority(6)
            .priority_for("a", "q", &urgent)
            .unwrap_err();
        assert_eq!(
            too_high.to_string(),
            "cannot enqueue `a` with priority 6: queue `q` takes priorities up to 5"
        );
    }

    #[test]
    fn delays_past_thirty_days_are_refused() {
        let too_long = EnqueueOptions::new().delay(hold::MAX_DELAY + Duration::from_secs(1));
        assert!(matches!(
            too_long.eta_from(SystemTime::now()),
            Err(Error::DelayTooLong { .. })
        ));
        assert!(
            EnqueueOptions::new()
                .delay(hold::MAX_DELAY)
                .eta_from(SystemTime::now())
                .is_ok()
        );
    }

    #[test]
    fn a_time_in_the_past_or_no_delay_runs_now() {
        let past = SystemTime::now() - Duration::from_secs(60);
        assert_eq!(
            EnqueueOptions::new().at(past).eta_from(SystemTime::now()).unwrap(),
            None
        );
        assert_eq!(EnqueueOptions::new().eta_from(SystemTime::now()).unwrap(), None);
        let soon = EnqueueOptions::new()
            .delay(Duration::from_secs(3))
            .eta_from(SystemTime::now())
            .unwrap()
            .unwrap();
        assert!(hold::due_in(soon) > Duration::from_secs(2));
    }
}
