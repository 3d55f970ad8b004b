//! The worker's HTTP server: `/metrics` in Prometheus text format and the
//! health probes `/health/live` and `/health/ready`, on a thread of its own
//! so that a busy or stuck worker runtime does not silence its probes.
//!
//! [`router`] is the whole application: a dashboard's pages merge into it.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::health::Health;

/// Histogram buckets of every `…_seconds` metric: from a 5 ms job to an hour's.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// How often histograms' recent samples are folded in, bounding their memory.
const UPKEEP: Duration = Duration::from_secs(5);

/// Prometheus's text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers read.
#[derive(Debug, Clone)]
pub(crate) struct Probes {
    health: Arc<Health>,
    metrics: Option<PrometheusHandle>,
}

/// The process's Prometheus recorder, installed on first use; `None` when
/// the program installed a recorder of its own first (warren's metrics go
/// to that one).
fn recorder() -> Option<PrometheusHandle> {
    static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    super::metrics::describe();
                    Some(handle)
                }
                Err(_) => {
                    warn!("a metrics recorder is installed already: warren's metrics go to it, and /metrics serves nothing");
                    None
                }
            }
        })
        .clone()
}

/// The routes: `/metrics`, `/health/live`, `/health/ready`.
pub(crate) fn router(probes: Probes) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready))
        .with_state(probes)
}

async fn render(State(probes): State<Probes>) -> impl IntoResponse {
    match &probes.metrics {
        Some(handle) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
            handle.render(),
        ),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "this program installed a metrics recorder of its own; warren's metrics are there\n".to_owned(),
        ),
    }
}

async fn ready(State(probes): State<Probes>) -> impl IntoResponse {
    match probes.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
    }
}

/// A running server; dropping it stops it.
#[derive(Debug)]
pub(crate) struct Server {
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds `addr` (an error here, before the worker starts, if it cannot) and
/// serves on a thread of its own until the [`Server`] is dropped.
pub(crate) fn serve(addr: SocketAddr, health: Arc<Health>) -> io::Result<Server> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let probes = Probes {
        health,
        metrics: recorder(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("warren-http".into()).spawn(move || {
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(error) => {
                    error!(%error, %addr, "cannot serve metrics and health probes");
                    return;
                }
            };
            if let Some(handle) = probes.metrics.clone() {
                tokio::spawn(async move {
                    let mut upkeep = tokio::time::interval(UPKEEP);
                    loop {
                        upkeep.tick().await;
                        handle.run_upkeep();
                    }
                });
            }
            let served = axum::serve(listener, router(probes))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                error!(%error, %addr, "the metrics and health server stopped");
            }
        });
    })?;
    info!(%addr, "serving /metrics, /health/live and /health/ready");
    Ok(Server { stop: Some(stop) })
}
