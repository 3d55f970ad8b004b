//! `rabbitmqctl close_all_connections` while a producer enqueues and a
//! worker consumes: both reconnect within seconds and every confirmed job
//! runs. In a vhost of its own, so tests beside it keep their connections.

use crate::jobs;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use jobs::{Fail, Record};
use warren::Client;
use warren_tests::{Proxy, TestVhost, WorkerProcess, done_seqs, eventually};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
const JOBS: u32 = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_all_connections_loses_no_job_and_both_sides_recover() {
    let vhost = TestVhost::new();
    let url = vhost.url();
    let client = Client::builder(&url)
        .connection_name("recovery test producer")
        .connect()
        .await
        .expect("connect");
    let mut worker = WorkerProcess::spawn(
        Command::new(WORKER)
            .args(["work", "--queues", "work", "--workers", "2", "--prefetch", "5"])
            .env("AMQP_URL", &url),
    );
    eventually(Duration::from_secs(30), "the worker consumes", || {
        vhost.queue("work").is_some_and(|(_, consumers)| consumers == 2)
    })
    .await;

    let confirmed = Arc::new(AtomicU32::new(0));
    // The producer stops after 150 jobs until the connections are closed,
    // so that the close always falls mid-run, however busy the machine.
    let (closed, closed_seen) = tokio::sync::oneshot::channel::<()>();
    let producer = tokio::spawn({
        let (client, confirmed) = (client.clone(), Arc::clone(&confirmed));
        async move {
            let mut failed = Vec::new();
            let mut closed_seen = Some(closed_seen);
            for seq in 0..JOBS {
                if seq == 150
                    && let Some(closed_seen) = closed_seen.take()
                {
                    let _ = closed_seen.await;
                }
                match client.enqueue(Record { seq, sleep_ms: 5 }).await {
                    Ok(_) => {
                        confirmed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => failed.push((seq, error.to_string())),
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            failed
        }
    });
    eventually(Duration::from_secs(30), "150 jobs are confirmed", || {
        confirmed.load(Ordering::Relaxed) >= 150
    })
    .await;
    let closed_at = Instant::now();
    vhost.close_all_connections();
    let _ = closed.send(());

    let failed = producer.await.expect("producer");
    assert!(failed.is_empty(), "enqueues that failed: {failed:?}");
    assert_eq!(confirmed.load(Ordering::Relaxed), JOBS);
    let recovered_in = closed_at.elapsed();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = done_seqs(&worker.stdout());
        if done.len() == JOBS as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {JOBS} jobs done; missing: {:?}; stderr: {:#?}",
            done.len(),
            (0..JOBS).filter(|seq| !done.contains(seq)).take(20).collect::<Vec<_>>(),
            worker.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(worker.running(), "the worker never exits on its own");
    worker
        .wait_for_stderr("reconnected to RabbitMQ", Duration::from_secs(60))
        .await;
    eventually(Duration::from_secs(10), "the queue is empty", || {
        vhost
            .queue("work")
            .is_some_and(|(messages, consumers)| messages == 0 && consumers == 2)
    })
    .await;
    eprintln!("producer finished {recovered_in:?} after the close");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_several_urls_the_worker_and_the_client_use_the_first_node_that_answers() {
    let vhost = TestVhost::new();
    // Nothing listens on port 1: the first "node" is down.
    let urls = format!("amqp://guest:guest@127.0.0.1:1/{},{}", vhost.name(), vhost.url());
    let client = Client::connect(&urls).await.expect("the second URL answers");
    let worker = WorkerProcess::spawn(
        Command::new(WORKER)
            .args(["work", "--queues", "work", "--workers", "1"])
            .env("AMQP_URL", &urls),
    );
    client.enqueue(Record { seq: 7, sleep_ms: 0 }).await.expect("enqueue");
    worker
        .wait_for_stdout(1, Duration::from_secs(20), |line| line.starts_with("done seq=7 "))
        .await;
    let starting = worker
        .stderr()
        .into_iter()
        .find(|line| line.contains("worker starting"))
        .expect("logged");
    assert!(
        starting.contains("guest:***@127.0.0.1:1/"),
        "both URLs are logged, passwords hidden: {starting}"
    );
    client.close().await;
}

/// Enqueues seq `first..first + count` at once, each timed.
async fn enqueue_concurrently(client: &Client, first: u32, count: u32) -> Vec<(Result<(), String>, Duration)> {
    let mut tasks = tokio::task::JoinSet::new();
    for seq in first..first + count {
        let client = client.clone();
        tasks.spawn(async move {
            let started = Instant::now();
            let result = client.enqueue(Record { seq, sleep_ms: 0 }).await;
            (result.map(|_| ()).map_err(|error| error.to_string()), started.elapsed())
        });
    }
    let mut results = Vec::new();
    while let Some(result) = tasks.join_next().await {
        results.push(result.expect("enqueue task"));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_silent_network_cut_enqueues_fail_within_the_recovery_timeout() {
    let vhost = TestVhost::new();
    let proxy = Proxy::start().await;
    let client = Client::builder(proxy.url(vhost.name()))
        .recovery_timeout(Duration::from_secs(3))
        .connect()
        .await
        .expect("connect through the proxy");
    client
        .enqueue(Record { seq: 1, sleep_ms: 0 })
        .await
        .expect("enqueue before the cut");

    proxy.cut();
    let results = enqueue_concurrently(&client, 2, 4).await;
    for (result, took) in &results {
        let error = result.as_ref().expect_err("no broker to confirm it");
        assert!(error.contains("did not answer"), "{error}");
        // Each enqueue has its own 3 s, not one after the other.
        assert!(*took < Duration::from_secs(6), "failed after {took:?}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_silent_network_cut_the_client_fails_over_to_the_next_node() {
    let vhost = TestVhost::new();
    let proxy = Proxy::start().await;
    // The proxy is the first node; the broker itself, the second.
    let urls = format!("{},{}", proxy.url(vhost.name()), vhost.url());
    let client = Client::builder(&urls)
        .recovery_timeout(Duration::from_secs(15))
        .connect()
        .await
        .expect("connect");
    client
        .enqueue(Record { seq: 1, sleep_ms: 0 })
        .await
        .expect("enqueue before the cut");

    proxy.cut();
    let results = enqueue_concurrently(&client, 2, 4).await;
    for (result, took) in &results {
        assert!(result.is_ok(), "{result:?} after {took:?}");
        assert!(*took < Duration::from_secs(15), "took {took:?}");
    }
    let worker = WorkerProcess::spawn(
        Command::new(WORKER)
            .args(["work", "--queues", "work", "--workers", "1"])
            .env("AMQP_URL", vhost.url()),
    );
    eventually(Duration::from_secs(20), "all five jobs ran", || {
        (1..=5).all(|seq| done_seqs(&worker.stdout()).contains(&seq))
    })
    .await;
}

/// A connection reset while enqueues are in flight (a node or a load
/// balancer dying): lapin fails the publishes it still holds before it
/// marks the connection closed, and each of them must be published again
/// on a new connection, never returned to the caller as an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueues_in_flight_when_the_connection_is_reset_are_published_again() {
    // More than the sockets on both sides of the proxy buffer, so that
    // most of it still waits in the client when the reset comes.
    const JOBS: usize = 24;
    const BODY: usize = 1024 * 1024;
    let vhost = TestVhost::new();
    let proxy = Proxy::start().await;
    let client = Client::builder(proxy.url(vhost.name()))
        .recovery_timeout(Duration::from_secs(60))
        .connect()
        .await
        .expect("connect through the proxy");
    client
        .enqueue(Fail {
            message: "before".into(),
        })
        .await
        .expect("enqueue before the reset");

    proxy.hold();
    let mut enqueues = tokio::task::JoinSet::new();
    for n in 0..JOBS {
        let client = client.clone();
        let message = format!("{n}{}", "x".repeat(BODY));
        enqueues.spawn(async move {
            client
                .enqueue(Fail { message })
                .await
                .map_err(|error| error.to_string())
        });
    }
    eventually(
        Duration::from_secs(30),
        "the client writes more than the proxy reads",
        || proxy.holding_back(),
    )
    .await;
    proxy.reset();

    let mut failures = Vec::new();
    while let Some(result) = enqueues.join_next().await {
        if let Err(error) = result.expect("enqueue task") {
            failures.push(error);
        }
    }
    assert_eq!(
        failures,
        Vec::<String>::new(),
        "every enqueue caught by the reset is published again"
    );
    // A publish caught by the reset may have reached the broker before it:
    // a duplicate is allowed, a missing job is not.
    let (ready, _) = vhost.queue("work").expect("the job queue exists");
    assert!(
        ready as usize > JOBS,
        "{ready} jobs in the queue, {} confirmed",
        JOBS + 1
    );
    client.close().await;
}
