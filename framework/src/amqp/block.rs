//! RabbitMQ's flow control of publishers: while a node is low on memory or
//! disk (an alarm; in a cluster, on any node), the broker blocks every
//! connection that publishes. It tells the client (`connection.blocked`,
//! a capability lapin advertises) when it reads that connection's first
//! publish after the alarm, and from then on reads nothing more from it
//! until the alarm clears (`connection.unblocked`); lapin, told, writes
//! nothing more either. A publish on a blocked connection is not lost, and
//! the connection is not dead: it waits. Consuming connections are never
//! blocked.
//!
//! [`Block`] follows one connection's state from its events, and logs each
//! change once: a warning when the broker blocks it, a line when it lifts
//! the block.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::{Connection, Event};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

/// The reason given when lapin says the connection is blocked but its
/// event, which carries the broker's reason, was not seen.
const NO_REASON: &str = "no reason given";

/// How often a wait for the block to lift checks that the connection is
/// still alive: a connection that dies while blocked is not blocked any more.
pub(crate) const ALIVE_CHECK: Duration = Duration::from_millis(500);

/// Whether RabbitMQ blocks a connection's publishes (`Some`, with the
/// broker's reason) or not (`None`), kept up to date by a task that reads
/// the connection's events for as long as a `Block` of it exists.
#[derive(Debug, Clone)]
pub(crate) struct Block(watch::Receiver<Option<String>>);

impl Block {
    /// Starts following `connection` (named `name` in logs) on `io`.
    pub(crate) fn watch(connection: &Connection, name: &str, io: &Handle) -> Block {
        let mut events = Box::pin(connection.events_listener());
        let initial = connection.status().blocked().then(|| NO_REASON.to_owned());
        let (state, receiver) = watch::channel(initial);
        let name = name.to_owned();
        io.spawn(async move {
            loop {
                let event = tokio::select! {
                    event = events.next() => event,
                    // No one asks any more: the session was replaced.
                    () = state.closed() => None,
                };
                let Some(event) = event else {
                    return;
                };
                let current = state.borrow().clone();
                if let Some(changed) = change(current.as_deref(), &event) {
                    log_change(&name, changed.as_deref());
                    state.send_replace(changed);
                }
            }
        });
        Block(receiver)
    }

    /// The broker's reason, while it blocks the connection.
    pub(crate) fn reason(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// Waits until the broker lifts its block, `alive` says the connection
    /// died (then nothing waits for it), or `deadline`; the broker's reason
    /// if it still blocks the connection then.
    pub(crate) async fn lifted(&self, deadline: Instant, alive: impl Fn() -> bool) -> Result<(), String> {
        let mut changes = self.0.clone();
        loop {
            let Some(reason) = changes.borrow_and_update().clone() else {
                return Ok(());
            };
            if !alive() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(reason);
            }
            let check_by = deadline.min(Instant::now() + ALIVE_CHECK);
            if let Ok(Err(_closed)) = tokio::time::timeout_at(check_by, changes.changed()).await {
                // The task ended with its connection.
                return Ok(());
            }
        }
    }
}

/// The state after `event`, when it changes the state `blocked`.
fn change(blocked: Option<&str>, event: &Event) -> Option<Option<String>> {
    match event {
        Event::ConnectionBlocked(reason) if blocked != Some(reason.as_str()) => Some(Some(reason.clone())),
        Event::ConnectionUnblocked if blocked.is_some() => Some(None),
        _ => None,
    }
}

fn log_change(connection: &str, blocked: Option<&str>) {
    match blocked {
        Some(reason) => warn!(
            connection,
            reason,
            "RabbitMQ is blocking publishes on this connection (a memory or disk alarm); publishes wait until it lifts the block, each up to its recovery timeout, while consuming goes on"
        ),
        None => info!(connection, "RabbitMQ lifted its block; publishing again"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_and_its_lifting_change_the_state_once_each() {
        let blocked = Event::ConnectionBlocked("low on memory".to_owned());
        assert_eq!(change(None, &blocked), Some(Some("low on memory".to_owned())));
        // The same block again is no change, and so not logged again.
        assert_eq!(change(Some("low on memory"), &blocked), None);
        // Another reason is (memory, then disk as well).
        let disk = Event::ConnectionBlocked("low on memory & disk".to_owned());
        assert_eq!(
            change(Some("low on memory"), &disk),
            Some(Some("low on memory & disk".to_owned()))
        );
        assert_eq!(change(Some("low on memory"), &Event::ConnectionUnblocked), Some(None));
        assert_eq!(change(None, &Event::ConnectionUnblocked), None);
        assert_eq!(change(None, &Event::Connected), None);
        assert_eq!(change(Some("low on disk"), &Event::SendFlow(true)), None);
    }

    #[tokio::test]
    async fn a_wait_ends_with_the_deadline_the_lifting_or_the_connection() {
        let (state, receiver) = watch::channel(Some("low on disk".to_owned()));
        let block = Block(receiver);
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(block.lifted(soon, || true).await, Err("low on disk".to_owned()));
        // A dead connection is not waited for.
        let later = Instant::now() + Duration::from_secs(60);
        assert_eq!(block.lifted(later, || false).await, Ok(()));
        let lifting = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            state.send_replace(None);
            state
        });
        assert_eq!(block.lifted(later, || true).await, Ok(()));
        assert_eq!(block.reason(), None);
        drop(lifting.await);
    }
}
