//! Traces across the queue: the span of the code that enqueued a job and
//! the job's spans are one trace (or linked), also on a retried attempt.

use crate::jobs;

use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use warren::Registry;
use warren::observe::{Continuation, TraceContext};
use warren::testing::InMemoryBroker;

use jobs::Flaky;

/// Enqueues a job that fails its first attempt inside a span `request`,
/// drains it with `continuation`, and returns the finished spans.
async fn traced(continuation: Continuation) -> Vec<SpanData> {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("warren-tests")));
    // On this thread only: the drain runs inline, on the test's current-thread runtime.
    let _default = tracing::subscriber::set_default(subscriber);

    let registry = Registry::builder().job::<Flaky>().build().expect("registry");
    let broker = InMemoryBroker::new()
        .with_registry(registry)
        .with_hook(TraceContext::new().continuation(continuation));
    let client = broker.client();
    async { client.enqueue(Flaky { seq: 1, failures: 1 }).await }
        .instrument(tracing::info_span!("request"))
        .await
        .expect("enqueue");
    let drained = broker.drain().await.expect("drained");
    assert_eq!(drained.runs.len(), 2, "one failed attempt, one retry: {drained:?}");

    provider.force_flush().expect("flush");
    exporter.get_finished_spans().expect("spans")
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|span| span.name == name).collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|pair| pair.key.as_str() == key)
        .map(|pair| pair.value.to_string())
}

#[tokio::test]
async fn the_job_spans_of_every_attempt_are_children_of_the_enqueue_span() {
    let spans = traced(Continuation::Child).await;
    let request = named(&spans, "request");
    let enqueue = named(&spans, "enqueue");
    let jobs = named(&spans, "job");
    assert_eq!((request.len(), enqueue.len(), jobs.len()), (1, 1, 2), "{spans:#?}");
    let trace = request[0].span_context.trace_id();
    assert_eq!(enqueue[0].span_context.trace_id(), trace);
    assert_eq!(enqueue[0].parent_span_id, request[0].span_context.span_id());
    for job in &jobs {
        assert_eq!(job.span_context.trace_id(), trace, "{job:#?}");
        assert_eq!(job.parent_span_id, enqueue[0].span_context.span_id(), "{job:#?}");
        assert_eq!(attribute(job, "messaging.destination.name").as_deref(), Some("work"));
        assert_eq!(attribute(job, "job.name").as_deref(), Some("flaky"));
        assert_eq!(
            attribute(job, "messaging.message.id"),
            attribute(enqueue[0], "messaging.message.id")
        );
    }
    let attempts: Vec<_> = jobs.iter().map(|job| attribute(job, "attempt")).collect();
    assert_eq!(attempts, [Some("1".to_owned()), Some("2".to_owned())]);
}

#[tokio::test]
async fn linked_job_spans_start_traces_of_their_own_that_link_to_the_enqueue() {
    let spans = traced(Continuation::Link).await;
    let enqueue = named(&spans, "enqueue")[0];
    let jobs = named(&spans, "job");
    assert_eq!(jobs.len(), 2, "{spans:#?}");
    for job in jobs {
        assert_ne!(job.span_context.trace_id(), enqueue.span_context.trace_id());
        assert_eq!(job.parent_span_id, SpanId::INVALID);
        let linked: Vec<_> = job
            .links
            .iter()
            .map(|link| (link.span_context.trace_id(), link.span_context.span_id()))
            .collect();
        let enqueued = (enqueue.span_context.trace_id(), enqueue.span_context.span_id());
        assert_eq!(linked, [enqueued], "{job:#?}");
    }
}

/// On a real broker, through a worker process: the trace context the
/// enqueue put on the job is still on it after its retries, in its dead letter.
#[tokio::test]
async fn the_trace_context_survives_retries_into_the_dead_letter() {
    use std::time::Duration;
    use warren_tests::{TestBroker, amqp_url, header};

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("warren-tests")));
    let _default = tracing::subscriber::set_default(subscriber);

    let broker = TestBroker::new().await;
    let client = warren::Client::builder(amqp_url())
        .queue_prefix(broker.prefix())
        .hook(TraceContext::new())
        .connect()
        .await
        .expect("connect");
    client
        .enqueue(jobs::AlwaysFail { seq: 1 })
        .instrument(tracing::info_span!("request"))
        .await
        .expect("enqueue");
    client.close().await;
    provider.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    let enqueue = named(&spans, "enqueue")[0];
    let traceparent = format!(
        "00-{}-{}-01",
        enqueue.span_context.trace_id(),
        enqueue.span_context.span_id()
    );

    let worker = broker.worker(
        env!("CARGO_BIN_EXE_test-worker"),
        &["work", "--queues", "work", "--workers", "1"],
    );
    let dead = broker.queue("work.dead");
    broker.wait_for_ready(&dead, 1, Duration::from_secs(30)).await;
    let letter = broker.take(&dead).await.expect("the dead letter");
    assert_eq!(header(&letter.properties, "warren-attempt").as_deref(), Some("3"));
    assert_eq!(header(&letter.properties, "traceparent"), Some(traceparent));
    drop(worker);
}
