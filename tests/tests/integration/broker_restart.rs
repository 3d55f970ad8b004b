//! The broker restarts (`rabbitmqctl stop_app` / `start_app`) while a
//! producer enqueues 5,000 jobs and two worker processes consume them:
//! every job the broker confirmed runs at least once. Counted, not sampled.
//!
//! The broker is a node of the test's own, `warren-solo@localhost` on port
//! 5700 (`scripts/cluster solo` starts it): restarting the main node would
//! drop the connections of every other test, and of whatever else uses that
//! broker. The test is ignored in a plain `cargo test`; `scripts/test`
//! starts the node and runs it (`-- --ignored`) beside the other tests.

use crate::jobs;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jobs::Record;
use tokio::sync::Semaphore;
use warren::Client;
use warren_tests::{WorkerProcess, done_seqs, eventually};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
/// The node this test restarts, and its AMQP port.
const NODE: &str = "warren-solo@localhost";
const PORT: u16 = 5700;
const JOBS: u32 = 5_000;
/// Enqueues in flight at once, as a busy web service would have.
const IN_FLIGHT: usize = 20;

fn worker(url: &str, name: &str) -> WorkerProcess {
    WorkerProcess::spawn(
        Command::new(WORKER)
            .args([
                "work",
                "--queues",
                "work",
                "--workers",
                "1",
                "--prefetch",
                "10",
                "--name",
                name,
            ])
            .env("AMQP_URL", url),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the broker under every other test: scripts/test runs it alone"]
async fn a_broker_restart_mid_run_loses_no_confirmed_job() {
    let vhost = SoloVhost::new();
    let url = vhost.url();
    let client = Client::builder(&url)
        .connection_name("restart test producer")
        .recovery_timeout(Duration::from_secs(90))
        .connect()
        .await
        .expect("connect");
    let (mut first, mut second) = (worker(&url, "first"), worker(&url, "second"));
    eventually(Duration::from_secs(30), "both workers consume", || {
        vhost.queue("work").is_some_and(|(_, consumers)| consumers == 2)
    })
    .await;

    let confirmed = Arc::new(Mutex::new(BTreeSet::new()));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let producer = tokio::spawn({
        let (client, confirmed, failed) = (client.clone(), Arc::clone(&confirmed), Arc::clone(&failed));
        async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            let mut tasks = tokio::task::JoinSet::new();
            for seq in 0..JOBS {
                // Paced (≥ 10 s in all), so that the restart lands mid-run.
                tokio::time::sleep(Duration::from_millis(2)).await;
                let permit = Arc::clone(&slots).acquire_owned().await.expect("open");
                let (client, confirmed, failed) = (client.clone(), Arc::clone(&confirmed), Arc::clone(&failed));
                tasks.spawn(async move {
                    match client.enqueue(Record { seq, sleep_ms: 0 }).await {
                        Ok(_) => confirmed.lock().unwrap_or_else(PoisonError::into_inner).insert(seq),
                        Err(error) => {
                            failed
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((seq, error.to_string()));
                            false
                        }
                    };
                    drop(permit);
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    });

    let count = |set: &Arc<Mutex<BTreeSet<u32>>>| set.lock().unwrap_or_else(PoisonError::into_inner).len();
    eventually(Duration::from_secs(60), "1,000 jobs are confirmed", || {
        count(&confirmed) >= 1_000
    })
    .await;
    ctl(&["stop_app"]);
    let stopped_with = count(&confirmed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    ctl(&["start_app"]);
    ctl(&["await_startup"]);
    let restarted = Instant::now();

    producer.await.expect("producer");
    let failed = failed.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let confirmed = confirmed.lock().unwrap_or_else(PoisonError::into_inner).clone();
    assert!(
        stopped_with < JOBS as usize,
        "the restart came before the producer was done"
    );
    assert_eq!(confirmed.len() + failed.len(), JOBS as usize);
    assert!(failed.is_empty(), "enqueues failed across the restart: {failed:?}");

    let deadline = Instant::now() + Duration::from_secs(120);
    let runs = || -> (BTreeSet<u32>, usize) {
        let lines: Vec<String> = first.stdout().into_iter().chain(second.stdout()).collect();
        let done = lines.iter().filter(|line| line.starts_with("done seq=")).count();
        (done_seqs(&lines), done)
    };
    loop {
        let (done, _) = runs();
        let missing: Vec<_> = confirmed.difference(&done).take(20).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} confirmed jobs done; missing (first 20): {missing:?}",
            confirmed.intersection(&done).count(),
            confirmed.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (done, runs) = runs();
    eprintln!(
        "restart: {} jobs confirmed before stop_app; all {} confirmed jobs done {:?} after start_app, \
         {} runs in all ({} duplicates)",
        stopped_with,
        confirmed.len(),
        restarted.elapsed(),
        runs,
        runs - done.len()
    );
    assert!(first.running() && second.running(), "workers never exit on their own");
    for worker in [&first, &second] {
        let stderr = worker.stderr();
        let unreachable = stderr
            .iter()
            .filter(|line| line.contains("RabbitMQ unreachable"))
            .count();
        assert!(
            unreachable <= 10,
            "one line per reconnection attempt, not a flood: {stderr:#?}"
        );
    }
    // Every job can be done by one worker while the other still waits out
    // its backoff, and log lines reach stderr through a writer thread: the
    // reconnection is awaited, not sampled.
    for worker in [&first, &second] {
        worker
            .wait_for_stderr("reconnected to RabbitMQ", Duration::from_secs(60))
            .await;
    }
    eventually(
        Duration::from_secs(30),
        "the queue is empty and both workers consume again",
        || {
            vhost
                .queue("work")
                .is_some_and(|(messages, consumers)| messages == 0 && consumers == 2)
        },
    )
    .await;
    client.close().await;
}

/// `rabbitmqctl -n warren-solo@localhost <args>`, which must succeed; its
/// standard output.
fn ctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(["-n", NODE])
        .args(args)
        .output()
        .expect("rabbitmqctl must be installed");
    assert!(
        output.status.success(),
        "rabbitmqctl -n {NODE} {args:?} failed (scripts/cluster solo starts the node): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A vhost of this test's own on the solo node, deleted on drop: a run
/// starts from nothing whatever an earlier one left.
struct SoloVhost {
    name: String,
}

impl SoloVhost {
    fn new() -> Self {
        let name = format!("warren-restart-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        ctl(&["add_vhost", &name]);
        ctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        SoloVhost { name }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{PORT}/{}", self.name)
    }

    /// Ready plus unacked messages, and consumers, of `queue`.
    fn queue(&self, queue: &str) -> Option<(u32, u32)> {
        let listing = ctl(&[
            "list_queues",
            "-p",
            &self.name,
            "--quiet",
            "--no-table-headers",
            "name",
            "messages",
            "consumers",
        ]);
        warren_tests::queue_counts(&listing, queue)
    }
}

impl Drop for SoloVhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", NODE, "delete_vhost", &self.name])
            .output();
    }
}
