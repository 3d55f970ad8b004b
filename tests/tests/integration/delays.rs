//! Delayed jobs wait on the broker, in hold queues, and run when due: a
//! short delay is never held up behind a long one.

use crate::jobs;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jobs::Record;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use warren_tests::{TestBroker, WorkerProcess, field, list_queue, rabbitmqctl};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// When `ran seq=<seq>` was printed (`at_ms`), if it was.
fn ran_at(worker: &WorkerProcess, seq: u32) -> Option<u64> {
    let tag = format!("ran seq={seq} ");
    worker
        .stdout()
        .iter()
        .find(|line| line.starts_with(&tag))
        .and_then(|line| field(line, "at_ms")?.parse().ok())
}

/// The hold queues of `queue` and the messages each holds.
fn hold_queues(queue: &str) -> Vec<(String, u32)> {
    let prefix = format!("{queue}.retry.");
    rabbitmqctl(&["list_queues", "--quiet", "--no-table-headers", "name", "messages"])
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, messages)| (name.to_owned(), messages.trim().parse().unwrap_or(0)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_delay_runs_before_a_long_one_enqueued_first_and_on_time() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    broker.wait_for_consumers(&queue, 1).await;
    let client = broker.client();

    client
        .enqueue_in(Duration::from_secs(60), Record { seq: 1, sleep_ms: 0 })
        .await
        .expect("enqueue");
    let enqueued = now_ms();
    client
        .enqueue_in(Duration::from_secs(3), Record { seq: 2, sleep_ms: 0 })
        .await
        .expect("enqueue");

    worker
        .wait_for_stdout(1, Duration::from_secs(15), |line| line.starts_with("ran seq=2 "))
        .await;
    let waited = ran_at(&worker, 2).expect("at_ms") - enqueued;
    eprintln!("a 3 s delay ran after {waited} ms");
    assert!((3_000..4_000).contains(&waited), "a 3 s delay ran after {waited} ms");
    assert_eq!(ran_at(&worker, 1), None, "the 60 s job has not run");
    let holding: Vec<_> = hold_queues(&queue)
        .into_iter()
        .filter(|(_, messages)| *messages > 0)
        .collect();
    assert_eq!(
        holding,
        vec![(format!("{queue}.retry.60000"), 1)],
        "the 60 s job waits on the broker"
    );
    assert_eq!(list_queue(&queue).map(|q| q.messages), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_at_a_time_runs_then_and_a_time_past_runs_now() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    broker.wait_for_consumers(&queue, 1).await;
    let client = broker.client();

    let due = SystemTime::now() + Duration::from_secs(2);
    client
        .enqueue_at(due, Record { seq: 3, sleep_ms: 0 })
        .await
        .expect("enqueue");
    let past = SystemTime::now() - Duration::from_secs(3600);
    client
        .enqueue_at(past, Record { seq: 4, sleep_ms: 0 })
        .await
        .expect("enqueue");

    worker
        .wait_for_stdout(2, Duration::from_secs(15), |line| line.starts_with("ran seq="))
        .await;
    let due_ms = u64::try_from(due.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let seq3 = ran_at(&worker, 3).expect("ran");
    assert!(
        seq3 >= due_ms && seq3 < due_ms + 1_000,
        "ran {} ms after its time",
        seq3.abs_diff(due_ms)
    );
    assert!(ran_at(&worker, 4).unwrap() < seq3, "the job due in the past ran first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_back_before_it_is_due_is_held_again_not_run() {
    // A long delay is waited out in hops; a job arriving with time to go
    // (here published straight to the queue) must wait again.
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    broker.wait_for_consumers(&queue, 1).await;

    let due = now_ms() + 2_000;
    let mut headers = FieldTable::default();
    headers.insert("warren-eta".into(), AMQPValue::LongLongInt(i64::try_from(due).unwrap()));
    let properties = BasicProperties::default()
        .with_type("record".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    broker
        .publish_raw(&queue, br#"{"seq": 5, "sleep_ms": 0}"#, properties)
        .await;

    worker
        .wait_for_stdout(1, Duration::from_secs(15), |line| line.starts_with("ran seq=5 "))
        .await;
    let ran = ran_at(&worker, 5).expect("ran");
    assert!(ran >= due, "ran {} ms early", due - ran);
    assert!(ran < due + 1_000, "ran {} ms late", ran - due);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_past_thirty_days_are_refused_and_hand_the_job_back() {
    let broker = TestBroker::new().await;
    let error = broker
        .client()
        .enqueue_in(Duration::from_secs(31 * 24 * 3600), Record { seq: 6, sleep_ms: 0 })
        .await
        .expect_err("too long");
    assert!(error.to_string().contains("the longest delay is 30days"), "{error}");
    assert_eq!(error.into_job().seq, 6);
    assert!(hold_queues(&broker.queue("work")).is_empty());
}
