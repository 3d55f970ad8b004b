//! `schedule list|pause|resume`: the periodic jobs of this binary, their
//! last and next runs, and pausing one fleet-wide (the state is on RabbitMQ).

use clap::Subcommand;
use jiff::Timestamp;

use crate::amqp::connect::TlsFiles;
use crate::amqp::topology;
use crate::worker::scheduler::{self, Entry};
use crate::{Client, Error, Registry};

/// `schedule`'s subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// List the periodic jobs: expression, time zone, last and next run.
    List,
    /// Pause a periodic job on every worker: its slots pass without running.
    Pause {
        /// The job's name.
        job: String,
    },
    /// Resume a paused periodic job from its next slot (the paused ones are not caught up).
    Resume {
        /// The job's name.
        job: String,
    },
}

/// Why a `schedule` command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScheduleError {
    /// No periodic job of that name.
    #[error("no periodic job named `{name}`; periodic jobs: {known}")]
    Unknown {
        /// The name given.
        name: String,
        /// The periodic jobs.
        known: String,
    },
    /// A schedule that cannot work.
    #[error("periodic job `{0}` {1}")]
    Invalid(&'static str, String),
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
    let entries = scheduler::entries(registry, None).map_err(|(job, reason)| ScheduleError::Invalid(job, reason))?;
    let chosen = |name: &str| {
        entries
            .iter()
            .find(|entry| entry.name == name)
            .ok_or_else(|| ScheduleError::Unknown {
                name: name.to_owned(),
                known: entries.iter().map(|entry| entry.name).collect::<Vec<_>>().join(", "),
            })
    };
    let selected: Vec<&Entry> = match &command {
        ScheduleCommand::List => entries.iter().collect(),
        ScheduleCommand::Pause { job } | ScheduleCommand::Resume { job } => vec![chosen(job)?],
    };
    if selected.is_empty() {
        return Ok(vec!["no periodic jobs".to_owned()]);
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
                "{:<24} {:<20} {:<16} {:<22} {:<22} STATE",
                "NAME", "EXPRESSION", "TIMEZONE", "LAST", "NEXT"
            ));
            let now = Timestamp::now();
            for entry in entries {
                let last = scheduler::last_slot(&channel, &entry.record_queue(prefix)).await?;
                let paused = scheduler::paused(&channel, &entry.paused_queue(prefix)).await?;
                let shown = |slot: Option<Timestamp>| slot.map_or_else(|| "-".to_owned(), |slot| slot.to_string());
                lines.push(format!(
                    "{:<24} {:<20} {:<16} {:<22} {:<22} {}",
                    entry.name,
                    entry.expression,
                    entry.timezone_name,
                    shown(last),
                    shown(entry.next_after(now)),
                    if paused { "paused" } else { "active" }
                ));
            }
        }
        ScheduleCommand::Pause { job } => {
            scheduler::set_paused(&channel, &entries[0].paused_queue(prefix), true).await?;
            lines.push(format!("paused `{job}` on every worker"));
        }
        ScheduleCommand::Resume { job } => {
            scheduler::set_paused(&channel, &entries[0].paused_queue(prefix), false).await?;
            lines.push(format!("resumed `{job}` from its next slot"));
        }
    }
    let _ = channel.close(200, "done".into()).await;
    Ok(lines)
}
