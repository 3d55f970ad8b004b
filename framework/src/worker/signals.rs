//! SIGINT and SIGTERM, counted from the moment the worker starts: the first
//! drains, the second forces the exit.

use tokio::sync::watch;

/// The shutdown signals received so far. Clones share the count.
#[derive(Debug, Clone)]
pub(crate) struct Signals(watch::Receiver<u32>);

impl Signals {
    /// Installs the handlers now, on the current (local) runtime, so that no
    /// signal is missed between one wait and the next (tokio discards a
    /// signal that arrives while nothing listens).
    pub(crate) fn install() -> Self {
        let (count, receiver) = watch::channel(0);
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(mut terminate), Ok(mut interrupt)) => {
                    actix_rt::spawn(async move {
                        loop {
                            tokio::select! {
                                _ = terminate.recv() => {}
                                _ = interrupt.recv() => {}
                            }
                            count.send_modify(|n| *n += 1);
                        }
                    });
                }
                _ => tracing::error!("could not install signal handlers; stop the worker with SIGKILL"),
            }
        }
        #[cfg(not(unix))]
        actix_rt::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                count.send_modify(|n| *n += 1);
            }
        });
        Signals(receiver)
    }

    /// Resolves once `count` signals have arrived.
    pub(crate) async fn received(&mut self, count: u32) {
        // Fails only if the handler task is gone; then no signal will come.
        if self.0.wait_for(|n| *n >= count).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
