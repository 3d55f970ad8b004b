//! The generated worker binary's command line, as a user runs it.

use crate::jobs;

use std::process::{Command, Output};
use std::time::Duration;

use jobs::Record;
use warren::JobId;
use warren_tests::{TestBroker, amqp_url};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
const DUPLICATES: &str = env!("CARGO_BIN_EXE_duplicate-jobs");

fn run(bin: &str, prefix: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("AMQP_URL", amqp_url())
        .env("WARREN_QUEUE_PREFIX", prefix)
        .output()
        .expect("run the worker binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_prints_the_id_of_the_confirmed_job_and_a_worker_runs_it() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let output = run(
        WORKER,
        broker.prefix(),
        &["enqueue", "record", r#"{"seq": 42, "sleep_ms": 0}"#],
    );
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let id: JobId = text(&output.stdout).trim().parse().expect("stdout is the job id");

    assert_eq!(broker.ready(&queue).await, 1);
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| line.starts_with("done seq=42 "))
        .await;
    worker.wait_for_stderr(&id.to_string(), Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_rejects_unknown_jobs_and_bad_json_without_publishing() {
    let broker = TestBroker::new().await;

    let unknown = run(WORKER, broker.prefix(), &["enqueue", "resize", "{}"]);
    assert_eq!(unknown.status.code(), Some(1));
    let error = text(&unknown.stderr);
    assert!(error.contains("no job named `resize`"), "{error}");
    assert!(error.contains("record"), "lists the registered jobs: {error}");

    let bad_json = run(WORKER, broker.prefix(), &["enqueue", "record", r#"{"seq": "x"}"#]);
    assert_eq!(bad_json.status.code(), Some(1));
    let error = text(&bad_json.stderr);
    assert!(error.contains("invalid JSON for job `record`"), "{error}");

    assert_eq!(broker.ready(&broker.queue("work")).await, 0, "nothing was published");
}

#[test]
fn enqueue_with_the_broker_down_fails_clearly() {
    let output = Command::new(WORKER)
        .args(["enqueue", "record", r#"{"seq": 1, "sleep_ms": 0}"#])
        .env("AMQP_URL", "amqp://guest:secret@127.0.0.1:1/%2f")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let error = text(&output.stderr);
    assert!(
        error.contains("could not connect to RabbitMQ at amqp://guest:***@127.0.0.1:1/%2f"),
        "{error}"
    );
    assert!(!error.contains("secret"), "the password is not printed: {error}");
}

#[test]
fn jobs_lists_every_registered_job_with_its_options() {
    let output = Command::new(WORKER).arg("jobs").output().expect("run");
    assert!(output.status.success());
    let listing = text(&output.stdout);
    for name in ["record", "fail", "panic", "hang", "follow_up", "plain"] {
        assert!(
            listing.lines().any(|line| line.starts_with(name)),
            "{name} missing from:\n{listing}"
        );
    }
    let hang = listing.lines().find(|line| line.starts_with("hang")).expect("hang");
    assert!(hang.contains(" 1s "), "{hang}");
    let plain = listing.lines().find(|line| line.starts_with("plain")).expect("plain");
    assert!(plain.contains(" text ") && plain.contains(" yes "), "{plain}");
    // Columns are aligned: read a row where the header puts RETRIES.
    let header = listing.lines().next().expect("header");
    let at = header.find("RETRIES  BACKOFF").expect("RETRIES and BACKOFF columns");
    let retries_and_backoff = |name: &str| {
        let line = listing
            .lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .expect(name);
        line[at..]
            .split_whitespace()
            .take(2)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(retries_and_backoff("always_fail"), ["2", "300ms"], "the job's own");
    assert_eq!(retries_and_backoff("record"), ["3", "10s"], "the defaults");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_with_a_delay_holds_the_job_on_the_broker_until_it_is_due() {
    let broker = TestBroker::new().await;
    let output = run(
        WORKER,
        broker.prefix(),
        &["enqueue", "record", r#"{"seq": 43, "sleep_ms": 0}"#, "--delay", "2s"],
    );
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let hold = format!("{}.retry.2000", broker.queue("work"));
    assert_eq!(broker.ready(&hold).await, 1, "the job waits in the 2 s hold queue");
    assert_eq!(broker.ready(&broker.queue("work")).await, 0);

    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    worker
        .wait_for_stdout(1, Duration::from_secs(15), |line| line.starts_with("done seq=43 "))
        .await;

    let too_long = run(
        WORKER,
        broker.prefix(),
        &["enqueue", "record", "{}", "--delay", "45days"],
    );
    assert_eq!(too_long.status.code(), Some(2), "a usage error");
}

#[test]
fn bad_arguments_exit_2_with_a_usage_error() {
    let output = Command::new(WORKER)
        .args(["work", "--ack", "sometimes"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let error = text(&output.stderr);
    assert!(error.contains("invalid value 'sometimes' for '--ack <ACK>'"), "{error}");

    let output = Command::new(WORKER)
        .args(["work", "--prefetch", "0"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
}

#[test]
fn two_jobs_with_one_name_stop_the_worker_from_starting_and_both_are_named() {
    let output = Command::new(DUPLICATES)
        .args(["work"])
        .env("AMQP_URL", amqp_url())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let error = text(&output.stderr);
    assert!(error.contains("job name `send_email` is registered twice"), "{error}");
    assert!(error.contains("duplicate_jobs::billing::SendEmail"), "{error}");
    assert!(error.contains("duplicate_jobs::marketing::SendEmail"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_queues_consumes_the_queues_of_all_its_jobs() {
    let broker = TestBroker::new().await;
    let worker = broker.worker(WORKER, &["work", "--workers", "1"]);
    broker.wait_for_consumers(&broker.queue("work"), 1).await;
    broker.wait_for_consumers(&broker.queue("plain"), 1).await;
    broker
        .client()
        .enqueue(Record { seq: 1, sleep_ms: 0 })
        .await
        .expect("enqueue");
    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| line.starts_with("done seq=1 "))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_job_id_name_queue_and_attempt_as_fields() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let worker = broker.worker(
        WORKER,
        &["work", "--queues", "work", "--workers", "1", "--log-format", "json"],
    );
    broker.wait_for_consumers(&queue, 1).await;
    let id = broker
        .client()
        .enqueue(Record { seq: 1, sleep_ms: 0 })
        .await
        .expect("enqueue");
    worker.wait_for_stderr("job done", Duration::from_secs(10)).await;

    let done = worker
        .stderr()
        .into_iter()
        .find(|line| line.contains("job done"))
        .expect("a line");
    let line: serde_json::Value = serde_json::from_str(&done).expect("a JSON log line");
    let span = &line["span"];
    assert_eq!(span["job.id"], id.to_string(), "{line}");
    assert_eq!(span["job.name"], "record", "{line}");
    assert_eq!(span["queue"], queue.as_str(), "{line}");
    assert_eq!(span["attempt"], 1, "{line}");
}

#[test]
fn jobs_piped_into_a_reader_that_stops_early_exits_quietly() {
    // As `worker jobs | head -1` does: the reader is gone before the list is written.
    let mut child = Command::new(WORKER)
        .arg("jobs")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
