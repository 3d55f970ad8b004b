//! Issue 13, items 4–8: what a worker does when the broker will not store a
//! job's next step, when an `ack none` drain runs out of time, when asked
//! for more channels than the broker allows, when the network stalls
//! between two signals, and when a job it acknowledged is lost.

use crate::jobs;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use jobs::{Flaky, Record};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use warren::{Client, EnqueueOptions, JobId};
use warren_tests::{Proxy, TestBroker, TestVhost, WorkerProcess, eventually, list_queue, rabbitmqctl, seqs};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// A worker of the test binary on `url` (a test vhost's, or a proxy's).
fn worker_on(url: &str, args: &[&str]) -> WorkerProcess {
    WorkerProcess::spawn(Command::new(WORKER).args(args).env("AMQP_URL", url))
}

/// How many times the handler of `Flaky { seq, .. }` ran.
fn runs(worker: &WorkerProcess, seq: u32) -> usize {
    let tag = format!("attempt seq={seq} ");
    worker.stdout().iter().filter(|line| line.starts_with(&tag)).count()
}

/// `text` without the separators a log may put into a number (`3,072`).
fn digits_joined(text: &str) -> String {
    text.chars().filter(|c| !matches!(c, ',' | '_' | '\'')).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_retry_cannot_be_stored_waits_and_does_not_run_again() {
    const JOBS: u32 = 3;
    let vhost = TestVhost::new();
    // Room for the job queue and its dead-letter queue, none for a hold queue.
    rabbitmqctl(&["set_vhost_limits", "-p", vhost.name(), r#"{"max-queues": 2}"#]);
    let client = Client::connect(&vhost.url()).await.expect("connect");
    let worker = worker_on(&vhost.url(), &["work", "--queues", "work", "--workers", "1"]);
    eventually(Duration::from_secs(30), "the worker consumes", || {
        vhost.queue("work").is_some_and(|(_, consumers)| consumers == 1)
    })
    .await;
    let mut ids = Vec::new();
    for seq in 1..=JOBS {
        // Fails its first attempt; its retry, due 10-20 s later, needs a
        // hold queue until then (once due, it would go straight to `work`).
        let options = EnqueueOptions::new().backoff(Duration::from_secs(20));
        let job = Flaky { seq, failures: 1 };
        ids.push(client.enqueue_with(job, options).await.expect("enqueue"));
    }

    // One line per back-off, each in the job's span (so with its id) and
    // naming the broker's reason: two lines of every job mean each waited
    // at least once.
    let backoff_lines = |id: &JobId| {
        let id = id.to_string();
        worker
            .stderr()
            .iter()
            .filter(|line| line.contains(&id) && line.contains("limit"))
            .count()
    };
    eventually(
        Duration::from_secs(45),
        "every job logged two back-offs naming the queue limit",
        || ids.iter().all(|id| backoff_lines(id) >= 2),
    )
    .await;
    for seq in 1..=JOBS {
        assert_eq!(
            runs(&worker, seq),
            1,
            "job {seq} waited for its retry to be stored, not re-run: {:#?}\nstderr: {:#?}",
            worker.stdout(),
            worker.stderr()
        );
    }
    let stderr = worker.stderr();
    assert!(
        !stderr
            .iter()
            .any(|line| line.contains("already exists with other settings")),
        "a queue limit is not an argument mismatch: {stderr:#?}"
    );

    rabbitmqctl(&["clear_vhost_limits", "-p", vhost.name()]);
    eventually(Duration::from_secs(45), "every job is done", || {
        let out = worker.stdout();
        (1..=JOBS).all(|seq| out.iter().any(|line| *line == format!("done seq={seq}")))
    })
    .await;
    eventually(Duration::from_secs(10), "nothing is left on the broker", || {
        vhost.queue("work").is_some_and(|(messages, _)| messages == 0)
            && vhost.queue("work.dead").is_some_and(|(messages, _)| messages == 0)
    })
    .await;
    for seq in 1..=JOBS {
        assert_eq!(
            runs(&worker, seq),
            2,
            "job {seq}: the failed attempt and the retry: {:#?}",
            worker.stdout()
        );
    }
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_none_drain_runs_or_names_every_job_pushed_to_it() {
    const JOBS: u32 = 1000;
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let mut worker = broker.worker(
        WORKER,
        &[
            "work",
            "--queues",
            "work",
            "--workers",
            "2",
            "--prefetch",
            "100",
            "--ack",
            "none",
            "--shutdown-timeout",
            "1s",
        ],
    );
    broker.wait_for_consumers(&queue, 2).await;
    // Each job holds its slot for 3 s: past the shutdown timeout, so the
    // drain runs out of time with jobs still pushed to the workers.
    let ids = broker
        .client()
        .enqueue_many((0..JOBS).map(|seq| Record { seq, sleep_ms: 3000 }))
        .await
        .expect("enqueue");
    worker
        .wait_for_stdout(200, Duration::from_secs(20), |line| line.starts_with("ran "))
        .await;
    eventually(Duration::from_secs(10), "the broker pushed every job", || {
        list_queue(&queue).is_some_and(|q| q.messages == 0)
    })
    .await;

    worker.terminate();
    worker.wait_exit(Duration::from_secs(20)).await;

    let ran: BTreeSet<u32> = seqs(&worker.stdout(), "ran ").into_iter().collect();
    let stderr = worker.stderr();
    let lost_lines: Vec<&String> = stderr
        .iter()
        .filter(|line| line.contains("ERROR") && line.contains("lost"))
        .collect();
    let unaccounted: Vec<(u32, String)> = (0..JOBS)
        .zip(&ids)
        .filter(|(seq, _)| !ran.contains(seq))
        .map(|(seq, id)| (seq, id.to_string()))
        .filter(|(_, id)| !lost_lines.iter().any(|line| line.contains(id.as_str())))
        .collect();
    assert!(
        unaccounted.is_empty(),
        "{} jobs neither ran nor were logged as lost: {unaccounted:?}; {} ran; lost lines: {}",
        unaccounted.len(),
        ran.len(),
        lost_lines.len()
    );
    assert_eq!(
        list_queue(&queue).map(|q| q.messages),
        Some(0),
        "under `ack none` nothing returns to the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_workers_than_the_broker_has_channels_for_are_refused_at_start() {
    let broker = TestBroker::new().await;
    // 1,024 workers on each of three queues: 3,072 channels, where
    // RabbitMQ negotiates at most 2,047 per connection.
    let mut worker = broker.worker(
        WORKER,
        &[
            "work",
            "--queues",
            "work,plain,spare",
            "--allow-unknown-queues",
            "--workers",
            "1024",
        ],
    );
    let started = Instant::now();
    let mut consumers_seen = 0;
    while worker.is_running() && started.elapsed() < Duration::from_secs(10) {
        let listing = rabbitmqctl(&["list_consumers", "--quiet", "--no-table-headers", "queue_name"]);
        let ours = listing.lines().filter(|line| line.starts_with(broker.prefix())).count();
        consumers_seen = consumers_seen.max(ours);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !worker.is_running(),
        "still running after {:?}, {consumers_seen} consumers seen, {} lines logged so far",
        started.elapsed(),
        worker.stderr().len()
    );
    let status = worker.wait_exit(Duration::from_secs(5)).await;

    let stderr = worker.stderr();
    assert_eq!(status.code(), Some(2), "a usage error: {stderr:#?}");
    let about_channels: Vec<&String> = stderr
        .iter()
        .filter(|line| line.to_lowercase().contains("channel"))
        .collect();
    assert_eq!(about_channels.len(), 1, "one line says why: {stderr:#?}");
    let reason = digits_joined(about_channels[0]);
    assert!(
        reason.contains("3072") && reason.contains("2047"),
        "it says how many channels are needed and allowed: {}",
        about_channels[0]
    );
    assert!(stderr.len() < 20, "no flood: {stderr:#?}");
    assert!(
        !stderr.iter().any(|line| line.contains("worker consuming")),
        "no worker started: {stderr:#?}"
    );
    assert_eq!(consumers_seen, 0, "no consumer was started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_while_the_network_is_stalled() {
    let vhost = TestVhost::new();
    let proxy = Proxy::start().await;
    let mut worker = worker_on(
        &proxy.url(vhost.name()),
        &["work", "--queues", "work", "--workers", "1"],
    );
    eventually(Duration::from_secs(30), "the worker consumes", || {
        vhost.queue("work").is_some_and(|(_, consumers)| consumers == 1)
    })
    .await;

    proxy.cut();
    worker.terminate();
    // The drain has begun, and stalls: the broker answers nothing now.
    worker.wait_for_stderr("shutting down", Duration::from_secs(5)).await;
    let second = Instant::now();
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    let took = second.elapsed();

    assert!(
        took < Duration::from_secs(3),
        "exited {took:?} after the second signal; stderr: {:#?}",
        worker.stderr()
    );
    assert!(!status.success(), "a forced exit is not a clean one: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_lost_under_early_acks_is_logged_by_size_never_with_its_body() {
    const BODY_SIZE: usize = 100_000;
    let vhost = TestVhost::new();
    // The dead-letter queue refuses every message (a negative confirm), as
    // a full one with `reject-publish` does; a policy, so the worker's own
    // declaration of it still matches.
    rabbitmqctl(&[
        "set_policy",
        "-p",
        vhost.name(),
        "--apply-to",
        "queues",
        "refuse-dead-letters",
        r"^work\.dead$",
        r#"{"max-length": 0, "overflow": "reject-publish"}"#,
    ]);
    let worker = worker_on(
        &vhost.url(),
        &["work", "--queues", "work", "--workers", "1", "--ack", "early"],
    );
    eventually(Duration::from_secs(30), "the worker consumes", || {
        vhost.queue("work").is_some_and(|(_, consumers)| consumers == 1)
    })
    .await;

    // No job has this name: it goes to the dead-letter queue, which refuses
    // it, after the delivery was acknowledged.
    let id = JobId::new();
    let properties = BasicProperties::default()
        .with_type("no_such_job".into())
        .with_message_id(id.to_string().into())
        .with_delivery_mode(2);
    publish(&vhost.url(), "work", &vec![b'Z'; BODY_SIZE], properties).await;

    let id = id.to_string();
    eventually(Duration::from_secs(20), "the loss is logged", || {
        worker
            .stderr()
            .iter()
            .any(|line| line.contains(&id) && line.contains("lost"))
    })
    .await;
    let (stdout, stderr) = (worker.stdout(), worker.stderr());
    let with_body: Vec<usize> = stdout
        .iter()
        .chain(&stderr)
        .filter(|line| line.contains("ZZZZZZZZZZ"))
        .map(|line| line.len())
        .collect();
    assert!(
        with_body.is_empty(),
        "lines carrying the body, by length: {with_body:?}"
    );
    let lost = stderr
        .iter()
        .find(|line| line.contains(&id) && line.contains("lost"))
        .expect("the loss line");
    assert!(
        digits_joined(lost).contains(&BODY_SIZE.to_string()),
        "the loss names the body's size: {lost}"
    );
}

/// Publishes `body` to `queue` (declared durable, as warren does) in the
/// vhost of `url`, as a producer that knows nothing of warren, and waits for
/// the confirm.
async fn publish(url: &str, queue: &str, body: &[u8], properties: BasicProperties) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), FieldTable::default())
        .await
        .expect("declare");
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack(), "the broker refused the message");
    let _ = connection.close(200, "published".into()).await;
}
