//! The dead-letter page and its actions, on `crate::dead_letters`: a
//! retried letter leaves its dead-letter queue only once its job is
//! confirmed back in the job queue.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::pages;
use super::routes::{Shared, refuse};
use crate::amqp::topology;
use crate::dead_letters::{self, DeadError, letters};
use crate::JobId;

/// Dead letters per page.
const PAGE_SIZE: u32 = 50;
/// The deepest a page may reach into a dead-letter queue: every letter
/// before it is read (and held unacknowledged) to get there.
const MAX_DEPTH: u32 = 10_000;

#[derive(Debug, Deserialize)]
pub(crate) struct Which {
    /// The job queue's full name.
    queue: Option<String>,
    #[serde(default)]
    page: u32,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Action {
    /// The job queue's full name.
    queue: String,
    /// One job's id; all the queue's dead letters without it.
    id: Option<String>,
}

fn failure(error: &DeadError) -> Response {
    let status = match error {
        DeadError::Broker(_) | DeadError::NotConnected => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    refuse(status, error)
}

/// The dead-letter queue of a job queue the request names; an answer
/// refusing it otherwise.
fn dead_queue(state: &Shared, queue: &str) -> Result<String, Response> {
    if !queue.starts_with(&state.prefix) || queue.is_empty() {
        return Err(refuse(StatusCode::BAD_REQUEST, format!("no such job queue: `{queue}`")));
    }
    let dead = topology::dead_queue(queue);
    crate::amqp::short(&dead).map_err(|error| refuse(StatusCode::BAD_REQUEST, error))?;
    Ok(dead)
}

fn job_id(id: &str) -> Result<JobId, Response> {
    id.parse()
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, format!("`{id}` is not a job id")))
}

/// A page of the dead letters of a queue: `(total, letters)`.
async fn read(state: &Shared, dead_queue: &str, page: u32) -> Result<(u32, Vec<dead_letters::Letter>), Response> {
    let skip = page.saturating_mul(PAGE_SIZE);
    if skip.saturating_add(PAGE_SIZE) > MAX_DEPTH {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("pages reach {MAX_DEPTH} dead letters deep at most; retry or delete the ones before"),
        ));
    }
    let session = state.client.session().ok_or_else(|| failure(&DeadError::NotConnected))?;
    let total = dead_letters::ready(&session.connection, dead_queue)
        .await
        .map_err(|error| failure(&error))?
        .unwrap_or(0);
    let letters = dead_letters::peek(&session.connection, dead_queue, skip, PAGE_SIZE.min(total.saturating_sub(skip)))
        .await
        .map_err(|error| failure(&error))?;
    Ok((total, letters))
}

pub(crate) async fn list(State(state): State<Shared>, Query(which): Query<Which>) -> Response {
    let Some(queue) = which.queue else {
        return refuse(StatusCode::BAD_REQUEST, "which queue? (?queue=<job queue>)");
    };
    let dead_queue = match dead_queue(&state, &queue) {
        Ok(dead_queue) => dead_queue,
        Err(refused) => return refused,
    };
    match read(&state, &dead_queue, which.page).await {
        Ok((total, letters)) => Json(json!({
            "queue": queue,
            "dead_queue": dead_queue,
            "total": total,
            "page": which.page,
            "page_size": PAGE_SIZE,
            "letters": letters,
        }))
        .into_response(),
        Err(refused) => refused,
    }
}

pub(crate) async fn page(State(state): State<Shared>, Query(which): Query<Which>) -> Response {
    let Some(queue) = which.queue else {
        // No queue chosen: every job queue, with its dead-letter count.
        let content = match state.management.queues(&state.prefix).await {
            Ok(queues) => pages::dead_queues(
                &queues
                    .iter()
                    .map(|queue| (queue.row.queue.clone(), queue.row.dead))
                    .collect::<Vec<_>>(),
            ),
            Err(error) => pages::problem(&format!("RabbitMQ's management API: {error}")),
        };
        return Html(pages::layout("Dead letters", "dead", &state.csrf, &content)).into_response();
    };
    let content = match dead_queue(&state, &queue) {
        Ok(dead_queue) => match read(&state, &dead_queue, which.page).await {
            Ok((total, letters)) => pages::dead_letters(&queue, total, which.page, PAGE_SIZE, &letters),
            Err(refused) => return refused,
        },
        Err(refused) => return refused,
    };
    Html(pages::layout(&format!("Dead letters of {queue}"), "dead", &state.csrf, &content)).into_response()
}

pub(crate) async fn retry(State(state): State<Shared>, Json(action): Json<Action>) -> Response {
    let dead_queue = match dead_queue(&state, &action.queue) {
        Ok(dead_queue) => dead_queue,
        Err(refused) => return refused,
    };
    let only = match action.id.as_deref().map(job_id).transpose() {
        Ok(only) => only,
        Err(refused) => return refused,
    };
    match dead_letters::retry_from(&state.client, &state.registry, &dead_queue, only).await {
        Ok(0) if only.is_some() => refuse(
            StatusCode::NOT_FOUND,
            format!("no dead letter of job {} in {dead_queue}", action.id.unwrap_or_default()),
        ),
        Ok(retried) => Json(json!({
            "retried": retried,
            "message": format!("retried {} from {dead_queue}", letters(retried)),
        }))
        .into_response(),
        Err(error) => failure(&error),
    }
}

pub(crate) async fn delete(State(state): State<Shared>, Json(action): Json<Action>) -> Response {
    let dead_queue = match dead_queue(&state, &action.queue) {
        Ok(dead_queue) => dead_queue,
        Err(refused) => return refused,
    };
    let Some(session) = state.client.session() else {
        return failure(&DeadError::NotConnected);
    };
    let connection = &session.connection;
    let deleted = match action.id.as_deref() {
        Some(id) => {
            let id = match job_id(id) {
                Ok(id) => id,
                Err(refused) => return refused,
            };
            match dead_letters::delete(connection, &dead_queue, id).await {
                Ok(true) => 1,
                Ok(false) => {
                    return refuse(StatusCode::NOT_FOUND, format!("no dead letter of job {id} in {dead_queue}"));
                }
                Err(error) => return failure(&error),
            }
        }
        None => match dead_letters::ready(connection, &dead_queue).await {
            Ok(None) => 0,
            Ok(Some(_)) => match dead_letters::purge(connection, &dead_queue).await {
                Ok(deleted) => deleted,
                Err(error) => return failure(&error),
            },
            Err(error) => return failure(&error),
        },
    };
    Json(json!({
        "deleted": deleted,
        "message": format!("deleted {} from {dead_queue}", letters(deleted)),
    }))
    .into_response()
}
