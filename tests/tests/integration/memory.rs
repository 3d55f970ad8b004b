//! What a worker process costs in memory when it has nothing to do: a
//! service embeds workers in every replica, and an operator sizes pods by
//! what they hold idle.

use crate::jobs;

use std::time::Duration;

use jobs::Record;
use warren_tests::{TestBroker, eventually};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// The process's anonymous resident memory (heap, stacks, buffers: not the
/// binary's pages, which a debug build inflates), in KiB.
fn anonymous_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/<pid>/status")
}

/// lapin keeps a send and a receive buffer of 32 frames per connection; at
/// RabbitMQ's 128 KiB frames, 8 MiB. Sized for a smaller frame and then
/// grown, they were zeroed whole and resident from the start: an idle
/// worker held 10.5 MiB of anonymous memory, 2.9 MiB once they were sized
/// right. The consuming connection still takes the broker's frame size (the
/// tests in `hostile` send headers as large as a frame holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_holds_a_few_mib_not_its_connection_buffers() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "2"]);
    broker.wait_for_consumers(&queue, 2).await;
    // One job through, so that the worker's publishing side (its hold
    // queues, the heartbeat) is set up as in a worker that has run jobs.
    broker
        .client()
        .enqueue(Record { seq: 1, sleep_ms: 0 })
        .await
        .expect("enqueue");
    worker
        .wait_for_stdout(1, Duration::from_secs(30), |line| line.starts_with("done seq=1"))
        .await;
    eventually(Duration::from_secs(10), "the job is acknowledged", || {
        warren_tests::list_queue(&queue).is_some_and(|info| info.messages == 0)
    })
    .await;
    let kib = anonymous_kib(worker.pid());
    assert!(
        kib < 6 * 1024,
        "an idle worker holds {kib} KiB of anonymous memory (about 3 MiB expected; 10.5 MiB with its connection buffers zeroed whole)"
    );
}
