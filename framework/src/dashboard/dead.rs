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
use crate::JobId;
use crate::amqp::topology;
use crate::dead_letters::{self, DeadError, letters};

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

/// A request refused or failed: its status and why, answered as JSON.
#[derive(Debug)]
pub(crate) struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        refuse(self.0, self.1)
    }
}

impl From<DeadError> for Refused {
    fn from(error: DeadError) -> Self {
        let status = match error {
            DeadError::Broker(_) | DeadError::NotConnected => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Refused(status, error.to_string())
    }
}

fn bad_request(error: impl std::fmt::Display) -> Refused {
    Refused(StatusCode::BAD_REQUEST, error.to_string())
}

/// The dead-letter queue of a job queue the request names.
fn dead_queue(state: &Shared, queue: &str) -> Result<String, Refused> {
    if !queue.starts_with(&state.prefix) || queue.is_empty() {
        return Err(bad_request(format!("no such job queue: `{queue}`")));
    }
    let dead = topology::dead_queue(queue);
    crate::amqp::short(&dead).map_err(bad_request)?;
    Ok(dead)
}

fn job_id(id: &str) -> Result<JobId, Refused> {
    id.parse().map_err(|_| bad_request(format!("`{id}` is not a job id")))
}

/// A page of the dead letters of a queue: `(total, letters)`.
async fn read(state: &Shared, dead_queue: &str, page: u32) -> Result<(u32, Vec<dead_letters::Letter>), Refused> {
    let skip = page.saturating_mul(PAGE_SIZE);
    if skip.saturating_add(PAGE_SIZE) > MAX_DEPTH {
        return Err(bad_request(format!(
            "pages reach {MAX_DEPTH} dead letters deep at most; retry or delete the ones before"
        )));
    }
    let session = state.client.session().ok_or(DeadError::NotConnected)?;
    let total = dead_letters::ready(&session.connection, dead_queue).await?.unwrap_or(0);
    let letters = dead_letters::peek(
        &session.connection,
        dead_queue,
        skip,
        PAGE_SIZE.min(total.saturating_sub(skip)),
    )
    .await?;
    Ok((total, letters))
}

pub(crate) async fn list(State(state): State<Shared>, Query(which): Query<Which>) -> Result<Response, Refused> {
    let queue = which
        .queue
        .ok_or_else(|| bad_request("which queue? (?queue=<job queue>)"))?;
    let dead_queue = dead_queue(&state, &queue)?;
    let (total, letters) = read(&state, &dead_queue, which.page).await?;
    Ok(Json(json!({
        "queue": queue,
        "dead_queue": dead_queue,
        "total": total,
        "page": which.page,
        "page_size": PAGE_SIZE,
        "letters": letters,
    }))
    .into_response())
}

pub(crate) async fn page(State(state): State<Shared>, Query(which): Query<Which>) -> Result<Response, Refused> {
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
        return Ok(Html(pages::layout("Dead letters", "dead", &state.csrf, &content)).into_response());
    };
    let dead_queue = dead_queue(&state, &queue)?;
    let (total, letters) = read(&state, &dead_queue, which.page).await?;
    let content = pages::dead_letters(&queue, total, which.page, PAGE_SIZE, &letters);
    Ok(Html(pages::layout(
        &format!("Dead letters of {queue}"),
        "dead",
        &state.csrf,
        &content,
    ))
    .into_response())
}

pub(crate) async fn retry(State(state): State<Shared>, Json(action): Json<Action>) -> Result<Response, Refused> {
    let dead_queue = dead_queue(&state, &action.queue)?;
    let only = action.id.as_deref().map(job_id).transpose()?;
    let retried = dead_letters::retry_from(&state.client, &state.registry, &dead_queue, only).await?;
    if let Some(id) = only
        && retried == 0
    {
        return Err(Refused(
            StatusCode::NOT_FOUND,
            format!("no dead letter of job {id} in {dead_queue}"),
        ));
    }
    Ok(Json(json!({
        "retried": retried,
        "message": format!("retried {} from {dead_queue}", letters(retried)),
    }))
    .into_response())
}

pub(crate) async fn delete(State(state): State<Shared>, Json(action): Json<Action>) -> Result<Response, Refused> {
    let dead_queue = dead_queue(&state, &action.queue)?;
    let session = state.client.session().ok_or(DeadError::NotConnected)?;
    let connection = &session.connection;
    let deleted = match action.id.as_deref() {
        Some(id) => {
            let id = job_id(id)?;
            if !dead_letters::delete(connection, &dead_queue, id).await? {
                return Err(Refused(
                    StatusCode::NOT_FOUND,
                    format!("no dead letter of job {id} in {dead_queue}"),
                ));
            }
            1
        }
        None => match dead_letters::ready(connection, &dead_queue).await? {
            None => 0,
            Some(_) => dead_letters::purge(connection, &dead_queue).await?,
        },
    };
    Ok(Json(json!({
        "deleted": deleted,
        "message": format!("deleted {} from {dead_queue}", letters(deleted)),
    }))
    .into_response())
}
