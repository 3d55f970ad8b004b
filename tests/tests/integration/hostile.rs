//! A hostile producer: hand-written AMQP (`warren_tests::raw_amqp`) sends
//! what no client library would (headers nested to the frame limit, invalid
//! UTF-8 in every short string, headers of up to 120 KiB, every field type,
//! oddly typed `warren-*` headers, bodies of 0 bytes and 100 MB), among
//! good `record` jobs. Every good job runs exactly once, every bad message
//! is in `<queue>.dead` with its reason within seconds, and the worker
//! never exits.

use crate::jobs;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jobs::AlwaysFail;
use lapin::message::Delivery;
use warren_tests::raw_amqp::{Nesting, RawProperties, RawPublisher, deepest_within, field, nested, table};
use warren_tests::{TestBroker, WorkerProcess, field as line_field, header, list_queue, rabbitmqctl};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// How long a good job may take to run, or a bad one to reach `.dead`.
const WITHIN: Duration = Duration::from_secs(20);

/// No line of the worker's output is longer: bodies never go into logs.
const LONGEST_LINE: usize = 10 * 1024;

/// Poison `record` messages carry seqs from here, so a run of one shows.
const POISON_SEQ: u32 = 900_000;

/// A bad message the test expects in `.dead`, known by its body.
#[derive(Debug)]
struct Poison {
    what: String,
    body: Vec<u8>,
    reason: &'static str,
}

/// A worker on `<prefix>work`, a raw publisher, and what the test sent.
struct Hostile {
    broker: TestBroker,
    worker: WorkerProcess,
    publisher: RawPublisher,
    queue: String,
    /// The seqs of the good jobs sent.
    good: Vec<u32>,
    poisons: Vec<Poison>,
}

impl Hostile {
    async fn start() -> Self {
        let broker = TestBroker::new().await;
        let queue = broker.queue("work");
        let worker = broker.worker(WORKER, &["work", "--queues", "work", "--workers", "2"]);
        broker.wait_for_consumers(&queue, 2).await;
        let publisher = RawPublisher::connect("/").await.expect("raw AMQP connection");
        Hostile {
            broker,
            worker,
            publisher,
            queue,
            good: Vec::new(),
            poisons: Vec::new(),
        }
    }

    /// Publishes a good `record` job with `properties`; it must run once.
    async fn good_with(&mut self, properties: RawProperties) -> u32 {
        let seq = u32::try_from(self.good.len()).expect("few jobs");
        self.publish(&properties, &record_body(seq)).await;
        self.good.push(seq);
        seq
    }

    /// Publishes `count` plain good `record` jobs.
    async fn good(&mut self, count: u32) {
        for _ in 0..count {
            self.good_with(RawProperties::job(b"record")).await;
        }
    }

    /// Publishes a bad message whose body is a `record` that must never run.
    async fn poison(&mut self, what: &str, properties: RawProperties, reason: &'static str) {
        let seq = POISON_SEQ + u32::try_from(self.poisons.len()).expect("few poisons");
        self.poison_body(what, properties, record_body(seq), reason).await;
    }

    /// Publishes a bad message with `body`, unique among this test's poisons.
    async fn poison_body(&mut self, what: &str, properties: RawProperties, body: Vec<u8>, reason: &'static str) {
        self.publish(&properties, &body).await;
        self.poisons.push(Poison {
            what: what.to_owned(),
            body,
            reason,
        });
    }

    async fn publish(&mut self, properties: &RawProperties, body: &[u8]) {
        self.publisher
            .publish(&self.queue, properties, body)
            .await
            .unwrap_or_else(|error| panic!("the broker refused a message: {error}"));
    }

    /// Waits until `condition` holds, failing at once if the worker exits.
    async fn wait(&mut self, what: &str, condition: impl AsyncFnMut(&Self) -> bool) {
        if !self.poll(WITHIN, what, condition).await {
            panic!(
                "timed out waiting until {what}; worker stderr ends: {:#?}",
                tail(&self.worker.stderr())
            );
        }
    }

    /// Whether `condition` holds within `within`; fails at once if the worker exits.
    async fn poll(&mut self, within: Duration, what: &str, mut condition: impl AsyncFnMut(&Self) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if !self.worker.is_running() {
                let status = self.worker.wait_exit(Duration::from_secs(5)).await;
                panic!(
                    "the worker exited ({status}) while waiting until {what}; stderr ends: {:#?}",
                    tail(&self.worker.stderr())
                );
            }
            if condition(self).await {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asserts the outcome: each good job ran exactly once, each poison is
    /// dead with its reason, nothing else is dead or left, the worker runs
    /// and never printed a body. Returns the dead letters, with the poisons.
    async fn check(mut self) -> (Vec<(Poison, Delivery)>, Self) {
        let good = self.good.clone();
        self.wait("every good job is done", async |this| {
            let done = counts(&this.worker.stdout(), "done ");
            good.iter().all(|seq| done.contains_key(seq))
        })
        .await;
        let dead = format!("{}.dead", self.queue);
        let expected = u32::try_from(self.poisons.len()).expect("few poisons");
        self.wait(&format!("{expected} dead letters are in {dead}"), async |this| {
            this.broker.ready(&dead).await >= expected
        })
        .await;
        let queue = self.queue.clone();
        self.wait(&format!("{queue} is empty, nothing unacked"), async |_| {
            list_queue(&queue).is_some_and(|q| q.messages == 0)
        })
        .await;

        let stdout = self.worker.stdout();
        let (ran, done) = (counts(&stdout, "ran "), counts(&stdout, "done "));
        let once: BTreeMap<u32, usize> = self.good.iter().map(|seq| (*seq, 1)).collect();
        assert_eq!(
            ran, once,
            "each good job ran exactly once (seq → runs), and no poison ran"
        );
        assert_eq!(done, once, "each good job finished exactly once (seq → finishes)");
        let longest = stdout.iter().chain(&self.worker.stderr()).map(String::len).max();
        assert!(
            longest < Some(LONGEST_LINE),
            "a line of {longest:?} bytes: a body in the logs?"
        );
        assert!(
            self.worker.is_running(),
            "the worker exited: {:#?}",
            self.worker.stderr()
        );

        let letters = self.broker.take_all(&dead).await;
        assert_eq!(letters.len(), self.poisons.len(), "exactly the poisons are dead");
        let mut matched = Vec::new();
        for letter in letters {
            let index = self
                .poisons
                .iter()
                .position(|poison| poison.body == letter.data)
                .unwrap_or_else(|| panic!("a dead letter no poison has the body of: {:?}", letter.properties));
            let poison = self.poisons.swap_remove(index);
            let reason = header(&letter.properties, "warren-dead-reason");
            assert_eq!(
                reason.as_deref(),
                Some(poison.reason),
                "the dead reason of {}",
                poison.what
            );
            matched.push((poison, letter));
        }
        (matched, self)
    }
}

/// A `record` job's body.
fn record_body(seq: u32) -> Vec<u8> {
    format!(r#"{{"seq":{seq},"sleep_ms":0}}"#).into_bytes()
}

/// How many lines start with `prefix`, by their `seq=`.
fn counts(lines: &[String], prefix: &str) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    for line in lines.iter().filter(|line| line.starts_with(prefix)) {
        let seq = line_field(line, "seq").and_then(|seq| seq.parse().ok()).expect("seq=");
        *counts.entry(seq).or_default() += 1;
    }
    counts
}

fn tail(lines: &[String]) -> Vec<String> {
    let lines = &lines[lines.len().saturating_sub(15)..];
    lines.iter().map(|line| line.chars().take(300).collect()).collect()
}

/// A `record` job with headers `pairs`.
fn record_with_headers(pairs: &[(&[u8], Vec<u8>)]) -> RawProperties {
    RawProperties {
        headers: Some(table(pairs)),
        ..RawProperties::job(b"record")
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_nested_two_thousand_deep_are_dead_undecodable() {
    let mut hostile = Hostile::start().await;
    hostile.good(3).await;
    for nesting in [Nesting::Array, Nesting::Table] {
        let deep = nested(2_000, nesting, &field::u8(1));
        hostile
            .poison(
                &format!("{nesting:?} 2,000 deep"),
                record_with_headers(&[(b"deep", deep)]),
                "undecodable",
            )
            .await;
        hostile.good(3).await;
    }
    hostile.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_nested_as_deep_as_a_frame_holds_are_dead_undecodable() {
    let mut hostile = Hostile::start().await;
    hostile.good(3).await;
    for nesting in [Nesting::Array, Nesting::Table] {
        let leaf = field::u8(1);
        let base = record_with_headers(&[(b"deep", Vec::new())]).encode().len();
        let depth = deepest_within(hostile.publisher.max_properties_len() - base, nesting, leaf.len());
        assert!(depth > 18_000, "a frame holds {depth} levels of {nesting:?}");
        let deep = nested(depth, nesting, &leaf);
        let properties = record_with_headers(&[(b"deep", deep)]);
        hostile
            .poison(&format!("{nesting:?} {depth} deep"), properties, "undecodable")
            .await;
        hostile.good(3).await;
    }
    hostile.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_the_type_is_dead_undecodable() {
    let mut hostile = Hostile::start().await;
    hostile.good(3).await;
    hostile
        .poison(
            "type rec\\xff\\xfeord",
            RawProperties::job(b"rec\xff\xfeord"),
            "undecodable",
        )
        .await;
    hostile.good(3).await;
    hostile.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_other_short_strings_is_read_lossily_and_the_job_runs() {
    const BAD: &[u8] = b"bad\xff\xfe\xc3(";
    let mut hostile = Hostile::start().await;
    hostile.good(2).await;
    let job = RawProperties::job(b"record");
    let cases = [
        RawProperties {
            message_id: Some(BAD.to_vec()),
            ..job.clone()
        },
        RawProperties {
            content_type: Some(b"application/json\xff".to_vec()),
            ..job.clone()
        },
        RawProperties {
            app_id: Some(BAD.to_vec()),
            ..job.clone()
        },
        RawProperties {
            correlation_id: Some(BAD.to_vec()),
            ..job.clone()
        },
        RawProperties {
            reply_to: Some(BAD.to_vec()),
            ..job.clone()
        },
        record_with_headers(&[(BAD, field::long_string(b"value"))]),
        // RabbitMQ has no short-string field value (its `s` is a 16-bit
        // integer): the nearest, a long string and bytes, not UTF-8.
        record_with_headers(&[(b"text", field::long_string(BAD)), (b"bytes", field::bytes(BAD))]),
        // A bad key inside a nested table.
        record_with_headers(&[(b"nested", field::table(&[(BAD, field::void())]))]),
    ];
    for properties in cases {
        hostile.good_with(properties).await;
        hostile.good(2).await;
    }
    hostile.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_headers_of_unknown_jobs_are_dead_and_trimmed_and_a_good_job_with_one_runs() {
    let mut hostile = Hostile::start().await;
    hostile.good(2).await;
    for kib in [32, 64, 120] {
        let big = field::long_string(&vec![b'h'; kib * 1024]);
        let properties = RawProperties {
            headers: Some(table(&[(b"big", big)])),
            ..RawProperties::job(b"no_such_job")
        };
        hostile
            .poison(&format!("{kib} KiB header"), properties, "unknown_job")
            .await;
        hostile.good(2).await;
    }
    let big = field::long_string(&vec![b'h'; 64 * 1024]);
    hostile.good_with(record_with_headers(&[(b"big", big)])).await;
    hostile.good(2).await;
    let (letters, _hostile) = hostile.check().await;
    for (poison, letter) in letters {
        let trimmed = header(&letter.properties, "warren-trimmed")
            .unwrap_or_else(|| panic!("the dead letter of the {} has no warren-trimmed", poison.what));
        assert!(
            trimmed.contains("big"),
            "warren-trimmed names the dropped header: {trimmed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_type_in_the_headers_of_a_good_job_is_harmless() {
    let mut hostile = Hostile::start().await;
    hostile.good(2).await;
    let every = [
        (&b"t"[..], field::boolean(true)),
        (b"b", field::i8(-1)),
        (b"B", field::u8(255)),
        (b"s", field::i16(i16::MIN)),
        (b"u", field::u16(u16::MAX)),
        (b"I", field::i32(i32::MIN)),
        (b"i", field::u32(u32::MAX)),
        (b"L", field::u64(u64::MAX)),
        (b"l", field::i64(i64::MIN)),
        // RabbitMQ refuses NaN and infinities (Erlang has no such floats).
        (b"f", field::f32(f32::MIN_POSITIVE)),
        (b"d", field::f64(f64::MAX)),
        (b"D", field::decimal(255, u32::MAX)),
        (b"S", field::long_string(b"")),
        (
            b"A",
            field::array(&[field::void(), field::array(&[]), field::table(&[])]),
        ),
        (b"T", field::timestamp(u64::MAX)),
        (b"F", field::table(&[(b"", field::i8(0))])),
        (b"V", field::void()),
        (b"x", field::bytes(&[0; 16])),
    ];
    hostile.good_with(record_with_headers(&every)).await;
    hostile.good(2).await;
    // The same values as warren's own headers (but `warren-eta`, which some
    // of them would make due in years).
    let names = ["warren-attempt", "warren-retries", "warren-backoff-ms"];
    for name in names {
        let pairs: Vec<(&[u8], Vec<u8>)> = every
            .iter()
            .map(|(_, value)| (name.as_bytes(), value.clone()))
            .collect();
        for pair in pairs {
            hostile.good_with(record_with_headers(&[pair])).await;
        }
    }
    hostile.good(2).await;
    hostile.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oddly_typed_warren_headers_on_good_jobs_are_ignored() {
    let mut hostile = Hostile::start().await;
    hostile.good(2).await;
    let odd = [
        (&b"warren-attempt"[..], field::long_string(b"2")),
        (b"warren-attempt", field::i64(-1)),
        (b"warren-attempt", field::i64(1 << 40)),
        (b"warren-retries", field::long_string(b"5")),
        (b"warren-eta", field::long_string(b"2030-01-01T00:00:00Z")),
    ];
    for pair in odd {
        hostile.good_with(record_with_headers(&[pair])).await;
        hostile.good(1).await;
    }
    hostile.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warren_eta_sent_as_an_amqp_timestamp_is_waited_for() {
    let mut hostile = Hostile::start().await;
    // What pika sends for a `datetime`: whole seconds, at least 3 s ahead.
    let due_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 4;
    let published_ms = now_ms();
    let seq = hostile
        .good_with(record_with_headers(&[(b"warren-eta", field::timestamp(due_secs))]))
        .await;
    hostile.good(2).await;
    let (_, hostile) = hostile.check().await;
    let ran = hostile.worker.stdout();
    let ran = ran
        .iter()
        .find(|line| line.starts_with(&format!("ran seq={seq} ")))
        .expect("its ran line");
    let at_ms: u128 = line_field(ran, "at_ms").and_then(|t| t.parse().ok()).expect("at_ms");
    let due_ms = u128::from(due_secs) * 1000;
    assert!(
        at_ms + 250 >= due_ms,
        "ran {} ms after it was published, {} ms before it was due",
        at_ms.saturating_sub(published_ms),
        due_ms.saturating_sub(at_ms)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_hundred_megabyte_bodies_are_dead_undecodable_and_never_logged() {
    let mut hostile = Hostile::start().await;
    hostile.good(2).await;
    let job = RawProperties::job(b"record");
    hostile
        .poison_body("0-byte body", job.clone(), Vec::new(), "undecodable")
        .await;
    hostile.good(2).await;
    // Not JSON from its first byte, and nothing a log line would shorten.
    let huge: Vec<u8> = (0..100_000_000_u32).map(|i| b"not json "[i as usize % 9]).collect();
    hostile.poison_body("100 MB body", job, huge, "undecodable").await;
    hostile.good(2).await;
    hostile.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_that_cannot_be_dead_lettered_whole_does_not_fork_retry_chains() {
    const JOBS: u32 = 300;
    let mut hostile = Hostile::start().await;
    let client = hostile.broker.client().clone();
    client
        .enqueue_many((0..JOBS / 2).map(|seq| AlwaysFail { seq }))
        .await
        .expect("enqueue");
    let big = field::long_string(&vec![b'h'; 40_000]);
    let properties = RawProperties {
        headers: Some(table(&[(b"big", big)])),
        ..RawProperties::job(b"no_such_job")
    };
    hostile.poison("40,000-byte header", properties, "unknown_job").await;
    client
        .enqueue_many((JOBS / 2..JOBS).map(|seq| AlwaysFail { seq }))
        .await
        .expect("enqueue");
    let dead = format!("{}.dead", hostile.queue);
    let expected = JOBS + 1;
    let what = format!("{expected} dead letters, nothing left to run");
    let settled = hostile
        .poll(WITHIN * 2, &what, async |this| {
            this.broker.ready(&dead).await >= expected && queues_empty_but(this.broker.prefix(), &dead)
        })
        .await;
    let attempts = attempts(&hostile.worker.stdout());
    let most = attempts.iter().max_by_key(|(_, runs)| runs.len());
    assert!(
        settled,
        "timed out waiting until {what}: {} dead letters; the most runs: {most:?}",
        hostile.broker.ready(&dead).await
    );
    let wrong: Vec<_> = attempts.iter().filter(|(_, runs)| **runs != [1, 2, 3]).collect();
    assert!(
        wrong.is_empty(),
        "jobs that did not run attempts 1, 2, 3 (seq, attempts): {wrong:?}"
    );
    assert_eq!(attempts.len(), JOBS as usize, "every job ran");
    assert!(
        hostile.worker.is_running(),
        "the worker exited: {:#?}",
        hostile.worker.stderr()
    );

    let letters = hostile.broker.take_all(&dead).await;
    let mut reasons = BTreeMap::<String, usize>::new();
    let mut seqs = BTreeMap::<u32, usize>::new();
    for letter in &letters {
        let reason = header(&letter.properties, "warren-dead-reason").unwrap_or_default();
        *reasons.entry(reason).or_default() += 1;
        if letter.properties.kind().as_ref().map(|kind| kind.as_str()) == Some("always_fail") {
            let job: AlwaysFail = serde_json::from_slice(&letter.data).expect("an always_fail body");
            *seqs.entry(job.seq).or_default() += 1;
        }
    }
    let expected_reasons = BTreeMap::from([("failed".to_owned(), JOBS as usize), ("unknown_job".to_owned(), 1)]);
    assert_eq!(reasons, expected_reasons, "dead letters by reason");
    assert!(seqs.values().all(|n| *n == 1), "each job is dead once");
}

/// The attempts of each `seq`, in order, from lines `attempt seq=<n> attempt=<a> …`.
fn attempts(lines: &[String]) -> BTreeMap<u32, Vec<u32>> {
    let mut attempts = BTreeMap::<u32, Vec<u32>>::new();
    for line in lines.iter().filter(|line| line.starts_with("attempt ")) {
        let number = |name| line_field(line, name).and_then(|n| n.parse().ok()).expect(name);
        attempts.entry(number("seq")).or_default().push(number("attempt"));
    }
    attempts
}

/// Whether every queue of `prefix` but `except` is empty, nothing unacked.
fn queues_empty_but(prefix: &str, except: &str) -> bool {
    let listing = rabbitmqctl(&["list_queues", "--quiet", "--no-table-headers", "name", "messages"]);
    listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(name, _)| name.starts_with(prefix) && *name != except)
        .all(|(_, messages)| messages.trim() == "0")
}

/// Why the suite sends no NaN, no infinity and no short-string header
/// value: RabbitMQ parses the headers of what it is sent (its `s` is a
/// 16-bit integer, Erlang has no NaN) and closes the producer's connection,
/// so none of these ever reaches a worker. Should a broker let one through,
/// this test says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_rabbitmq_refuses_never_reaches_the_worker() {
    let mut hostile = Hostile::start().await;
    let refused = [
        ("a NaN float", field::f32(f32::NAN)),
        ("an infinite double", field::f64(f64::INFINITY)),
        (
            "a short string, as the spec writes it",
            [&b"s\x03\xff\xfe("[..], b"\x01nV"].concat(),
        ),
        ("an unknown field type", b"Z\x00".to_vec()),
    ];
    for (what, value) in refused {
        let properties = record_with_headers(&[(b"odd", value)]);
        let mut publisher = RawPublisher::connect("/").await.expect("raw AMQP connection");
        let published = publisher
            .publish(&hostile.queue, &properties, &record_body(POISON_SEQ))
            .await;
        let error = published.expect_err(what).to_string();
        assert!(error.contains("541"), "RabbitMQ refused {what} with: {error}");
    }
    hostile.good(2).await;
    hostile.check().await;
}
