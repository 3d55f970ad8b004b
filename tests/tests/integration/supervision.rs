//! The supervisor restarts a worker whose consumer or channel dies, and
//! reconnects when the consumer connection is closed.

use crate::jobs;

use std::time::Duration;

use jobs::Record;
use warren_tests::{TestBroker, close_connection, connection_channels, rabbitmqctl};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_queue_is_deleted_is_restarted_and_consumes_again() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let name = format!("{}w", broker.prefix());
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1", "--name", &name]);
    broker.wait_for_consumers(&queue, 1).await;

    rabbitmqctl(&["delete_queue", &queue]);
    worker
        .wait_for_stderr("worker stopped; restarting it", Duration::from_secs(10))
        .await;
    broker.wait_for_consumers(&queue, 1).await;

    broker
        .client()
        .enqueue(Record { seq: 5, sleep_ms: 0 })
        .await
        .expect("enqueue");
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| {
            line.starts_with(&format!("done seq=5 worker={name}.1"))
        })
        .await;
    // The old channel closes when its last handle drops (lapin closes
    // channels on drop): restarts must not pile up channels.
    let channels = connection_channels(&format!("warren worker {name}"));
    assert_eq!(channels, Some(1), "only the restarted worker's channel is open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_connection_is_closed_by_the_broker_reconnects_and_consumes_again() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let name = format!("{}w", broker.prefix());
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1", "--name", &name]);
    broker.wait_for_consumers(&queue, 1).await;

    close_connection(&format!("warren worker {name}"));
    worker
        .wait_for_stderr("reconnected to RabbitMQ", Duration::from_secs(15))
        .await;
    broker.wait_for_consumers(&queue, 1).await;

    broker
        .client()
        .enqueue(Record { seq: 6, sleep_ms: 0 })
        .await
        .expect("enqueue");
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| line.starts_with("done seq=6 "))
        .await;
}
