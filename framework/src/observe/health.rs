//! Whether a worker is ready for work: connected, every consumer up, not
//! draining, its setup hook done. What `/health/ready` answers, and what a
//! dashboard can show of each worker.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::observe::metrics;

/// A worker process's readiness, updated by its supervisor and consumers.
#[derive(Debug, Default)]
pub(crate) struct Health {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    #[cfg_attr(not(feature = "http"), allow(dead_code, reason = "read by the HTTP server's probes"))]
    setup_running: bool,
    connected: bool,
    draining: bool,
    /// Per worker slot: whether its consumer is up.
    consumers: Vec<bool>,
}

impl Health {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The setup hook started (`true`) or finished.
    #[cfg_attr(not(feature = "http"), allow(dead_code, reason = "read by the HTTP server's probes"))]
    pub(crate) fn setup_running(&self, running: bool) {
        self.lock().setup_running = running;
    }

    /// The worker runs `slots` consumers.
    pub(crate) fn expect_consumers(&self, slots: usize) {
        self.lock().consumers = vec![false; slots];
    }

    /// The consumer connection is up (`true`), or lost.
    pub(crate) fn connected(&self, up: bool) {
        self.lock().connected = up;
        metrics::connection_up(up);
    }

    /// A shutdown was asked for: no new jobs from now on.
    pub(crate) fn draining(&self) {
        self.lock().draining = true;
    }

    /// The consumer of worker `slot` is consuming (`true`), or stopped.
    pub(crate) fn consumer(&self, slot: usize, up: bool) {
        if let Some(consumer) = self.lock().consumers.get_mut(slot) {
            *consumer = up;
        }
    }

    /// `Ok` when ready for work; otherwise why not, in a line.
    #[cfg_attr(not(feature = "http"), allow(dead_code, reason = "read by the HTTP server's probes"))]
    pub(crate) fn readiness(&self) -> Result<(), String> {
        let state = self.lock();
        if state.draining {
            return Err("draining: the worker is shutting down".into());
        }
        if state.setup_running {
            return Err("the setup hook is running".into());
        }
        if !state.connected {
            return Err("not connected to RabbitMQ (connecting or reconnecting)".into());
        }
        let up = state.consumers.iter().filter(|up| **up).count();
        if state.consumers.is_empty() || up < state.consumers.len() {
            return Err(format!("{up} of {} consumers are up", state.consumers.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_connected_every_consumer_up_and_not_draining() {
        let health = Health::default();
        health.expect_consumers(2);
        health.setup_running(true);
        assert_eq!(health.readiness().unwrap_err(), "the setup hook is running");
        health.setup_running(false);
        assert!(health.readiness().unwrap_err().contains("not connected"));
        health.connected(true);
        health.consumer(0, true);
        assert_eq!(health.readiness().unwrap_err(), "1 of 2 consumers are up");
        health.consumer(1, true);
        assert_eq!(health.readiness(), Ok(()));
        health.connected(false);
        assert!(health.readiness().is_err());
        health.connected(true);
        health.draining();
        assert!(health.readiness().unwrap_err().starts_with("draining"));
    }
}
