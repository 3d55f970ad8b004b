//! What an operator sees of a running worker: `/metrics` counts the jobs it
//! ran, `/health/ready` says when it cannot take work, and `--log-format
//! json` stays one JSON object per line, panics included.

use crate::jobs;

use std::time::Duration;

use jobs::{Fail, Flaky, Panic, Record};
use warren_tests::{Proxy, TestBroker, TestVhost, WorkerProcess, http_get, sample};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
const WITHIN: Duration = Duration::from_secs(30);

/// The address the worker serves metrics at, from its log line.
async fn metrics_addr(worker: &WorkerProcess) -> String {
    worker.wait_for_stderr("serving /metrics", WITHIN).await;
    let line = worker
        .stderr()
        .into_iter()
        .find(|line| line.contains("serving /metrics"))
        .expect("the line waited for");
    let addr = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {line}"));
    addr.trim_matches('"').to_owned()
}

/// Polls `path` until it answers `status` (the bound only fails the test
/// instead of hanging it); returns the body.
async fn await_status(addr: &str, path: &str, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let (got, body) = http_get(addr, path).await;
        if got == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} still answers {got} ({body}), not {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `/metrics` until `done` holds of the page; returns it.
async fn await_metrics(addr: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let (status, page) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200, "{page}");
        if done(&page) {
            return page;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}; /metrics:\n{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_jobs_the_worker_ran_and_probes_answer_while_it_consumes() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let worker = broker.worker(
        WORKER,
        &[
            "work",
            "--queues",
            "work",
            "--workers",
            "1",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    );
    let addr = metrics_addr(&worker).await;
    await_status(&addr, "/health/ready", 200).await;
    let client = broker.client();
    for seq in 0..5 {
        client.enqueue(Record { seq, sleep_ms: 0 }).await.expect("enqueue");
    }
    for _ in 0..2 {
        client
            .enqueue(Fail {
                message: "card declined".into(),
            })
            .await
            .expect("enqueue");
    }
    client.enqueue(Flaky { seq: 9, failures: 1 }).await.expect("enqueue");

    let succeeded = |page: &str, job: &str| {
        sample(
            page,
            "warren_jobs_total",
            &[("job", job), ("queue", &queue), ("outcome", "succeeded")],
        )
    };
    let page = await_metrics(&addr, "every job ended", |page| {
        succeeded(page, "record") == Some(5.0)
            && succeeded(page, "flaky") == Some(1.0)
            && sample(page, "warren_jobs_total", &[("job", "fail"), ("outcome", "dead")]) == Some(2.0)
    })
    .await;

    let count = |job: &str, outcome: &str| {
        sample(
            &page,
            "warren_jobs_total",
            &[("job", job), ("queue", &queue), ("outcome", outcome)],
        )
    };
    assert_eq!(count("fail", "failed"), Some(2.0), "{page}");
    assert_eq!(
        sample(
            &page,
            "warren_jobs_total",
            &[("job", "fail"), ("outcome", "dead"), ("reason", "failed")]
        ),
        Some(2.0),
        "{page}"
    );
    assert_eq!(count("flaky", "failed"), Some(1.0), "{page}");
    assert_eq!(count("flaky", "retried"), Some(1.0), "{page}");
    assert_eq!(count("record", "failed"), None, "{page}");
    // Attempts: 5 records, 2 fails, 2 of flaky.
    assert_eq!(
        sample(&page, "warren_job_duration_seconds_count", &[("queue", &queue)]),
        Some(9.0),
        "{page}"
    );
    assert!(
        sample(
            &page,
            "warren_job_duration_seconds_bucket",
            &[("job", "record"), ("le", "+Inf")]
        ) == Some(5.0),
        "{page}"
    );
    assert!(
        sample(&page, "warren_job_queue_wait_seconds_count", &[("job", "record")]).is_some(),
        "{page}"
    );
    assert_eq!(
        sample(&page, "warren_jobs_in_flight", &[("queue", &queue)]),
        Some(0.0),
        "{page}"
    );
    assert_eq!(sample(&page, "warren_connection_up", &[]), Some(1.0), "{page}");
    // The retry was published by the worker's publisher, not enqueued: no enqueue counted.
    assert_eq!(sample(&page, "warren_enqueued_total", &[]), None, "{page}");

    assert_eq!(http_get(&addr, "/health/live").await.0, 200);
    assert_eq!(http_get(&addr, "/health/ready").await, (200, "ready\n".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_worker_drains_and_liveness_holds() {
    let broker = TestBroker::new().await;
    let worker = broker.worker(
        WORKER,
        &[
            "work",
            "--queues",
            "work",
            "--workers",
            "1",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    );
    let addr = metrics_addr(&worker).await;
    await_status(&addr, "/health/ready", 200).await;
    // Holds the drain open for as long as the test looks.
    broker
        .client()
        .enqueue(Record {
            seq: 1,
            sleep_ms: 60_000,
        })
        .await
        .expect("enqueue");
    worker
        .wait_for_stdout(1, WITHIN, |line| line.starts_with("ran seq=1 "))
        .await;
    assert_eq!(
        sample(&http_get(&addr, "/metrics").await.1, "warren_jobs_in_flight", &[]),
        Some(1.0)
    );

    worker.terminate();
    worker.wait_for_stderr("draining", WITHIN).await;
    let (status, reason) = http_get(&addr, "/health/ready").await;
    assert_eq!(status, 503);
    assert!(reason.starts_with("not ready: draining"), "{reason}");
    assert_eq!(http_get(&addr, "/health/live").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_connection_is_lost_and_returns_with_it() {
    let vhost = TestVhost::new();
    let proxy = Proxy::start().await;
    let worker = WorkerProcess::spawn(
        std::process::Command::new(WORKER)
            .args([
                "work",
                "--queues",
                "work",
                "--workers",
                "1",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .env("AMQP_URL", proxy.url(vhost.name())),
    );
    let addr = metrics_addr(&worker).await;
    await_status(&addr, "/health/ready", 200).await;

    // Reset, and no way back until restored: the worker stays reconnecting.
    proxy.cut();
    proxy.reset();
    // First its consumers stop, then the supervisor finds the connection gone.
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let (status, reason) = http_get(&addr, "/health/ready").await;
        if reason.starts_with("not ready: not connected to RabbitMQ") {
            assert_eq!(status, 503);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}: {reason}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http_get(&addr, "/health/live").await.0, 200);
    assert_eq!(
        sample(&http_get(&addr, "/metrics").await.1, "warren_connection_up", &[]),
        Some(0.0)
    );

    proxy.restore();
    await_status(&addr, "/health/ready", 200).await;
    assert_eq!(
        sample(&http_get(&addr, "/metrics").await.1, "warren_connection_up", &[]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_stay_json_through_a_panic_with_durations_as_numbers_and_dead_jobs_at_error() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let mut worker = broker.worker(
        WORKER,
        &["work", "--queues", "work", "--workers", "1", "--log-format", "json"],
    );
    broker.wait_for_consumers(&queue, 1).await;
    let client = broker.client();
    client.enqueue(Record { seq: 1, sleep_ms: 0 }).await.expect("enqueue");
    client
        .enqueue(Panic {
            message: "index out of bounds".into(),
        })
        .await
        .expect("enqueue");
    broker.wait_for_ready(&format!("{queue}.dead"), 1, WITHIN).await;
    worker
        .wait_for_stderr("moving it to the dead-letter queue", WITHIN)
        .await;
    worker.terminate();
    assert!(worker.wait_exit(WITHIN).await.success(), "{:#?}", worker.stderr());

    let events: Vec<serde_json::Value> = worker
        .stderr()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}")))
        .collect();
    let with_message = |message: &str| {
        events
            .iter()
            .filter(|event| event["fields"]["message"] == message)
            .collect::<Vec<_>>()
    };
    let panicked = with_message("panicked");
    assert_eq!(panicked.len(), 1, "{events:#?}");
    assert_eq!(panicked[0]["level"], "ERROR");
    assert_eq!(panicked[0]["fields"]["panic"], "index out of bounds");
    assert_eq!(panicked[0]["span"]["job.name"], "panic", "{:#?}", panicked[0]);

    let done = with_message("job done");
    assert_eq!(done.len(), 1, "{events:#?}");
    assert!(done[0]["fields"]["duration_ms"].is_u64(), "{:#?}", done[0]);

    let dead = with_message("job failed for good; moving it to the dead-letter queue");
    assert_eq!(dead.len(), 1, "{events:#?}");
    assert_eq!(dead[0]["level"], "ERROR");
    assert_eq!(dead[0]["fields"]["reason"], "panic");

    let starting = with_message("worker starting");
    assert_eq!(starting[0]["fields"]["queues"], "work", "{:#?}", starting[0]);
}
