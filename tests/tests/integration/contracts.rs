//! Contract crates: job types declared without handlers in one crate
//! (`warren-test-contracts`), enqueued by a producer that has no handler
//! (this test), run by a worker that binds one (`contract-worker`); and
//! worker binaries whose job crate is, or is not, linked.

use std::time::Duration;

use warren::{EnqueueOptions, Registry};
use warren_test_contracts::{Archive, Thumbnail};
use warren_tests::{TestBroker, run_worker_command, text};

const CONTRACT_WORKER: &str = env!("CARGO_BIN_EXE_contract-worker");
const LINKED: &str = env!("CARGO_BIN_EXE_linked-jobs");
const UNLINKED: &str = env!("CARGO_BIN_EXE_unlinked-jobs");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_job_enqueued_without_a_handler_runs_in_the_worker_that_binds_one() {
    // This program is the producer: it links the contract crate, no handler.
    let producer = Registry::from_inventory().expect("no conflicts");
    let thumbnail = producer.get("thumbnail").expect("the contract crate is linked");
    assert!(thumbnail.is_contract() && !thumbnail.has_handler(), "{thumbnail:?}");

    let broker = TestBroker::new().await;
    let worker = broker.worker(CONTRACT_WORKER, &["work", "--queues", "thumbnails", "--workers", "1"]);
    let client = broker.client();
    client
        .enqueue(Thumbnail {
            path: "cat.png".into(),
            width: 64,
        })
        .await
        .expect("enqueued by type");
    client
        .enqueue_raw(
            "thumbnail",
            r#"{"path": "dog.png", "width": 128}"#,
            EnqueueOptions::new(),
        )
        .await
        .expect("enqueued by name");
    worker
        .wait_for_stdout(2, Duration::from_secs(15), |line| line.starts_with("thumbnail "))
        .await;
    let mut ran: Vec<String> = worker
        .stdout()
        .into_iter()
        .filter(|line| line.starts_with("thumbnail "))
        .collect();
    ran.sort();
    assert_eq!(
        ran,
        [
            "thumbnail path=cat.png width=64 job=thumbnail attempt=1 by=contract-worker",
            "thumbnail path=dog.png width=128 job=thumbnail attempt=1 by=contract-worker",
        ]
    );
    assert_eq!(broker.ready(&broker.queue("thumbnails")).await, 0);
    assert_eq!(broker.ready(&broker.queue("thumbnails.dead")).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serving_a_contract_job_without_a_handler_refuses_to_start_naming_it() {
    let broker = TestBroker::new().await;
    // By default `work` serves every registered job's queue, `archive` too.
    let output = run_worker_command(CONTRACT_WORKER, broker.prefix(), &["work"]);
    assert_eq!(output.status.code(), Some(1), "stderr: {}", text(&output.stderr));
    let error = text(&output.stderr);
    assert!(
        error.contains(
            "job `archive` (`warren_test_contracts::Archive`) is a contract with no handler in this program; \
             bind one with `warren::handler!(warren_test_contracts::Archive => your_handler);`"
        ),
        "{error}"
    );
    assert!(error.contains("leave their queues out with --queues"), "{error}");
    assert!(!error.contains("`thumbnail`"), "thumbnail has its handler: {error}");
    // Refused before consuming anything: no queue was declared.
    assert_eq!(broker.consumers(&broker.queue("archive")).await, 0);
    assert_eq!(broker.consumers(&broker.queue("thumbnails")).await, 0);
    // The producer side of the same job needs no handler.
    broker
        .client()
        .enqueue(Archive { path: "old.log".into() })
        .await
        .expect("a producer enqueues a job no one here handles");
}

#[test]
fn jobs_named_in_main_are_linked_and_a_binary_naming_none_says_how_to_link_them() {
    let linked = run_worker_command(LINKED, "", &["jobs"]);
    assert!(linked.status.success(), "stderr: {}", text(&linked.stderr));
    let listing = text(&linked.stdout);
    assert!(listing.contains("warren_test_contracts::Thumbnail"), "{listing}");
    assert!(listing.contains("warren_test_contracts::Archive"), "{listing}");

    // Linked, but nothing binds a handler: `work` refuses, naming both.
    let work = run_worker_command(LINKED, "", &["work"]);
    assert_eq!(work.status.code(), Some(1));
    let error = text(&work.stderr);
    assert!(
        error.contains("job `archive`") && error.contains("job `thumbnail`"),
        "{error}"
    );

    let unlinked = run_worker_command(UNLINKED, "", &["jobs"]);
    let listing = text(&unlinked.stdout);
    assert!(!listing.contains("warren_test_contracts"), "{listing}");
    let work = run_worker_command(UNLINKED, "", &["work"]);
    assert_eq!(work.status.code(), Some(1));
    let error = text(&work.stderr);
    assert!(error.contains("no jobs are registered in this binary"), "{error}");
    assert!(
        error.contains("name it in `warren::main!(jobs = [my_jobs])`, or add `use my_jobs as _;`"),
        "{error}"
    );
}
