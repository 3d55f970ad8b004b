//! Jobs that cannot succeed end in `<queue>.dead` with their reason and
//! error, and the worker keeps consuming.

use crate::jobs;

use std::collections::BTreeMap;
use std::time::Duration;

use jobs::{Fail, Hang, Panic, Record};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use warren_tests::{TestBroker, close_connection, eventually, list_queue, rabbitmqctl};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn header(properties: &BasicProperties, name: &str) -> String {
    match properties.headers().as_ref().and_then(|h| h.inner().get(name)) {
        Some(AMQPValue::LongString(text)) => String::from_utf8_lossy(text.as_bytes()).into_owned(),
        other => panic!("header {name}: {other:?}"),
    }
}

async fn bad_jobs_land_in_the_dead_letter_queue(ack: &str) {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let dead = format!("{queue}.dead");
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1", "--ack", ack]);
    broker.wait_for_consumers(&queue, 1).await;

    let client = broker.client();
    client
        .enqueue(Fail {
            message: "card declined".into(),
        })
        .await
        .expect("enqueue");
    client
        .enqueue(Panic {
            message: "index out of bounds".into(),
        })
        .await
        .expect("enqueue");
    client.enqueue(Hang).await.expect("enqueue");
    let typed = |name: &str| BasicProperties::default().with_type(name.into()).with_delivery_mode(2);
    broker.publish_raw(&queue, b"{}", typed("no_such_job")).await;
    broker.publish_raw(&queue, b"not json", typed("record")).await;
    broker
        .publish_raw(&queue, b"no type at all", BasicProperties::default())
        .await;
    client.enqueue(Record { seq: 1, sleep_ms: 0 }).await.expect("enqueue");

    worker
        .wait_for_stdout(1, Duration::from_secs(15), |line| line.starts_with("done seq=1 "))
        .await;
    broker.wait_for_ready(&dead, 6, Duration::from_secs(15)).await;

    let mut reasons = BTreeMap::new();
    while let Some(message) = broker.take(&dead).await {
        assert_eq!(
            *message.properties.delivery_mode(),
            Some(2),
            "dead letters are persistent"
        );
        assert_eq!(header(&message.properties, "warren-dead-queue"), queue);
        let reason = header(&message.properties, "warren-dead-reason");
        let error = header(&message.properties, "warren-dead-error");
        let name = message
            .properties
            .kind()
            .as_ref()
            .map_or("-".to_owned(), |t| t.to_string());
        reasons.insert(name, (reason, error, message.data));
    }
    let expect = |name: &str, reason: &str, error: &str| {
        let (got_reason, got_error, _) = &reasons[name];
        assert_eq!(got_reason, reason, "{name}: {reasons:?}");
        assert!(got_error.contains(error), "{name}: `{got_error}` lacks `{error}`");
    };
    expect("fail", "failed", "card declined");
    expect("panic", "panic", "index out of bounds");
    expect("hang", "timeout", "timed out after 1s");
    expect("no_such_job", "unknown_job", "no job named `no_such_job`");
    expect("record", "undecodable", "invalid JSON for job `record`");
    expect("-", "unknown_job", "no `type` property");
    assert_eq!(
        reasons["record"].2, b"not json",
        "the dead letter keeps the original body"
    );

    eventually(
        Duration::from_secs(5),
        "the work queue is empty and nothing is unacked",
        || list_queue(&queue).is_some_and(|q| q.messages == 0),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_late_acks_bad_jobs_are_dead_lettered_and_the_worker_keeps_going() {
    bad_jobs_land_in_the_dead_letter_queue("late").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_early_acks_bad_jobs_are_dead_lettered_and_the_worker_keeps_going() {
    bad_jobs_land_in_the_dead_letter_queue("early").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_workers_publisher_connection_is_closed_it_reconnects_and_the_dead_letter_lands() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let name = format!("{}w", broker.prefix());
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1", "--name", &name]);
    broker.wait_for_consumers(&queue, 1).await;

    close_connection(&format!("warren worker {name} (publisher)"));
    broker
        .client()
        .enqueue(Fail {
            message: "card declined".into(),
        })
        .await
        .expect("enqueue");

    broker
        .wait_for_ready(&format!("{queue}.dead"), 1, Duration::from_secs(15))
        .await;
    worker
        .wait_for_stderr("reconnected to RabbitMQ", Duration::from_secs(5))
        .await;
    eventually(Duration::from_secs(5), "the job was acked", || {
        list_queue(&queue).is_some_and(|q| q.messages == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_dead_letter_cannot_be_published_the_job_waits_without_running_again_then_lands() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let dead = format!("{queue}.dead");
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    broker.wait_for_consumers(&queue, 1).await;

    // A dead-letter queue that refuses every message: the broker nacks
    // each dead letter, whatever the worker does.
    rabbitmqctl(&["delete_queue", &dead]);
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    arguments.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
    broker.declare(&dead, arguments).await;

    broker
        .client()
        .enqueue(Fail {
            message: "card declined".into(),
        })
        .await
        .expect("enqueue");
    let holding = |lines: &[String]| {
        lines
            .iter()
            .filter(|line| line.contains("could not store the job's next step"))
            .count()
    };
    eventually(
        Duration::from_secs(20),
        "the worker tried the dead letter three times",
        || holding(&worker.stderr()) >= 3,
    )
    .await;
    let attempts = |lines: &[String]| lines.iter().filter(|line| line.contains("job failed")).count();
    assert_eq!(
        attempts(&worker.stderr()),
        1,
        "the handler ran once: {:#?}",
        worker.stderr()
    );
    let held = list_queue(&queue).map_or(0, |q| q.messages);
    assert_eq!(held, 1, "the job is still on the broker, unacked");

    // The refusing queue goes: the next try declares `.dead` afresh and lands.
    rabbitmqctl(&["delete_queue", &dead]);
    broker.wait_for_ready(&dead, 1, Duration::from_secs(90)).await;
    eventually(Duration::from_secs(5), "the job was acked", || {
        list_queue(&queue).is_some_and(|q| q.messages == 0)
    })
    .await;
    assert_eq!(attempts(&worker.stderr()), 1, "still once: {:#?}", worker.stderr());
}
