//! A flood of bad messages from a non-Rust producer, interleaved with good
//! jobs: every good job runs exactly once, every bad message lands in
//! `<queue>.dead` exactly once with its reason, and the worker keeps going.
//! The producer is `tests/interop/flood.py`, under Python with pika
//! (`WARREN_PYTHON`, set by `scripts/test`).

use crate::jobs;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jobs::Record;
use lapin::BasicProperties;
use lapin::types::AMQPValue;
use warren_tests::{TestBroker, WorkerProcess, count_starting, eventually, list_queue, python, seqs};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// Good jobs, and as many bad messages.
const COUNT: u32 = 1000;

fn header(properties: &BasicProperties, name: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        other => panic!("header {name}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_bad_messages_among_a_thousand_good_jobs_are_dead_lettered_once_each() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let dead = format!("{queue}.dead");
    let mut worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "2"]);
    broker.wait_for_consumers(&queue, 2).await;

    let mut flood = WorkerProcess::spawn(python("flood.py", &queue).env("COUNT", COUNT.to_string()));
    let status = flood.wait_exit(Duration::from_secs(40)).await;
    assert!(status.success(), "flood.py failed: {:#?}", flood.stderr());
    assert_eq!(
        flood.stdout(),
        [format!("published {COUNT} good and {COUNT} bad")],
        "the broker confirmed every message"
    );

    eventually(Duration::from_secs(40), "every good job is done", || {
        count_starting(&worker.stdout(), "done ") >= COUNT as usize
    })
    .await;
    broker.wait_for_ready(&dead, COUNT, Duration::from_secs(40)).await;
    eventually(
        Duration::from_secs(10),
        "the work queue is empty and nothing is unacked",
        || list_queue(&queue).is_some_and(|q| q.messages == 0),
    )
    .await;

    // The worker survived the flood and still takes jobs.
    assert!(worker.is_running(), "the worker died: {:#?}", worker.stderr());
    broker
        .client()
        .enqueue(Record {
            seq: COUNT,
            sleep_ms: 0,
        })
        .await
        .expect("enqueue");
    worker
        .wait_for_stdout(1, Duration::from_secs(15), |line| {
            line.starts_with(&format!("done seq={COUNT} "))
        })
        .await;

    let mut done = seqs(&worker.stdout(), "done ");
    done.sort_unstable();
    assert!(
        done == (0..=COUNT).collect::<Vec<_>>(),
        "each good job ran exactly once; done {} times in all",
        done.len()
    );

    let letters = broker.take_all(&dead).await;
    assert_eq!(letters.len(), COUNT as usize, "exactly the bad messages are dead");
    let mut reasons = BTreeMap::<(String, String), u32>::new();
    let mut tags = BTreeSet::new();
    for letter in &letters {
        let tag = header(&letter.properties, "flood-bad")
            .unwrap_or_else(|| panic!("a dead letter that flood.py did not mean to be bad: {letter:?}"));
        let reason = header(&letter.properties, "warren-dead-reason").expect("warren-dead-reason");
        let kind = tag.split('-').next().expect("kind").to_owned();
        *reasons.entry((kind, reason)).or_default() += 1;
        assert!(tags.insert(tag.clone()), "{tag} dead-lettered twice");
    }
    let quarter = COUNT / 4;
    let expected = BTreeMap::from(
        [
            ("bytes", "undecodable"),
            ("json", "undecodable"),
            ("unknown", "unknown_job"),
            ("untyped", "unknown_job"),
        ]
        .map(|(kind, reason)| ((kind.to_owned(), reason.to_owned()), quarter)),
    );
    assert_eq!(reasons, expected, "(kind of bad message, dead reason) → count");
}
