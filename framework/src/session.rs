//! A client's connection and confirm-mode channel, reopened when they die:
//! an enqueue caught by a broker restart, a network cut or a
//! `close_connection` waits for a new connection and is published again.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::Error;
use crate::runtime::Endpoint;

/// The first wait between reconnection attempts; it doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_secs(5);

/// One connection and its confirm-mode channel.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) connection: Connection,
    pub(crate) channel: Channel,
    /// Counts reconnections, so that a session's users can tell it is new.
    pub(crate) generation: u64,
}

impl Session {
    async fn open(endpoint: &Endpoint, generation: u64) -> Result<Self, Error> {
        let connection = endpoint.connect().await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Session {
            connection,
            channel,
            generation,
        })
    }

    fn alive(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// The current [`Session`] of a client, and how to get a new one.
#[derive(Debug)]
pub(crate) struct Sessions {
    endpoint: Endpoint,
    current: Mutex<Arc<Session>>,
    /// Held while reconnecting, so that concurrent enqueues reconnect once.
    reopening: tokio::sync::Mutex<()>,
    /// How long an operation may wait for the broker to come back.
    recovery_timeout: Duration,
    closed: AtomicBool,
}

impl Sessions {
    /// Connects for the first time.
    pub(crate) async fn open(endpoint: Endpoint, recovery_timeout: Duration) -> Result<Self, Error> {
        let session = Session::open(&endpoint, 0).await?;
        Ok(Sessions {
            endpoint,
            current: Mutex::new(Arc::new(session)),
            reopening: tokio::sync::Mutex::new(()),
            recovery_timeout,
            closed: AtomicBool::new(false),
        })
    }

    /// The session in use.
    pub(crate) fn current(&self) -> Arc<Session> {
        Arc::clone(&self.current.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs `operation` on the current session. If it fails because the
    /// session died, reconnects and runs it again, for up to the recovery
    /// timeout; any other failure is returned as it is.
    pub(crate) async fn run<T, F, Fut>(&self, mut operation: F) -> Result<T, Error>
    where
        F: FnMut(Arc<Session>) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let deadline = Instant::now() + self.recovery_timeout;
        loop {
            let session = self.current();
            match operation(Arc::clone(&session)).await {
                Err(error) if !session.alive() && !self.closed.load(Ordering::Relaxed) => {
                    if Instant::now() >= deadline {
                        return Err(error);
                    }
                    self.reopen(&session, deadline, &error).await?;
                }
                result => return result,
            }
        }
    }

    /// Replaces `dead` with a new session, unless another task already did.
    async fn reopen(&self, dead: &Session, deadline: Instant, cause: &Error) -> Result<(), Error> {
        let _reopening = self.reopening.lock().await;
        if self.current().generation != dead.generation {
            return Ok(());
        }
        warn!(error = %cause, connection = %self.endpoint.name, "lost the connection to RabbitMQ; reconnecting");
        let mut wait = FIRST_WAIT;
        let mut attempt = 1u32;
        loop {
            match Session::open(&self.endpoint, dead.generation + 1).await {
                Ok(session) => {
                    info!(connection = %self.endpoint.name, attempt, "reconnected to RabbitMQ");
                    *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(session);
                    return Ok(());
                }
                Err(error) if Instant::now() + wait >= deadline => return Err(error),
                Err(error) => {
                    warn!(%error, connection = %self.endpoint.name, attempt, retry_in = ?wait, "RabbitMQ unreachable");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_WAIT);
                    attempt += 1;
                }
            }
        }
    }

    /// Closes the connection for good (waiting at most five seconds for the broker).
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let session = self.current();
        // Closing an already closed connection fails; either way it is closed.
        let close = session.connection.close(200, "client closed".into());
        let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
    }
}
