//! The worker binary's `dead` commands, as an operator runs them: list dead
//! letters without disturbing them, retry one or all so that a worker runs
//! them afresh, purge them.
//!
//! The dead letters are published directly, as a worker writes them, so
//! these tests do not depend on how jobs come to fail.

use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use warren::JobId;
use warren_tests::{TestBroker, amqp_url, field, list_queue, run_worker_command, text};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// Runs the worker binary under the test's prefix, stdin not a terminal.
fn run(prefix: &str, args: &[&str]) -> Output {
    run_worker_command(WORKER, prefix, args)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

/// Publishes to `work.dead` the dead letter a worker would write for a
/// `record` job `seq` that died on attempt `attempt`; returns its job id.
async fn dead_record(broker: &TestBroker, seq: u32, reason: &str, error: &str, attempt: i64) -> JobId {
    let id = JobId::new();
    let queue = broker.queue("work");
    let mut headers = FieldTable::default();
    headers.insert("warren-attempt".into(), AMQPValue::LongLongInt(attempt));
    headers.insert("warren-dead-reason".into(), long_string(reason));
    headers.insert("warren-dead-error".into(), long_string(error));
    headers.insert("warren-dead-at".into(), AMQPValue::Timestamp(now_secs()));
    headers.insert("warren-dead-queue".into(), long_string(&queue));
    headers.insert("warren-dead-worker".into(), long_string("host.1"));
    headers.insert("warren-first-failure-at".into(), AMQPValue::Timestamp(now_secs() - 60));
    headers.insert("warren-last-error".into(), long_string(error));
    // A delay an hour ahead: a retried job that kept it would not run now.
    let eta_ms = i64::try_from(now_secs() * 1000).expect("ms") + 3_600_000;
    headers.insert("warren-eta".into(), AMQPValue::LongLongInt(eta_ms));
    headers.insert("warren-retries".into(), AMQPValue::LongLongInt(2));
    headers.insert("tenant".into(), long_string("acme"));
    let properties = BasicProperties::default()
        .with_type("record".into())
        .with_message_id(id.to_string().into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_timestamp(now_secs() - 120)
        .with_headers(headers);
    let body = format!(r#"{{"seq":{seq},"sleep_ms":0}}"#);
    broker
        .publish_raw(&format!("{queue}.dead"), body.as_bytes(), properties)
        .await;
    id
}

/// Like [`dead_record`], for a job that came from the queue `from` (a full name).
async fn dead_record_from(broker: &TestBroker, from: &str) -> JobId {
    let id = JobId::new();
    let mut headers = FieldTable::default();
    headers.insert("warren-dead-reason".into(), long_string("failed"));
    headers.insert("warren-dead-queue".into(), long_string(from));
    let properties = BasicProperties::default()
        .with_type("record".into())
        .with_message_id(id.to_string().into())
        .with_delivery_mode(2)
        .with_headers(headers);
    let dead = format!("{}.dead", broker.queue("work"));
    broker
        .publish_raw(&dead, br#"{"seq":1,"sleep_ms":0}"#, properties)
        .await;
    id
}

/// Takes every message off `full` and returns their job ids, in order.
async fn take_ids(broker: &TestBroker, full: &str) -> Vec<String> {
    let mut ids = Vec::new();
    while let Some(message) = broker.take(full).await {
        ids.push(
            message
                .properties
                .message_id()
                .as_ref()
                .expect("message_id")
                .to_string(),
        );
    }
    ids
}

fn ids(letters: &[JobId]) -> Vec<String> {
    letters.iter().map(JobId::to_string).collect()
}

/// The rows of `dead list` output: lines that start with a job id.
fn rows(stdout: &str) -> Vec<Vec<&str>> {
    stdout
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|id| id.parse::<JobId>().is_ok())
        })
        .map(|line| line.split_whitespace().collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_the_dead_letters_and_leaves_the_queue_exactly_as_it_was() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let dead = format!("{queue}.dead");
    let letters = [
        dead_record(&broker, 1, "failed", "card declined\n  at src/charge.rs:12", 3).await,
        dead_record(&broker, 2, "timeout", "timed out after 1s", 1).await,
        dead_record(&broker, 3, "panic", "index out of bounds", 2).await,
    ];
    assert_eq!(broker.ready(&dead).await, 3);

    let output = run(broker.prefix(), &["dead", "list", "--queue", "work"]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let listed = rows(&stdout);
    let listed_ids: Vec<&str> = listed.iter().map(|row| row[0]).collect();
    assert_eq!(listed_ids, ids(&letters), "oldest first:\n{stdout}");
    // JOB ID, NAME, QUEUE, REASON, ATTEMPTS, DEAD AT, ERROR…
    assert_eq!(listed[0][1..5], ["record", queue.as_str(), "failed", "3"], "{stdout}");
    assert!(listed[0][5].ends_with('Z'), "RFC 3339 time: {stdout}");
    assert_eq!(listed[0][6..].join(" "), "card declined…", "one line: {stdout}");
    assert_eq!(listed[1][3..5], ["timeout", "1"], "{stdout}");
    assert_eq!(listed[1][6..].join(" "), "timed out after 1s", "{stdout}");
    assert_eq!(listed[2][3..5], ["panic", "2"], "{stdout}");
    assert!(stdout.contains(&format!("3 of 3 dead letters in {dead}")), "{stdout}");

    let limited = run(broker.prefix(), &["dead", "list", "--queue", "work", "--limit", "2"]);
    assert!(limited.status.success(), "stderr: {}", text(&limited.stderr));
    let stdout = text(&limited.stdout);
    let listed_ids: Vec<&str> = rows(&stdout).iter().map(|row| row[0]).collect();
    assert_eq!(listed_ids, ids(&letters[..2]), "{stdout}");
    assert!(stdout.contains(&format!("2 of 3 dead letters in {dead}")), "{stdout}");

    // Without --queue: every queue of the registered jobs, even one that
    // has no dead-letter queue (yet).
    let all = run(broker.prefix(), &["dead", "list"]);
    assert!(all.status.success(), "stderr: {}", text(&all.stderr));
    let stdout = text(&all.stdout);
    assert_eq!(rows(&stdout).len(), 3, "{stdout}");
    assert!(stdout.contains(&format!("3 of 3 dead letters in {dead}")), "{stdout}");
    let plain_dead = format!("{}.dead", broker.queue("plain"));
    assert!(
        stdout.contains(&format!("0 of 0 dead letters in {plain_dead}")),
        "{stdout}"
    );
    assert!(list_queue(&plain_dead).is_none(), "listing creates no queue");

    let after = list_queue(&dead).expect("the dead-letter queue");
    assert_eq!((after.messages, after.unacked), (3, 0), "all back, none held");
    assert_eq!(take_ids(&broker, &dead).await, ids(&letters), "in their order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_moves_back_exactly_one_job_then_all_and_a_worker_runs_them_from_attempt_1() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let dead = format!("{queue}.dead");
    let seven = dead_record(&broker, 7, "failed", "card declined", 3).await;
    let eight = dead_record(&broker, 8, "panic", "boom", 1).await;
    let nine = dead_record(&broker, 9, "timeout", "timed out after 1s", 2).await;
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    broker.wait_for_consumers(&queue, 1).await;

    // No --queue: found among the dead letters of every registered queue;
    // the one in the middle, so that taking the first would show.
    let output = run(broker.prefix(), &["dead", "retry", &eight.to_string()]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(&format!("retried job {eight} from {dead}")),
        "{}",
        text(&output.stdout)
    );
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| {
            line.starts_with("ran seq=8 ") && field(line, "attempt") == Some("1")
        })
        .await;
    let still_dead = list_queue(&dead).expect("the dead-letter queue");
    assert_eq!((still_dead.messages, still_dead.unacked), (2, 0));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ran: Vec<String> = worker.stdout().into_iter().filter(|l| l.starts_with("ran ")).collect();
    assert_eq!(ran.len(), 1, "only job 8 ran: {ran:?}");

    let output = run(broker.prefix(), &["dead", "retry", "--all", "--queue", "work"]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(&format!("retried 2 dead letters from {dead}")),
        "{}",
        text(&output.stdout)
    );
    for seq in [7, 9] {
        worker
            .wait_for_stdout(1, Duration::from_secs(10), |line| {
                line.starts_with(&format!("ran seq={seq} ")) && field(line, "attempt") == Some("1")
            })
            .await;
    }
    assert_eq!(
        list_queue(&dead).map(|q| q.messages),
        Some(0),
        "the dead-letter queue is empty"
    );
    for id in [seven, eight, nine] {
        worker.wait_for_stderr(&id.to_string(), Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_job_keeps_its_id_and_body_and_drops_its_failure_bookkeeping() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let dead = format!("{queue}.dead");
    let id = dead_record(&broker, 5, "failed", "card declined", 4).await;

    let output = run(broker.prefix(), &["dead", "retry", "--all", "--queue", "work"]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert_eq!(broker.ready(&dead).await, 0);

    let job = broker.take(&queue).await.expect("the job is back in its queue");
    let properties = &job.properties;
    assert_eq!(job.data, br#"{"seq":5,"sleep_ms":0}"#);
    assert_eq!(
        properties.message_id().as_ref().map(|id| id.to_string()),
        Some(id.to_string())
    );
    assert_eq!(
        properties.kind().as_ref().map(|kind| kind.to_string()).as_deref(),
        Some("record")
    );
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    let headers = properties.headers().as_ref().expect("headers").inner();
    let names: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
    assert_eq!(names, ["tenant", "warren-attempt", "warren-retries"]);
    assert_eq!(headers["warren-attempt"], AMQPValue::LongLongInt(1));
    assert_eq!(
        headers["warren-retries"],
        AMQPValue::LongLongInt(2),
        "the job's own settings stay"
    );
    assert!(broker.take(&queue).await.is_none(), "moved once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_of_an_unknown_job_exits_1_and_changes_nothing() {
    let broker = TestBroker::new().await;
    let dead = format!("{}.dead", broker.queue("work"));
    let letters = [
        dead_record(&broker, 1, "failed", "card declined", 1).await,
        dead_record(&broker, 2, "failed", "card declined", 1).await,
    ];
    let unknown = JobId::new();

    let output = run(
        broker.prefix(),
        &["dead", "retry", &unknown.to_string(), "--queue", "work"],
    );
    assert_eq!(output.status.code(), Some(1), "stdout: {}", text(&output.stdout));
    let error = text(&output.stderr);
    assert!(
        error.contains(&format!("no dead letter of job {unknown} in {dead}")),
        "{error}"
    );

    assert_eq!(broker.ready(&broker.queue("work")).await, 0, "nothing was retried");
    let after = list_queue(&dead).expect("the dead-letter queue");
    assert_eq!((after.messages, after.unacked), (2, 0));
    assert_eq!(take_ids(&broker, &dead).await, ids(&letters), "in their order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_cannot_be_put_back_stays_a_dead_letter_and_the_retry_exits_1() {
    let broker = TestBroker::new().await;
    let dead = format!("{}.dead", broker.queue("work"));
    // Its queue exists with settings warren does not declare, so publishing fails.
    let capped = broker.queue("capped");
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongInt(10));
    channel
        .queue_declare(capped.as_str().into(), QueueDeclareOptions::durable(), arguments)
        .await
        .expect("declare");
    let stuck = dead_record_from(&broker, &capped).await;

    let output = run(broker.prefix(), &["dead", "retry", "--all", "--queue", "work"]);
    assert_eq!(output.status.code(), Some(1), "stdout: {}", text(&output.stdout));
    let error = text(&output.stderr);
    assert!(
        error.contains(&format!(
            "could not move job {stuck} to `{capped}` (it stays a dead letter)"
        )),
        "{error}"
    );
    assert!(error.contains("already exists with other settings"), "{error}");
    assert_eq!(take_ids(&broker, &dead).await, ids(&[stuck]), "still dead");
    assert_eq!(broker.ready(&capped).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_refuses_without_yes_when_it_cannot_ask_and_deletes_only_dead_letters_with_it() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let dead = format!("{queue}.dead");
    for seq in 1..=3 {
        dead_record(&broker, seq, "failed", "card declined", 1).await;
    }
    broker
        .publish_raw(
            &queue,
            br#"{"seq":4,"sleep_ms":0}"#,
            BasicProperties::default().with_type("record".into()),
        )
        .await;

    let output = run(broker.prefix(), &["dead", "purge", "--queue", "work"]);
    assert_eq!(output.status.code(), Some(2), "stdout: {}", text(&output.stdout));
    let error = text(&output.stderr);
    assert!(error.contains("pass --yes"), "{error}");
    assert_eq!(broker.ready(&dead).await, 3, "nothing deleted");

    let output = run(broker.prefix(), &["dead", "purge", "--queue", "work", "--yes"]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!("deleted 3 dead letters from {dead}")),
        "{stdout}"
    );
    assert_eq!(broker.ready(&dead).await, 0);
    assert_eq!(broker.ready(&queue).await, 1, "the job queue is untouched");
}

#[test]
fn dead_commands_with_the_broker_down_fail_clearly() {
    let output = Command::new(WORKER)
        .args(["dead", "list"])
        .env("AMQP_URL", "amqp://guest:secret@127.0.0.1:1/%2f")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let error = text(&output.stderr);
    assert!(
        error.contains("error: could not connect to RabbitMQ at amqp://guest:***@127.0.0.1:1/%2f"),
        "{error}"
    );
}

#[test]
fn retry_needs_exactly_one_of_a_job_id_and_all() {
    for args in [
        &["dead", "retry"][..],
        &["dead", "retry", "--all", &JobId::new().to_string()],
        &["dead", "retry", "not-a-job-id"],
    ] {
        let output = Command::new(WORKER).args(args).output().expect("run");
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_list_into_a_reader_that_has_gone_exits_zero() {
    let broker = TestBroker::new().await;
    dead_record(&broker, 1, "failed", "card declined", 1).await;
    // `dead list | head -1` once head has exited: every write to the pipe
    // fails with EPIPE. (It panicked, exit 101.)
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let listed = Command::new(WORKER)
        .args(["dead", "list"])
        .env("AMQP_URL", amqp_url())
        .env("WARREN_QUEUE_PREFIX", broker.prefix())
        .stdout(writer)
        .output()
        .expect("run dead list");
    let stderr = text(&listed.stderr);
    assert_eq!(listed.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
