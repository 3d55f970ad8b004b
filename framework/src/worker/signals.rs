//! Shutdown requests, counted from the moment the worker starts: the first
//! drains, the second forces the exit. They come from SIGINT and SIGTERM
//! (unless the program handles signals itself) and from a
//! [`WorkerHandle`](crate::WorkerHandle).

use tokio::sync::watch;

/// The shutdown requests received so far. Clones share the count.
#[derive(Debug, Clone)]
pub(crate) struct Signals(watch::Receiver<u32>);

/// Where shutdown requests are sent: by the signal listener and by a
/// [`WorkerHandle`](crate::WorkerHandle).
pub(crate) type Requests = watch::Sender<u32>;

impl Signals {
    /// No requests yet, and the sender that makes them.
    pub(crate) fn new() -> (Requests, Self) {
        let (requests, received) = watch::channel(0);
        (requests, Signals(received))
    }

    /// Counts SIGINT and SIGTERM as requests from now on. The handlers are
    /// installed at once, on the current (actix) runtime, so that no signal
    /// is missed between one wait and the next (tokio discards a signal that
    /// arrives while nothing listens).
    pub(crate) fn listen_to_os(requests: Requests) {
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
                            requests.send_modify(|n| *n += 1);
                        }
                    });
                }
                _ => tracing::error!("could not install signal handlers; stop the worker with SIGKILL"),
            }
        }
        #[cfg(not(unix))]
        actix_rt::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                requests.send_modify(|n| *n += 1);
            }
        });
    }

    /// Resolves once `count` requests have arrived.
    pub(crate) async fn received(&mut self, count: u32) {
        // Fails only once every sender is gone; then no request will come.
        if self.0.wait_for(|n| *n >= count).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Asks for at least `count` requests in all: 1 drains, 2 forces. Asking
/// again for what was already asked changes nothing.
pub(crate) fn request(requests: &Requests, count: u32) {
    requests.send_if_modified(|n| {
        let before = *n;
        *n = before.max(count);
        *n != before
    });
}
