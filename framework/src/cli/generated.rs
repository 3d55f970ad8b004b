//! The body of [`main!`](crate::main): warren's [`Command`]s and
//! [`GlobalArgs`] parsed as a program of its own, under the name and version
//! of the crate that expands the macro.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

use super::exit::Failure;
use super::{Command, GlobalArgs, run_command};
use crate::State;

/// The generated binary's command line: its commands and global options.
#[derive(Debug, Parser)]
#[command(about = "warren worker: run, enqueue and list background jobs, and handle dead letters")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// The body of `main!()`: parses the command line as program `name`,
/// version `version`, sets up logging and runs the command.
pub fn run_main(name: &'static str, version: &'static str) -> ExitCode {
    run_main_inner(name, version, None::<fn() -> std::future::Ready<Result<State, String>>>)
}

/// The body of `main!(setup = ...)`: [`run_main`] with a setup hook.
pub fn run_main_with_setup<F, Fut, E>(name: &'static str, version: &'static str, setup: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<State, E>>,
    E: std::fmt::Display,
{
    run_main_inner(name, version, Some(setup))
}

fn run_main_inner<F, Fut, E>(name: &'static str, version: &'static str, setup: Option<F>) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<State, E>>,
    E: std::fmt::Display,
{
    let matches = Cli::command().name(name).version(version).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    // Dropped last, after the exit's report: it writes out the last lines.
    let _logging = super::init_logging(cli.global.log_format());
    // One runtime for the commands, the setup hook and the worker's
    // connections: it outlives every arbiter, so what the setup hook
    // spawns on it (a pool's reaper, a client's connections) lives as long
    // as the worker.
    let io = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("warren-io")
        .enable_all()
        .build()
    {
        Ok(io) => io,
        Err(error) => {
            return Failure::failed(format!("could not start the I/O runtime: {error}"))
                .report(cli.global.log_format());
        }
    };
    let handle = io.handle().clone();
    let code = io
        .block_on(run_command(cli.command, &cli.global, setup, Some(handle)))
        .unwrap_or_else(|failure| failure.report(cli.global.log_format()));
    io.shutdown_timeout(Duration::from_secs(1));
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_binary_has_the_name_and_version_of_the_crate_that_expands_main() {
        let error = Cli::command()
            .name("my-worker")
            .version("1.2.3")
            .try_get_matches_from(["worker", "--version"])
            .expect_err("prints the version");
        assert_eq!(error.kind(), clap::error::ErrorKind::DisplayVersion);
        assert_eq!(error.to_string(), "my-worker 1.2.3\n");
        Cli::command().name("my-worker").version("1.2.3").debug_assert();
    }
}
