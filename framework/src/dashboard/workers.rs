//! The running worker processes, as their heartbeats say: read through an
//! exclusive queue of the dashboard's own, bound to the heartbeat exchange,
//! in which a heartbeat expires unread after its TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::management::age;
use crate::Client;
use crate::worker::heartbeat::{self, Heartbeat};

/// A worker whose last heartbeat is older than this shows as stale.
const STALE_AFTER: Duration = Duration::from_secs(10);
/// A worker whose last heartbeat is older than this is no longer listed.
const GONE_AFTER: Duration = Duration::from_secs(60);
/// The wait before reading heartbeats again after the connection failed.
const RETRY: Duration = Duration::from_secs(5);

type Seen = Arc<Mutex<HashMap<(String, u32, String), (Heartbeat, Instant)>>>;

/// The heartbeats read so far, and the task that reads them.
#[derive(Debug)]
pub(crate) struct Workers {
    seen: Seen,
    task: JoinHandle<()>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A worker's row on the workers page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkerRow {
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
    pub(crate) queues: String,
    pub(crate) workers: usize,
    pub(crate) prefetch: u16,
    pub(crate) ack: String,
    pub(crate) in_flight: u64,
    pub(crate) done: u64,
    pub(crate) failed: u64,
    pub(crate) up: String,
    /// E.g. `3s ago`.
    pub(crate) last_seen: String,
    pub(crate) stale: bool,
}

impl Workers {
    /// Starts reading the heartbeats of the workers under `prefix`.
    pub(crate) fn start(client: Client, prefix: &str) -> Self {
        let seen = Seen::default();
        let exchange = heartbeat::exchange(prefix);
        let task = tokio::spawn(read(client, exchange, Arc::clone(&seen)));
        Workers { seen, task }
    }

    /// The workers heard from in the last minute, by host, then name.
    pub(crate) fn list(&self) -> Vec<WorkerRow> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.retain(|_, (_, at)| at.elapsed() < GONE_AFTER);
        let mut rows: Vec<WorkerRow> = seen
            .values()
            .map(|(beat, at)| WorkerRow {
                name: beat.name.clone(),
                host: beat.host.clone(),
                pid: beat.pid,
                queues: beat.queues.join(", "),
                workers: beat.workers,
                prefetch: beat.prefetch,
                ack: beat.ack.clone(),
                in_flight: beat.in_flight,
                done: beat.done,
                failed: beat.failed,
                up: age(beat.sent_at.saturating_sub(beat.started_at)),
                last_seen: format!("{} ago", age(at.elapsed().as_secs())),
                stale: at.elapsed() > STALE_AFTER,
            })
            .collect();
        rows.sort_by(|a, b| (&a.host, &a.name, a.pid).cmp(&(&b.host, &b.name, b.pid)));
        rows
    }
}

/// Reads heartbeats for ever, starting over after a failure.
async fn read(client: Client, exchange: String, seen: Seen) {
    loop {
        if let Err(error) = consume(&client, &exchange, &seen).await {
            warn!(%error, "reading worker heartbeats failed; trying again");
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn consume(client: &Client, exchange: &str, seen: &Seen) -> Result<(), lapin::Error> {
    let Some(session) = client.session() else {
        return Ok(());
    };
    let channel = session.connection.create_channel().await?;
    heartbeat::declare(&channel, exchange).await?;
    let mut arguments = FieldTable::default();
    let ttl = i64::try_from(heartbeat::TTL.as_millis()).unwrap_or(i64::MAX);
    arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut deliveries = channel
        .basic_consume(
            queue.name().clone(),
            "warren-dashboard".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery?;
        match serde_json::from_slice::<Heartbeat>(&delivery.data) {
            Ok(beat) => {
                let key = (beat.host.clone(), beat.pid, beat.name.clone());
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key, (beat, Instant::now()));
            }
            Err(error) => debug!(%error, "ignored a heartbeat that is not one"),
        }
    }
    Ok(())
}
