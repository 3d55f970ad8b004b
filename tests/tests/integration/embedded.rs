//! Workers run from a program's own code, through `warren::Worker`: a
//! service with arguments and a server of its own, and workers started and
//! stopped in this very process through their handle.

use crate::jobs;

use std::io::BufRead;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jobs::Record;
use warren::prelude::*;
use warren::{Exit, Worker, WorkerBuilder, WorkerError};
use warren_tests::{TestBroker, WorkerProcess, amqp_url, eventually, list_queue};

const EMBEDDED: &str = env!("CARGO_BIN_EXE_embedded-worker");
const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// The `seq` of every [`Step`] that started, in this process.
static STARTED: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// The `seq` of every [`Step`] that finished, in this process.
static FINISHED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Records its `seq` in [`STARTED`], sleeps `sleep_ms`, then records it in [`FINISHED`].
#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "embedded", name = "embedded_step")]
struct Step {
    seq: u32,
    sleep_ms: u64,
}

impl Handler for Step {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        STARTED.lock().expect("not poisoned").push(self.seq);
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        FINISHED.lock().expect("not poisoned").push(self.seq);
        Ok(())
    }
}

fn finished(seq: u32) -> bool {
    FINISHED.lock().expect("not poisoned").contains(&seq)
}

/// Waits until the job `seq` has started.
async fn wait_until_started(seq: u32) {
    eventually(Duration::from_secs(10), "the worker started the job", || {
        STARTED.lock().expect("not poisoned").contains(&seq)
    })
    .await;
}

/// One worker on this test's `embedded` queue, leaving signals to the test runner.
fn worker(broker: &TestBroker) -> WorkerBuilder {
    Worker::builder(amqp_url())
        .queue_prefix(broker.prefix())
        .queues(["embedded"])
        .workers_per_queue(1)
        .prefetch(1)
        .handle_signals(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_with_its_own_arguments_runs_jobs_next_to_its_server_and_drains_on_sigterm() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = free.local_addr().expect("address").port();
    drop(free);
    let mut service = WorkerProcess::spawn(
        Command::new(EMBEDDED)
            .args(["--port", &port.to_string()])
            .env("WARREN_QUEUE_PREFIX", broker.prefix()),
    );
    service
        .wait_for_stdout(1, Duration::from_secs(10), |line| {
            line == format!("listening on port {port}")
        })
        .await;
    broker.wait_for_consumers(&queue, 1).await;

    broker
        .client()
        .enqueue(Record { seq: 1, sleep_ms: 0 })
        .await
        .expect("enqueue");
    service
        .wait_for_stdout(1, Duration::from_secs(10), |line| {
            line.starts_with("done seq=1 worker=embedded.1")
        })
        .await;
    // Its own server answers while the worker runs.
    let mut reply = String::new();
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the service's server");
    std::io::BufReader::new(stream).read_line(&mut reply).expect("reply");
    assert_eq!(reply, "ok\n");

    // A job running at SIGTERM finishes before the service exits.
    broker
        .client()
        .enqueue(Record { seq: 2, sleep_ms: 1000 })
        .await
        .expect("enqueue");
    service
        .wait_for_stdout(1, Duration::from_secs(10), |line| line.starts_with("ran seq=2 "))
        .await;
    service.terminate();
    let status = service.wait_exit(Duration::from_secs(15)).await;

    assert!(
        status.success(),
        "exit status {status:?}; stderr: {:#?}",
        service.stderr()
    );
    let stdout = service.stdout();
    assert!(stdout.iter().any(|line| line.starts_with("done seq=2 ")), "{stdout:#?}");
    assert_eq!(stdout.last().map(String::as_str), Some("worker exited: Ok(Drained)"));
    assert_eq!(broker.ready(&queue).await, 0);
    assert_eq!(broker.consumers(&queue).await, 0);
}

#[test]
fn a_generated_binary_reports_its_own_package_name_and_version() {
    let output = Command::new(WORKER).arg("--version").output().expect("run");
    assert!(output.status.success());
    // The worker binary belongs to this package, not to warren.
    let expected = format!("{} {}\n", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_through_the_handle_lets_the_running_job_finish_and_wait_says_drained() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("embedded");
    let handle = worker(&broker).start().expect("starts");
    broker.wait_for_consumers(&queue, 1).await;
    broker
        .client()
        .enqueue(Step {
            seq: 101,
            sleep_ms: 1000,
        })
        .await
        .expect("enqueue");
    wait_until_started(101).await;

    handle.shutdown();
    let exit = tokio::time::timeout(Duration::from_secs(15), handle.wait())
        .await
        .expect("stops within the shutdown timeout");

    assert_eq!(exit.expect("no error"), Exit::Drained);
    assert!(finished(101), "the running job finished first");
    assert_eq!(broker.ready(&queue).await, 0, "and was acknowledged");
    assert_eq!(broker.consumers(&queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_overruns_the_shutdown_timeout_reports_the_jobs_it_cut_off() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("embedded");
    let handle = worker(&broker)
        .shutdown_timeout(Duration::from_millis(300))
        .start()
        .expect("starts");
    broker.wait_for_consumers(&queue, 1).await;
    broker
        .client()
        .enqueue(Step {
            seq: 201,
            sleep_ms: 30_000,
        })
        .await
        .expect("enqueue");
    wait_until_started(201).await;

    handle.shutdown();
    let exit = tokio::time::timeout(Duration::from_secs(10), handle.wait())
        .await
        .expect("stops after the shutdown timeout");

    assert!(matches!(exit, Ok(Exit::DrainTimedOut { cut_off: 1, .. })), "{exit:?}");
    assert!(!finished(201));
    // Under late acks the job cut off goes back to its queue.
    broker.wait_for_ready(&queue, 1, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_shutdown_does_not_wait_for_the_running_job() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("embedded");
    let handle = worker(&broker).start().expect("starts");
    broker.wait_for_consumers(&queue, 1).await;
    broker
        .client()
        .enqueue(Step {
            seq: 301,
            sleep_ms: 30_000,
        })
        .await
        .expect("enqueue");
    wait_until_started(301).await;

    let asked = Instant::now();
    handle.shutdown();
    handle.force_shutdown();
    let exit = handle.wait().await;

    assert_eq!(exit.expect("no error"), Exit::Forced);
    assert!(asked.elapsed() < Duration::from_secs(3), "took {:?}", asked.elapsed());
    // Its connections closed with the worker, though this process lives on.
    broker.wait_for_ready(&queue, 1, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_running_worker_drains_it() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("embedded");
    let run = worker(&broker).run();
    let timed_out = tokio::time::timeout(Duration::from_secs(3), run).await;
    assert!(timed_out.is_err(), "runs until asked to stop: {timed_out:?}");
    // The future was dropped with the timeout: the worker drains and goes.
    eventually(Duration::from_secs(10), "the worker is gone", || {
        list_queue(&queue).is_some_and(|q| q.messages == 0) && warren_tests::list_consumers(&queue).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_workers_than_the_broker_has_channels_for_is_an_error_from_wait() {
    let broker = TestBroker::new().await;
    let handle = worker(&broker)
        .workers_per_queue(4096)
        .start()
        .expect("passes the offline checks");
    let error = tokio::time::timeout(Duration::from_secs(10), handle.wait())
        .await
        .expect("refused at once")
        .expect_err("refused");
    assert!(
        matches!(
            error,
            WorkerError::TooManyChannels {
                workers: 4096,
                queues: 1,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_queue_no_linked_job_uses_is_refused_by_start() {
    let error = Worker::builder(amqp_url())
        .queues(["embeded"])
        .handle_signals(false)
        .start()
        .expect_err("a typo");
    let WorkerError::UnknownQueue { queue, known } = &error else {
        panic!("{error}")
    };
    assert_eq!(queue, "embeded");
    assert!(known.iter().any(|known| known == "embedded"), "{error}");
}
