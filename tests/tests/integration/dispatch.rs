//! How RabbitMQ hands jobs to warren workers: round robin, fair dispatch
//! with prefetch 1 and late acks, and follow-up jobs enqueued by handlers.

use crate::jobs;

use std::time::Duration;

use jobs::{Block, FollowUp, Record};
use warren_tests::{TestBroker, WorkerProcess, count_starting, eventually, list_queue, runs_by_worker};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// Worker processes `a` and `b`, one worker each with prefetch 1 and the
/// given ack mode, both consuming.
async fn two_workers(broker: &TestBroker, ack: &str) -> (WorkerProcess, WorkerProcess) {
    let args = |name| {
        [
            "work",
            "--queues",
            "work",
            "--workers",
            "1",
            "--prefetch",
            "1",
            "--ack",
            ack,
            "--name",
            name,
        ]
    };
    let a = broker.worker(WORKER, &args("a"));
    let b = broker.worker(WORKER, &args("b"));
    broker.wait_for_consumers(&broker.queue("work"), 2).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_each_run_five_of_ten_jobs_in_turn() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let a = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1", "--name", "a"]);
    let b = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1", "--name", "b"]);
    broker.wait_for_consumers(&queue, 2).await;

    let jobs = (1..=10).map(|seq| Record { seq, sleep_ms: 100 });
    broker.client().enqueue_many(jobs).await.expect("enqueue");

    eventually(Duration::from_secs(20), "ten jobs are done", || {
        count_starting(&a.stdout(), "done ") + count_starting(&b.stdout(), "done ") == 10
    })
    .await;
    let ran_a = runs_by_worker(&a.stdout()).remove("a.1").unwrap_or_default();
    let ran_b = runs_by_worker(&b.stdout()).remove("b.1").unwrap_or_default();
    let (odd, even): (Vec<u32>, Vec<u32>) = ((1..=10).step_by(2).collect(), (2..=10).step_by(2).collect());
    assert!(
        (ran_a == odd && ran_b == even) || (ran_a == even && ran_b == odd),
        "jobs were not handed out in turn: a ran {ran_a:?}, b ran {ran_b:?}"
    );
    eventually(Duration::from_secs(5), "every job is acked", || {
        list_queue(&queue).is_some_and(|q| q.messages == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_prefetch_one_and_late_acks_a_long_job_does_not_hold_up_short_ones() {
    let broker = TestBroker::new().await;
    let (a, b) = two_workers(&broker, "late").await;

    broker
        .client()
        .enqueue(Record { seq: 0, sleep_ms: 4000 })
        .await
        .expect("enqueue");
    let shorts = (1..=6).map(|seq| Record { seq, sleep_ms: 100 });
    broker.client().enqueue_many(shorts).await.expect("enqueue");

    let short_done = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.starts_with("done ") && !l.contains("seq=0 "))
            .count()
    };
    eventually(Duration::from_secs(20), "the six short jobs are done", || {
        short_done(&a.stdout()) + short_done(&b.stdout()) == 6
    })
    .await;
    let (long, other) = if count_starting(&a.stdout(), "ran seq=0 ") == 1 {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(
        count_starting(&long.stdout(), "done seq=0 "),
        0,
        "the long job ended before the short ones: {:?}",
        long.stdout()
    );
    assert_eq!(
        short_done(&other.stdout()),
        6,
        "short jobs waited behind the long one: {:?}",
        long.stdout()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_acks_prefetch_limits_nothing_and_short_jobs_wait_behind_a_long_one() {
    // The tutorial's `noAck: true` with prefetch 1: the broker keeps pushing
    // to the busy worker, so jobs queue up behind the long one. This is the
    // documented behaviour of ack mode `none`, and why `late` is the default.
    let broker = TestBroker::new().await;
    let (a, b) = two_workers(&broker, "none").await;

    broker
        .client()
        .enqueue(Record { seq: 0, sleep_ms: 2000 })
        .await
        .expect("enqueue");
    broker
        .client()
        .enqueue_many((1..=6).map(|seq| Record { seq, sleep_ms: 100 }))
        .await
        .expect("enqueue");
    eventually(Duration::from_secs(20), "all seven jobs are done", || {
        count_starting(&a.stdout(), "done ") + count_starting(&b.stdout(), "done ") == 7
    })
    .await;
    let (long, _other) = if count_starting(&a.stdout(), "ran seq=0 ") == 1 {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(
        count_starting(&long.stdout(), "ran "),
        4,
        "with no acks, every other job goes to the busy worker: {:?}",
        long.stdout()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_enqueues_a_follow_up_job_that_runs() {
    let broker = TestBroker::new().await;
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    broker.wait_for_consumers(&broker.queue("work"), 1).await;
    broker.client().enqueue(FollowUp { seq: 77 }).await.expect("enqueue");
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| line.starts_with("done seq=77 "))
        .await;
}

/// Whether `started` jobs had all begun before the first of them ended.
fn started_before_first_done(lines: &[String], started: usize) -> bool {
    let first_done = lines
        .iter()
        .position(|line| line.starts_with("done "))
        .unwrap_or(lines.len());
    count_starting(&lines[..first_done], "ran ") >= started
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_up_to_prefetch_jobs_at_once_and_no_more() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let worker = broker.worker(
        WORKER,
        &["work", "--queues", "work", "--workers", "1", "--prefetch", "3"],
    );
    broker.wait_for_consumers(&queue, 1).await;
    broker
        .client()
        .enqueue_many((1..=6).map(|seq| Record { seq, sleep_ms: 1500 }))
        .await
        .expect("enqueue");

    worker
        .wait_for_stdout(6, Duration::from_secs(20), |line| line.starts_with("done "))
        .await;
    let lines = worker.stdout();
    assert!(
        started_before_first_done(&lines, 3),
        "three jobs run at once: {lines:#?}"
    );
    assert!(
        !started_before_first_done(&lines, 4),
        "a fourth waits for a free slot: {lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_of_one_process_run_on_different_threads() {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        eprintln!("skipped: one core, so the worker process has one arbiter");
        return;
    }
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let worker = broker.worker(
        WORKER,
        &["work", "--queues", "work", "--workers", "2", "--prefetch", "1"],
    );
    broker.wait_for_consumers(&queue, 2).await;
    // Each job blocks its thread, as CPU-bound work does: only workers on
    // different arbiters (threads) can run two at once.
    broker
        .client()
        .enqueue_many((1..=2).map(|seq| Block { seq, ms: 1500 }))
        .await
        .expect("enqueue");

    worker
        .wait_for_stdout(2, Duration::from_secs(20), |line| line.starts_with("done "))
        .await;
    let lines = worker.stdout();
    assert!(
        started_before_first_done(&lines, 2),
        "both blocking jobs ran at once: {lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_40_kb_of_headers_from_another_producer_runs() {
    // A message's properties travel in one frame: a worker that asked for
    // smaller frames than the producer's would lose its connection on every
    // delivery of it.
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    broker.wait_for_consumers(&queue, 1).await;
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "baggage".into(),
        lapin::types::AMQPValue::LongString("x".repeat(40_000).into()),
    );
    let properties = lapin::BasicProperties::default()
        .with_type("record".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    broker
        .publish_raw(&queue, br#"{"seq": 40, "sleep_ms": 0}"#, properties)
        .await;
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| line.starts_with("done seq=40 "))
        .await;
    assert!(
        !worker.stderr().iter().any(|line| line.contains("FRAME")),
        "{:#?}",
        worker.stderr()
    );
}
