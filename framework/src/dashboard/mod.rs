//! The web dashboard: queues, workers and dead letters of a warren fleet,
//! on one page each, refreshing live.
//!
//! The generated binary serves it with `dashboard --addr 127.0.0.1:9465`;
//! a service mounts [`Dashboard::router`] in its own axum app:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let dashboard = warren::dashboard::Dashboard::builder("amqp://127.0.0.1:5672/%2f")
//!     .connect()
//!     .await?;
//! let app = axum::Router::new().nest("/warren", dashboard.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Queue statistics come from RabbitMQ's management HTTP API (the
//! `rabbitmq_management` plugin), at port 15672 of the AMQP URL's host with
//! its credentials and virtual host unless [`DashboardBuilder::management_url`]
//! says otherwise. Workers come from the heartbeats every worker process
//! sends to the fanout exchange `<prefix>warren.heartbeats` every 2 s: the
//! dashboard reads them through a queue of its own that RabbitMQ deletes
//! when it goes; a worker whose heartbeats stop shows as stale after 10 s
//! and goes from the list after a minute. Dead letters are read, retried
//! and deleted as the `dead` commands do: a letter leaves its dead-letter
//! queue only once RabbitMQ confirmed its job back in the job queue.
//!
//! Security: [`Dashboard::serve`] binds to a loopback address unless a
//! token is set ([`DashboardBuilder::token`]); with one, every request needs
//! it, as `Authorization: Bearer <token>` or as the password of HTTP basic
//! auth (any user name), which a browser asks for. Requests that change
//! anything are POSTs that must carry the page's CSRF token in the
//! `x-warren-csrf` header and, when the browser sends an `Origin`, come
//! from the dashboard's own. Everything a message carries is HTML-escaped.

mod dead;
mod http;
mod management;
mod pages;
mod routes;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::amqp::connect::TlsFiles;
use crate::{Client, Registry};

/// Why the dashboard could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// A non-loopback address without a token: the dashboard can retry and
    /// delete jobs, so it is never open to a network without one.
    #[error(
        "refusing to serve the dashboard on {addr} without a token: it can retry and delete jobs; pass --token (or WARREN_DASHBOARD_TOKEN), or bind to 127.0.0.1"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The management URL given or derived is not one the dashboard can use.
    #[error("invalid management API URL `{url}`: {reason}")]
    ManagementUrl {
        /// The URL, without its password.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registered jobs are inconsistent.
    #[error(transparent)]
    Registry(#[from] crate::RegistryError),
    /// Connecting to RabbitMQ failed.
    #[error(transparent)]
    Connect(#[from] crate::Error),
    /// The address could not be bound, or serving failed.
    #[error("could not serve the dashboard on {addr}: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Builds a [`Dashboard`]: [`Dashboard::builder`].
#[derive(Clone)]
pub struct DashboardBuilder {
    url: String,
    prefix: String,
    tls: TlsFiles,
    management_url: Option<String>,
    token: Option<String>,
    registry: Option<Registry>,
}

impl std::fmt::Debug for DashboardBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the token nor a password in a URL reaches a log.
        f.debug_struct("DashboardBuilder")
            .field("url", &crate::error::redact(&self.url))
            .field("prefix", &self.prefix)
            .field(
                "management_url",
                &self.management_url.as_deref().map(crate::error::redact),
            )
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl DashboardBuilder {
    /// The prefix of every queue name, as the workers' `queue_prefix`: only
    /// queues with it are shown, and heartbeats are read from
    /// `<prefix>warren.heartbeats`.
    pub fn queue_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The management API's base URL, e.g. `https://admin:secret@rabbit:15671`
    /// (default: `http://<AMQP host>:15672` with the AMQP URL's user and
    /// password). The virtual host is always the AMQP URL's. Only `http`
    /// URLs are supported.
    pub fn management_url(mut self, url: impl Into<String>) -> Self {
        self.management_url = Some(url.into());
        self
    }

    /// Requires this token of every request; required to serve on an
    /// address other than loopback.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into()).filter(|token| !token.is_empty());
        self
    }

    /// The jobs whose queues' dead letters are retried with their queue
    /// type (default: the jobs linked into the binary).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    pub(crate) fn tls_files(mut self, tls: TlsFiles) -> Self {
        self.tls = tls;
        self
    }

    /// Connects to RabbitMQ and starts reading heartbeats.
    pub async fn connect(self) -> Result<Dashboard, DashboardError> {
        let registry = match self.registry {
            Some(registry) => registry,
            None => Registry::from_inventory()?,
        };
        let management = management::Management::new(&self.url, self.management_url.as_deref())?;
        let client = Client::builder(&self.url)
            .tls_files(self.tls)
            .queue_prefix(&self.prefix)
            .connection_name("warren dashboard")
            .connect()
            .await?;
        let workers = workers::Workers::start(client.clone(), &self.prefix);
        Ok(Dashboard {
            state: Arc::new(routes::AppState {
                client,
                registry,
                prefix: self.prefix,
                management,
                workers,
                token: self.token,
                csrf: routes::csrf_token(),
            }),
        })
    }
}

/// A connected dashboard: its [`router`](Dashboard::router) to mount, or
/// [`serve`](Dashboard::serve) it on an address of its own.
#[derive(Debug, Clone)]
pub struct Dashboard {
    state: Arc<routes::AppState>,
}

impl Dashboard {
    /// A dashboard of the broker at `amqp_url` (several, comma-separated,
    /// are tried in turn).
    pub fn builder(amqp_url: impl Into<String>) -> DashboardBuilder {
        DashboardBuilder {
            url: amqp_url.into(),
            prefix: String::new(),
            tls: TlsFiles::default(),
            management_url: None,
            token: None,
            registry: None,
        }
    }

    /// The dashboard's pages and JSON API, to mount anywhere
    /// (`Router::nest("/warren", …)`): its links are relative. With a
    /// token, every route requires it.
    pub fn router(&self) -> axum::Router {
        routes::router(Arc::clone(&self.state))
    }

    /// Serves the dashboard on `addr` until `shutdown` completes. Refuses
    /// an address other than loopback without a token.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DashboardError> {
        check_bind(addr, self.state.token.as_deref())?;
        let serve_error = |source| DashboardError::Serve { addr, source };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(serve_error)?;
        let bound = listener.local_addr().map_err(serve_error)?;
        tracing::info!(url = %format!("http://{bound}/"), "dashboard serving");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(serve_error)?;
        self.state.client.close().await;
        Ok(())
    }
}

/// Whether `addr` may be served without a token.
pub(crate) fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<(), DashboardError> {
    if addr.ip().is_loopback() || token.is_some_and(|token| !token.is_empty()) {
        Ok(())
    } else {
        Err(DashboardError::TokenRequired { addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_neither_the_token_nor_a_password() {
        let builder = Dashboard::builder("amqp://user:amqp-pass@rabbit/%2f")
            .token("tok-123")
            .management_url("http://admin:mgmt-pass@rabbit:15672");
        let text = format!("{builder:?}");
        for secret in ["tok-123", "amqp-pass", "mgmt-pass"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("rabbit"), "{text}");
    }

    #[test]
    fn only_loopback_serves_without_a_token() {
        let open: SocketAddr = "0.0.0.0:9465".parse().expect("an address");
        let local: SocketAddr = "127.0.0.1:9465".parse().expect("an address");
        let local6: SocketAddr = "[::1]:9465".parse().expect("an address");
        assert!(matches!(
            check_bind(open, None),
            Err(DashboardError::TokenRequired { .. })
        ));
        assert!(matches!(
            check_bind(open, Some("")),
            Err(DashboardError::TokenRequired { .. })
        ));
        assert!(check_bind(open, Some("t")).is_ok());
        assert!(check_bind(local, None).is_ok());
        assert!(check_bind(local6, None).is_ok());
    }
}
