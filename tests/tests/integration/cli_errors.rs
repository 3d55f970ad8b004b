//! What the generated binary says when it cannot do what it was asked: one
//! line per failure (`error: …`, or one JSON event with `--log-format
//! json`), refusals of what cannot be meant, durations in the words the
//! user wrote, and output into a reader that has gone.

use std::process::{Command, Output, Stdio};

use warren_tests::{TestBroker, amqp_url, list_queue, run_worker_command, text};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn run(prefix: &str, args: &[&str]) -> Output {
    run_worker_command(WORKER, prefix, args)
}

/// The lines of stderr that are not the worker's start-up log.
fn said(output: &Output) -> Vec<String> {
    text(&output.stderr)
        .lines()
        .filter(|line| !line.contains(" INFO ") && !line.contains(r#""level":"INFO""#))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_is_said_once_in_the_log_format_asked_for() {
    let broker = TestBroker::new().await;
    let failures: [&[&str]; 3] = [
        &["enqueue", "resize", "{}"],
        &["enqueue", "record", r#"{"seq": "x"}"#],
        &["--amqp-url", "amqp//127.0.0.1", "enqueue", "record", "{}"],
    ];
    for args in failures {
        let output = run(broker.prefix(), args);
        assert!(!output.status.success(), "{args:?}");
        let lines = said(&output);
        assert_eq!(lines.len(), 1, "{args:?}: {lines:#?}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {lines:#?}");

        let json: Vec<&str> = [&["--log-format", "json"], args].concat();
        let output = run(broker.prefix(), &json);
        let lines = said(&output);
        assert_eq!(lines.len(), 1, "{json:?}: {lines:#?}");
        let event: serde_json::Value = serde_json::from_str(&lines[0]).expect("one JSON event");
        assert_eq!(event["level"], "ERROR", "{event}");
        assert_eq!(
            event["fields"]["exit_code"],
            output.status.code().expect("an exit code"),
            "{event}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_no_job_uses_is_refused_unless_allowed_and_nothing_is_declared() {
    let broker = TestBroker::new().await;
    let output = run(broker.prefix(), &["work", "--queues", "work,wrok"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let lines = said(&output);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("no registered job uses queue `wrok`"), "{lines:#?}");
    assert!(
        lines[0].contains("--allow-unknown-queues"),
        "says how to consume it anyway: {lines:#?}"
    );
    for queue in ["wrok", "wrok.dead", "work", "work.dead"] {
        let queue = broker.queue(queue);
        assert_eq!(list_queue(&queue), None, "`{queue}` was declared");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_too_long_is_refused_in_the_words_the_user_wrote() {
    let broker = TestBroker::new().await;
    let output = run(
        broker.prefix(),
        &["enqueue", "record", r#"{"seq": 1, "sleep_ms": 0}"#, "--delay", "40days"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let error = text(&output.stderr);
    assert!(
        error.contains("cannot delay a job by 40days: the longest delay is 30days"),
        "{error}"
    );
    assert_eq!(list_queue(&broker.queue("work")), None, "nothing was published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_whose_reader_has_gone_still_enqueues_and_exits_0() {
    let broker = TestBroker::new().await;
    // As `worker enqueue … | true` does: the reader is gone before the id is written.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let output = Command::new(WORKER)
        .args(["enqueue", "record", r#"{"seq": 1, "sleep_ms": 0}"#])
        .env("AMQP_URL", amqp_url())
        .env("WARREN_QUEUE_PREFIX", broker.prefix())
        .stdout(Stdio::from(writer))
        .output()
        .expect("run");
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(broker.ready(&broker.queue("work")).await, 1, "the job was enqueued");
}
