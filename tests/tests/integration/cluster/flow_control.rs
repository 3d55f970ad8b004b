//! Flow control on the cluster: a memory alarm on warren-c1 makes every
//! node block the connections that publish (`connection.blocked`), while
//! consuming goes on. Enqueues fail with the block after their recovery
//! timeout; a worker's retries are stored once, however long the block
//! lasts; a blocked connection that dies is replaced.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use warren::Client;
use warren_tests::{WorkerProcess, eventually, field};

use super::{CLUSTER, ClusterVhost, NODES, QUEUE, WORKER, ctl, done, wait_all_done, worker};
use crate::jobs::ClusterRecord;

/// What a worker logs (at debug, for `warren::amqp::session`) when a
/// publish the broker blocked once sent is still unanswered at its
/// recovery timeout, and it waits on rather than sending it again.
const PAST_THE_TIMEOUT: &str = "waiting for its confirm rather than publishing it again";

/// A memory alarm the test raised on `node` with a watermark so low that
/// any use is over it; the watermark is set back to RabbitMQ's default
/// (0.4) on drop, also when the test fails.
#[must_use = "the alarm is cleared when this is dropped"]
struct MemoryAlarm {
    node: &'static str,
}

impl MemoryAlarm {
    fn raise(node: &'static str) -> Self {
        ctl(node, &["set_vm_memory_high_watermark", "0.0000001"]).expect("lower the memory watermark");
        MemoryAlarm { node }
    }

    /// Whether the node has raised its memory alarm.
    fn raised(&self) -> bool {
        ctl(self.node, &["eval", "rabbit_alarm:get_alarms()."]).is_ok_and(|alarms| alarms.contains("memory"))
    }

    fn clear(&self) {
        ctl(self.node, &["set_vm_memory_high_watermark", "0.4"]).expect("restore the memory watermark");
    }
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        let _ = ctl(self.node, &["set_vm_memory_high_watermark", "0.4"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/cluster and raises a memory alarm on it: scripts/test runs it"]
async fn a_memory_alarm_fails_enqueues_with_the_block_while_the_worker_runs_queued_jobs() {
    const QUEUED: u32 = 20;
    const RECOVERY: Duration = Duration::from_secs(3);
    /// What an enqueue may take past its recovery timeout.
    const BOUND: Duration = Duration::from_secs(10);
    let _alone = CLUSTER.lock().await;
    let began = Instant::now();
    let vhost = ClusterVhost::new();
    let url = format!("amqp://guest:guest@127.0.0.1:{}/{}", NODES[0].1, vhost.name);
    let client = Client::builder(&url)
        .connection_name("cluster alarm producer")
        .recovery_timeout(RECOVERY)
        .connect()
        .await
        .expect("connect to warren-c1");
    // Every 5th fails once: its retry is published by the worker while the
    // broker blocks it.
    let fails_first = |seq: u32| seq % 5 == 2;
    for seq in 0..QUEUED {
        client
            .enqueue(ClusterRecord {
                seq,
                fail_first: fails_first(seq),
            })
            .await
            .expect("enqueue before the alarm");
    }
    let alarm = MemoryAlarm::raise(NODES[0].0);
    eventually(Duration::from_secs(30), "warren-c1 raises its memory alarm", || {
        alarm.raised()
    })
    .await;

    // The broker blocks the connection on its first publish after the
    // alarm: that one was sent, and is stored once the alarm clears.
    let blocked = |seq: u32| {
        let client = client.clone();
        async move {
            let started = Instant::now();
            let error = client
                .enqueue(ClusterRecord { seq, fail_first: false })
                .await
                .expect_err("an enqueue while the broker blocks publishes");
            let took = started.elapsed();
            assert!(error.error().is_publish_blocked(), "{error}");
            assert!(
                error
                    .to_string()
                    .contains("RabbitMQ is blocking publishes (low on memory)"),
                "{error}"
            );
            assert!(took >= RECOVERY && took < RECOVERY + BOUND, "failed after {took:?}");
            (error.is_outcome_unknown(), took)
        }
    };
    let (first_sent, first_took) = blocked(100).await;
    // The client knows of the block now: this one is not even sent.
    let (second_sent, second_took) = blocked(101).await;
    assert!(!second_sent, "an enqueue on a connection known blocked is not sent");

    // A worker started during the alarm runs the queued jobs; the ones
    // that fail keep their delivery while their retry cannot be stored.
    let worker = worker(&url, "alarmed");
    let failing = (0..QUEUED).filter(|&seq| fails_first(seq)).count();
    worker
        .wait_for_stdout(QUEUED as usize, Duration::from_secs(60), |line| {
            line.starts_with("ran ")
        })
        .await;
    let (done_blocked, _) = done(&[&worker]);
    let expected_blocked: BTreeSet<u32> = (0..QUEUED).filter(|&seq| !fails_first(seq)).collect();
    worker
        .wait_for_stderr("blocking publishes on this connection", Duration::from_secs(30))
        .await;
    eventually(
        Duration::from_secs(30),
        "the failed jobs wait, unacked, in the job queue",
        || vhost.queue(0, QUEUE) == Some((failing as u32, 1)),
    )
    .await;
    assert!(alarm.raised(), "the alarm held all along");
    assert_eq!(
        done_blocked, expected_blocked,
        "the jobs that succeed ran during the alarm"
    );

    alarm.clear();
    eventually(Duration::from_secs(30), "warren-c1 clears its memory alarm", || {
        !alarm.raised()
    })
    .await;
    let after = Instant::now();
    client
        .enqueue(ClusterRecord {
            seq: 102,
            fail_first: false,
        })
        .await
        .expect("an enqueue once the alarm cleared");
    let enqueue_after = after.elapsed();
    let mut expected: BTreeSet<u32> = (0..QUEUED).chain([102]).collect();
    if first_sent {
        expected.insert(100);
    }
    wait_all_done(&vhost, &[&worker], &expected, Duration::from_secs(60)).await;
    worker
        .wait_for_stderr("RabbitMQ lifted its block", Duration::from_secs(30))
        .await;
    eventually(Duration::from_secs(30), "the queue is empty", || {
        vhost.queue(0, QUEUE) == Some((0, 1))
    })
    .await;
    let (done, runs) = done(&[&worker]);
    assert!(
        !done.contains(&101),
        "the enqueue that failed before it was sent never ran"
    );
    let lines = worker.stdout();
    let retried: BTreeSet<u32> = lines
        .iter()
        .filter(|line| line.starts_with("ran ") && field(line, "attempt") == Some("2"))
        .filter_map(|line| field(line, "seq")?.parse().ok())
        .collect();
    let expected_retried: BTreeSet<u32> = (0..QUEUED).filter(|&seq| fails_first(seq)).collect();
    assert_eq!(retried, expected_retried, "every failed job ran its retry");
    // Logged once, not once per publish.
    let stderr = worker.stderr();
    let count = |text: &str| stderr.iter().filter(|line| line.contains(text)).count();
    assert_eq!(count("blocking publishes on this connection"), 1, "{stderr:#?}");
    assert_eq!(count("RabbitMQ lifted its block"), 1, "{stderr:#?}");
    client.close().await;
    drop(worker);
    drop(alarm);
    eprintln!(
        "cluster memory alarm: enqueues failed after {first_took:?} (sent: {first_sent}) and {second_took:?} \
         with a {RECOVERY:?} recovery timeout; {} jobs ran during the alarm; an enqueue after it took \
         {enqueue_after:?}; {runs} runs of {} jobs; test took {:?}",
        done_blocked.len(),
        done.len(),
        began.elapsed()
    );
}

/// Every queue of `vhost` with the messages it holds (ready and unacked).
fn messages(vhost: &ClusterVhost) -> BTreeMap<String, u32> {
    let listing = ctl(
        NODES[1].0,
        &[
            "list_queues",
            "-p",
            &vhost.name,
            "--quiet",
            "--no-table-headers",
            "name",
            "messages",
        ],
    )
    .unwrap_or_default();
    listing
        .lines()
        .filter_map(|line| {
            let (name, messages) = line.split_once('\t')?;
            Some((name.to_owned(), messages.trim().parse().ok()?))
        })
        .collect()
}

/// The attempts of each job that ran, by seq, from a worker's `ran` lines.
fn attempts(worker: &WorkerProcess) -> BTreeMap<u32, Vec<u32>> {
    let mut attempts: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for line in worker.stdout().iter().filter(|line| line.starts_with("ran ")) {
        if let (Some(seq), Some(attempt)) = (field(line, "seq"), field(line, "attempt")) {
            let (Ok(seq), Ok(attempt)) = (seq.parse(), attempt.parse()) else {
                continue;
            };
            attempts.entry(seq).or_default().push(attempt);
        }
    }
    attempts
}

/// Enough jobs that the worker still publishes retry after retry when
/// the alarm (a `rabbitmqctl` away) is raised.
const JOBS: u32 = 2_000;

/// [`JOBS`] jobs enqueued through `url`, each failing its first attempt
/// (retried 200 ms later); the client that enqueued them.
async fn failing_once(url: &str) -> Client {
    let client = Client::builder(url)
        .connection_name("cluster flow producer")
        .recovery_timeout(Duration::from_secs(60))
        .connect()
        .await
        .expect("connect to warren-c1");
    client
        .enqueue_many((0..JOBS).map(|seq| ClusterRecord { seq, fail_first: true }))
        .await
        .expect("enqueue before the alarm");
    client
}

/// A worker on `url` (with a 2 s recovery timeout) running the jobs of
/// [`failing_once`], and a memory alarm raised while it publishes their
/// retries; returned once a retry the broker blocked once sent is still
/// waited for past the recovery timeout.
async fn retries_sent_into_a_block(url: &str) -> (WorkerProcess, MemoryAlarm) {
    let worker = WorkerProcess::spawn(
        Command::new(WORKER)
            .args([
                "work",
                "--queues",
                QUEUE,
                "--workers",
                "1",
                "--prefetch",
                "10",
                "--name",
                "flow",
                "--recovery-timeout",
                "2s",
            ])
            .env("AMQP_URL", url)
            .env("RUST_LOG", "info,warren::amqp::session=debug"),
    );
    worker
        .wait_for_stdout(1, Duration::from_secs(60), |line| line.starts_with("ran "))
        .await;
    // Raised while the worker publishes retry after retry, up to 10 at
    // once: the broker blocks the connection when it reads the first
    // publish after the alarm, and the retries sent before the worker
    // hears of it wait, unread, for the block to lift (the worker's
    // heartbeats, every 2 s, come far less often than retries).
    let alarm = MemoryAlarm::raise(NODES[0].0);
    eventually(Duration::from_secs(30), "warren-c1 raises its memory alarm", || {
        alarm.raised()
    })
    .await;
    worker
        .wait_for_stderr("blocking publishes on this connection", Duration::from_secs(30))
        .await;
    // Past the recovery timeout, the retry the broker holds is still
    // waited for. (No such line: no retry was under way when the broker
    // blocked the connection, a race the test loses now and then on a
    // loaded machine; it then tells nothing either way.)
    worker.wait_for_stderr(PAST_THE_TIMEOUT, Duration::from_secs(30)).await;
    (worker, alarm)
}

/// Waits until every job of [`failing_once`] is done and every queue of
/// `vhost` is empty.
async fn all_done_and_nothing_left(vhost: &ClusterVhost, worker: &WorkerProcess) {
    wait_all_done(vhost, &[worker], &(0..JOBS).collect(), Duration::from_secs(120)).await;
    // Nothing left: no retry stored twice waits in a hold queue or the job queue.
    eventually(Duration::from_secs(60), "every queue of the vhost is empty", || {
        let messages = messages(vhost);
        messages.contains_key(QUEUE) && messages.values().all(|&count| count == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/cluster and raises a memory alarm on it: scripts/test runs it"]
async fn a_retry_the_broker_blocked_once_sent_is_stored_once_however_long_the_block_lasts() {
    let _alone = CLUSTER.lock().await;
    let began = Instant::now();
    let vhost = ClusterVhost::new();
    let url = format!("amqp://guest:guest@127.0.0.1:{}/{}", NODES[0].1, vhost.name);
    let client = failing_once(&url).await;
    let (worker, alarm) = retries_sent_into_a_block(&url).await;
    let ran_during_the_block = worker.stdout().len();
    alarm.clear();
    eventually(Duration::from_secs(30), "warren-c1 clears its memory alarm", || {
        !alarm.raised()
    })
    .await;
    all_done_and_nothing_left(&vhost, &worker).await;
    worker
        .wait_for_stderr("RabbitMQ lifted its block", Duration::from_secs(30))
        .await;
    let attempts = attempts(&worker);
    let twice: BTreeMap<u32, Vec<u32>> = attempts
        .iter()
        .filter(|(_, attempts)| attempts.as_slice() != [1, 2])
        .map(|(&seq, attempts)| (seq, attempts.clone()))
        .collect();
    assert_eq!(attempts.len(), JOBS as usize, "every job ran");
    assert!(
        twice.is_empty(),
        "each job runs its first attempt and its one retry, once each; not so: {twice:?}"
    );
    let stderr = worker.stderr();
    let held = stderr.iter().filter(|line| line.contains(PAST_THE_TIMEOUT)).count();
    // The block is logged once however many retries waited for it.
    let logged = |text: &str| stderr.iter().filter(|line| line.contains(text)).count();
    assert_eq!(logged("blocking publishes on this connection"), 1, "{stderr:#?}");
    assert_eq!(logged("RabbitMQ lifted its block"), 1, "{stderr:#?}");
    client.close().await;
    drop(worker);
    drop(alarm);
    eprintln!(
        "cluster blocked retries: {held} retries waited past the 2s recovery timeout; {ran_during_the_block} \
         lines before the alarm cleared; {} runs of {JOBS} jobs; test took {:?}",
        attempts.values().map(Vec::len).sum::<usize>(),
        began.elapsed()
    );
}

/// The broker-side connection of `vhost` named `name`, closed as an
/// operator's `rabbitmqctl close_connection` would.
fn close_connection(vhost: &ClusterVhost, name: &str) {
    let listing = ctl(
        NODES[0].0,
        &[
            "list_connections",
            "--quiet",
            "--no-table-headers",
            "pid",
            "vhost",
            "client_properties",
        ],
    )
    .expect("list_connections");
    let quoted = format!("\"connection_name\",\"{name}\"");
    let pid = listing
        .lines()
        .find(|line| line.contains(&quoted) && line.contains(&vhost.name))
        .and_then(|line| line.split('\t').next())
        .unwrap_or_else(|| panic!("no connection named {name} in {listing}"));
    ctl(NODES[0].0, &["close_connection", pid, "closed by the test"]).expect("close_connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/cluster and raises a memory alarm on it: scripts/test runs it"]
async fn a_blocked_connection_that_dies_is_replaced() {
    const RECOVERY: Duration = Duration::from_secs(2);
    const NAME: &str = "cluster blocked producer";
    let _alone = CLUSTER.lock().await;
    let vhost = ClusterVhost::new();
    let url = format!("amqp://guest:guest@127.0.0.1:{}/{}", NODES[0].1, vhost.name);
    let client = Client::builder(&url)
        .connection_name(NAME)
        .recovery_timeout(RECOVERY)
        .connect()
        .await
        .expect("connect to warren-c1");
    let job = |seq| ClusterRecord { seq, fail_first: false };
    client.enqueue(job(0)).await.expect("an enqueue before the alarm");
    let alarm = MemoryAlarm::raise(NODES[0].0);
    eventually(Duration::from_secs(30), "warren-c1 raises its memory alarm", || {
        alarm.raised()
    })
    .await;
    let error = client.enqueue(job(1)).await.expect_err("an enqueue while blocked");
    assert!(error.error().is_publish_blocked(), "{error}");

    // The blocked connection dies; then the alarm clears, which the dead
    // connection never hears of.
    close_connection(&vhost, NAME);
    alarm.clear();
    eventually(Duration::from_secs(30), "warren-c1 clears its memory alarm", || {
        !alarm.raised()
    })
    .await;
    let started = Instant::now();
    client
        .enqueue(job(2))
        .await
        .expect("an enqueue on a new connection once the alarm cleared");
    let took = started.elapsed();
    assert!(took < RECOVERY, "took {took:?}");
    client.close().await;
    drop(alarm);
    eprintln!("cluster blocked connection closed: the next enqueue reconnected in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/cluster and raises a memory alarm on it: scripts/test runs it"]
async fn a_worker_whose_blocked_publishing_connection_dies_reconnects_and_stores_its_retries() {
    let _alone = CLUSTER.lock().await;
    let began = Instant::now();
    let vhost = ClusterVhost::new();
    let url = format!("amqp://guest:guest@127.0.0.1:{}/{}", NODES[0].1, vhost.name);
    let client = failing_once(&url).await;
    let (worker, alarm) = retries_sent_into_a_block(&url).await;

    // The connection that waits for the blocked retries dies: what the
    // broker held is lost with it or not (unknown), and the worker
    // publishes it again on a new connection, blocked in turn until the
    // alarm clears.
    close_connection(&vhost, "warren worker flow (publisher)");
    let closed = Instant::now();
    worker
        .wait_for_stderr("reconnected to RabbitMQ", Duration::from_secs(60))
        .await;
    let reconnected_in = closed.elapsed();
    alarm.clear();
    eventually(Duration::from_secs(30), "warren-c1 clears its memory alarm", || {
        !alarm.raised()
    })
    .await;
    all_done_and_nothing_left(&vhost, &worker).await;
    let attempts = attempts(&worker);
    assert_eq!(attempts.len(), JOBS as usize, "every job ran");
    // At least once: a retry whose outcome the dead connection left
    // unknown may have run twice, but every job ran both attempts.
    let short: Vec<(&u32, &Vec<u32>)> = attempts
        .iter()
        .filter(|(_, attempts)| !(attempts.contains(&1) && attempts.contains(&2)))
        .collect();
    assert!(short.is_empty(), "jobs that did not run both attempts: {short:?}");
    let runs: usize = attempts.values().map(Vec::len).sum();
    client.close().await;
    drop(worker);
    drop(alarm);
    eprintln!(
        "cluster blocked publisher closed: reconnected in {reconnected_in:?}; {runs} runs of {JOBS} jobs ({} more \
         than twice each); test took {:?}",
        runs - 2 * JOBS as usize,
        began.elapsed()
    );
}
