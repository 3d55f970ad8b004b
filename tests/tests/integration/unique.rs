//! Unique jobs: of many concurrent enqueues of one key, from several
//! connections and processes, exactly one is enqueued and the others get
//! its id; the key is free again once the job succeeded. A lock whose
//! holder's id was lost is repaired, and released all the same; a
//! dead-lettered job that RabbitMQ redelivers instead keeps its key.

use crate::jobs;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use jobs::{GatedUnique, Once, Record};
use lapin::BasicProperties;
use warren::{Client, EnqueueOptions, Error, JobId};
use warren_tests::{TestBroker, amqp_url, close_connection, count_starting, text};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// Enqueues `Once { seq }` for `seqs` with key `key`, all at once.
async fn enqueue_all(client: &Client, seqs: std::ops::Range<u32>, key: &str) -> Vec<Result<JobId, Option<JobId>>> {
    let enqueues = seqs.map(|seq| {
        let options = EnqueueOptions::new().unique_key(key);
        async move {
            client
                .enqueue_with(Once { seq }, options)
                .await
                .map_err(|error| error.duplicate_of())
        }
    });
    join_all(enqueues).await
}

/// Set in the environment of the second process of the concurrent test:
/// the queue prefix it enqueues under.
const OTHER_PROCESS: &str = "WARREN_TEST_UNIQUE_PREFIX";

/// What the second process prints once connected. Its lines are searched
/// for, not matched whole: libtest may print a test's name on the same line.
const READY: &str = "second process ready";

/// What starts each outcome the second process prints.
const OUTCOME: &str = "outcome: ";

/// The second process of the concurrent test below, started by it as this
/// same test binary: connects, says `ready`, waits for a line on stdin,
/// then enqueues 50 jobs of key `user-7` at once and prints each outcome
/// (`ok <id>`, `duplicate <id>` or `error <error>`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the second process of of_a_hundred_concurrent_enqueues_of_one_key_one_runs_and_the_rest_get_its_id"]
async fn enqueues_of_another_process() {
    let Ok(prefix) = std::env::var(OTHER_PROCESS) else {
        return;
    };
    let client = Client::builder(amqp_url())
        .queue_prefix(prefix)
        .connect()
        .await
        .expect("connect");
    println!("{READY}");
    let mut go = String::new();
    tokio::task::block_in_place(|| std::io::stdin().read_line(&mut go)).expect("the go line");
    for result in enqueue_all(&client, 50..100, "user-7").await {
        match result {
            Ok(id) => println!("{OUTCOME}ok {id}"),
            Err(Some(id)) => println!("{OUTCOME}duplicate {id}"),
            Err(None) => println!("{OUTCOME}error"),
        }
    }
    client.close().await;
}

/// What the second process printed: its 50 outcomes.
fn outcomes_of(output: &Output) -> Vec<Result<JobId, Option<JobId>>> {
    let outcome = |line: &str| {
        let (_, outcome) = line.split_once(OUTCOME)?;
        let (word, id) = outcome.split_once(' ').unwrap_or((outcome, ""));
        match word {
            "ok" => Some(Ok(id.parse().expect("an id"))),
            "duplicate" => Some(Err(Some(id.parse().expect("an id")))),
            "error" => Some(Err(None)),
            _ => None,
        }
    };
    text(&output.stdout).lines().filter_map(outcome).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_a_hundred_concurrent_enqueues_of_one_key_one_runs_and_the_rest_get_its_id() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("unique");
    // Two processes enqueue 50 each, at once: this one and another run of
    // this test binary, which connects first and waits for the word.
    let mut other = Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "unique::enqueues_of_another_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(OTHER_PROCESS, broker.prefix())
        .env("AMQP_URL", amqp_url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the second process");
    let mut lines = BufReader::new(other.stdout.take().expect("its stdout")).lines();
    tokio::task::block_in_place(|| {
        lines
            .by_ref()
            .map(|line| line.expect("its stdout"))
            .find(|line| line.contains(READY))
            .expect("the second process connects");
    });
    // And the generated binary's `enqueue --unique-key`, three times.
    let cli: Vec<_> = (0..3)
        .map(|seq| {
            Command::new(WORKER)
                .args(["enqueue", "once", &format!(r#"{{"seq": {}}}"#, 1000 + seq)])
                .args(["--unique-key", "user-7"])
                .env("AMQP_URL", amqp_url())
                .env("WARREN_QUEUE_PREFIX", broker.prefix())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the CLI")
        })
        .collect();
    writeln!(other.stdin.take().expect("its stdin"), "go").expect("say go");
    let here = enqueue_all(broker.client(), 0..50, "user-7").await;
    let (there, cli): (Output, Vec<Output>) = tokio::task::block_in_place(|| {
        let rest: Vec<String> = lines.map(|line| line.expect("its stdout")).collect();
        let mut there = other.wait_with_output().expect("the second process ends");
        there.stdout = rest.join("\n").into_bytes();
        let cli = cli
            .into_iter()
            .map(|child| child.wait_with_output().expect("the CLI ends"))
            .collect();
        (there, cli)
    });
    assert!(there.status.success(), "{}", text(&there.stderr));
    let there = outcomes_of(&there);
    assert_eq!(there.len(), 50, "the second process enqueued 50: {there:?}");

    let results: Vec<_> = here.into_iter().chain(there).collect();
    let enqueued: Vec<JobId> = results.iter().filter_map(|result| result.ok()).collect();
    let cli_enqueued = cli
        .iter()
        .filter(|output| !text(&output.stderr).contains("note: "))
        .count();
    assert_eq!(
        enqueued.len() + cli_enqueued,
        1,
        "exactly one enqueue wins: {results:?}"
    );
    let winner = match enqueued.first() {
        Some(&id) => id,
        None => text(&cli[0].stdout).trim().parse().expect("an id"),
    };
    for result in &results {
        assert!(
            *result == Ok(winner) || *result == Err(Some(winner)),
            "every other enqueue names the winner {winner}: {result:?}"
        );
    }
    for output in &cli {
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(
            text(&output.stdout).trim(),
            winner.to_string(),
            "{}",
            text(&output.stderr)
        );
    }
    assert_eq!(broker.ready(&queue).await, 1, "one job is on the queue");

    // Run it: once it succeeded, the key is free again.
    let worker = broker.worker(WORKER, &["work", "--queues", "unique", "--workers", "1"]);
    worker
        .wait_for_stdout(1, Duration::from_secs(30), |line| line.starts_with("unique seq="))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        let again = EnqueueOptions::new().unique_key("user-7");
        match broker.client().enqueue_with(Once { seq: 200 }, again).await {
            Ok(id) => break id,
            Err(error) => assert_eq!(error.duplicate_of(), Some(winner), "{error}"),
        }
        assert!(Instant::now() < deadline, "the key was not released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(second, winner);
    worker
        .wait_for_stdout(2, Duration::from_secs(30), |line| line.starts_with("unique seq="))
        .await;
    assert_eq!(
        count_starting(&worker.stdout(), "unique seq="),
        2,
        "{:?}",
        worker.stdout()
    );
    assert!(worker.stdout().contains(&"unique seq=200".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_key_for_a_job_that_is_not_unique_is_refused() {
    let broker = TestBroker::new().await;
    let refused = broker
        .client()
        .enqueue_with(Record { seq: 1, sleep_ms: 0 }, EnqueueOptions::new().unique_key("k"))
        .await
        .expect_err("not a unique job");
    assert!(matches!(refused.error(), Error::NotUnique { .. }), "{refused}");
    assert_eq!(broker.ready(&broker.queue("work")).await, 0);
}

/// The lock queue and the id queue of this test's one unique key.
fn lock_queues(broker: &TestBroker) -> (String, String) {
    let queues = broker.queues_containing(".unique.");
    let lock = queues
        .iter()
        .find(|name| !name.ends_with(".id"))
        .unwrap_or_else(|| panic!("no lock queue among {queues:?}"))
        .clone();
    let id = format!("{lock}.id");
    assert!(queues.contains(&id), "no id queue among {queues:?}");
    (lock, id)
}

/// Enqueues `Once { seq }` with key `key` until it is accepted (the key
/// being released meanwhile), every refusal naming `holder`.
async fn enqueue_once_freed(broker: &TestBroker, seq: u32, key: &str, holder: JobId) -> JobId {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let options = EnqueueOptions::new().unique_key(key);
        match broker.client().enqueue_with(Once { seq }, options).await {
            Ok(id) => return id,
            Err(error) => assert_eq!(error.duplicate_of(), Some(holder), "{error}"),
        }
        assert!(Instant::now() < deadline, "the key was not released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_whose_holders_id_was_lost_is_repaired_and_duplicates_get_that_id() {
    let broker = TestBroker::new().await;
    let holder = broker
        .client()
        .enqueue_with(Once { seq: 1 }, EnqueueOptions::new().unique_key("user-8"))
        .await
        .expect("the first enqueue takes the key");
    // As if the holder's id write had been lost.
    let (_, id_queue) = lock_queues(&broker);
    assert_eq!(broker.take_all(&id_queue).await.len(), 1);

    let started = Instant::now();
    let refused = broker
        .client()
        .enqueue_with(Once { seq: 2 }, EnqueueOptions::new().unique_key("user-8"))
        .await
        .expect_err("the key is taken");
    assert_eq!(refused.duplicate_of(), Some(holder), "{refused}");
    // The repair waits a second for a holder that is only slow; without it,
    // the enqueue spins until its deadline.
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    let recorded = broker.take_all(&id_queue).await;
    assert_eq!(recorded.len(), 1, "the id was written again");
    assert_eq!(text(&recorded[0].data), holder.to_string());
    assert_eq!(
        broker.ready(&broker.queue("unique")).await,
        1,
        "one job is on the queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_whose_lock_confirm_was_lost_finds_itself_the_holder() {
    let broker = TestBroker::new().await;
    // Make the key's queues, then free the key.
    let first = broker
        .client()
        .enqueue_with(Once { seq: 1 }, EnqueueOptions::new().unique_key("user-9"))
        .await
        .expect("enqueue");
    let (lock, id_queue) = lock_queues(&broker);
    broker.take_all(&lock).await;
    broker.take_all(&id_queue).await;
    // A lock publish whose confirm was lost: the message got in, no id was
    // written. The enqueue tries again with the same job id.
    let id = JobId::new();
    let properties = BasicProperties::default().with_message_id(id.to_string().into());
    broker
        .publish_to_existing(&lock, id.to_string().as_bytes(), properties)
        .await;

    let options = EnqueueOptions::new().unique_key("user-9").job_id(id);
    let enqueued = broker
        .client()
        .enqueue_with(Once { seq: 2 }, options)
        .await
        .expect("the job holds its own lock");
    assert_eq!(enqueued, id);
    assert_ne!(enqueued, first);
    assert_eq!(
        broker.ready(&broker.queue("unique")).await,
        2,
        "both jobs are on the queue"
    );
    let refused = broker
        .client()
        .enqueue_with(Once { seq: 3 }, EnqueueOptions::new().unique_key("user-9"))
        .await
        .expect_err("the key is taken");
    assert_eq!(refused.duplicate_of(), Some(id), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_releases_its_key_though_its_id_record_is_gone() {
    let broker = TestBroker::new().await;
    let holder = broker
        .client()
        .enqueue_with(Once { seq: 1 }, EnqueueOptions::new().unique_key("user-10"))
        .await
        .expect("enqueue");
    let (lock, id_queue) = lock_queues(&broker);
    assert_eq!(broker.take_all(&id_queue).await.len(), 1);

    let worker = broker.worker(WORKER, &["work", "--queues", "unique", "--workers", "1"]);
    worker
        .wait_for_stdout(1, Duration::from_secs(30), |line| line == "unique seq=1")
        .await;
    // The release reads the lock itself: the key is free although no id
    // was there to read. (No enqueue meanwhile: its repair would write the
    // id again.)
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.ready(&lock).await != 0 {
        assert!(Instant::now() < deadline, "the key was not released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = broker
        .client()
        .enqueue_with(Once { seq: 2 }, EnqueueOptions::new().unique_key("user-10"))
        .await
        .expect("the key is free");
    assert_ne!(second, holder);
    worker
        .wait_for_stdout(1, Duration::from_secs(30), |line| line == "unique seq=2")
        .await;
    // And that release took only its own message: the lock ends free.
    let third = enqueue_once_freed(&broker, 3, "user-10", second).await;
    assert_ne!(third, second);
    assert!(broker.ready(&lock).await <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_job_redelivered_instead_keeps_its_key_until_it_is_dead_lettered() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("unique");
    let name = format!("{}w", broker.prefix());
    let worker = broker.worker(
        WORKER,
        &["work", "--queues", "unique", "--workers", "1", "--name", &name],
    );
    broker.wait_for_consumers(&queue, 1).await;
    let dir = std::env::temp_dir().join(format!("{}gates", broker.prefix()));
    std::fs::create_dir_all(&dir).expect("the gates' directory");
    let job = |seq| GatedUnique {
        seq,
        dir: dir.display().to_string(),
    };
    let key = || EnqueueOptions::new().unique_key("order-9");
    let first = broker.client().enqueue_with(job(1), key()).await.expect("enqueue");
    worker
        .wait_for_stdout(1, Duration::from_secs(30), |line| line == "gated unique seq=1 run=0")
        .await;

    // The consumer's connection dies while the job runs: its failure cannot
    // be settled, and RabbitMQ redelivers the job.
    close_connection(&format!("warren worker {name}"));
    worker
        .wait_for_stderr("worker stopped; restarting it", Duration::from_secs(30))
        .await;
    std::fs::write(dir.join("open-0"), b"").expect("open the first run's gate");
    worker
        .wait_for_stderr(
            "the job's channel closed before it could be moved on",
            Duration::from_secs(30),
        )
        .await;
    // Still pending: the key is still the first job's.
    let refused = broker
        .client()
        .enqueue_with(job(2), key())
        .await
        .expect_err("the redelivered job still holds the key");
    assert_eq!(refused.duplicate_of(), Some(first), "{refused}");

    // The redelivery runs and is dead-lettered: then the key is free.
    worker
        .wait_for_stdout(1, Duration::from_secs(30), |line| line == "gated unique seq=1 run=1")
        .await;
    std::fs::write(dir.join("open-1"), b"").expect("open the second run's gate");
    broker
        .wait_for_ready(&format!("{queue}.dead"), 1, Duration::from_secs(30))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let third = loop {
        match broker.client().enqueue_with(job(3), key()).await {
            Ok(id) => break id,
            Err(error) => assert_eq!(error.duplicate_of(), Some(first), "{error}"),
        }
        assert!(Instant::now() < deadline, "the key was not released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(third, first);
    // Let the third job end too, so the worker stops cleanly.
    std::fs::write(dir.join("open-2"), b"").expect("open the third run's gate");
    worker
        .wait_for_stdout(1, Duration::from_secs(30), |line| line == "gated unique seq=3 run=2")
        .await;
    drop(worker);
    let _ = std::fs::remove_dir_all(&dir);
}
