//! Running recorded jobs inline, through the worker's own dispatch, on a
//! virtual clock.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{Instrument, debug};

use crate::DeadReason;
use crate::amqp::message;
use crate::client::memory::DeadLetter;
use crate::job::attempt::{Outcome, Runner};
use crate::observe::{Attempt, job_span};
use crate::testing::InMemoryBroker;
use crate::{Job, JobId, Registry, RegistryError};

/// The worker id handlers see in a drain.
const WORKER: &str = "in-memory.1";

/// One attempt a drain ran.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Run {
    /// The job's wire name.
    pub name: String,
    /// Its id, the same on every attempt.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// When it ran, on the broker's virtual clock.
    pub at: Duration,
    /// How it ended.
    pub outcome: RunOutcome,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunOutcome {
    /// The handler returned `Ok`.
    Done,
    /// It failed and runs again after `delay` (virtual time).
    Retried {
        /// The wait before the next attempt.
        delay: Duration,
        /// The error.
        error: String,
    },
    /// It failed for good and is in the dead letters.
    Dead {
        /// Why, as in [`DeadLetter::reason`].
        reason: DeadReason,
        /// The error.
        error: String,
    },
}

impl RunOutcome {
    /// `done`, `retried` or `dead`.
    fn as_str(&self) -> &'static str {
        match self {
            RunOutcome::Done => "done",
            RunOutcome::Retried { .. } => "retried",
            RunOutcome::Dead { .. } => "dead",
        }
    }
}

/// What a drain ran, in order.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Drained {
    /// Every attempt, in the order run.
    pub runs: Vec<Run>,
}

impl Drained {
    /// The attempts of jobs of type `J`, in order.
    pub fn runs_of<J: Job>(&self) -> Vec<&Run> {
        self.runs.iter().filter(|run| run.name == J::NAME).collect()
    }

    /// How many jobs of type `J` ended `Done`.
    pub fn done<J: Job>(&self) -> usize {
        self.runs_of::<J>()
            .iter()
            .filter(|run| run.outcome == RunOutcome::Done)
            .count()
    }
}

/// Why a drain stopped before the broker was empty.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrainError {
    /// A job failed for good (what a worker would dead-letter).
    #[error(
        "job `{name}` (id {id}) on queue `{queue}` failed for good after {attempts} attempt(s) ({reason}): {error}\n(to inspect dead letters instead, use `drain_allowing_failures`)"
    )]
    JobFailed {
        /// The job's wire name.
        name: String,
        /// Its id.
        id: JobId,
        /// Its queue.
        queue: String,
        /// Why, as in [`DeadLetter::reason`].
        reason: DeadReason,
        /// The last attempt's error.
        error: String,
        /// How many attempts it had.
        attempts: u32,
    },
    /// The drain ran its maximum of attempts with jobs still waiting.
    #[error(
        "drain stopped after {limit} attempts with {pending} job(s) still enqueued: do jobs keep enqueueing each other? (`InMemoryBroker::with_max_steps` raises the limit.) The last ones run: {}",
        last.join(", ")
    )]
    TooManySteps {
        /// The limit ([`InMemoryBroker::with_max_steps`]).
        limit: usize,
        /// The names of the last jobs run, oldest first.
        last: Vec<String>,
        /// How many jobs were still waiting.
        pending: usize,
    },
    /// The jobs linked into the test binary conflict.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl InMemoryBroker {
    /// Runs every enqueued job, and every job they enqueue, until none is
    /// left; fails with the job's error as soon as one fails for good.
    ///
    /// Each job runs as a worker would run it: found in the registry by
    /// name, decoded, run under its timeout with panics caught, and retried
    /// by its retry policy (including enqueue-time overrides). Backoffs and
    /// delays pass on a virtual clock ([`elapsed`](Self::elapsed)): the
    /// drain never sleeps. Jobs run one at a time, the one due first first.
    pub async fn drain(&self) -> Result<Drained, DrainError> {
        self.run_drain(true).await
    }

    /// Like [`drain`](Self::drain), but a job that fails for good goes to
    /// [`dead_letters`](Self::dead_letters) and the drain carries on.
    pub async fn drain_allowing_failures(&self) -> Result<Drained, DrainError> {
        self.run_drain(false).await
    }

    async fn run_drain(&self, fail_on_dead: bool) -> Result<Drained, DrainError> {
        let registry = match &self.registry {
            Some(registry) => registry.clone(),
            None => Registry::from_inventory()?,
        };
        let mut drained = Drained::default();
        loop {
            let next = {
                let mut store = self.memory.lock();
                if drained.runs.len() >= self.max_steps && !store.pending.is_empty() {
                    let start = drained.runs.len().saturating_sub(10);
                    return Err(DrainError::TooManySteps {
                        limit: self.max_steps,
                        last: drained.runs[start..].iter().map(|run| run.name.clone()).collect(),
                        pending: store.pending.len(),
                    });
                }
                store.take_next().map(|message| (message, store.now))
            };
            let Some((message, now)) = next else {
                return Ok(drained);
            };
            let queue: Arc<str> = Arc::from(message.queue.as_str());
            let runner = Runner {
                shape: registry.queue_shape(&queue),
                queue: Arc::clone(&queue),
                full_queue: queue,
                worker: Arc::from(WORKER),
                client: self.client.clone(),
                state: self.state.clone(),
            };
            let properties = &message.properties;
            let id = message::job_id(properties);
            let attempt = message::attempt(properties);
            let observed = Attempt::new(properties, id, &message.queue, WORKER);
            let hooks = self.client.hooks_of();
            // The worker's span, so that hooks and log lines see what they would there.
            let span = job_span(&observed);
            hooks.attempt_span(&observed, &span);
            let outcome = async {
                hooks.before_attempt(&observed);
                let started = Instant::now();
                let outcome = runner.attempt(&registry, id, properties, &message.body, false).await;
                hooks.after_attempt(&observed, &outcome.observed(), started.elapsed());
                outcome
            }
            .instrument(span)
            .await;
            let mut run = Run {
                name: message::job_name(properties).unwrap_or_default().to_owned(),
                id,
                queue: message.queue.clone(),
                attempt,
                at: now,
                outcome: RunOutcome::Done,
            };
            match outcome {
                Outcome::Done => {}
                Outcome::Retry { delay, error, .. } => {
                    // The headers a worker would publish the retry with.
                    let retry =
                        message::retry_properties(properties, id, attempt + 1, &error, SystemTime::now() + delay);
                    self.memory
                        .lock()
                        .push(message.queue.clone(), message.body.clone(), retry, delay);
                    run.outcome = RunOutcome::Retried { delay, error };
                }
                Outcome::Dead { reason, error } => {
                    let letter = DeadLetter {
                        name: run.name.clone(),
                        id,
                        queue: message.queue.clone(),
                        reason,
                        error: error.clone(),
                        attempts: attempt,
                        body: message.body.clone(),
                    };
                    self.memory.lock().dead.push(letter);
                    run.outcome = RunOutcome::Dead {
                        reason,
                        error: error.clone(),
                    };
                    debug!(job.id = %id, job.name = %run.name, queue = %run.queue, attempt, %reason, %error, "job failed for good");
                    if fail_on_dead {
                        return Err(DrainError::JobFailed {
                            name: run.name,
                            id,
                            queue: run.queue,
                            reason,
                            error,
                            attempts: attempt,
                        });
                    }
                }
            }
            debug!(job.id = %run.id, job.name = %run.name, queue = %run.queue, attempt, outcome = run.outcome.as_str(), "drained one attempt");
            drained.runs.push(run);
        }
    }
}
