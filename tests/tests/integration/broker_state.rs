//! What RabbitMQ holds once warren has declared, published and consumed:
//! durable queues, persistent typed messages, and consumers whose prefetch
//! and acknowledgement mode match the worker's settings.

use crate::jobs;

use std::time::Duration;

use jobs::Record;
use lapin::types::AMQPValue;
use warren::JobId;
use warren_tests::{TestBroker, eventually, list_consumers, list_queue};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueued_jobs_are_persistent_messages_on_a_durable_queue() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let ids = broker
        .client()
        .enqueue_many((1..=3).map(|seq| Record { seq, sleep_ms: 0 }))
        .await
        .expect("enqueue");

    let info = list_queue(&queue).expect("the queue exists");
    assert!(info.durable, "{info:?}");
    assert_eq!((info.messages, info.persistent), (3, 3), "{info:?}");

    let message = broker.take(&queue).await.expect("a message");
    let properties = &message.properties;
    assert_eq!(*properties.delivery_mode(), Some(2));
    assert_eq!(properties.kind().as_ref().map(|t| t.as_str()), Some("record"));
    assert_eq!(
        properties.content_type().as_ref().map(|t| t.as_str()),
        Some("application/json")
    );
    assert!(properties.timestamp().is_some());
    let id: JobId = properties
        .message_id()
        .as_ref()
        .expect("message_id")
        .as_str()
        .parse()
        .expect("a job id");
    assert_eq!(id, ids[0]);
    let attempt = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("warren-attempt").cloned());
    assert_eq!(attempt, Some(AMQPValue::LongLongInt(1)));
    assert_eq!(message.data, br#"{"seq":1,"sleep_ms":0}"#);
}

async fn consumers_match(ack: &str, ack_required: bool, prefetch: u32) {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let mut worker = broker.worker(
        WORKER,
        &[
            "work",
            "--queues",
            "work",
            "--workers",
            "2",
            "--prefetch",
            "7",
            "--ack",
            ack,
            "--name",
            "w",
        ],
    );
    broker.wait_for_consumers(&queue, 2).await;
    let consumers = list_consumers(&queue);
    assert_eq!(consumers.len(), 2, "{consumers:?}");
    for consumer in &consumers {
        assert_eq!(consumer.ack_required, ack_required, "ack {ack}: {consumer:?}");
        assert_eq!(consumer.prefetch, prefetch, "ack {ack}: {consumer:?}");
        assert!(consumer.tag.starts_with("warren-w."), "{consumer:?}");
    }
    assert!(list_queue(&queue).expect("declared by the worker").durable);
    assert!(
        list_queue(&format!("{queue}.dead"))
            .expect("dead-letter queue declared")
            .durable
    );
    worker.terminate();
    assert!(worker.wait_exit(Duration::from_secs(10)).await.success());
    eventually(Duration::from_secs(5), "the consumers are gone", || {
        list_consumers(&queue).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_ack_consumers_require_acks_with_the_configured_prefetch() {
    consumers_match("late", true, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_ack_consumers_require_acks_with_the_configured_prefetch() {
    consumers_match("early", true, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ack_consumers_are_auto_ack_and_warn_that_prefetch_does_nothing() {
    // RabbitMQ ignores prefetch for auto-ack consumers, so none is set.
    consumers_match("none", false, 0).await;
    let broker = TestBroker::new().await;
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1", "--ack", "none"]);
    worker
        .wait_for_stderr("RabbitMQ ignores prefetch without acks", Duration::from_secs(10))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_may_outlast_the_consumer_timeout_is_warned_about_at_start() {
    let broker = TestBroker::new().await;
    let worker = broker.worker(WORKER, &["work", "--queues", "long", "--workers", "1"]);
    worker
        .wait_for_stderr(
            "job `export` may run for 1h (its timeout), longer than RabbitMQ's consumer_timeout (30m",
            Duration::from_secs(10),
        )
        .await;
    let quiet = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    broker.wait_for_consumers(&broker.queue("work"), 1).await;
    assert!(
        !quiet.stderr().iter().any(|line| line.contains("consumer_timeout")),
        "only the queues a worker consumes count: {:?}",
        quiet.stderr()
    );
}
