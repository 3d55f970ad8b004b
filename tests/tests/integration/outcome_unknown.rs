//! Issue 13, item 7: an enqueue that was sent and then got no answer is
//! not "not enqueued": the broker may have stored it. The caller is told
//! the outcome is unknown, with the job's id, and can publish it again
//! under that id, so a duplicate can be told apart.

use crate::jobs;

use std::time::{Duration, Instant};

use jobs::Record;
use warren::{Client, EnqueueOptions};
use warren_tests::{Proxy, TestBroker, TestVhost, connection_channels, eventually, rabbitmqctl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_cut_off_after_it_was_sent_is_outcome_unknown_and_republished_under_its_id() {
    let broker = TestBroker::new().await;
    let proxy = Proxy::start().await;
    let client = Client::builder(proxy.url("%2f"))
        .queue_prefix(broker.prefix())
        .recovery_timeout(Duration::from_secs(3))
        .connect()
        .await
        .expect("connect through the proxy");
    // Declares the queue: after the cut, the job's message itself is sent.
    client
        .enqueue(Record { seq: 1, sleep_ms: 0 })
        .await
        .expect("enqueue before the cut");

    proxy.cut();
    let started = Instant::now();
    let error = client
        .enqueue(Record { seq: 2, sleep_ms: 0 })
        .await
        .expect_err("no broker to confirm it");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed after {:?}",
        started.elapsed()
    );
    assert!(error.is_outcome_unknown(), "{error}");
    assert!(error.to_string().contains("unknown"), "the error says so: {error}");
    let id = error.job_id().expect("the id the message was sent with");

    let job = error.into_job();
    assert_eq!(job.seq, 2, "the job is handed back");
    let republished = broker
        .client()
        .enqueue_with(job, EnqueueOptions::new().job_id(id))
        .await
        .expect("enqueue on a healthy client");
    assert_eq!(republished, id, "the same job, the same id");
    let messages = broker.take_all(&broker.queue("work")).await;
    let with_id: Vec<_> = messages
        .iter()
        .filter(|message| message.properties.message_id().as_ref().map(ToString::to_string) == Some(id.to_string()))
        .collect();
    assert_eq!(with_id.len(), 1, "{} messages in the queue", messages.len());
    assert_eq!(with_id[0].data, br#"{"seq":2,"sleep_ms":0}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_that_fails_before_anything_is_sent_is_not_outcome_unknown() {
    // Refused before publishing: a delay longer than warren holds jobs.
    let broker = TestBroker::new().await;
    let error = broker
        .client()
        .enqueue_with(
            Record { seq: 1, sleep_ms: 0 },
            EnqueueOptions::new().delay(Duration::from_secs(31 * 24 * 60 * 60)),
        )
        .await
        .expect_err("too long a delay");
    assert!(!error.is_outcome_unknown(), "{error}");

    // Its connection closed, and every new one refused at connect: the job
    // never left the client.
    let vhost = TestVhost::new();
    let name = format!("outcome test {}", vhost.name());
    let client = Client::builder(vhost.url())
        .connection_name(&name)
        .recovery_timeout(Duration::from_secs(3))
        .connect()
        .await
        .expect("connect");
    client
        .enqueue(Record { seq: 2, sleep_ms: 0 })
        .await
        .expect("enqueue while connected");
    rabbitmqctl(&["set_vhost_limits", "-p", vhost.name(), r#"{"max-connections": 0}"#]);
    vhost.close_all_connections();
    eventually(Duration::from_secs(10), "the client's connection is closed", || {
        connection_channels(&name).is_none()
    })
    .await;

    let error = client
        .enqueue(Record { seq: 3, sleep_ms: 0 })
        .await
        .expect_err("no connection to publish on");
    assert!(!error.is_outcome_unknown(), "{error}");
    assert!(
        !error.to_string().contains("unknown"),
        "not enqueued, and it says so: {error}"
    );
    assert_eq!(error.into_job().seq, 3);
}
