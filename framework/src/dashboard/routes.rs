//! The routes: pages, their JSON, the dead-letter actions, and the checks
//! every request passes (the token) and every POST (the CSRF token, the
//! origin).

use std::sync::Arc;

use axum::Router;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use super::dead;
use super::management::{JobQueue, Management};
use super::pages::{self, QUEUE_COLUMNS, WORKER_COLUMNS};
use super::workers::Workers;
use crate::{Client, Registry};

/// What every request handler shares.
pub(crate) struct AppState {
    pub(crate) client: Client,
    pub(crate) registry: Registry,
    pub(crate) prefix: String,
    pub(crate) management: Management,
    pub(crate) workers: Workers,
    pub(crate) token: Option<String>,
    pub(crate) csrf: String,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token or the CSRF token.
        f.debug_struct("AppState")
            .field("prefix", &self.prefix)
            .field("management", &self.management)
            .finish_non_exhaustive()
    }
}

pub(crate) type Shared = Arc<AppState>;

/// The header a POST carries the page's CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-warren-csrf";

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/queues", get(queues_page))
        .route("/workers", get(workers_page))
        .route("/dead", get(dead::page))
        .route("/api/queues", get(queues_json))
        .route("/api/workers", get(workers_json))
        .route("/api/dead", get(dead::list))
        .route("/api/dead/retry", post(dead::retry))
        .route("/api/dead/delete", post(dead::delete))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .with_state(state)
}

/// A fresh random token for the CSRF header: 128 bits from the system's
/// random source.
pub(crate) fn csrf_token() -> String {
    use std::io::Read as _;
    let mut bytes = [0_u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut random| random.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom: a v7 UUID's random bits, twice.
        bytes = *uuid::Uuid::now_v7().as_bytes();
        for (byte, other) in bytes.iter_mut().zip(uuid::Uuid::now_v7().as_bytes().iter().rev()) {
            *byte ^= other;
        }
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Equal, in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The token a request carries: `Bearer <token>`, or the password of
/// basic auth.
fn given_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    decoded.split_once(':').map(|(_, password)| password.to_owned())
}

/// Refuses a request without the token (if one is set), and a POST
/// without the CSRF token or from another origin. Without a token, only
/// requests addressed to this machine by a loopback name are served: a
/// web page whose DNS name was rebound to 127.0.0.1 would otherwise be
/// same-origin with the dashboard, read its CSRF token and post with it.
async fn guard(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if state.token.is_none()
        && !headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .is_some_and(is_loopback_host)
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "without a token the dashboard answers only to localhost, 127.0.0.1 or [::1]; set a token to serve it under another name",
        );
    }
    if let Some(token) = &state.token
        && !given_token(headers).is_some_and(|given| same(given.as_bytes(), token.as_bytes()))
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"warren dashboard\", charset=\"UTF-8\"",
            )],
            "the dashboard needs its token: as the password (any user name), or `Authorization: Bearer <token>`\n",
        )
            .into_response();
    }
    if request.method() != axum::http::Method::GET && request.method() != axum::http::Method::HEAD {
        let csrf = headers.get(CSRF_HEADER).map(|value| value.as_bytes());
        if !csrf.is_some_and(|csrf| same(csrf, state.csrf.as_bytes())) {
            return refuse(StatusCode::FORBIDDEN, "missing or wrong CSRF token (x-warren-csrf)");
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let host = headers.get(header::HOST).and_then(|host| host.to_str().ok());
            let origin_host = origin
                .to_str()
                .ok()
                .and_then(|origin| origin.split_once("://"))
                .map(|(_, host)| host);
            if host.is_none() || origin_host != host {
                return refuse(StatusCode::FORBIDDEN, "cross-origin request refused");
            }
        }
    }
    next.run(request).await
}

/// Whether a `Host` header names this machine by a loopback name, with or
/// without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(name, _)| name),
        None => host.split_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "::1"
}

/// An error as JSON: `{"error": "..."}`.
pub(crate) fn refuse(status: StatusCode, error: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": error.to_string() }))).into_response()
}

async fn root(OriginalUri(uri): OriginalUri) -> Redirect {
    // Relative to where the router is mounted.
    Redirect::to(&format!("{}/queues", uri.path().trim_end_matches('/')))
}

/// The job queues and their hold queues, as rows; an error text instead if
/// the management API did not answer.
async fn queue_rows(state: &AppState) -> (Vec<Value>, Option<String>) {
    match state.management.queues(&state.prefix).await {
        Ok(queues) => (flatten(&queues), None),
        Err(error) => (Vec::new(), Some(format!("RabbitMQ's management API: {error}"))),
    }
}

fn flatten(queues: &[JobQueue]) -> Vec<Value> {
    let mut rows = Vec::new();
    for queue in queues {
        rows.push(serde_json::to_value(&queue.row).unwrap_or_default());
        rows.extend(
            queue
                .holds
                .iter()
                .map(|hold| serde_json::to_value(hold).unwrap_or_default()),
        );
    }
    rows
}

async fn queues_json(State(state): State<Shared>) -> Response {
    let (rows, error) = queue_rows(&state).await;
    axum::Json(json!({ "rows": rows, "error": error })).into_response()
}

async fn queues_page(State(state): State<Shared>) -> Html<String> {
    let (rows, error) = queue_rows(&state).await;
    let mut content = error.map(|error| pages::problem(&error)).unwrap_or_default();
    content.push_str(&pages::live_table("queues", "api/queues", &QUEUE_COLUMNS, &rows));
    Html(pages::layout("Queues", "queues", &state.csrf, &content))
}

fn worker_rows(state: &AppState) -> Vec<Value> {
    state
        .workers
        .list()
        .iter()
        .map(|row| serde_json::to_value(row).unwrap_or_default())
        .collect()
}

async fn workers_json(State(state): State<Shared>) -> Response {
    axum::Json(json!({ "rows": worker_rows(&state) })).into_response()
}

async fn workers_page(State(state): State<Shared>) -> Html<String> {
    let rows = worker_rows(&state);
    let mut content = String::from(
        "<p>Every worker process sends a heartbeat every 2 s; one not heard from for 10 s is greyed, after a minute it goes.</p>",
    );
    content.push_str(&pages::live_table("workers", "api/workers", &WORKER_COLUMNS, &rows));
    Html(pages::layout("Workers", "workers", &state.csrf, &content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_pass_without_a_token() {
        for host in [
            "localhost",
            "localhost:9465",
            "LOCALHOST:1",
            "127.0.0.1:9465",
            "127.0.0.1",
            "[::1]:9465",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:9465",
            "127.0.0.1.evil.example",
            "localhost.evil.example:80",
            "[::2]:1",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().expect("a header value"));
        headers
    }

    #[test]
    fn the_token_comes_as_a_bearer_or_as_the_basic_auth_password() {
        assert_eq!(
            given_token(&with_authorization("Bearer s3cret")).as_deref(),
            Some("s3cret")
        );
        // "anyone:s3cret:with:colons"
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:s3cret:with:colons");
        assert_eq!(
            given_token(&with_authorization(&format!("Basic {basic}"))).as_deref(),
            Some("s3cret:with:colons")
        );
        assert_eq!(given_token(&with_authorization("Basic !!!")), None);
        assert_eq!(given_token(&HeaderMap::new()), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn csrf_tokens_are_long_and_fresh() {
        let (a, b) = (csrf_token(), csrf_token());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
