//! Failed attempts are retried through hold queues on the broker, with
//! growing waits, until the job succeeds or its retries are used up and it
//! lands in `<queue>.dead` with the reason, the error and the attempt count.

use crate::jobs;

use std::time::Duration;

use jobs::{AlwaysFail, Flaky, GatedFail, RateLimited, Reject};
use warren::EnqueueOptions;
use warren_tests::{TestBroker, WorkerProcess, close_connection, eventually, field, header, list_queue};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// The `at_ms` of each `attempt seq=<seq>` line, in order.
fn attempts(worker: &WorkerProcess, seq: u32) -> Vec<u64> {
    let tag = format!("attempt seq={seq} ");
    worker
        .stdout()
        .iter()
        .filter(|line| line.starts_with(&tag))
        .map(|line| field(line, "at_ms").and_then(|ms| ms.parse().ok()).expect("at_ms"))
        .collect()
}

async fn start(broker: &TestBroker) -> WorkerProcess {
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    broker.wait_for_consumers(&broker.queue("work"), 1).await;
    worker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_twice_then_succeeding_runs_three_times_with_growing_waits() {
    let broker = TestBroker::new().await;
    let worker = start(&broker).await;
    broker
        .client()
        .enqueue(Flaky { seq: 1, failures: 2 })
        .await
        .expect("enqueue");

    worker
        .wait_for_stdout(1, Duration::from_secs(20), |line| line == "done seq=1")
        .await;
    let runs = attempts(&worker, 1);
    assert_eq!(runs.len(), 3, "{:#?}", worker.stdout());
    let (first_wait, second_wait) = (runs[1] - runs[0], runs[2] - runs[1]);
    // backoff = "1s": the first wait is drawn from 0.5–1 s, the second from 1–2 s.
    assert!((500..2_000).contains(&first_wait), "first wait {first_wait} ms");
    assert!((1_000..3_000).contains(&second_wait), "second wait {second_wait} ms");
    let lines = worker.stdout();
    for attempt in 1..=3 {
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("attempt seq=1 ") && field(line, "attempt") == Some(&attempt.to_string())),
            "attempt {attempt} is counted: {lines:#?}"
        );
    }
    let queue = broker.queue("work");
    eventually(Duration::from_secs(5), "nothing is left on the broker", || {
        list_queue(&queue).is_some_and(|q| q.messages == 0)
            && list_queue(&format!("{queue}.dead")).is_some_and(|q| q.messages == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_always_fails_is_dead_after_exactly_its_retries_plus_one_runs() {
    let broker = TestBroker::new().await;
    let worker = start(&broker).await;
    let id = broker.client().enqueue(AlwaysFail { seq: 2 }).await.expect("enqueue");

    let dead = format!("{}.dead", broker.queue("work"));
    broker.wait_for_ready(&dead, 1, Duration::from_secs(20)).await;
    // Long enough for a fourth run, were there one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(attempts(&worker, 2).len(), 3, "retries = 2: {:#?}", worker.stdout());

    let letter = broker.take(&dead).await.expect("the dead letter");
    let properties = &letter.properties;
    assert_eq!(
        properties.message_id().as_ref().map(ToString::to_string),
        Some(id.to_string())
    );
    assert_eq!(header(properties, "warren-dead-reason").as_deref(), Some("failed"));
    assert_eq!(
        header(properties, "warren-dead-error").as_deref(),
        Some("payment service down (attempt 3)")
    );
    assert_eq!(header(properties, "warren-attempt").as_deref(), Some("3"));
    let first: u64 = header(properties, "warren-first-failure-at")
        .expect("first failure")
        .parse()
        .unwrap();
    let last: u64 = header(properties, "warren-dead-at")
        .expect("last failure")
        .parse()
        .unwrap();
    assert!(first <= last && last - first <= 5, "first {first}, last {last}");
    assert!(
        header(properties, "x-death").is_none(),
        "the hold queues' history is dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_job_is_dead_at_once_and_retry_after_sets_the_wait() {
    let broker = TestBroker::new().await;
    let worker = start(&broker).await;
    let client = broker.client();
    client.enqueue(Reject { seq: 3 }).await.expect("enqueue");
    client
        .enqueue(RateLimited { seq: 4, wait_ms: 2_000 })
        .await
        .expect("enqueue");

    worker
        .wait_for_stdout(1, Duration::from_secs(20), |line| line == "done seq=4")
        .await;
    let dead = format!("{}.dead", broker.queue("work"));
    broker.wait_for_ready(&dead, 1, Duration::from_secs(5)).await;
    assert_eq!(
        attempts(&worker, 3).len(),
        1,
        "a rejected job runs once despite retries = 5"
    );
    let letter = broker.take(&dead).await.expect("the dead letter");
    assert_eq!(
        header(&letter.properties, "warren-dead-reason").as_deref(),
        Some("rejected")
    );
    assert_eq!(
        header(&letter.properties, "warren-dead-error").as_deref(),
        Some("no such customer")
    );

    let runs = attempts(&worker, 4);
    assert_eq!(runs.len(), 2);
    let wait = runs[1] - runs[0];
    // The default backoff would wait 5–10 s.
    assert!((2_000..4_000).contains(&wait), "waited {wait} ms for a 2 s Retry-After");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_set_at_enqueue_override_the_job_attribute() {
    let broker = TestBroker::new().await;
    let worker = start(&broker).await;
    broker
        .client()
        .enqueue_with(AlwaysFail { seq: 5 }, EnqueueOptions::new().retries(0))
        .await
        .expect("enqueue");
    let dead = format!("{}.dead", broker.queue("work"));
    broker.wait_for_ready(&dead, 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(attempts(&worker, 5).len(), 1, "{:#?}", worker.stdout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_while_its_channel_dies_is_redelivered_not_also_retried() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let name = format!("{}w", broker.prefix());
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1", "--name", &name]);
    broker.wait_for_consumers(&queue, 1).await;
    let gate = std::env::temp_dir().join(format!("{}gate", broker.prefix()));
    broker
        .client()
        .enqueue(GatedFail {
            seq: 6,
            gate: gate.display().to_string(),
        })
        .await
        .expect("enqueue");
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| line.starts_with("attempt seq=6 "))
        .await;
    // The consumer's connection dies while the first attempt runs; RabbitMQ
    // will redeliver it, so that attempt's failure must not be retried too.
    // The attempt fails only once the worker has seen its consumer die.
    close_connection(&format!("warren worker {name}"));
    worker
        .wait_for_stderr("worker stopped; restarting it", Duration::from_secs(20))
        .await;
    std::fs::write(&gate, b"open").expect("open the gate");

    let dead = format!("{queue}.dead");
    broker.wait_for_ready(&dead, 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(broker.ready(&dead).await, 1, "one chain of retries, one dead letter");
    // The interrupted run, then the redelivery and its one retry.
    assert_eq!(attempts(&worker, 6).len(), 3, "{:#?}", worker.stdout());
    let _ = std::fs::remove_file(&gate);
}
