//! Acks coalesced into `multiple = true` frames keep every guarantee of one
//! ack per delivery, counted job by job: each job runs once, failures reach
//! the dead-letter queue, the broker ends holding nothing unacked, and a job
//! still running when later ones finish is never covered by their ack.

use crate::jobs;

use std::collections::BTreeMap;
use std::time::Duration;

use jobs::{Fail, Record};
use warren_tests::{TestBroker, eventually, list_queue, seqs};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

fn counts(seqs: &[u32]) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    for seq in seqs {
        *counts.entry(*seq).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coalesced_drain_runs_each_job_once_and_leaves_nothing_ready_or_unacked() {
    const JOBS: u32 = 600;
    const FAILING: usize = 15;
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    // Before any worker: the drain starts from a full queue, so acks pile up
    // faster than frames go out and get coalesced.
    broker
        .client()
        .enqueue_many((0..JOBS).map(|seq| Record { seq, sleep_ms: 0 }))
        .await
        .expect("enqueue records");
    let failing = (0..FAILING).map(|i| Fail {
        message: format!("failure {i}"),
    });
    broker.client().enqueue_many(failing).await.expect("enqueue failures");

    let mut worker = broker.worker(
        WORKER,
        &[
            "work",
            "--queues",
            "work",
            "--workers",
            "2",
            "--prefetch",
            "50",
            "--ack",
            "late",
        ],
    );
    worker
        .wait_for_stdout(JOBS as usize, Duration::from_secs(60), |line| line.starts_with("done "))
        .await;
    eventually(
        Duration::from_secs(30),
        "the queue is empty and nothing is unacked",
        || list_queue(&queue).is_some_and(|q| q.messages == 0 && q.unacked == 0),
    )
    .await;
    broker
        .wait_for_ready(
            &format!("{queue}.dead"),
            u32::try_from(FAILING).unwrap(),
            Duration::from_secs(30),
        )
        .await;
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "the worker drained: {status:?}\n{:#?}",
        worker.stderr()
    );

    let out = worker.stdout();
    let ran = counts(&seqs(&out, "ran "));
    assert_eq!(ran.len(), JOBS as usize, "every job ran");
    let twice: Vec<_> = ran.iter().filter(|(_, runs)| **runs > 1).collect();
    assert!(twice.is_empty(), "jobs that ran more than once: {twice:?}");
    assert_eq!(list_queue(&queue).map(|q| (q.messages, q.unacked)), Some((0, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_is_not_acked_with_the_later_ones_and_survives_a_killed_worker() {
    const LATER: u32 = 40;
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    // Seq 0 is delivered first (delivery tag 1) and runs for a minute; the
    // ones after it finish meanwhile. A `multiple` ack for any of them would
    // settle seq 0 too.
    let jobs = std::iter::once(Record {
        seq: 0,
        sleep_ms: 60_000,
    })
    .chain((1..=LATER).map(|seq| Record { seq, sleep_ms: 0 }));
    broker.client().enqueue_many(jobs).await.expect("enqueue");
    let mut worker = broker.worker(
        WORKER,
        &[
            "work",
            "--queues",
            "work",
            "--workers",
            "1",
            "--prefetch",
            "10",
            "--ack",
            "late",
        ],
    );
    worker
        .wait_for_stdout(LATER as usize, Duration::from_secs(60), |line| {
            line.starts_with("done ")
        })
        .await;
    eventually(Duration::from_secs(30), "only the running job is unacked", || {
        list_queue(&queue).is_some_and(|q| q.messages == 1 && q.unacked == 1)
    })
    .await;
    worker.kill().await;
    // The killed worker's channel is gone: what it had not acked is ready again.
    broker.wait_for_ready(&queue, 1, Duration::from_secs(30)).await;
    let back = broker.take(&queue).await.expect("the running job came back");
    let job: Record = serde_json::from_slice(&back.data).expect("a Record");
    assert_eq!(job.seq, 0);
    let out = worker.stdout();
    assert_eq!(seqs(&out, "done ").len(), LATER as usize, "{out:#?}");
    assert!(!seqs(&out, "done ").contains(&0));
}
