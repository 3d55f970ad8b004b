//! A worker process killed with SIGKILL mid-job, counted job by job: under
//! late acks nothing is lost and only what the dead worker held runs again;
//! under ack mode `none` every job the broker had pushed to it and it had
//! not finished is gone, as framework/docs/concepts.md says.

use crate::jobs;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use jobs::Record;
use warren_tests::{TestBroker, eventually, list_queue, seqs};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

const SIGKILL: i32 = 9;

/// The arguments of a worker process `name`: one worker on `work`.
fn worker_args<'a>(name: &'a str, prefetch: &'a str, ack: &'a str) -> [&'a str; 11] {
    [
        "work",
        "--queues",
        "work",
        "--workers",
        "1",
        "--prefetch",
        prefetch,
        "--ack",
        ack,
        "--name",
        name,
    ]
}

fn distinct(seqs: &[u32]) -> BTreeSet<u32> {
    seqs.iter().copied().collect()
}

/// The seqs that occur more than once.
fn repeated(seqs: &[u32]) -> Vec<u32> {
    let mut seen = BTreeSet::new();
    seqs.iter().copied().filter(|seq| !seen.insert(*seq)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_late_acks_the_jobs_a_killed_worker_was_running_are_finished_by_another() {
    const JOBS: u32 = 40;
    const PREFETCH: usize = 5;
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let mut a = broker.worker(WORKER, &worker_args("a", "5", "late"));
    let mut b = broker.worker(WORKER, &worker_args("b", "5", "late"));
    broker.wait_for_consumers(&queue, 2).await;

    let jobs = (0..JOBS).map(|seq| Record { seq, sleep_ms: 300 });
    broker.client().enqueue_many(jobs).await.expect("enqueue");
    // Killed in its second batch: some jobs acked, some running.
    eventually(Duration::from_secs(15), "a finished some jobs and runs more", || {
        let out = a.stdout();
        let (ran, done) = (seqs(&out, "ran ").len(), seqs(&out, "done ").len());
        done >= PREFETCH && ran > done
    })
    .await;
    let status = a.kill().await;
    assert_eq!(status.signal(), Some(SIGKILL), "{status:?}");

    // Empty, nothing unacked: b has settled everything it will ever get.
    eventually(
        Duration::from_secs(40),
        "the queue is empty and nothing is unacked",
        || list_queue(&queue).is_some_and(|q| q.messages == 0),
    )
    .await;
    assert!(b.is_running(), "b is unaffected: {:#?}", b.stderr());
    b.terminate();
    let status = b.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "b drained: {status:?}");

    let (out_a, out_b) = (a.stdout(), b.stdout());
    let (ran_a, done_a) = (seqs(&out_a, "ran "), seqs(&out_a, "done "));
    let (ran_b, done_b) = (seqs(&out_b, "ran "), seqs(&out_b, "done "));
    let done = distinct(&[done_a.as_slice(), &done_b].concat());
    let missing: Vec<u32> = (0..JOBS).filter(|seq| !done.contains(seq)).collect();
    assert_eq!(missing, Vec::<u32>::new(), "jobs never done by a or b");
    let interrupted: BTreeSet<u32> = distinct(&ran_a).difference(&distinct(&done_a)).copied().collect();
    assert!(
        !interrupted.is_empty(),
        "a was killed mid-job, with jobs started and not done: {out_a:#?}"
    );
    let done_by_b = distinct(&done_b);
    assert!(
        interrupted.is_subset(&done_by_b),
        "b finished every job a was running when killed ({interrupted:?}); b finished {done_by_b:?}"
    );
    // Only deliveries a had not acked come back, and there are at most
    // `prefetch` of those: jobs a ran and acked never run again.
    let run_twice: BTreeSet<u32> = distinct(&ran_a).intersection(&distinct(&ran_b)).copied().collect();
    assert!(
        run_twice.len() <= PREFETCH,
        "b ran again {run_twice:?}, more than a's {PREFETCH} unacked deliveries"
    );
    assert_eq!(repeated(&ran_a), Vec::<u32>::new(), "a ran no job twice");
    assert_eq!(repeated(&ran_b), Vec::<u32>::new(), "b ran no job twice");
    eprintln!(
        "a ran {} and finished {}; killed with {} running; b ran {} of them again and {} in all",
        ran_a.len(),
        done_a.len(),
        interrupted.len(),
        run_twice.len(),
        done_b.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_acks_a_killed_worker_loses_every_job_pushed_to_it_and_not_finished() {
    const JOBS: u32 = 30;
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let mut a = broker.worker(WORKER, &worker_args("a", "1", "none"));
    broker.wait_for_consumers(&queue, 1).await;

    let jobs = (0..JOBS).map(|seq| Record { seq, sleep_ms: 200 });
    broker.client().enqueue_many(jobs).await.expect("enqueue");
    // Prefetch means nothing without acks: the broker pushes a everything.
    eventually(Duration::from_secs(10), "the broker pushed every job to a", || {
        list_queue(&queue).is_some_and(|q| q.messages == 0)
    })
    .await;
    a.wait_for_stdout(3, Duration::from_secs(15), |line| line.starts_with("done "))
        .await;
    let status = a.kill().await;
    assert_eq!(status.signal(), Some(SIGKILL), "{status:?}");
    // Once the broker has seen a go, whatever it would requeue is back.
    broker.wait_for_consumers(&queue, 0).await;

    let out_a = a.stdout();
    let (ran_a, done_a) = (seqs(&out_a, "ran "), seqs(&out_a, "done "));
    let lost = JOBS as usize - done_a.len();
    assert!(lost > 0, "a was killed before it finished the queue: {out_a:#?}");
    assert!(
        ran_a.len() - done_a.len() <= 1,
        "with --prefetch 1 a ran one job at a time; the rest waited in its memory: {out_a:#?}"
    );
    assert_eq!(
        list_queue(&queue).map(|q| q.messages),
        Some(0),
        "none of the {lost} jobs a held went back to the queue"
    );

    // A second worker gets nothing of them: the queue is FIFO, so anything
    // still there would reach b before this last job.
    let b = broker.worker(WORKER, &worker_args("b", "1", "none"));
    broker.wait_for_consumers(&queue, 1).await;
    let last = JOBS + 1000;
    broker
        .client()
        .enqueue(Record { seq: last, sleep_ms: 0 })
        .await
        .expect("enqueue");
    b.wait_for_stdout(1, Duration::from_secs(15), |line| line.starts_with("done "))
        .await;
    assert_eq!(seqs(&b.stdout(), "ran "), [last], "b ran none of a's lost jobs");
    let done: BTreeSet<u32> = distinct(&done_a);
    assert_eq!(
        done,
        (0..done_a.len() as u32).collect(),
        "a finished jobs in queue order; the rest are lost"
    );
    eprintln!(
        "a finished {} of {JOBS}; killed with {} running; {lost} lost",
        done_a.len(),
        ran_a.len() - done_a.len(),
    );
}
