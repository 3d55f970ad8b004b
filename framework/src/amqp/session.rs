//! A client's connection and confirm-mode channel, reopened when they die:
//! an enqueue caught by a broker restart, a network cut or a
//! `close_connection` waits for a new connection and is published again.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ErrorKind};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::Error;
use crate::amqp::backoff::Backoff;
use crate::amqp::block::{ALIVE_CHECK, Block};
use crate::amqp::connect::{Endpoint, Refusals, with_retries};
use crate::error::AmqpError;

/// The first wait between reconnection attempts (full jitter); it doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_secs(5);

/// The shortest wait for an answer before a connection is taken as dead.
const MIN_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// AMQP's reply code for a connection closed by an operator or a broker shutdown.
const CONNECTION_FORCED: u16 = 320;

/// Whether the broker closed the channel or connection because of what was
/// sent (a protocol error), rather than because it went away (I/O errors,
/// `CONNECTION_FORCED` from an operator or a shutdown).
pub(crate) fn refused_by_broker(error: &Error) -> bool {
    match error {
        Error::Amqp(error) => {
            matches!(error.inner().kind(), ErrorKind::ProtocolError(amqp) if amqp.get_id() != CONNECTION_FORCED)
        }
        _ => false,
    }
}

/// Whether `error` says the connection itself is gone: reset or broken,
/// closed by an operator or a shutdown, silent past its heartbeat, or
/// already closed. lapin fails the operations in flight before it marks the
/// connection closed, so an operation can see this while
/// [`Session::alive`] still holds: the error decides, not only the status.
fn connection_lost(error: &Error) -> bool {
    match error {
        Error::Amqp(error) => match error.inner().kind() {
            ErrorKind::IOError(_) | ErrorKind::MissingHeartbeatError | ErrorKind::InvalidConnectionState(_) => true,
            ErrorKind::ProtocolError(amqp) => amqp.get_id() == CONNECTION_FORCED,
            _ => false,
        },
        _ => false,
    }
}

/// One connection and its confirm-mode channel.
#[derive(Debug)]
pub(crate) struct Session {
    /// Shared with the session a renewed channel replaced.
    pub(crate) connection: Arc<Connection>,
    pub(crate) channel: Channel,
    /// Counts reconnections, so that a session's users can tell it is new.
    pub(crate) generation: u64,
    /// Whether RabbitMQ blocks the connection's publishes.
    pub(crate) block: Block,
}

impl Session {
    async fn open(endpoint: &Endpoint, generation: u64) -> Result<Self, Error> {
        let connection = endpoint.connect().await?;
        let block = Block::watch(&connection, &endpoint.name, &endpoint.io);
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Session {
            connection: Arc::new(connection),
            channel,
            generation,
            block,
        })
    }

    fn alive(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// The broker's reason, while it blocks this session's publishes: a
    /// connection that died is not blocked, whatever it was last told.
    fn blocked(&self) -> Option<String> {
        self.block.reason().filter(|_| self.alive())
    }
}

/// What an operation that was under way when the broker blocked its
/// connection does once its deadline has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnBlock {
    /// Fails with [`Error::PublishBlocked`]: what an enqueue does, so that
    /// its caller is not held for as long as an alarm lasts.
    Fail,
    /// Waits on for the broker's answer, for as long as the connection
    /// lives. The broker reads what it blocked once the block lifts: a
    /// caller that sent the operation again would have it done twice (a
    /// retry stored twice, and its job run twice). A connection that dies
    /// meanwhile leaves the outcome unknown, and is replaced as any other.
    #[cfg_attr(not(feature = "worker"), allow(dead_code, reason = "only a worker hands jobs over"))]
    AwaitAnswer,
}

/// An operation whose answer is late: whether to wait on for it.
#[derive(Debug)]
struct LateAnswer {
    on_block: OnBlock,
    deadline: Instant,
    /// How long an answer may take on a connection that is not blocked.
    answer_within: Duration,
    /// Whether the broker blocked the connection while the operation was
    /// under way: once it lifts the block, the answer is waited for afresh.
    was_blocked: bool,
}

impl LateAnswer {
    /// When to look again at an operation still unanswered at `now`, on
    /// a connection the broker last said it `blocked` and that is `alive`
    /// or not; `None`: wait no more.
    fn look_again_at(&mut self, now: Instant, blocked: bool, alive: bool) -> Option<Instant> {
        // A dead connection answers nothing more, whatever it was last told.
        if !alive {
            return None;
        }
        if blocked {
            // Blocked, not cut: the answer comes once the block lifts.
            // Still looked at every ALIVE_CHECK, as the connection may die.
            self.was_blocked = true;
            return match self.on_block {
                OnBlock::Fail if now < self.deadline => Some(self.deadline.min(now + ALIVE_CHECK)),
                OnBlock::Fail => None,
                OnBlock::AwaitAnswer => Some(now + ALIVE_CHECK),
            };
        }
        if std::mem::take(&mut self.was_blocked) {
            // Lifted: the broker reads what it held now.
            let by = match self.on_block {
                OnBlock::Fail => self.deadline.min(now + self.answer_within),
                OnBlock::AwaitAnswer => now + self.answer_within,
            };
            return (by > now).then_some(by);
        }
        None
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

    /// When an operation starting now must have succeeded or failed.
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.recovery_timeout
    }

    /// Runs `operation` on the current session. If it fails because the
    /// session died, reconnects and runs it again; gives up at `deadline`
    /// (the operation, the wait for another task's reconnection and every
    /// connect attempt all count). Any other failure is returned as it is.
    ///
    /// While RabbitMQ blocks the connection's publishes (a memory or disk
    /// alarm), the operation waits for the block to lift, until `deadline`,
    /// and then fails with [`Error::PublishBlocked`]: it does not start on
    /// a blocked connection (the broker would not read it), and one that
    /// was blocked under way is not taken as cut (a new connection would
    /// be blocked too, and the operation sent twice). A connection that
    /// dies, blocked or not, is replaced.
    pub(crate) async fn run<T, F, Fut>(&self, deadline: Instant, operation: F) -> Result<T, Error>
    where
        F: FnMut(Arc<Session>) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.run_with(deadline, OnBlock::Fail, operation).await
    }

    /// [`run`](Self::run), with what an operation the broker blocked under
    /// way does at `deadline`: see [`OnBlock`].
    pub(crate) async fn run_with<T, F, Fut>(
        &self,
        deadline: Instant,
        on_block: OnBlock,
        mut operation: F,
    ) -> Result<T, Error>
    where
        F: FnMut(Arc<Session>) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        // The session opened for this operation, if it needed one.
        let mut reopened_for_it = None;
        loop {
            let session = self.current();
            if session.blocked().is_some() {
                // Boxed, as the other paths only some operations take: an
                // operation's future holds room for every future it awaits.
                Box::pin(session.block.lifted(deadline, || session.alive()))
                    .await
                    .map_err(|reason| self.blocked(reason))?;
            }
            // A connection cut silently (no reset) would hold the operation
            // until heartbeats notice, minutes later: an operation that gets
            // no answer within a third of the recovery timeout is taken as
            // a dead connection, and tried again on a new one.
            let answer_within = (self.recovery_timeout / 3).max(MIN_ANSWER_WAIT);
            let mut answer_by = deadline.min(Instant::now() + answer_within);
            let mut late = LateAnswer {
                on_block,
                deadline,
                answer_within,
                was_blocked: false,
            };
            let mut said_past_deadline = false;
            let answered = {
                let mut running = std::pin::pin!(operation(Arc::clone(&session)));
                loop {
                    let answered = tokio::time::timeout_at(answer_by, running.as_mut()).await;
                    if answered.is_ok() || self.closed.load(Ordering::Relaxed) {
                        break answered;
                    }
                    let now = Instant::now();
                    let blocked = session.block.reason().is_some();
                    let Some(next) = late.look_again_at(now, blocked, session.alive()) else {
                        break answered;
                    };
                    if blocked && now >= deadline && !said_past_deadline {
                        said_past_deadline = true;
                        debug!(
                            connection = %self.endpoint.name,
                            "a publish the broker blocked once sent is unanswered at its recovery timeout; waiting for its confirm rather than publishing it again"
                        );
                    }
                    answer_by = next;
                }
            };
            let cause = match answered {
                Ok(Err(error))
                    if (!session.alive() || connection_lost(&error)) && !self.closed.load(Ordering::Relaxed) =>
                {
                    // The broker refusing the operation itself (a frame or
                    // message too large) closes even a fresh connection:
                    // reconnecting again would only loop. A reset or a
                    // forced close is the network or a restart: retried.
                    if reopened_for_it == Some(session.generation) && refused_by_broker(&error) {
                        return Err(error);
                    }
                    error
                }
                Ok(result) => return result,
                Err(_elapsed) if let Some(reason) = session.blocked() => return Err(self.blocked(reason)),
                Err(_elapsed) if Instant::now() >= deadline || self.closed.load(Ordering::Relaxed) => {
                    return Err(self.unavailable());
                }
                Err(_elapsed) if !session.alive() => Error::Amqp(AmqpError::new(
                    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "the connection died").into(),
                )),
                Err(_elapsed) => Error::NoAnswer { waited: answer_within },
            };
            Box::pin(self.reopen(&session, deadline, &cause)).await?;
            reopened_for_it = Some(self.current().generation);
        }
    }

    /// Replaces `dead` with a new session, unless another task already did.
    async fn reopen(&self, dead: &Session, deadline: Instant, cause: &Error) -> Result<(), Error> {
        let _reopening = tokio::time::timeout_at(deadline, self.reopening.lock())
            .await
            .map_err(|_elapsed| self.unavailable())?;
        if self.current().generation != dead.generation {
            return Ok(());
        }
        warn!(error = %cause, connection = %self.endpoint.name, "lost the connection to RabbitMQ; reconnecting");
        // The node that failed is tried last.
        self.endpoint.fail_over();
        let old = Arc::clone(&self.current());
        self.endpoint.io.spawn(async move {
            // Already closed, or silent: either way it is given up.
            let close = old.connection.close(200, "reconnecting".into());
            let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
        });
        // Refusals fail at once: the enqueue waiting here learns that the
        // broker refuses its credentials rather than waiting out its
        // recovery timeout.
        let reopen = with_retries(
            &self.endpoint.name,
            Backoff::new(FIRST_WAIT, MAX_WAIT),
            Refusals::Fail,
            || Session::open(&self.endpoint, dead.generation + 1),
        );
        let session = tokio::time::timeout_at(deadline, reopen)
            .await
            .map_err(|_elapsed| self.unavailable())??;
        if self.closed.load(Ordering::Relaxed) {
            // Closed while reconnecting: the new connection must not outlive the client.
            let _ = session.connection.close(200, "client closed".into()).await;
            return Err(Error::ClientClosed);
        }
        info!(connection = %self.endpoint.name, "reconnected to RabbitMQ");
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(session);
        Ok(())
    }

    fn unavailable(&self) -> Error {
        Error::Unavailable {
            timeout: self.recovery_timeout,
        }
    }

    fn blocked(&self, reason: String) -> Error {
        Error::PublishBlocked {
            reason,
            timeout: self.recovery_timeout,
        }
    }

    /// Gives the session of `generation` a new channel on the same
    /// connection, unless another task already replaced it. A quorum queue
    /// nacks the publishes of a channel that sent to it while its leader
    /// was being replaced, for as long as a minute after a new leader was
    /// elected (RabbitMQ 3.10); a new channel reaches the new leader at once.
    pub(crate) async fn renew_channel(&self, generation: u64) -> Result<(), Error> {
        let _reopening = self.reopening.lock().await;
        let old = self.current();
        if old.generation != generation || !old.alive() {
            return Ok(());
        }
        let channel = old.connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        let stale = old.channel.clone();
        self.endpoint.io.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), stale.close(200, "renewed".into())).await;
        });
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(Session {
            connection: Arc::clone(&old.connection),
            channel,
            generation: generation + 1,
            block: old.block.clone(),
        });
        Ok(())
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

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn amqp(error: impl Into<lapin::Error>) -> Error {
        Error::Amqp(AmqpError::new(error.into()))
    }

    #[test]
    fn a_reset_or_a_missed_heartbeat_is_a_lost_connection_whatever_the_status_says() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(connection_lost(&amqp(reset)));
        assert!(connection_lost(&amqp(io::Error::from(io::ErrorKind::BrokenPipe))));
        assert!(connection_lost(&amqp(ErrorKind::MissingHeartbeatError)));
    }

    fn late(on_block: OnBlock, deadline: Instant) -> LateAnswer {
        LateAnswer {
            on_block,
            deadline,
            answer_within: Duration::from_secs(1),
            was_blocked: false,
        }
    }

    #[test]
    fn a_dead_connection_is_not_waited_for_whatever_its_last_block_state() {
        let now = Instant::now();
        for on_block in [OnBlock::Fail, OnBlock::AwaitAnswer] {
            let mut late = late(on_block, now + Duration::from_secs(30));
            assert_eq!(late.look_again_at(now, true, false), None, "{on_block:?}");
            assert_eq!(late.look_again_at(now, false, false), None, "{on_block:?}");
        }
    }

    #[test]
    fn a_publish_blocked_once_sent_waits_past_its_deadline_only_when_its_answer_is_awaited() {
        let now = Instant::now();
        let deadline = now + Duration::from_millis(200);
        let mut fail = late(OnBlock::Fail, deadline);
        assert_eq!(fail.look_again_at(now, true, true), Some(deadline));
        assert_eq!(fail.look_again_at(deadline, true, true), None);
        let mut awaited = late(OnBlock::AwaitAnswer, deadline);
        assert_eq!(awaited.look_again_at(now, true, true), Some(now + ALIVE_CHECK));
        let past = deadline + Duration::from_secs(60);
        assert_eq!(awaited.look_again_at(past, true, true), Some(past + ALIVE_CHECK));
        // Once the block lifts, the answer gets its usual time, once.
        assert_eq!(
            awaited.look_again_at(past, false, true),
            Some(past + Duration::from_secs(1))
        );
        assert_eq!(awaited.look_again_at(past + Duration::from_secs(1), false, true), None);
        // Never blocked: late is late.
        assert_eq!(
            late(OnBlock::AwaitAnswer, deadline).look_again_at(now, false, true),
            None
        );
    }

    #[test]
    fn what_the_broker_refused_or_warren_decided_is_not_a_lost_connection() {
        assert!(!connection_lost(&amqp(ErrorKind::ChannelsLimitReached)));
        assert!(!connection_lost(&Error::ClientClosed));
        assert!(!connection_lost(&Error::NoRuntime));
    }
}
