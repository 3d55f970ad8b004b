//! Unique jobs: of many concurrent enqueues of one key, from several
//! connections and processes, exactly one is enqueued and the others get
//! its id; the key is free again once the job succeeded.

use crate::jobs;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use jobs::{Once, Record};
use warren::{Client, EnqueueOptions, Error, JobId};
use warren_tests::{TestBroker, amqp_url, count_starting, text};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// Enqueues `Once { seq }` for `seqs` with key `key`, all at once.
async fn enqueue_all(client: &Client, seqs: std::ops::Range<u32>, key: &str) -> Vec<Result<JobId, Option<JobId>>> {
    let enqueues = seqs.map(|seq| {
        let options = EnqueueOptions::new().unique_key(key);
        async move {
            client
                .enqueue_with(Once { seq }, options)
                .await
                .map_err(|error| error.duplicate_of())
        }
    });
    join_all(enqueues).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_a_hundred_concurrent_enqueues_of_one_key_one_runs_and_the_rest_get_its_id() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("unique");
    let other = Client::builder(amqp_url())
        .queue_prefix(broker.prefix())
        .connect()
        .await
        .expect("a second connection");
    // Other processes too: the generated binary's `enqueue --unique-key`.
    let cli: Vec<_> = (0..3)
        .map(|seq| {
            Command::new(WORKER)
                .args(["enqueue", "once", &format!(r#"{{"seq": {}}}"#, 1000 + seq)])
                .args(["--unique-key", "user-7"])
                .env("AMQP_URL", amqp_url())
                .env("WARREN_QUEUE_PREFIX", broker.prefix())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the CLI")
        })
        .collect();
    let (here, there) = tokio::join!(
        enqueue_all(broker.client(), 0..50, "user-7"),
        enqueue_all(&other, 50..100, "user-7")
    );
    let cli: Vec<Output> = tokio::task::block_in_place(|| {
        cli.into_iter()
            .map(|child| child.wait_with_output().expect("the CLI ends"))
            .collect()
    });

    let results: Vec<_> = here.into_iter().chain(there).collect();
    let enqueued: Vec<JobId> = results.iter().filter_map(|result| result.ok()).collect();
    let cli_enqueued = cli
        .iter()
        .filter(|output| !text(&output.stderr).contains("note: "))
        .count();
    assert_eq!(
        enqueued.len() + cli_enqueued,
        1,
        "exactly one enqueue wins: {results:?}"
    );
    let winner = match enqueued.first() {
        Some(&id) => id,
        None => text(&cli[0].stdout).trim().parse().expect("an id"),
    };
    for result in &results {
        assert!(
            *result == Ok(winner) || *result == Err(Some(winner)),
            "every other enqueue names the winner {winner}: {result:?}"
        );
    }
    for output in &cli {
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(
            text(&output.stdout).trim(),
            winner.to_string(),
            "{}",
            text(&output.stderr)
        );
    }
    assert_eq!(broker.ready(&queue).await, 1, "one job is on the queue");

    // Run it: once it succeeded, the key is free again.
    let worker = broker.worker(WORKER, &["work", "--queues", "unique", "--workers", "1"]);
    worker
        .wait_for_stdout(1, Duration::from_secs(30), |line| line.starts_with("unique seq="))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        let again = EnqueueOptions::new().unique_key("user-7");
        match broker.client().enqueue_with(Once { seq: 200 }, again).await {
            Ok(id) => break id,
            Err(error) => assert_eq!(error.duplicate_of(), Some(winner), "{error}"),
        }
        assert!(Instant::now() < deadline, "the key was not released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(second, winner);
    worker
        .wait_for_stdout(2, Duration::from_secs(30), |line| line.starts_with("unique seq="))
        .await;
    assert_eq!(
        count_starting(&worker.stdout(), "unique seq="),
        2,
        "{:?}",
        worker.stdout()
    );
    assert!(worker.stdout().contains(&"unique seq=200".to_owned()));
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_key_for_a_job_that_is_not_unique_is_refused() {
    let broker = TestBroker::new().await;
    let refused = broker
        .client()
        .enqueue_with(Record { seq: 1, sleep_ms: 0 }, EnqueueOptions::new().unique_key("k"))
        .await
        .expect_err("not a unique job");
    assert!(matches!(refused.error(), Error::NotUnique { .. }), "{refused}");
    assert_eq!(broker.ready(&broker.queue("work")).await, 0);
}
