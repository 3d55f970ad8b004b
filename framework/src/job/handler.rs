//! What a job does when it runs, and how it says it failed.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::{Job, JobContext};

/// The work a [`Job`] does. Implement it for every type that derives `Job`,
/// except a [`Contract`](crate::Contract), whose handler is bound with
/// [`handler!`](crate::handler) in the crate that runs it.
///
/// Returning `Err` fails the attempt; so do a panic and running past the
/// job's timeout. Each is caught by the worker: a job never takes the worker
/// down with it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` derives `Job` but does not implement `warren::Handler`",
    label = "this job has no handler",
    note = "add `impl warren::Handler for {Self} {{ async fn perform(self, ctx: &warren::JobContext) -> Result<(), warren::JobError> {{ ... }} }}`",
    note = "or, to handle it in another crate, declare it #[job(contract)] and bind a handler there with `warren::handler!({Self} => handler_fn)`"
)]
pub trait Handler: Job {
    /// Runs the job once. `ctx` tells which job and attempt this is and
    /// carries a client for enqueueing follow-up jobs.
    fn perform(self, ctx: &JobContext) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// Why an attempt of a job failed, and whether to try again.
///
/// Anything that converts into `Box<dyn Error + Send + Sync>` converts into a
/// `JobError`, so `?` works on `std::io::Error`, `anyhow::Error`, `String`
/// and `&str` alike. Such an error is retried with the job's backoff until
/// its retries are used up; [`JobError::retry_after`] picks the wait itself
/// and [`JobError::reject`] sends the job to the dead-letter queue at once.
///
/// ```
/// use std::time::Duration;
/// use warren::JobError;
///
/// let rate_limited = JobError::retry_after(Duration::from_secs(30), "429 Too Many Requests");
/// let bad_input = JobError::reject("no user with id 42");
/// assert_eq!(rate_limited.retry_delay(), Some(Duration::from_secs(30)));
/// assert!(bad_input.is_rejected());
/// ```
pub struct JobError {
    source: Box<dyn StdError + Send + Sync + 'static>,
    verdict: Verdict,
}

/// What a failure asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Retry with the job's backoff (while retries are left).
    Retry,
    /// Retry after this long (while retries are left).
    RetryAfter(Duration),
    /// Never retry: straight to the dead-letter queue.
    Reject,
}

impl JobError {
    /// A failure described by a message; retried like any error.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::from(message.to_string())
    }

    /// A failure to retry after `delay` rather than after the job's backoff,
    /// e.g. what a rate limit's `Retry-After` says. Still counts against the
    /// job's retries.
    pub fn retry_after(delay: Duration, error: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        JobError {
            source: error.into(),
            verdict: Verdict::RetryAfter(delay),
        }
    }

    /// A failure that retrying cannot fix (bad input, a record that is
    /// gone): the job goes to the dead-letter queue at once, with the reason
    /// `rejected`.
    pub fn reject(error: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        JobError {
            source: error.into(),
            verdict: Verdict::Reject,
        }
    }

    /// Whether the handler said the job must not be retried.
    pub fn is_rejected(&self) -> bool {
        self.verdict == Verdict::Reject
    }

    /// The wait the handler asked for before the next attempt, if any.
    pub fn retry_delay(&self) -> Option<Duration> {
        match self.verdict {
            Verdict::RetryAfter(delay) => Some(delay),
            Verdict::Retry | Verdict::Reject => None,
        }
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }

    /// Takes the underlying error out.
    pub fn into_source(self) -> Box<dyn StdError + Send + Sync + 'static> {
        self.source
    }
}

impl<E> From<E> for JobError
where
    E: Into<Box<dyn StdError + Send + Sync + 'static>>,
{
    fn from(error: E) -> Self {
        JobError {
            source: error.into(),
            verdict: Verdict::Retry,
        }
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobError")
            .field("source", &self.source)
            .field("verdict", &self.verdict)
            .finish()
    }
}

/// The error and its chain of sources, separated by `: `.
impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        let mut next = self.source.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_mark_works_on_std_errors_strings_and_boxed_errors() {
        fn io() -> Result<(), JobError> {
            Err(std::io::Error::other("disk full"))?
        }
        fn text() -> Result<(), JobError> {
            Err("no such user")?
        }
        fn boxed() -> Result<(), JobError> {
            let error: Box<dyn StdError + Send + Sync> = "boxed".into();
            Err(error)?
        }
        assert_eq!(io().unwrap_err().to_string(), "disk full");
        assert_eq!(text().unwrap_err().to_string(), "no such user");
        assert_eq!(boxed().unwrap_err().to_string(), "boxed");
        assert!(!io().unwrap_err().is_rejected(), "plain errors are retried");
        assert_eq!(io().unwrap_err().retry_delay(), None);
    }

    #[test]
    fn display_includes_the_source_chain() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("could not resize image")
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let error = JobError::from(Outer(std::io::Error::other("disk full")));
        assert_eq!(error.to_string(), "could not resize image: disk full");
    }
}
