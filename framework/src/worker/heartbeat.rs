//! Heartbeats: every 2 seconds a worker process says who it is and how
//! busy it is on the fanout exchange `<prefix>warren.heartbeats`, for the
//! dashboard (or anything that binds a queue to it) to list the running
//! workers without asking each process. A heartbeat expires in the queues
//! it reaches after [`TTL`]: nothing piles up for a reader that is gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::Client;

/// How often a worker process sends its heartbeat (as Celery's workers):
/// one small message, a dashboard's numbers at most this old.
pub(crate) const EVERY: Duration = Duration::from_secs(2);
/// How long a heartbeat waits in a reader's queue before it expires.
pub(crate) const TTL: Duration = Duration::from_secs(10);

/// The heartbeat exchange of the queues under `prefix`.
pub(crate) fn exchange(prefix: &str) -> String {
    format!("{prefix}warren.heartbeats")
}

/// Declares the heartbeat exchange, the same way for senders and readers: a
/// fanout that RabbitMQ deletes when the last reader's queue goes (and a
/// sender declares again at its next beat).
pub(crate) async fn declare(channel: &Channel, exchange: &str) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// What the workers of one process count, for their heartbeat.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    in_flight: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    /// Counts a job as running until the guard is dropped.
    pub(crate) fn running(self: &Arc<Self>) -> Running {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Running(Arc::clone(self))
    }

    /// Counts an attempt that succeeded.
    pub(crate) fn done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an attempt that failed (retried or dead-lettered).
    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// A job counted as in flight; dropped when it is settled, however.
#[derive(Debug)]
pub(crate) struct Running(Arc<Counters>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One heartbeat, as JSON on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    /// The process's name (`--name`, default its pid).
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
    /// The queues it consumes (without the prefix).
    pub(crate) queues: Vec<String>,
    /// Workers per queue.
    pub(crate) workers: usize,
    pub(crate) prefetch: u16,
    pub(crate) ack: String,
    pub(crate) in_flight: u64,
    /// Attempts that succeeded since the process started.
    pub(crate) done: u64,
    /// Attempts that failed since the process started.
    pub(crate) failed: u64,
    /// Seconds since the epoch.
    pub(crate) started_at: u64,
    /// Seconds since the epoch.
    pub(crate) sent_at: u64,
}

/// The host's name, as the kernel has it; `-` where it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "-".to_owned())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A process's heartbeat, but for its counts and time.
pub(crate) fn template(name: &str, queues: &[String], workers: usize, prefetch: u16, ack: &str) -> Heartbeat {
    Heartbeat {
        name: name.to_owned(),
        host: hostname(),
        pid: std::process::id(),
        queues: queues.to_vec(),
        workers,
        prefetch,
        ack: ack.to_owned(),
        in_flight: 0,
        done: 0,
        failed: 0,
        started_at: now(),
        sent_at: 0,
    }
}

/// Sends `template` with the current counts every [`EVERY`] on `client`'s
/// connection until aborted. A failed send is retried at the next beat, on
/// a new channel: the dashboard shows a worker whose beats stop as stale.
pub(crate) fn spawn(
    client: Client,
    exchange: String,
    template: Heartbeat,
    counters: Arc<Counters>,
    io: &Handle,
) -> JoinHandle<()> {
    io.spawn(async move {
        let mut channel: Option<Channel> = None;
        let mut ticks = tokio::time::interval(EVERY);
        loop {
            ticks.tick().await;
            let mut beat = template.clone();
            beat.in_flight = counters.in_flight.load(Ordering::Relaxed);
            beat.done = counters.done.load(Ordering::Relaxed);
            beat.failed = counters.failed.load(Ordering::Relaxed);
            beat.sent_at = now();
            if let Err(error) = send(&client, &mut channel, &exchange, &beat).await {
                debug!(%error, "could not send the heartbeat; trying again at the next one");
                channel = None;
            }
        }
    })
}

async fn send(
    client: &Client,
    channel: &mut Option<Channel>,
    exchange: &str,
    beat: &Heartbeat,
) -> Result<(), lapin::Error> {
    let open = match channel.take() {
        Some(open) if open.status().connected() => open,
        _ => {
            let Some(session) = client.session() else {
                return Ok(());
            };
            let open = session.connection.create_channel().await?;
            declare(&open, exchange).await?;
            open
        }
    };
    let body = serde_json::to_vec(beat).unwrap_or_default();
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_expiration(TTL.as_millis().to_string().into());
    open.basic_publish(
        exchange.into(),
        "".into(),
        BasicPublishOptions::default(),
        &body,
        properties,
    )
    .await?;
    *channel = Some(open);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_job_counts_in_flight_until_it_is_settled_however() {
        let counters = Arc::new(Counters::default());
        let running = counters.running();
        let panicking = counters.running();
        assert_eq!(counters.in_flight.load(Ordering::Relaxed), 2);
        drop(running);
        drop(panicking);
        counters.done();
        counters.failed();
        assert_eq!(counters.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(
            (
                counters.done.load(Ordering::Relaxed),
                counters.failed.load(Ordering::Relaxed)
            ),
            (1, 1)
        );
    }

    #[test]
    fn a_heartbeat_reads_back_as_it_was_sent() {
        let beat = template("billing", &["emails".to_owned()], 2, 10, "late");
        let wire = serde_json::to_vec(&beat).expect("JSON");
        assert_eq!(serde_json::from_slice::<Heartbeat>(&wire).expect("a heartbeat"), beat);
        assert_eq!(beat.pid, std::process::id());
        assert_eq!(exchange("prod-"), "prod-warren.heartbeats");
    }
}
