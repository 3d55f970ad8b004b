//! How a command ends: its exit code, and for a failure the one line that
//! says why.
//!
//! A failure is said once, in the log format the command runs with: an
//! `error: …` line for a person at a terminal, one JSON event for a log
//! pipeline (`--log-format json`), never both.

use std::fmt::Display;
use std::process::ExitCode;

use tracing::error;

use super::LogFormat;
use crate::Error;

/// Exit code of a run that failed: broker unreachable for a command, bad
/// job, conflicting registrations.
pub(super) const EXIT_FAILURE: u8 = 1;
/// Exit code of bad usage, as clap uses for bad arguments, and of a
/// configuration that cannot work (a malformed URL, a missing TLS file).
pub(super) const EXIT_USAGE: u8 = 2;
/// Exit code after a forced stop: a second signal, or workers that did not
/// stop in time.
pub(super) const EXIT_FORCED: u8 = 3;
/// Exit code of a drain that the shutdown timeout cut off: jobs were still
/// running (back to the queue under `late` acks, lost under the others).
pub(super) const EXIT_CUT_OFF: u8 = 4;

/// A command that failed: why, and the exit code that says which kind of
/// failure it was.
#[derive(Debug)]
pub(super) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// A failure the message explains: exit 1.
    pub(super) fn failed(error: impl Display) -> Self {
        Failure {
            code: EXIT_FAILURE,
            message: error.to_string(),
        }
    }

    /// Bad usage, or a configuration that cannot work: exit 2.
    pub(super) fn usage(error: impl Display) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: error.to_string(),
        }
    }

    /// A failure to reach the broker: exit 2 when the configuration given
    /// cannot work (see [`Error::is_configuration`]), else 1.
    pub(super) fn connect(error: Error) -> Self {
        if error.is_configuration() {
            Failure::usage(error)
        } else {
            Failure::failed(error)
        }
    }

    /// Says the failure once, as `format` asks, and gives its exit code.
    pub(super) fn report(self, format: LogFormat) -> ExitCode {
        // JSON goes through the subscriber, if there is one to write it.
        if format == LogFormat::Json && tracing::dispatcher::has_been_set() {
            error!(exit_code = self.code, "{}", self.message);
        } else {
            // After the log lines still queued, if warren's logging is on.
            super::logging::write_line(&format!("error: {}", self.message));
        }
        ExitCode::from(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_are_usage_and_the_rest_failures() {
        let malformed =
            crate::amqp::connect::check("amqp//x", &crate::amqp::connect::TlsFiles::default()).expect_err("malformed");
        assert_eq!(Failure::connect(malformed).code, EXIT_USAGE);
        assert_eq!(Failure::failed("broker gone").code, EXIT_FAILURE);
        assert_eq!(Failure::usage("bad flag").message, "bad flag");
    }
}
