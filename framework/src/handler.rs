//! What a job does when it runs, and how it says it failed.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use crate::{Job, JobContext};

/// The work a [`Job`] does. Implement it for every type that derives `Job`.
///
/// Returning `Err` fails the attempt; so do a panic and running past the
/// job's timeout. Each is caught by the worker: a job never takes the worker
/// down with it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` derives `Job` but does not implement `warren::Handler`",
    label = "this job has no handler",
    note = "add `impl warren::Handler for {Self} {{ async fn perform(self, ctx: &warren::JobContext) -> Result<(), warren::JobError> {{ ... }} }}`"
)]
pub trait Handler: Job {
    /// Runs the job once. `ctx` tells which job and attempt this is and
    /// carries a client for enqueueing follow-up jobs.
    fn perform(self, ctx: &JobContext) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// Why an attempt of a job failed.
///
/// Anything that converts into `Box<dyn Error + Send + Sync>` converts into a
/// `JobError`, so `?` works on `std::io::Error`, `anyhow::Error`, `String`
/// and `&str` alike.
pub struct JobError {
    source: Box<dyn StdError + Send + Sync + 'static>,
}

impl JobError {
    /// A failure described by a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        JobError {
            source: message.to_string().into(),
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
        JobError { source: error.into() }
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.source, f)
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
