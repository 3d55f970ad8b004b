//! The `tracing` spans of an enqueue and of an attempt, with the names of
//! OpenTelemetry's messaging conventions under feature `otel`.

use tracing::{Span, info_span};

use super::Attempt;
use crate::JobId;

/// The span an enqueue runs in: its hooks (the trace context's injection)
/// and its publish.
pub(crate) fn enqueue_span(name: &str, id: JobId, queue: &str) -> Span {
    info_span!(
        "enqueue",
        job.name = name,
        messaging.system = "rabbitmq",
        messaging.operation = "publish",
        messaging.destination.name = queue,
        messaging.message.id = %id,
        otel.kind = "producer",
    )
}

/// The span an attempt runs in; every log line of the job carries its fields.
pub(crate) fn job_span(attempt: &Attempt<'_>) -> Span {
    #[cfg(not(feature = "otel"))]
    let span = info_span!(
        "job",
        job.id = %attempt.job_id(),
        job.name = attempt.job_name().unwrap_or("-"),
        queue = attempt.queue(),
        attempt = attempt.attempt(),
        worker = attempt.worker(),
    );
    #[cfg(feature = "otel")]
    let span = info_span!(
        "job",
        job.id = %attempt.job_id(),
        job.name = attempt.job_name().unwrap_or("-"),
        queue = attempt.queue(),
        attempt = attempt.attempt(),
        worker = attempt.worker(),
        messaging.system = "rabbitmq",
        messaging.operation = "process",
        messaging.destination.name = attempt.queue(),
        messaging.message.id = %attempt.job_id(),
        otel.kind = "consumer",
    );
    span
}
