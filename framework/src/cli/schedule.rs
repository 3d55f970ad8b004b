//! `schedule list|pause|resume`: the schedules of this binary (its
//! `#[job(cron)]` jobs' and its named ones), their last and next runs, and
//! pausing one fleet-wide (the state is on RabbitMQ).

use clap::Subcommand;
use jiff::Timestamp;

use crate::amqp::connect::TlsFiles;
use crate::amqp::topology;
use crate::worker::scheduler::{self, Entry};
use crate::{Client, Error, Registry};

/// `schedule`'s subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// List the schedules: job, expression, time zone, last and next run, arguments.
    List,
    /// Pause a schedule on every worker: its slots pass without running.
    Pause {
        /// The schedule's name (a `#[job(cron)]` job's is the job's name).
        schedule: String,
    },
    /// Resume a paused schedule from its next slot (the paused ones are not caught up).
    Resume {
        /// The schedule's name.
        schedule: String,
    },
}

/// Why a `schedule` command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScheduleError {
    /// No schedule of that name.
    #[error("no schedule named `{name}`; schedules: {known}")]
    Unknown {
        /// The name given.
        name: String,
        /// The schedules.
        known: String,
    },
    /// A schedule that cannot work.
    #[error("schedule `{0}` {1}")]
    Invalid(String, String),
    /// The broker.
    #[error(transparent)]
    Broker(#[from] Error),
}

/// Runs one `schedule` command, printing its output.
pub(crate) async fn run(
    url: &str,
    tls: &TlsFiles,
    prefix: &str,
    registry: &Registry,
    command: ScheduleCommand,
) -> Result<Vec<String>, ScheduleError> {
    let entries =
        scheduler::entries(registry, None).map_err(|(schedule, reason)| ScheduleError::Invalid(schedule, reason))?;
    let chosen = |name: &str| {
        entries
            .iter()
            .find(|entry| entry.name == name)
            .ok_or_else(|| ScheduleError::Unknown {
                name: name.to_owned(),
                known: entries
                    .iter()
                    .map(|entry| entry.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    };
    let selected: Vec<&Entry> = match &command {
        ScheduleCommand::List => entries.iter().collect(),
        ScheduleCommand::Pause { schedule } | ScheduleCommand::Resume { schedule } => vec![chosen(schedule)?],
    };
    if selected.is_empty() {
        return Ok(vec!["no schedules".to_owned()]);
    }
    let client = Client::builder(url)
        .tls_files(tls.clone())
        .queue_prefix(prefix)
        .connection_name("warren schedule")
        .connect()
        .await?;
    let result = on_broker(&client, prefix, &selected, &command).await;
    client.close().await;
    result.map_err(ScheduleError::Broker)
}

async fn on_broker(
    client: &Client,
    prefix: &str,
    entries: &[&Entry],
    command: &ScheduleCommand,
) -> Result<Vec<String>, Error> {
    let Some(session) = client.session() else {
        return Ok(Vec::new());
    };
    let queues: Vec<_> = entries.iter().flat_map(|entry| entry.state_queues(prefix)).collect();
    topology::declare(&session.connection, &queues).await?;
    let channel = session.connection.create_channel().await?;
    let mut lines = Vec::new();
    match command {
        ScheduleCommand::List => {
            lines.push(format!(
                "{:<24} {:<24} {:<20} {:<16} {:<22} {:<22} {:<7} ARGS",
                "NAME", "JOB", "EXPRESSION", "TIMEZONE", "LAST", "NEXT", "STATE"
            ));
            let now = Timestamp::now();
            for entry in entries {
                let last = scheduler::last_slot(&channel, &entry.record_queue(prefix)).await?;
                let paused = scheduler::paused(&channel, &entry.paused_queue(prefix)).await?;
                let shown = |slot: Option<Timestamp>| slot.map_or_else(|| "-".to_owned(), |slot| slot.to_string());
                lines.push(format!(
                    "{:<24} {:<24} {:<20} {:<16} {:<22} {:<22} {:<7} {}",
                    entry.name,
                    entry.job,
                    entry.expression,
                    entry.timezone_name,
                    shown(last),
                    shown(entry.next_after(now)),
                    if paused { "paused" } else { "active" },
                    arguments(&entry.body),
                ));
            }
        }
        ScheduleCommand::Pause { schedule } => {
            scheduler::set_paused(&channel, &entries[0].paused_queue(prefix), true).await?;
            lines.push(format!("paused `{schedule}` on every worker"));
        }
        ScheduleCommand::Resume { schedule } => {
            scheduler::set_paused(&channel, &entries[0].paused_queue(prefix), false).await?;
            lines.push(format!("resumed `{schedule}` from its next slot"));
        }
    }
    let _ = channel.close(200, "done".into()).await;
    Ok(lines)
}

/// The longest arguments `schedule list` shows, in characters.
const SHOWN_ARGUMENTS: usize = 60;

/// A schedule's job body as `schedule list` shows it: on one line, cut
/// short past [`SHOWN_ARGUMENTS`].
fn arguments(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > SHOWN_ARGUMENTS {
        let cut: String = one_line.chars().take(SHOWN_ARGUMENTS - 1).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_show_on_one_line_cut_short() {
        assert_eq!(arguments(br#"{"region":"eu"}"#), r#"{"region":"eu"}"#);
        assert_eq!(arguments(b"two\nlines"), "two lines");
        let long = format!(r#"{{"text":"{}"}}"#, "a".repeat(100));
        let shown = arguments(long.as_bytes());
        assert_eq!(shown.chars().count(), SHOWN_ARGUMENTS);
        assert!(shown.ends_with('…'), "{shown}");
    }
}
