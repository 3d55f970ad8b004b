//! Quorum queues, as a user on a RabbitMQ cluster sees them: what RabbitMQ
//! holds once a worker ran a `#[job(queue_type = "quorum")]` job, a message
//! that keeps coming back unacknowledged ending in the dead-letter queue at
//! the delivery limit (and `dead list`/`dead retry` handling it), and a
//! worker refusing to start with two kinds of queue for one queue.

use crate::jobs;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use futures_util::StreamExt;
use jobs::{QuorumRecord, Record};
use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use warren::{JobId, QueueType};
use warren_tests::{TestBroker, amqp_url, field, list_consumers, queue_declaration, run_worker_command, text};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
const CONFLICT: &str = env!("CARGO_BIN_EXE_queue-type-conflict");

const LIMIT: u32 = QueueType::QUORUM_DELIVERY_LIMIT;

/// Runs the worker binary under the test's prefix, stdin not a terminal.
fn run(prefix: &str, args: &[&str]) -> Output {
    run_worker_command(WORKER, prefix, args)
}

fn arguments(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|&(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_job_queue_and_its_dead_letter_queue_are_quorum_and_classic_ones_keep_no_arguments() {
    let broker = TestBroker::new().await;
    let quorum = broker.queue("quorum-work");
    let classic = broker.queue("work");
    let mut worker = broker.worker(
        WORKER,
        &[
            "work",
            "--queues",
            "quorum-work,work",
            "--workers",
            "2",
            "--prefetch",
            "7",
            "--name",
            "w",
        ],
    );
    broker.wait_for_consumers(&quorum, 2).await;
    broker.wait_for_consumers(&classic, 2).await;
    broker
        .client()
        .enqueue(QuorumRecord { seq: 1 })
        .await
        .expect("enqueue the quorum job");
    broker
        .client()
        .enqueue(Record { seq: 2, sleep_ms: 0 })
        .await
        .expect("enqueue the classic job");
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| line.starts_with("quorum seq=1 "))
        .await;
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| line.starts_with("done seq=2 "))
        .await;

    let job_queue = queue_declaration(&quorum).expect("the quorum job queue");
    assert_eq!(job_queue.kind, "quorum", "{job_queue:?}");
    let limit = LIMIT.to_string();
    let dead = format!("{quorum}.dead");
    assert_eq!(
        job_queue.arguments,
        arguments(&[
            ("x-queue-type", "quorum"),
            ("x-delivery-limit", &limit),
            ("x-dead-letter-exchange", ""),
            ("x-dead-letter-routing-key", &dead),
        ])
    );
    assert!(job_queue.durable, "{job_queue:?}");
    let dead_queue = queue_declaration(&dead).expect("the quorum dead-letter queue");
    assert_eq!(dead_queue.kind, "quorum", "{dead_queue:?}");
    assert!(dead_queue.durable, "{dead_queue:?}");
    assert_eq!(dead_queue.arguments, arguments(&[("x-queue-type", "quorum")]));

    // The classic queues of the same worker are declared as they always
    // were, so that the tutorial's `assertQueue(durable)` still agrees.
    for queue in [classic.clone(), format!("{classic}.dead")] {
        let declared = queue_declaration(&queue).expect("a classic queue");
        assert_eq!(declared.kind, "classic", "{queue}: {declared:?}");
        assert!(declared.durable, "{queue}: {declared:?}");
        assert!(declared.arguments.is_empty(), "{queue}: {declared:?}");
    }

    // Prefetch per consumer: quorum queues refuse global QoS.
    let consumers = list_consumers(&quorum);
    assert_eq!(consumers.len(), 2, "{consumers:?}");
    for consumer in &consumers {
        assert!(consumer.ack_required, "{consumer:?}");
        assert_eq!(consumer.prefetch, 7, "{consumer:?}");
        assert!(consumer.tag.starts_with("warren-w."), "{consumer:?}");
    }

    worker.terminate();
    assert!(worker.wait_exit(Duration::from_secs(10)).await.success());
}

/// Consumes `queue` as a worker that dies holding each delivery would
/// leave it: every delivery returned unacknowledged, at once. Returns the
/// number of deliveries, once none came for three seconds (or, if the
/// queue has no delivery limit, after far more than it should allow).
async fn return_every_delivery(queue: &str, id: JobId) -> u32 {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_qos(1, BasicQosOptions { global: false })
        .await
        .expect("qos");
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "poison-returner".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut deliveries = 0;
    while deliveries <= 4 * (LIMIT + 1) {
        let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_secs(3), consumer.next()).await else {
            break;
        };
        let delivery = delivery.expect("a delivery");
        let message_id = delivery.properties.message_id().as_ref().map(|id| id.to_string());
        assert_eq!(message_id, Some(id.to_string()), "only the poison job is in the queue");
        deliveries += 1;
        let requeue = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        assert!(delivery.acker.nack(requeue).await.expect("nack"), "returned");
    }
    let _ = channel.close(200, "done".into()).await;
    let _ = connection.close(200, "done".into()).await;
    deliveries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_coming_back_is_dead_lettered_at_the_delivery_limit_and_dead_retry_runs_it() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("quorum-work");
    let dead = format!("{queue}.dead");

    // Delayed, so that it waits in a hold queue first: RabbitMQ then records
    // an `expired` death before the delivery-limit one, and `dead list`
    // must show the latter.
    let id = broker
        .client()
        .enqueue_in(Duration::from_millis(300), QuorumRecord { seq: 7 })
        .await
        .expect("enqueue");
    let hold = queue_declaration(&format!("{queue}.hold.300")).expect("the hold queue");
    assert_eq!(
        hold.kind, "quorum",
        "a quorum job queue is held in quorum queues: {hold:?}"
    );
    assert_eq!(
        hold.arguments.get("x-dead-letter-strategy").map(String::as_str),
        Some("at-least-once"),
        "{hold:?}"
    );
    assert_eq!(
        hold.arguments.get("x-dead-letter-routing-key"),
        Some(&queue),
        "{hold:?}"
    );
    broker.wait_for_ready(&queue, 1, Duration::from_secs(10)).await;
    assert_eq!(
        queue_declaration(&queue).map(|declared| declared.kind).as_deref(),
        Some("quorum"),
        "the client declared the job queue as the job says"
    );

    let deliveries = return_every_delivery(&queue, id).await;
    println!("the poison job was delivered {deliveries} times (delivery limit {LIMIT})");
    assert!(
        deliveries > 1 && deliveries <= LIMIT + 1,
        "delivered {deliveries} times with a delivery limit of {LIMIT}"
    );
    broker.wait_for_ready(&dead, 1, Duration::from_secs(10)).await;
    assert_eq!(broker.ready(&queue).await, 0, "gone from the job queue");

    let output = run(broker.prefix(), &["dead", "list", "--queue", "quorum-work"]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let row: Vec<&str> = stdout
        .lines()
        .find(|line| line.starts_with(&id.to_string()))
        .unwrap_or_else(|| panic!("job {id} is not listed:\n{stdout}"))
        .split_whitespace()
        .collect();
    // JOB ID, NAME, QUEUE, REASON, ATTEMPTS, DEAD AT, ERROR
    assert_eq!(
        row[1..5],
        ["quorum_record", queue.as_str(), "delivery_limit", "1"],
        "{stdout}"
    );
    assert!(row[5].ends_with('Z'), "when RabbitMQ dead-lettered it: {stdout}");
    assert!(stdout.contains(&format!("1 of 1 dead letter in {dead}")), "{stdout}");

    let output = run(broker.prefix(), &["dead", "retry", "--all", "--queue", "quorum-work"]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(&format!("retried 1 dead letter from {dead}")),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(broker.ready(&dead).await, 0, "no longer dead");

    let worker = broker.worker(WORKER, &["work", "--queues", "quorum-work", "--workers", "1"]);
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| {
            line.starts_with("quorum seq=7 ") && field(line, "attempt") == Some("1")
        })
        .await;
    worker.wait_for_stderr(&id.to_string(), Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_of_one_queue_with_different_queue_types_stop_the_worker_from_starting_and_both_are_named() {
    let broker = TestBroker::new().await;
    let mut worker = broker.worker(CONFLICT, &["work"]);
    let status = worker.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1), "stderr: {:#?}", worker.stderr());
    let stderr = worker.stderr().join("\n");
    assert!(
        stderr.contains(
            "queue `ledger` is declared as two kinds of queue: classic by `queue_type_conflict::ledger::Post` \
             and quorum by `queue_type_conflict::ledger::Settle`"
        ),
        "{stderr}"
    );
    assert!(
        queue_declaration(&broker.queue("ledger")).is_none(),
        "nothing was declared"
    );
}

#[test]
fn the_jobs_listing_shows_the_queue_type_of_each_job() {
    let output = Command::new(WORKER).arg("jobs").output().expect("run");
    assert!(output.status.success());
    let listing = text(&output.stdout);
    let header = listing.lines().next().expect("a header");
    assert!(header.contains("QUEUE TYPE"), "{header}");
    let line = |name: &str| {
        listing
            .lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from:\n{listing}"))
    };
    assert!(line("quorum_record").contains(" quorum "), "{listing}");
    assert!(line("record").contains(" classic "), "{listing}");
}
