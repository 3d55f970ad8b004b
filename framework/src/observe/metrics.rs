//! warren's metrics, through the `metrics` facade: a [`Hook`] for attempts
//! and enqueues, and the worker's own gauges. Without a recorder installed
//! (the worker's HTTP server installs a Prometheus one) each still builds
//! its key. An enqueue's labels are static strings unless the client has a
//! queue prefix: about 0.95k instructions per enqueue (callgrind), against
//! 1.7k with owned ones, each copied again into its key. A cache of shared
//! label strings cost as much in locking and hashing, and was not kept.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use metrics::{SharedString, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use super::{Attempt, AttemptOutcome, Enqueue, Hook};
use crate::{DeadReason, Error};

/// Finished attempts, by `job`, `queue` and `outcome`.
pub(crate) const JOBS_TOTAL: &str = "warren_jobs_total";
/// How long handlers ran.
pub(crate) const JOB_DURATION: &str = "warren_job_duration_seconds";
/// From enqueue (or due time) to start.
pub(crate) const QUEUE_WAIT: &str = "warren_job_queue_wait_seconds";
/// Attempts running now, by `queue`.
pub(crate) const IN_FLIGHT: &str = "warren_jobs_in_flight";
/// Workers (consumers) restarted after their channel or consumer died.
pub(crate) const RESTARTS: &str = "warren_worker_restarts_total";
/// 1 while the worker's consumer connection is up.
pub(crate) const CONNECTION_UP: &str = "warren_connection_up";
/// Jobs the broker confirmed, by `job` and `queue`.
pub(crate) const ENQUEUED: &str = "warren_enqueued_total";
/// Enqueues that failed, by `job` and `queue`.
pub(crate) const ENQUEUE_ERRORS: &str = "warren_enqueue_errors_total";
/// From publishing a job to the broker's confirm.
pub(crate) const ENQUEUE_CONFIRM: &str = "warren_enqueue_confirm_seconds";

/// Describes warren's metrics to the installed recorder (their `# HELP`).
#[cfg_attr(
    not(feature = "http"),
    allow(dead_code, reason = "called when the HTTP server installs its recorder")
)]
pub(crate) fn describe() {
    describe_counter!(
        JOBS_TOTAL,
        "Job attempts that succeeded or failed, and jobs retried or moved to the dead-letter queue (with the reason)"
    );
    describe_histogram!(JOB_DURATION, Unit::Seconds, "How long job handlers ran");
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "From a job's enqueue (or the time it was due) to the start of its attempt"
    );
    describe_gauge!(IN_FLIGHT, "Job attempts running now");
    describe_counter!(RESTARTS, "Workers restarted after their channel or consumer died");
    describe_gauge!(
        CONNECTION_UP,
        "1 while the worker's consumer connection to RabbitMQ is up"
    );
    describe_counter!(ENQUEUED, "Jobs enqueued and confirmed by RabbitMQ");
    describe_counter!(ENQUEUE_ERRORS, "Enqueues that failed");
    describe_histogram!(
        ENQUEUE_CONFIRM,
        Unit::Seconds,
        "From publishing a job to RabbitMQ's confirm"
    );
}

/// The worker's consumer connection went up (`true`) or down.
#[cfg_attr(not(feature = "worker"), allow(dead_code, reason = "a worker's"))]
pub(crate) fn connection_up(up: bool) {
    gauge!(CONNECTION_UP).set(if up { 1.0 } else { 0.0 });
}

/// A worker is restarted.
#[cfg_attr(not(feature = "worker"), allow(dead_code, reason = "a worker's"))]
pub(crate) fn worker_restarted() {
    counter!(RESTARTS).increment(1);
}

/// warren's own hook: the job and enqueue metrics.
#[derive(Debug)]
pub(crate) struct Metrics;

// Labels are static or shared strings where they can be: a label's value
// is copied again into each key, so an owned one costs two allocations per
// metric, and an attempt reports five.
fn job_label(attempt: &Attempt<'_>) -> SharedString {
    match (attempt.registered_name, attempt.name) {
        (Some(name), _) => SharedString::const_str(name),
        (None, Some(name)) => SharedString::from_owned(name.to_owned()),
        (None, None) => SharedString::const_str("-"),
    }
}

fn queue_label(attempt: &Attempt<'_>) -> SharedString {
    match attempt.shared_queue {
        Some(queue) => SharedString::from_shared(Arc::clone(queue)),
        None => SharedString::from_owned(attempt.queue.to_owned()),
    }
}

impl Hook for Metrics {
    fn before_attempt(&self, attempt: &Attempt<'_>) {
        gauge!(IN_FLIGHT, "queue" => queue_label(attempt)).increment(1.0);
        if let Some(wait) = attempt.queue_wait() {
            histogram!(QUEUE_WAIT, "job" => job_label(attempt), "queue" => queue_label(attempt))
                .record(wait.as_secs_f64());
        }
    }

    fn after_attempt(&self, attempt: &Attempt<'_>, outcome: &AttemptOutcome<'_>, duration: Duration) {
        let (job, queue) = (job_label(attempt), queue_label(attempt));
        gauge!(IN_FLIGHT, "queue" => queue.clone()).decrement(1.0);
        histogram!(JOB_DURATION, "job" => job.clone(), "queue" => queue.clone()).record(duration.as_secs_f64());
        let outcome = match outcome {
            AttemptOutcome::Succeeded => "succeeded",
            _ => "failed",
        };
        counter!(JOBS_TOTAL, "job" => job, "queue" => queue, "outcome" => outcome).increment(1);
    }

    fn on_retry(&self, attempt: &Attempt<'_>, _delay: Duration, _error: &str) {
        counter!(JOBS_TOTAL, "job" => job_label(attempt), "queue" => queue_label(attempt), "outcome" => "retried")
            .increment(1);
    }

    fn on_dead_letter(&self, attempt: &Attempt<'_>, reason: DeadReason, _error: &str) {
        counter!(
            JOBS_TOTAL,
            "job" => job_label(attempt),
            "queue" => queue_label(attempt),
            "outcome" => "dead",
            "reason" => reason.as_str()
        )
        .increment(1);
    }

    fn after_enqueue(&self, enqueue: &Enqueue<'_>, result: Result<(), &Error>, latency: Duration) {
        // Static where they can be: a label's value is copied again into
        // each key, so an owned one costs two allocations per metric.
        let job = SharedString::const_str(enqueue.name);
        let queue = match enqueue.queue {
            Cow::Borrowed(queue) => SharedString::const_str(queue),
            Cow::Owned(queue) => SharedString::from_shared(Arc::from(queue.as_str())),
        };
        match result {
            Ok(()) => {
                histogram!(ENQUEUE_CONFIRM, "job" => job.clone(), "queue" => queue.clone())
                    .record(latency.as_secs_f64());
                counter!(ENQUEUED, "job" => job, "queue" => queue).increment(1);
            }
            // A duplicate of a unique job is the key doing its work, not a failure.
            Err(Error::Duplicate { .. }) => {}
            Err(_) => counter!(ENQUEUE_ERRORS, "job" => job, "queue" => queue).increment(1),
        }
    }
}
