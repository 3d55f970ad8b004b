//! Periodic jobs: of three worker processes one fires each slot, another
//! takes over when it is killed, and no slot fires twice or goes missing;
//! two named schedules of one job type fire with their own arguments and
//! pause apart; `schedule list|pause|resume` from the command line.

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

/// Every slot (seconds since the epoch) any of `workers` says it enqueued.
fn fired_by(workers: &[WorkerProcess]) -> Vec<i64> {
    workers.iter().flat_map(fired).collect()
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
    // Three processes stand for election; one leads.
    let mut workers = vec![start("a"), start("b"), start("c")];
    eventually(Duration::from_secs(30), "one worker leads", || {
        workers.iter().any(leads)
    })
    .await;
    let first = workers.iter().position(leads).expect("a leader");
    eventually(Duration::from_secs(30), "the leader fires ten slots", || {
        fired(&workers[first]).len() >= 10
    })
    .await;
    // Ten seconds in, between two slots: it fired one a moment ago.
    workers[first].kill().await;

    // One of the two standing by takes over, within the second, and
    // fires until twenty slots have passed.
    eventually(Duration::from_secs(30), "another worker leads", || {
        (0..3).any(|at| at != first && leads(&workers[at]))
    })
    .await;
    let second = (0..3)
        .find(|&at| at != first && leads(&workers[at]))
        .expect("a new leader");
    eventually(Duration::from_secs(30), "twenty slots fire", || {
        fired_by(&workers).len() >= 20
    })
    .await;
    let idle = 3 - first - second;
    assert!(
        fired(&workers[idle]).is_empty(),
        "only the leaders fired: {:?}",
        workers.iter().map(fired).collect::<Vec<_>>()
    );
    for at in [second, idle] {
        workers[at].kill().await;
    }

    // No worker runs while two slots pass; the next leader catches them up.
    let last = *fired_by(&workers).iter().max().expect("a slot");
    eventually(Duration::from_secs(30), "two slots pass without a leader", || {
        now_secs() >= last + 3
    })
    .await;
    workers.push(start("d"));
    let third = 3;
    eventually(Duration::from_secs(30), "the fourth worker leads", || {
        leads(&workers[third])
    })
    .await;
    let caught_up = fired(&workers[third]).len();
    eventually(Duration::from_secs(30), "it fires two slots of its own", || {
        fired(&workers[third]).len() >= caught_up + 2
    })
    .await;
    let before: Vec<i64> = fired_by(&workers[..3]);

    // Paused: the leader records slots but enqueues nothing more.
    let paused = run_worker_command(CRON_WORKER, broker.prefix(), &["schedule", "pause", "tick"]);
    assert!(paused.status.success(), "{}", text(&paused.stderr));
    workers[third]
        .wait_for_stderr("schedule paused; slot skipped", Duration::from_secs(30))
        .await;
    let after = fired(&workers[third]);
    let all: Vec<i64> = before.iter().chain(&after).copied().collect();
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "a slot fired twice: {before:?} then {after:?}"
    );
    let (first_slot, last_slot) = (distinct.first(), distinct.last());
    assert_eq!(
        distinct,
        (*first_slot.expect("a slot")..=*last_slot.expect("a slot")).collect(),
        "a slot went missing across the change of leader: {before:?} then {after:?}"
    );
    assert!(before.len() >= 20, "{before:?}");

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
        row.contains("* * * * * *") && row.contains("Europe/Paris") && row.contains(" paused "),
        "{listing}"
    );
    let resumed = run_worker_command(CRON_WORKER, broker.prefix(), &["schedule", "resume", "tick"]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let list = run_worker_command(CRON_WORKER, broker.prefix(), &["schedule", "list"]);
    assert!(text(&list.stdout).contains("active"), "{}", text(&list.stdout));
    let unknown = run_worker_command(CRON_WORKER, broker.prefix(), &["schedule", "pause", "tock"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("no schedule named `tock`; schedules: greet_en, greet_fr, tick"),
        "{}",
        text(&unknown.stderr)
    );
}

/// A log line's `schedule` field.
fn schedule_of(line: &str) -> Option<&str> {
    field(line, "schedule").map(|name| name.trim_matches('"'))
}

/// What a process says it enqueued: (schedule, job id, slot), in order.
fn enqueued(worker: &WorkerProcess) -> Vec<(String, String, i64)> {
    worker
        .stderr()
        .iter()
        .filter(|line| line.contains("periodic job enqueued"))
        .filter_map(|line| {
            Some((
                schedule_of(line)?.to_owned(),
                field(line, "job.id")?.to_owned(),
                field(line, "slot")?.parse().ok()?,
            ))
        })
        .collect()
}

/// The greetings a process ran: (lang, job id).
fn greeted(worker: &WorkerProcess) -> Vec<(String, String)> {
    worker
        .stdout()
        .iter()
        .filter_map(|line| {
            let lang = field(line, "lang")?;
            Some((lang.to_owned(), field(line, "id")?.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedules_of_one_job_fire_with_their_own_arguments_and_pause_apart() {
    let broker = TestBroker::new().await;
    let worker = broker.worker(CRON_WORKER, &["work", "--queues", "greetings", "--workers", "1"]);
    let fired_by = |name: &str| {
        enqueued(&worker)
            .into_iter()
            .filter(|(schedule, _, _)| schedule == name)
            .count()
    };
    eventually(Duration::from_secs(30), "each schedule fires two slots", || {
        fired_by("greet_en") >= 2 && fired_by("greet_fr") >= 2
    })
    .await;

    // Pausing one leaves the other firing.
    let paused = run_worker_command(CRON_WORKER, broker.prefix(), &["schedule", "pause", "greet_fr"]);
    assert!(paused.status.success(), "{}", text(&paused.stderr));
    let skipped = |lines: &[String]| {
        lines
            .iter()
            .position(|line| line.contains("schedule paused; slot skipped"))
    };
    eventually(
        Duration::from_secs(30),
        "greet_en fires two slots after greet_fr's first skipped one",
        || {
            let lines = worker.stderr();
            skipped(&lines).is_some_and(|from| {
                lines[from..]
                    .iter()
                    .filter(|line| line.contains("periodic job enqueued") && schedule_of(line) == Some("greet_en"))
                    .count()
                    >= 2
            })
        },
    )
    .await;
    let lines = worker.stderr();
    let from = skipped(&lines).expect("a skipped slot");
    for line in &lines[from..] {
        if line.contains("schedule paused; slot skipped") || line.contains("periodic job enqueued") {
            let expected = if line.contains("skipped") {
                "greet_fr"
            } else {
                "greet_en"
            };
            assert_eq!(schedule_of(line), Some(expected), "after the pause: {line}");
        }
    }

    // Each slot of each schedule fired once, under an id of its own, even
    // where the two share a slot.
    let fired = enqueued(&worker);
    let ids: BTreeSet<&str> = fired.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), fired.len(), "an id fired twice: {fired:#?}");
    let slots: BTreeSet<(&str, i64)> = fired
        .iter()
        .map(|(schedule, _, slot)| (schedule.as_str(), *slot))
        .collect();
    assert_eq!(slots.len(), fired.len(), "a slot fired twice: {fired:#?}");
    assert!(
        fired
            .iter()
            .any(|(schedule, _, slot)| schedule == "greet_fr" && slots.contains(&("greet_en", *slot))),
        "the two schedules share no slot: {fired:#?}"
    );
    assert!(!fired.iter().any(|(schedule, _, _)| schedule == "tick"), "{fired:#?}");

    // Each ran once, with its own schedule's arguments.
    eventually(Duration::from_secs(30), "every enqueued greeting ran", || {
        let ran: BTreeSet<String> = greeted(&worker).into_iter().map(|(_, id)| id).collect();
        fired.iter().all(|(_, id, _)| ran.contains(id))
    })
    .await;
    let ran = greeted(&worker);
    let fired = enqueued(&worker);
    let ran_ids: BTreeSet<&str> = ran.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ran_ids.len(), ran.len(), "a greeting ran twice: {ran:#?}");
    for (lang, id) in &ran {
        let (schedule, _, _) = fired
            .iter()
            .find(|(_, fired_id, _)| fired_id == id)
            .unwrap_or_else(|| panic!("greeting {id} was not enqueued by a schedule: {fired:#?}"));
        assert_eq!(schedule, &format!("greet_{lang}"), "{ran:#?}");
    }

    // The listing shows both, their job, state and arguments.
    let list = run_worker_command(CRON_WORKER, broker.prefix(), &["schedule", "list"]);
    let listing = text(&list.stdout);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let row = |name: &str| {
        listing
            .lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row: {listing}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let (en, fr) = (row("greet_en"), row("greet_fr"));
    assert_eq!(en[1], "greet", "{listing}");
    assert_eq!(en[8], "UTC", "{listing}");
    assert_eq!(fr[8], "Europe/Paris", "{listing}");
    assert_eq!(en[en.len() - 2..], ["active", r#"{"lang":"en"}"#], "{listing}");
    assert_eq!(fr[fr.len() - 2..], ["paused", r#"{"lang":"fr"}"#], "{listing}");

    let jobs = run_worker_command(CRON_WORKER, broker.prefix(), &["jobs"]);
    let jobs = text(&jobs.stdout);
    let greet = jobs
        .lines()
        .find(|line| line.starts_with("greet "))
        .expect("the greet row");
    assert!(
        greet.contains("greet_en: * * * * * * (UTC); greet_fr: * * * * * * (Europe/Paris)"),
        "{jobs}"
    );
}
