//! warren and a non-Rust AMQP client on one queue, both ways: the
//! work-queue tutorial's producer feeds a warren worker, and warren's
//! producer feeds the tutorial's worker. The tutorial's scripts run under
//! Python with pika (`WARREN_PYTHON`, set by `scripts/test`).

use crate::jobs;

use std::time::Duration;

use jobs::Plain;
use warren_tests::{TestBroker, WorkerProcess, list_queue, python};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorial_producer_feeds_a_warren_worker() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("plain");
    let worker = broker.worker(WORKER, &["work", "--queues", "plain", "--workers", "1"]);
    broker.wait_for_consumers(&queue, 1).await;

    for words in [&["First", "message."][..], &[]] {
        let output = python("new_task.py", &queue)
            .args(words)
            .output()
            .expect("run new_task.py");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }

    worker
        .wait_for_stdout(2, Duration::from_secs(10), |line| line.starts_with("plain body="))
        .await;
    let bodies: Vec<_> = worker
        .stdout()
        .into_iter()
        .filter(|line| line.starts_with("plain body="))
        .collect();
    assert!(bodies[0].starts_with("plain body=First message. "), "{bodies:?}");
    assert!(bodies[1].starts_with("plain body=Hello World! "), "{bodies:?}");
    let dead = list_queue(&format!("{queue}.dead")).map_or(0, |q| q.messages);
    assert_eq!(dead, 0, "no untyped message was dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warren_producer_feeds_the_tutorial_worker() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("plain");
    broker
        .client()
        .enqueue(Plain("A warren task..".into()))
        .await
        .expect("enqueue");

    let worker = WorkerProcess::spawn(&mut python("worker.py", &queue));
    worker
        .wait_for_stdout(1, Duration::from_secs(15), |line| line == " [x] Done")
        .await;
    let out = worker.stdout();
    assert!(out.contains(&" [x] Received A warren task..".to_owned()), "{out:?}");
    assert_eq!(broker.ready(&queue).await, 0);
}
