//! The hooks of a client or worker, called in order, each with its panics
//! caught: a broken hook must not lose a job or fail an enqueue.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use tracing::error;

use super::{Attempt, AttemptOutcome, Enqueue, Headers, Hook};
use crate::{DeadReason, Error};

/// A hook and its type's name, for the log when it panics.
#[derive(Clone)]
struct Named {
    name: &'static str,
    hook: Arc<dyn Hook>,
}

/// warren's own metrics hook, then the ones registered, in order.
#[derive(Clone)]
pub(crate) struct Hooks {
    hooks: Arc<[Named]>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            hooks: Arc::new([Named {
                name: "warren metrics",
                hook: Arc::new(super::metrics::Metrics),
            }]),
        }
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.hooks.iter().map(|named| named.name))
            .finish()
    }
}

impl Hooks {
    /// These hooks, then `hook`.
    pub(crate) fn with<H: Hook>(&self, hook: H) -> Self {
        let mut hooks = self.hooks.to_vec();
        hooks.push(Named {
            name: std::any::type_name::<H>(),
            hook: Arc::new(hook),
        });
        Hooks { hooks: hooks.into() }
    }

    fn each(&self, event: &'static str, mut call: impl FnMut(&dyn Hook)) {
        for named in self.hooks.iter() {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| call(named.hook.as_ref()))) {
                let message = crate::job::attempt::panic_message(panic.as_ref());
                error!(hook = named.name, event, panic = %message, "a hook panicked; skipped it");
            }
        }
    }

    pub(crate) fn attempt_span(&self, attempt: &Attempt<'_>, span: &tracing::Span) {
        self.each("attempt_span", |hook| hook.attempt_span(attempt, span));
    }

    pub(crate) fn before_attempt(&self, attempt: &Attempt<'_>) {
        self.each("before_attempt", |hook| hook.before_attempt(attempt));
    }

    pub(crate) fn after_attempt(&self, attempt: &Attempt<'_>, outcome: &AttemptOutcome<'_>, duration: Duration) {
        self.each("after_attempt", |hook| hook.after_attempt(attempt, outcome, duration));
        match *outcome {
            AttemptOutcome::Succeeded => {}
            AttemptOutcome::Retried { delay, error, .. } => self.on_retry(attempt, delay, error),
            AttemptOutcome::Dead { reason, error } => self.on_dead_letter(attempt, reason, error),
        }
    }

    pub(crate) fn on_retry(&self, attempt: &Attempt<'_>, delay: Duration, error: &str) {
        self.each("on_retry", |hook| hook.on_retry(attempt, delay, error));
    }

    pub(crate) fn on_dead_letter(&self, attempt: &Attempt<'_>, reason: DeadReason, error: &str) {
        self.each("on_dead_letter", |hook| hook.on_dead_letter(attempt, reason, error));
    }

    /// The headers the hooks add to an enqueue.
    pub(crate) fn before_enqueue(&self, enqueue: &Enqueue<'_>) -> Headers {
        let mut headers = Headers::default();
        self.each("before_enqueue", |hook| hook.before_enqueue(enqueue, &mut headers));
        headers
    }

    pub(crate) fn after_enqueue(&self, enqueue: &Enqueue<'_>, result: Result<(), &Error>, latency: Duration) {
        self.each("after_enqueue", |hook| hook.after_enqueue(enqueue, result, latency));
    }
}
