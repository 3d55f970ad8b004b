//! Periodic jobs: of three worker processes one fires each slot, another
//! takes over when it is killed, and no slot fires twice or goes missing;
//! `schedule list|pause|resume` from the command line.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warren_tests::{TestBroker, WorkerProcess, eventually, field, run_worker_command, text};

const CRON_WORKER: &str = env!("CARGO_BIN_EXE_cron-worker");

/// The slots (seconds since the epoch) a process says it enqueued.
fn fired(worker: &WorkerProcess) -> Vec<i64> {
    worker
        .stderr()
        .iter()
        .filter(|line| line.contains("periodic job enqueued"))
        .filter_map(|line| field(line, "slot").and_then(|slot| slot.parse().ok()))
        .collect()
}

fn now_secs() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    i64::try_from(now.as_secs()).expect("in range")
}

fn leads(worker: &WorkerProcess) -> bool {
    worker.stderr().iter().any(|line| line.contains("scheduler leading"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_three_workers_fires_each_slot_once_and_another_takes_over_when_it_is_killed() {
    let broker = TestBroker::new().await;
    let start = |name| {
        broker.worker(
            CRON_WORKER,
            &["work", "--queues", "ticks", "--workers", "1", "--name", name],
        )
    };
    let mut workers = vec![start("a"), start("b")];
    eventually(Duration::from_secs(30), "one worker leads", || {
        workers.iter().any(leads)
    })
    .await;
    let first = workers.iter().position(leads).expect("a leader");
    let other = 1 - first;
    eventually(Duration::from_secs(30), "the leader fires three slots", || {
        fired(&workers[first]).len() >= 3
    })
    .await;
    // Between two slots: it fired one a moment ago, the next is a second away.
    workers[first].kill().await;

    // The one standing by takes over, within the second.
    eventually(Duration::from_secs(30), "the other worker leads", || {
        leads(&workers[other])
    })
    .await;
    eventually(Duration::from_secs(30), "the new leader fires two slots", || {
        fired(&workers[other]).len() >= 2
    })
    .await;
    workers[other].kill().await;

    // No worker runs while two slots pass; the next leader catches them up.
    let last = *fired(&workers[other]).last().expect("a slot");
    eventually(Duration::from_secs(30), "two slots pass without a leader", || {
        now_secs() >= last + 3
    })
    .await;
    workers.push(start("c"));
    let second = 2;
    eventually(Duration::from_secs(30), "the third worker leads", || {
        leads(&workers[second])
    })
    .await;
    let caught_up = fired(&workers[second]).len();
    eventually(Duration::from_secs(30), "it fires two slots of its own", || {
        fired(&workers[second]).len() >= caught_up + 2
    })
    .await;
    let before: Vec<i64> = fired(&workers[first])
        .into_iter()
        .chain(fired(&workers[other]))
        .collect();

    // Paused: the leader records slots but enqueues nothing more.
    let paused = run_worker_command(CRON_WORKER, broker.prefix(), &["schedule", "pause", "tick"]);
    assert!(paused.status.success(), "{}", text(&paused.stderr));
    workers[second]
        .wait_for_stderr("schedule paused; slot skipped", Duration::from_secs(30))
        .await;
    let after = fired(&workers[second]);
    let all: Vec<i64> = before.iter().chain(&after).copied().collect();
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "a slot fired twice: {before:?} then {after:?}"
    );
    let (first_slot, last_slot) = (all[0], all[all.len() - 1]);
    assert_eq!(
        distinct,
        (first_slot..=last_slot).collect(),
        "a slot went missing across the change of leader: {before:?} then {after:?}"
    );
    assert!(before.len() >= 5, "{before:?}");

    // Every fired slot ran, under its own id.
    let ran = |workers: &[WorkerProcess]| {
        workers
            .iter()
            .flat_map(|worker| worker.stdout())
            .filter_map(|line| line.strip_prefix("tick id=").map(str::to_owned))
            .collect::<BTreeSet<_>>()
    };
    eventually(Duration::from_secs(30), "every fired slot ran", || {
        ran(&workers).len() == all.len()
    })
    .await;

    let list = run_worker_command(CRON_WORKER, broker.prefix(), &["schedule", "list"]);
    let listing = text(&list.stdout);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let row = listing
        .lines()
        .find(|line| line.starts_with("tick "))
        .expect("the tick row");
    assert!(
        row.contains("* * * * * *") && row.contains("Europe/Paris") && row.ends_with("paused"),
        "{listing}"
    );
    let resumed = run_worker_command(CRON_WORKER, broker.prefix(), &["schedule", "resume", "tick"]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let list = run_worker_command(CRON_WORKER, broker.prefix(), &["schedule", "list"]);
    assert!(text(&list.stdout).contains("active"), "{}", text(&list.stdout));
    let unknown = run_worker_command(CRON_WORKER, broker.prefix(), &["schedule", "pause", "tock"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no periodic job named `tock`; periodic jobs: tick"));
}
