//! Priorities: urgent jobs jump the line on a queue that takes priorities,
//! and an enqueue that asks for one elsewhere is refused, not ignored.

use crate::jobs;

use std::time::Duration;

use jobs::{Escalated, Ranked, Record};
use warren::{EnqueueOptions, Error};
use warren_tests::{TestBroker, queue_declaration, run_worker_command, text};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// The `seq`s of `ranked seq=<n>` lines, in the order they were printed.
fn ranked(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .filter_map(|line| line.strip_prefix("ranked seq="))
        .filter_map(|seq| seq.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_busy_worker_at_prefetch_one_ten_urgent_jobs_run_before_a_hundred_waiting_ones() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("ranked");
    let worker = broker.worker(
        WORKER,
        &["work", "--queues", "ranked", "--workers", "1", "--prefetch", "1"],
    );
    broker.wait_for_consumers(&queue, 1).await;

    // The worker is busy with job 0 until the test opens the gate, so
    // every other job waits on the broker, where priorities order them.
    let gate = std::env::temp_dir().join(format!("{}gate", broker.prefix()));
    let _ = std::fs::remove_file(&gate);
    let blocker = Ranked {
        seq: 0,
        gate: Some(gate.display().to_string()),
    };
    broker.client().enqueue(blocker).await.expect("enqueue the blocker");
    worker
        .wait_for_stdout(1, Duration::from_secs(30), |line| line == "ranked seq=0")
        .await;

    let low = (1..=100).map(|seq| Ranked { seq, gate: None });
    broker.client().enqueue_many(low).await.expect("enqueue the low ones");
    for seq in 101..=105 {
        let urgent = Ranked { seq, gate: None };
        let options = EnqueueOptions::new().priority(9);
        broker.client().enqueue_with(urgent, options).await.expect("enqueue");
    }
    // Urgent by its own `#[job(priority = 9)]`.
    let escalated = (106..=110).map(|seq| Escalated { seq });
    broker.client().enqueue_many(escalated).await.expect("enqueue");
    assert_eq!(broker.ready(&queue).await, 110, "all wait while the worker is busy");

    std::fs::write(&gate, b"open").expect("open the gate");
    worker
        .wait_for_stdout(111, Duration::from_secs(60), |line| line.starts_with("ranked seq="))
        .await;
    let _ = std::fs::remove_file(&gate);

    let expected: Vec<u32> = std::iter::once(0).chain(101..=110).chain(1..=100).collect();
    assert_eq!(ranked(&worker.stdout()), expected);
    let declaration = queue_declaration(&queue).expect("the queue exists");
    assert_eq!(
        declaration.arguments.get("x-max-priority").map(String::as_str),
        Some("10")
    );
    let work = queue_declaration(&broker.queue("work"));
    assert!(work.as_ref().is_none_or(|work| work.arguments.is_empty()), "{work:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_on_a_queue_that_takes_none_is_refused_and_nothing_is_published() {
    let broker = TestBroker::new().await;
    let record = Record { seq: 1, sleep_ms: 0 };
    let refused = broker
        .client()
        .enqueue_with(record, EnqueueOptions::new().priority(5))
        .await
        .expect_err("the queue takes no priorities");
    assert!(
        matches!(refused.error(), Error::PriorityNotTaken { max: None, .. }),
        "{refused}"
    );

    let output = run_worker_command(
        WORKER,
        broker.prefix(),
        &["enqueue", "record", r#"{"seq": 2, "sleep_ms": 0}"#, "--priority", "5"],
    );
    assert_eq!(output.status.code(), Some(1), "stdout: {}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot enqueue `record` with priority 5")
            && stderr.contains("takes no priorities; give its jobs #[job(max_priority = N)]"),
        "{stderr}"
    );

    let output = run_worker_command(
        WORKER,
        broker.prefix(),
        &["enqueue", "ranked", r#"{"seq": 3, "gate": null}"#, "--priority", "11"],
    );
    assert_eq!(output.status.code(), Some(1), "stdout: {}", text(&output.stdout));
    assert!(
        text(&output.stderr).contains("takes priorities up to 10"),
        "{}",
        text(&output.stderr)
    );
    let output = run_worker_command(
        WORKER,
        broker.prefix(),
        &["enqueue", "ranked", r#"{"seq": 4, "gate": null}"#, "--priority", "10"],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));

    assert_eq!(broker.ready(&broker.queue("work")).await, 0, "nothing was published");
    assert_eq!(broker.ready(&broker.queue("ranked")).await, 1);
}
