//! A started worker: its supervisor thread, the handle that shuts it down,
//! and how it ended.
//!
//! actix runs actors in a `System` of its own, and lapin drives each
//! connection on a runtime that must outlive every arbiter: so a worker
//! runs on a thread of its own, where it owns both, and whatever runtime
//! the caller has (or none) only waits for the result.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::amqp::backoff::Backoff;
use crate::amqp::connect::{Endpoint, Refusals, with_retries};
use crate::error::redact;
use crate::job::attempt::Runner;
use crate::worker::WorkerError;
use crate::worker::builder::Plan;
use crate::worker::heartbeat;
use crate::worker::scheduler;
use crate::worker::signals::{self, Requests, Signals};
use crate::worker::supervisor::{FIRST_WAIT, MAX_BACKOFF, Supervisor};
use crate::{Client, Error};

/// How long the worker's own I/O runtime may take to stop.
const IO_SHUTDOWN: Duration = Duration::from_secs(1);

/// How a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// Shut down on request, and every running job finished: prefetched
    /// jobs that had not started went back to their queue. Also the exit of
    /// a worker asked to stop before it ever connected.
    Drained,
    /// Shut down on request, but jobs were still running when the shutdown
    /// timeout ran out. Under [`AckMode::Late`](crate::AckMode::Late) they
    /// return to their queue and run again; under `early` and `none` they
    /// were acknowledged already and are lost (the log names them).
    #[non_exhaustive]
    DrainTimedOut {
        /// How many jobs were cut off.
        cut_off: usize,
    },
    /// Stopped at once, without draining: by a second shutdown request (a
    /// second signal, [`WorkerHandle::force_shutdown`]) or because workers
    /// did not stop even well past the shutdown timeout. Unacknowledged
    /// jobs return to their queue.
    Forced,
}

/// A running worker: ask it to shut down, and wait for how it ended.
///
/// Dropping the handle asks the worker to drain, without waiting for it.
///
/// ```no_run
/// use warren::{Exit, Worker};
///
/// # async fn serve() {}
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let worker = Worker::builder("amqp://127.0.0.1:5672/%2f")
///     .handle_signals(false) // the program's own shutdown decides
///     .start()?;
/// serve().await; // the rest of the program, e.g. an HTTP server, until it stops
/// worker.shutdown();
/// let exit = worker.wait().await?;
/// assert_eq!(exit, Exit::Drained);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WorkerHandle {
    requests: Requests,
    exit: oneshot::Receiver<Result<Exit, WorkerError>>,
}

impl WorkerHandle {
    /// Asks the worker to drain: take no new jobs, let the running ones
    /// finish (up to the shutdown timeout), return prefetched ones to the
    /// queue. Returns at once; [`wait`](Self::wait) for the end. Asking
    /// again changes nothing.
    pub fn shutdown(&self) {
        signals::request(&self.requests, 1);
    }

    /// Stops the worker at once, without waiting for running jobs; they
    /// return to their queue unacknowledged (see [`Exit::Forced`]).
    pub fn force_shutdown(&self) {
        signals::request(&self.requests, 2);
    }

    /// Waits until the worker has stopped (its connections closed, its
    /// threads ending) and says how. A startup refusal that needed the
    /// broker to tell, such as the channel limit, is an error here.
    pub async fn wait(mut self) -> Result<Exit, WorkerError> {
        (&mut self.exit).await.unwrap_or(Err(WorkerError::Crashed))
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the supervisor thread of `plan`.
pub(crate) fn start(plan: Plan) -> Result<WorkerHandle, WorkerError> {
    #[cfg(feature = "http")]
    let mut plan = plan;
    #[cfg(feature = "http")]
    plan.serve_http()?;
    // Stops serving once the worker has exited (dropped with it).
    #[cfg(feature = "http")]
    let server = plan.server.take();
    let (requests, signals) = Signals::new();
    let os_signals = plan.handle_signals.then(|| requests.clone());
    let (report, exit) = oneshot::channel();
    std::thread::Builder::new()
        .name("warren-supervisor".into())
        .spawn(move || {
            // Built and dropped on this thread: a runtime cannot be dropped
            // within another (the caller's).
            let (io, owned) = match plan.io.clone() {
                Some(io) => (io, None),
                None => match io_runtime() {
                    Ok(runtime) => (runtime.handle().clone(), Some(runtime)),
                    Err(error) => {
                        let _ = report.send(Err(WorkerError::Start(error)));
                        return;
                    }
                },
            };
            let system = actix::System::new();
            let result = system.block_on(async move {
                if let Some(requests) = os_signals {
                    Signals::listen_to_os(requests);
                }
                supervise(plan, signals, io).await
            });
            let stop = move || {
                drop(system);
                if let Some(runtime) = owned {
                    // Closes what is left of the connections' sockets.
                    runtime.shutdown_timeout(IO_SHUTDOWN);
                }
            };
            #[cfg(feature = "http")]
            drop(server);
            if result.as_ref().is_ok_and(|exit| *exit == Exit::Forced) {
                // At once: a stalled network must not hold a forced exit
                // up. The sockets close as the runtime stops, just after.
                let _ = report.send(result);
                stop();
            } else {
                stop();
                let _ = report.send(result);
            }
        })
        .map_err(WorkerError::Start)?;
    Ok(WorkerHandle { requests, exit })
}

/// The runtime the connections of a worker run on, which outlives its arbiters.
fn io_runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("warren-io")
        .enable_all()
        .build()
}

/// Connects, checks the broker's channel limit, starts the supervisor
/// actor and waits for it to finish. Runs inside the worker's actix system.
async fn supervise(plan: Plan, signals: Signals, io: Handle) -> Result<Exit, WorkerError> {
    let Plan {
        url,
        tls,
        prefix,
        name,
        queues,
        workers,
        settings,
        state,
        schedule,
        hooks,
        recovery_timeout,
        ..
    } = plan;
    info!(state_types = %state.type_names().join(","), "handlers' state");
    let endpoint = Endpoint::new(url.clone(), format!("warren worker {name}"), io.clone()).with_tls(tls.clone());
    let connected = until_connected(&endpoint.name, || endpoint.connect(), signals.clone());
    let Some(connection) = connected.await.map_err(WorkerError::Connect)? else {
        return Ok(Exit::Drained);
    };
    settings.health.connected(true);
    // Each worker consumes on a channel of its own: past the broker's
    // limit, the ones over it would fail and restart for ever.
    let channels = workers.saturating_mul(queues.len());
    let channel_max = usize::from(connection.configuration().channel_max());
    if channel_max > 0 && channels >= channel_max {
        let _ = connection.close(200, "too many workers".into()).await;
        return Err(WorkerError::TooManyChannels {
            workers,
            queues: queues.len(),
            channels,
            channel_max,
        });
    }
    let mut publisher = Client::builder(&url)
        .queue_prefix(&prefix)
        .connection_name(format!("warren worker {name} (publisher)"))
        .recovery_timeout(recovery_timeout)
        .hooks(hooks)
        .runtime(io.clone());
    if let Some(ca) = tls.ca {
        publisher = publisher.tls_ca(ca);
    }
    if let Some((cert, key)) = tls.client {
        publisher = publisher.tls_client_cert(cert, key);
    }
    let connected = until_connected(
        "warren worker publisher",
        || publisher.clone().connect(),
        signals.clone(),
    );
    let client = match connected.await {
        Ok(Some(client)) => client,
        stopped_or_refused => {
            let _ = connection.close(200, "worker shutting down".into()).await;
            return stopped_or_refused.map(|_| Exit::Drained).map_err(WorkerError::Connect);
        }
    };
    let mut runners = Vec::new();
    for queue in &queues {
        for _ in 0..workers {
            runners.push(Runner {
                queue: queue.as_str().into(),
                full_queue: client.queue_name(queue).into(),
                shape: settings.registry.queue_shape(queue),
                worker: format!("{name}.{}", runners.len() + 1).into(),
                client: client.clone(),
                state: state.clone(),
            });
        }
    }
    settings.health.expect_consumers(runners.len());
    info!(url = %redact(&url), queues = %queues.join(","), workers, prefetch = settings.prefetch, ack = %settings.ack, "worker starting");
    // Ends with the worker: a new leader takes over from the broker's side.
    let scheduler = (!schedule.is_empty()).then(|| AbortOnDrop(io.spawn(scheduler::run(client.clone(), schedule))));
    let beat = heartbeat::template(&name, &queues, workers, settings.prefetch, settings.ack.as_str());
    let heartbeats = heartbeat::spawn(
        client.clone(),
        heartbeat::exchange(&prefix),
        beat,
        Arc::clone(&settings.counters),
        &io,
    );
    let (sender, receiver) = oneshot::channel();
    actix::Actor::start(Supervisor::new(
        endpoint,
        Arc::new(connection),
        settings,
        runners,
        signals,
        sender,
    ));
    let exit = receiver.await.unwrap_or(Exit::Forced);
    drop(scheduler);
    heartbeats.abort();
    match exit {
        // The process may exit now; the broker notices the closed sockets,
        // and a stalled network must not hold the exit.
        Exit::Forced => {}
        Exit::Drained => {
            client.close().await;
            info!("worker stopped");
        }
        Exit::DrainTimedOut { cut_off } => {
            client.close().await;
            warn!(cut_off, "worker stopped; the shutdown timeout cut running jobs off");
        }
    }
    Ok(exit)
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Retries `connect` while its failures are transient, with the backoff of
/// every reconnection loop; `Ok(None)` if a shutdown request comes first, an
/// error at once if the broker refuses the connection or the configuration
/// cannot work.
async fn until_connected<T, F, Fut>(connection: &str, connect: F, mut signals: Signals) -> Result<Option<T>, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let backoff = Backoff::new(FIRST_WAIT, MAX_BACKOFF);
    tokio::select! {
        connected = with_retries(connection, backoff, Refusals::Fail, connect) => connected.map(Some),
        () = signals.received(1) => Ok(None),
    }
}
