//! Rolling deploys: a job type that only the new version of the workers
//! knows waits, in hold queues, for a worker that knows it, instead of
//! going to the dead-letter queue the moment an old worker sees it; after
//! the window (`--unknown-job-window`) it does go there, as `unknown_job`.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::types::AMQPValue;
use warren_tests::{TestBroker, eventually, header};

const OLD: &str = env!("CARGO_BIN_EXE_test-worker");
const NEW: &str = env!("CARGO_BIN_EXE_next-worker");

fn coming_soon() -> BasicProperties {
    BasicProperties::default()
        .with_type("coming_soon".into())
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}

fn holds(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|line| line.contains("holding it for a worker that knows it"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_only_the_new_workers_know_waits_for_them_instead_of_dying() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let dead = format!("{queue}.dead");
    let mut old = broker.worker(
        OLD,
        &[
            "work",
            "--queues",
            "work",
            "--workers",
            "1",
            "--unknown-job-window",
            "10m",
        ],
    );
    broker.wait_for_consumers(&queue, 1).await;

    broker.publish_raw(&queue, br#"{"seq": 7}"#, coming_soon()).await;
    eventually(Duration::from_secs(20), "the old worker held the job twice", || {
        holds(&old.stderr()) >= 2
    })
    .await;
    assert_eq!(broker.ready(&dead).await, 0, "not dead-lettered: {:#?}", old.stderr());

    // The deploy goes on: the old worker stops, a new one starts.
    old.terminate();
    assert!(old.wait_exit(Duration::from_secs(20)).await.success());
    let new = broker.worker(NEW, &["work", "--queues", "work", "--workers", "1"]);
    eventually(Duration::from_secs(90), "the new worker ran the job", || {
        new.stdout().iter().any(|line| line == "ran coming_soon seq=7")
    })
    .await;
    assert_eq!(
        new.stdout()
            .iter()
            .filter(|line| line.starts_with("ran coming_soon"))
            .count(),
        1,
        "{:#?}",
        new.stdout()
    );
    assert_eq!(broker.ready(&dead).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_worker_knows_is_dead_lettered_once_its_window_has_passed() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let dead = format!("{queue}.dead");
    let worker = broker.worker(
        OLD,
        &[
            "work",
            "--queues",
            "work",
            "--workers",
            "1",
            "--unknown-job-window",
            "3s",
        ],
    );
    broker.wait_for_consumers(&queue, 1).await;

    broker.publish_raw(&queue, br#"{"seq": 8}"#, coming_soon()).await;
    broker.wait_for_ready(&dead, 1, Duration::from_secs(30)).await;
    assert!(
        holds(&worker.stderr()) >= 1,
        "held before it died: {:#?}",
        worker.stderr()
    );

    let letters = broker.take_all(&dead).await;
    assert_eq!(letters.len(), 1);
    let properties = &letters[0].properties;
    assert_eq!(header(properties, "warren-dead-reason").as_deref(), Some("unknown_job"));
    let since = properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get("warren-unknown-since").cloned());
    assert!(matches!(since, Some(AMQPValue::LongLongInt(_))), "{since:?}");
}
