//! The dead-letter commands read what poison messages leave in `q.dead`:
//! on main before the parser fix, `dead list` and `dead retry --all` hung
//! on a dead letter whose `type` was not UTF-8, and a header nested
//! thousands of levels deep aborted any reader.

use std::time::Duration;

use warren_tests::raw_amqp::{Nesting, RawProperties, RawPublisher, field, nested, table};
use warren_tests::{TestBroker, run_worker_command, text};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// Runs a one-shot command of the worker binary, failing the test if it
/// has not finished within 30 s.
async fn command(prefix: &str, args: &'static [&'static str]) -> std::process::Output {
    let prefix = prefix.to_owned();
    let run = tokio::task::spawn_blocking(move || run_worker_command(WORKER, &prefix, args));
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap_or_else(|_| panic!("`{}` did not finish within 30 s", args.join(" ")))
        .expect("the command ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_list_and_retry_read_the_dead_letters_of_poison_messages() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let dead = format!("{queue}.dead");
    let mut worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    broker.wait_for_consumers(&queue, 1).await;

    let mut publisher = RawPublisher::connect("/").await.expect("raw connection");
    let body = br#"{"seq": 1, "sleep_ms": 0}"#;
    let deep = RawProperties {
        headers: Some(table(&[(b"deep", nested(2_000, Nesting::Array, &field::void()))])),
        ..RawProperties::job(b"record")
    };
    publisher
        .publish(&queue, &deep, body)
        .await
        .expect("publish the deep one");
    let bad_type = RawProperties::job(b"rec\xff\xfeord");
    publisher
        .publish(&queue, &bad_type, body)
        .await
        .expect("publish the bad type");
    broker.wait_for_ready(&dead, 2, Duration::from_secs(20)).await;
    worker.terminate();
    assert!(worker.wait_exit(Duration::from_secs(20)).await.success());

    let listed = command(broker.prefix(), &["dead", "list"]).await;
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let rows = text(&listed.stdout);
    assert_eq!(
        rows.lines().filter(|row| row.contains("undecodable")).count(),
        2,
        "{rows}"
    );

    let retried = command(broker.prefix(), &["dead", "retry", "--all"]).await;
    assert!(retried.status.success(), "{}", text(&retried.stderr));
    assert_eq!(broker.ready(&dead).await, 0, "both left the dead-letter queue");
    assert_eq!(broker.ready(&queue).await, 2, "both are back in their queue");
}
