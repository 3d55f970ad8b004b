//! Operating on dead letters: the worker binary's `dead list`, `dead retry`
//! and `dead purge`.
//!
//! What they do to the broker, and their guarantee that a crash costs at
//! most a duplicate job, never a lost one, is `crate::dead_letters`, which
//! the dashboard shares.

use std::io::{BufRead, IsTerminal, Write};

use clap::{ArgGroup, Args, Subcommand};
use lapin::Connection;

use crate::amqp::connect::TlsFiles;
use crate::amqp::topology;
use crate::cli::output;
pub(crate) use crate::dead_letters::DeadError;
use crate::dead_letters::{self, Letter, letters};
use crate::{Client, JobId, Registry};

/// Error texts in `dead list` are cut to this many characters.
const MAX_ERROR_CHARS: usize = 80;

/// The `dead` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DeadCommand {
    /// List dead letters, oldest first, leaving them in place.
    List {
        #[command(flatten)]
        queue: QueueArg,
        /// Show at most this many dead letters per queue.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Move dead letters back to their job queue, to run again from attempt 1.
    #[command(group(ArgGroup::new("which").required(true).args(["job_id", "all"])))]
    Retry {
        /// The id of the job to retry.
        job_id: Option<JobId>,
        /// Retry every dead letter of the queue(s).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        queue: QueueArg,
    },
    /// Delete dead letters for good.
    Purge {
        #[command(flatten)]
        queue: QueueArg,
        /// Delete without asking for confirmation (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// The job queue a `dead` command works on.
#[derive(Debug, Args)]
pub(crate) struct QueueArg {
    /// The job queue, as jobs name it (`--queue-prefix` applies) [default: the queues of all registered jobs].
    #[arg(long)]
    queue: Option<String>,
}

impl DeadCommand {
    fn queue(&self) -> Option<&str> {
        let (DeadCommand::List { queue, .. } | DeadCommand::Retry { queue, .. } | DeadCommand::Purge { queue, .. }) =
            self;
        queue.queue.as_deref()
    }

    fn name(&self) -> &'static str {
        match self {
            DeadCommand::List { .. } => "list",
            DeadCommand::Retry { .. } => "retry",
            DeadCommand::Purge { .. } => "purge",
        }
    }
}

/// Runs a `dead` command against the broker at `url`.
pub(crate) async fn run(
    url: &str,
    tls: &TlsFiles,
    prefix: &str,
    registry: &Registry,
    command: DeadCommand,
) -> Result<(), DeadError> {
    // Checked before connecting: a script that forgot --yes learns it at once.
    if matches!(command, DeadCommand::Purge { yes: false, .. }) && !std::io::stdin().is_terminal() {
        return Err(DeadError::Unconfirmed);
    }
    let queues: Vec<String> = match command.queue() {
        Some(queue) => vec![queue.to_owned()],
        None => registry.queues().into_iter().map(str::to_owned).collect(),
    };
    if queues.is_empty() {
        return Err(DeadError::NoQueues);
    }
    let client = Client::builder(url)
        .tls_files(tls.clone())
        .queue_prefix(prefix)
        .connection_name(format!("warren dead {}", command.name()))
        .connect()
        .await?;
    let dead_queues: Vec<String> = queues
        .iter()
        .map(|queue| topology::dead_queue(&client.queue_name(queue)))
        .collect();
    // lapin panics on names AMQP cannot carry; refuse them here instead.
    if let Some(error) = dead_queues.iter().find_map(|queue| crate::amqp::short(queue).err()) {
        client.close().await;
        return Err(error.into());
    }
    let result = match command {
        DeadCommand::List { limit, .. } => {
            list(
                &client.session().ok_or(DeadError::NotConnected)?.connection,
                &dead_queues,
                limit,
            )
            .await
        }
        DeadCommand::Retry { job_id, .. } => retry(&client, registry, &dead_queues, job_id).await,
        DeadCommand::Purge { yes, .. } => {
            purge(
                &client.session().ok_or(DeadError::NotConnected)?.connection,
                &dead_queues,
                yes,
            )
            .await
        }
    };
    client.close().await;
    result
}

/// One line of `dead list`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    id: String,
    name: String,
    queue: String,
    reason: String,
    attempt: u32,
    dead_at: String,
    error: String,
}

impl Row {
    fn of(letter: Letter) -> Self {
        Row {
            error: one_line(&letter.error),
            id: letter.id,
            name: letter.name,
            queue: letter.queue,
            reason: letter.reason,
            attempt: letter.attempt,
            dead_at: letter.dead_at,
        }
    }
}

fn print_row([id, name, queue, reason, attempt, dead_at, error]: [&str; 7]) -> std::io::Result<()> {
    use std::io::Write as _;
    writeln!(
        std::io::stdout(),
        "{id:<36} {name:<20} {queue:<24} {reason:<11} {attempt:<8} {dead_at:<20} {error}"
    )
}

/// Lists the dead letters; stops quietly when the reader goes away
/// (`dead list | head -1`): it has what it wanted, and what was peeked
/// returns to the dead-letter queue when the channel closes.
async fn list(connection: &Connection, dead_queues: &[String], limit: u32) -> Result<(), DeadError> {
    match write_listing(connection, dead_queues, limit).await {
        Err(DeadError::Output(error)) if output::is_closed(&error) => Ok(()),
        result => result,
    }
}

async fn write_listing(connection: &Connection, dead_queues: &[String], limit: u32) -> Result<(), DeadError> {
    use std::io::Write as _;
    print_row(["JOB ID", "NAME", "QUEUE", "REASON", "ATTEMPTS", "DEAD AT", "ERROR"])?;
    let mut footers = Vec::new();
    for dead_queue in dead_queues {
        let total = dead_letters::ready(connection, dead_queue).await?.unwrap_or(0);
        let rows: Vec<Row> = dead_letters::peek(connection, dead_queue, 0, limit.min(total))
            .await?
            .into_iter()
            .map(Row::of)
            .collect();
        for row in &rows {
            let attempt = row.attempt.to_string();
            print_row([
                &row.id,
                &row.name,
                &row.queue,
                &row.reason,
                &attempt,
                &row.dead_at,
                &row.error,
            ])?;
        }
        footers.push(format!("{} of {} in {dead_queue}", rows.len(), letters(total)));
    }
    for footer in footers {
        writeln!(std::io::stdout(), "{footer}")?;
    }
    Ok(())
}

async fn retry(
    client: &Client,
    registry: &Registry,
    dead_queues: &[String],
    only: Option<JobId>,
) -> Result<(), DeadError> {
    for dead_queue in dead_queues {
        let retried = dead_letters::retry_from(client, registry, dead_queue, only).await?;
        match only {
            Some(id) if retried > 0 => {
                output::line(format_args!("retried job {id} from {dead_queue}"))?;
                return Ok(());
            }
            Some(_) => {}
            None => output::line(format_args!("retried {} from {dead_queue}", letters(retried)))?,
        }
    }
    match only {
        Some(id) => Err(DeadError::NotFound {
            id,
            searched: dead_queues.to_vec(),
        }),
        None => Ok(()),
    }
}

async fn purge(connection: &Connection, dead_queues: &[String], confirmed: bool) -> Result<(), DeadError> {
    for dead_queue in dead_queues {
        let count = dead_letters::ready(connection, dead_queue).await?.unwrap_or(0);
        if count == 0 {
            output::line(format_args!("no dead letters in {dead_queue}"))?;
            continue;
        }
        if !confirmed && !ask(format!("Delete {} from {dead_queue}? [y/N] ", letters(count))).await? {
            output::line(format_args!("kept {} in {dead_queue}", letters(count)))?;
            continue;
        }
        let deleted = dead_letters::purge(connection, dead_queue).await?;
        output::line(format_args!("deleted {} from {dead_queue}", letters(deleted)))?;
    }
    Ok(())
}

/// Asks `question` on the terminal; true for `y` or `yes`.
async fn ask(question: String) -> Result<bool, DeadError> {
    let answer = tokio::task::spawn_blocking(move || {
        let mut stderr = std::io::stderr();
        write!(stderr, "{question}")?;
        stderr.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        Ok(answer)
    })
    .await
    .map_err(|error| DeadError::Prompt(std::io::Error::other(error)))?
    .map_err(DeadError::Prompt)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// The first line of `text`, cut to [`MAX_ERROR_CHARS`]; `…` marks a cut.
fn one_line(text: &str) -> String {
    let mut lines = text.trim().lines();
    let first = lines.next().unwrap_or_default();
    let mut line: String = first.chars().take(MAX_ERROR_CHARS).collect();
    if line.len() < first.len() || lines.next().is_some() {
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_cut_to_one_short_line() {
        assert_eq!(one_line("boom"), "boom");
        assert_eq!(one_line("card declined\nat line 3"), "card declined…");
        assert_eq!(one_line(&"é".repeat(MAX_ERROR_CHARS)), "é".repeat(MAX_ERROR_CHARS));
        assert_eq!(
            one_line(&"é".repeat(MAX_ERROR_CHARS + 1)),
            format!("{}…", "é".repeat(MAX_ERROR_CHARS))
        );
        assert_eq!(one_line(""), "");
    }
}
