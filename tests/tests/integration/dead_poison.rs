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

/// Found by the fuzz target and a review: bad UTF-8 that reads as more than
/// 255 bytes of U+FFFD panicked the parser's thread, leaving the worker
/// running with no consumer; headers under warren's names but 4 KB each
/// made a retry too large for the worker's publishing frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_bad_utf8_and_oversized_warren_headers_neither_stall_nor_loop_a_worker() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let dead = format!("{queue}.dead");
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "1"]);
    broker.wait_for_consumers(&queue, 1).await;
    let mut publisher = RawPublisher::connect("/").await.expect("raw connection");

    let long_bad_type = RawProperties::job(&[&[b'r'; 200][..], &[0xff; 30][..]].concat());
    publisher
        .publish(&queue, &long_bad_type, br#"{"seq": 1, "sleep_ms": 0}"#)
        .await
        .expect("publish");
    let long_bad_name = RawProperties {
        headers: Some(table(&[(&[0xfe; 100][..], field::void())])),
        ..RawProperties::job(b"record")
    };
    publisher
        .publish(&queue, &long_bad_name, br#"{"seq": 2, "sleep_ms": 0}"#)
        .await
        .expect("publish");
    let big = "9".repeat(4_100);
    let names: [&[u8]; 9] = [
        b"warren-retries",
        b"warren-backoff-ms",
        b"warren-first-failure-at",
        b"warren-unknown-since",
        b"warren-dead-reason",
        b"warren-dead-at",
        b"warren-dead-queue",
        b"warren-dead-worker",
        b"warren-last-error",
    ];
    let oversized = RawProperties {
        headers: Some(table(&names.map(|name| (name, field::long_string(big.as_bytes()))))),
        ..RawProperties::job(b"always_fail")
    };
    publisher
        .publish(&queue, &oversized, br#"{"seq": 3}"#)
        .await
        .expect("publish");
    for seq in 4..=6 {
        publisher
            .publish(
                &queue,
                &RawProperties::job(b"record"),
                format!(r#"{{"seq": {seq}, "sleep_ms": 0}}"#).as_bytes(),
            )
            .await
            .expect("publish");
    }

    // The bad type and the always failing job end in `.dead`, the others run.
    broker.wait_for_ready(&dead, 2, Duration::from_secs(60)).await;
    warren_tests::eventually(Duration::from_secs(20), "the good jobs ran", || {
        let done = warren_tests::done_seqs(&worker.stdout());
        [2, 4, 5, 6].iter().all(|seq| done.contains(seq))
    })
    .await;
    let reconnects = worker
        .stderr()
        .iter()
        .filter(|line| line.contains("lost the connection to RabbitMQ"))
        .count();
    assert_eq!(
        reconnects,
        0,
        "no frame too large closed the publisher: {:#?}",
        worker.stderr()
    );
    let attempts = worker
        .stdout()
        .iter()
        .filter(|line| line.starts_with("attempt seq=3 "))
        .count();
    assert_eq!(attempts, 3, "the always failing job ran its 3 attempts once each");
}
