//! SIGTERM drains a worker: running jobs finish and are acked, unstarted
//! ones go back to the queue, and the process exits 0.

use crate::jobs;

use std::time::Duration;

use jobs::Record;
use warren_tests::{TestBroker, count_starting, eventually, list_queue};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_job_finish_and_exits_zero() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let mut worker = broker.worker(
        WORKER,
        &["work", "--queues", "work", "--workers", "1", "--prefetch", "1"],
    );
    broker.wait_for_consumers(&queue, 1).await;
    broker
        .client()
        .enqueue(Record { seq: 1, sleep_ms: 5000 })
        .await
        .expect("enqueue");
    broker
        .client()
        .enqueue(Record { seq: 2, sleep_ms: 1500 })
        .await
        .expect("enqueue");
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| line.starts_with("ran seq=1 "))
        .await;

    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(15)).await;

    assert!(
        status.success(),
        "exit status {status:?}; stderr: {:#?}",
        worker.stderr()
    );
    let out = worker.stdout();
    assert_eq!(
        count_starting(&out, "done seq=1 "),
        1,
        "the running job finished: {out:?}"
    );
    assert_eq!(
        count_starting(&out, "ran seq=2 "),
        0,
        "no new job started after SIGTERM: {out:?}"
    );
    eventually(
        Duration::from_secs(5),
        "only the unstarted job is left, not unacked",
        || list_queue(&queue).is_some_and(|q| q.messages == 1 && q.unacked == 0),
    )
    .await;
    let left = broker.take(&queue).await.expect("the unstarted job");
    assert_eq!(left.data, br#"{"seq":2,"sleep_ms":1500}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_still_running_at_the_shutdown_timeout_returns_to_the_queue() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let mut worker = broker.worker(
        WORKER,
        &[
            "work",
            "--queues",
            "work",
            "--workers",
            "1",
            "--shutdown-timeout",
            "500ms",
        ],
    );
    broker.wait_for_consumers(&queue, 1).await;
    broker
        .client()
        .enqueue(Record {
            seq: 1,
            sleep_ms: 30_000,
        })
        .await
        .expect("enqueue");
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| line.starts_with("ran seq=1 "))
        .await;

    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(10)).await;

    assert_eq!(
        status.code(),
        Some(4),
        "a drain cut off is not a clean exit: {status:?}"
    );
    worker
        .wait_for_stderr(
            "shutdown timeout reached with jobs still running",
            Duration::from_secs(1),
        )
        .await;
    eventually(
        Duration::from_secs(5),
        "the unfinished job is back in the queue",
        || list_queue(&queue).is_some_and(|q| q.messages == 1 && q.unacked == 0),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_waiting_for_an_unreachable_broker_still_stops_on_sigterm() {
    let mut worker = warren_tests::WorkerProcess::spawn(
        std::process::Command::new(WORKER)
            .args(["work", "--queues", "work"])
            .env("AMQP_URL", "amqp://127.0.0.1:1/%2f"),
    );
    worker
        .wait_for_stderr("RabbitMQ unreachable; retrying", Duration::from_secs(10))
        .await;
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_acks_sigterm_first_runs_the_jobs_already_pushed_to_the_worker() {
    // Under `--ack none` the broker forgot these jobs when it sent them:
    // dropping them on shutdown would lose them.
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let mut worker = broker.worker(
        WORKER,
        &[
            "work",
            "--queues",
            "work",
            "--workers",
            "1",
            "--prefetch",
            "1",
            "--ack",
            "none",
        ],
    );
    broker.wait_for_consumers(&queue, 1).await;
    broker
        .client()
        .enqueue_many((1..=3).map(|seq| Record { seq, sleep_ms: 500 }))
        .await
        .expect("enqueue");
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| line.starts_with("ran seq=1 "))
        .await;
    eventually(Duration::from_secs(5), "the broker pushed all three", || {
        list_queue(&queue).is_some_and(|q| q.messages == 0)
    })
    .await;

    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(15)).await;

    assert!(status.success(), "exit status {status:?}");
    assert_eq!(count_starting(&worker.stdout(), "done "), 3, "{:?}", worker.stdout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stuck_in_a_handshake_that_never_answers_still_stops_on_sigterm() {
    // A peer that accepts connections and never speaks AMQP: lapin would
    // wait for its handshake forever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let _held = std::thread::spawn(move || silent.incoming().map_while(Result::ok).collect::<Vec<_>>());
    let mut worker = warren_tests::WorkerProcess::spawn(
        std::process::Command::new(WORKER)
            .args(["work", "--queues", "work"])
            .env("AMQP_URL", format!("amqp://127.0.0.1:{port}/%2f")),
    );
    // Let it start connecting (its signal handlers are installed first).
    tokio::time::sleep(Duration::from_millis(800)).await;

    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(5)).await;
    assert!(
        status.success(),
        "exit status {status:?}; stderr: {:#?}",
        worker.stderr()
    );
}
