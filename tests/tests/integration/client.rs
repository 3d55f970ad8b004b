//! The enqueueing side: confirmed, pipelined, and never a silent drop.

use crate::jobs;

use std::collections::HashSet;

use jobs::{Plain, Record};
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use warren::{Client, Error};
use warren_tests::{TestBroker, amqp_url, list_queue, rabbitmqctl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_share_one_channel_and_are_all_confirmed() {
    let broker = TestBroker::new().await;
    let tasks: Vec<_> = (0..200)
        .map(|seq| {
            let client = broker.client().clone();
            tokio::spawn(async move { client.enqueue(Record { seq, sleep_ms: 0 }).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.expect("task").expect("enqueue"));
    }
    assert_eq!(ids.len(), 200, "every job has its own id");
    let queue = list_queue(&broker.queue("work")).expect("queue");
    assert_eq!((queue.messages, queue.persistent), (200, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_to_a_deleted_queue_fails_with_the_job_and_the_next_one_redeclares() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    broker
        .client()
        .enqueue(Record { seq: 1, sleep_ms: 0 })
        .await
        .expect("enqueue");
    rabbitmqctl(&["delete_queue", &queue]);

    let error = broker
        .client()
        .enqueue(Record { seq: 2, sleep_ms: 0 })
        .await
        .expect_err("unroutable");
    assert!(matches!(error.error(), Error::Unroutable { .. }), "{error}");
    assert_eq!(error.into_job().seq, 2, "the job is handed back");

    broker
        .client()
        .enqueue(Record { seq: 3, sleep_ms: 0 })
        .await
        .expect("re-declared");
    assert_eq!(broker.ready(&queue).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_declared_otherwise_is_reported_and_other_queues_still_work() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let raw = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = raw.create_channel().await.expect("channel");
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(10));
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions::durable(), arguments)
        .await
        .expect("declare with arguments");

    let error = broker
        .client()
        .enqueue(Record { seq: 1, sleep_ms: 0 })
        .await
        .expect_err("mismatch");
    let text = error.to_string();
    assert!(matches!(error.error(), Error::QueueMismatch { .. }), "{text}");
    assert!(text.contains(&queue) && text.contains("x-max-length"), "{text}");

    broker
        .client()
        .enqueue(Plain("still fine".into()))
        .await
        .expect("the client still works");
}

#[tokio::test]
async fn connecting_to_a_broker_that_is_down_is_a_clear_error() {
    let error = Client::connect("amqp://127.0.0.1:1/%2f")
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(error, Error::Connect { .. }));
    assert!(
        error
            .to_string()
            .starts_with("could not connect to RabbitMQ at amqp://127.0.0.1:1/%2f"),
        "{error}"
    );
}
