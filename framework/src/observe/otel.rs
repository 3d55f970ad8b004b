//! OpenTelemetry trace context across the queue (feature `otel`): the
//! enqueue puts the current span's W3C `traceparent` and `tracestate` in
//! the job's headers, and the job's span continues that trace, on every
//! attempt, since retries, delays and dead letters keep the headers.

use std::str::FromStr;

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{Attempt, Enqueue, Headers, Hook};

/// The W3C Trace Context headers.
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// How a job's span continues the trace of the code that enqueued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Continuation {
    /// The job's span is a child of the enqueue's: one trace from the web
    /// request to the job, retries included.
    #[default]
    Child,
    /// The job's span starts a trace of its own, linked to the enqueue's:
    /// for jobs that run long after, or fan out from one request to many,
    /// where one trace would be too long or too wide.
    Link,
}

/// A [`Hook`] that carries OpenTelemetry trace context from enqueue to
/// job, through `tracing-opentelemetry`: register it on the client (or
/// worker, for follow-up jobs) that enqueues and on the worker that runs.
///
/// The program installs a `tracing` subscriber with a
/// `tracing_opentelemetry` layer (and its exporter) itself. Spans follow
/// OpenTelemetry's messaging conventions: `enqueue` (kind producer) and
/// `job` (kind consumer) carry `messaging.system`, `messaging.operation`,
/// `messaging.destination.name` (the queue), `messaging.message.id` (the job
/// id), `job.name` and, on the job, `attempt`.
///
/// ```no_run
/// use warren::observe::{Continuation, TraceContext};
/// use warren::{Client, Worker};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::builder("amqp://127.0.0.1:5672/%2f")
///     .hook(TraceContext::new())
///     .connect()
///     .await?;
/// let worker = Worker::builder("amqp://127.0.0.1:5672/%2f")
///     .hook(TraceContext::new().continuation(Continuation::Link))
///     .start()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContext {
    continuation: Continuation,
}

impl TraceContext {
    /// Jobs' spans are children of their enqueue's ([`Continuation::Child`]).
    pub fn new() -> Self {
        TraceContext::default()
    }

    /// How jobs' spans continue the enqueue's trace.
    pub fn continuation(mut self, continuation: Continuation) -> Self {
        self.continuation = continuation;
        self
    }
}

impl Hook for TraceContext {
    fn before_enqueue(&self, _enqueue: &Enqueue<'_>, headers: &mut Headers) {
        let context = tracing::Span::current().context();
        let span = context.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return;
        }
        // Neither name is reserved, so neither insert can fail.
        let _ = headers.insert(TRACEPARENT, traceparent(span_context));
        let state = span_context.trace_state().header();
        if !state.is_empty() {
            let _ = headers.insert(TRACESTATE, state);
        }
    }

    fn attempt_span(&self, attempt: &Attempt<'_>, span: &tracing::Span) {
        let Some(remote) = attempt.header(TRACEPARENT).and_then(|header| {
            let state = attempt.header(TRACESTATE);
            parse(&header, state.as_deref())
        }) else {
            return;
        };
        match self.continuation {
            Continuation::Child => {
                // Fails only for a span already started, which this is not.
                let _ = span.set_parent(Context::new().with_remote_span_context(remote));
            }
            Continuation::Link => span.add_link(remote),
        }
    }
}

/// `00-<trace id>-<span id>-<flags>`.
fn traceparent(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// A remote span context from W3C headers; `None` if malformed.
fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let mut parts = traceparent.trim().split('-');
    let version = parts.next()?;
    let (trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four parts; later versions may add more.
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if trace_id.len() != 32 || span_id.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & TraceFlags::SAMPLED.to_u8());
    let state = tracestate
        .and_then(|state| TraceState::from_str(state).ok())
        .unwrap_or_default();
    let context = SpanContext::new(trace_id, span_id, flags, true, state);
    context.is_valid().then_some(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_makes_the_round_trip_and_malformed_ones_are_ignored() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = parse(header, Some("vendor=value")).expect("valid");
        assert_eq!(traceparent(&context), header);
        assert_eq!(context.trace_state().header(), "vendor=value");
        assert!(context.is_remote());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xyz-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad, None).is_none(), "{bad}");
        }
    }
}
