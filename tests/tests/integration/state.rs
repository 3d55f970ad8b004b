//! A worker made with `warren::main!(setup = ...)`: its handlers get the
//! state the hook built, a handler asking for state it was not given fails
//! with the type's name, and a failing hook stops the worker before it
//! consumes anything.

use crate::state_jobs;

use std::process::Command;
use std::time::Duration;

use state_jobs::{Greet, Query};
use warren_tests::{TestBroker, amqp_url, header};

const WORKER: &str = env!("CARGO_BIN_EXE_state-worker");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_get_the_state_the_setup_hook_built() {
    let broker = TestBroker::new().await;
    let mut command = Command::new(WORKER);
    command
        .args(["work", "--queues", "state", "--workers", "1"])
        .env("WARREN_QUEUE_PREFIX", broker.prefix())
        .env("GREETING", "bonjour");
    let worker = warren_tests::WorkerProcess::spawn(&mut command);
    broker.wait_for_consumers(&broker.queue("state"), 1).await;

    let client = broker.client();
    client.enqueue(Greet { seq: 1 }).await.expect("enqueue");
    client.enqueue(Query { seq: 2 }).await.expect("enqueue");

    worker
        .wait_for_stdout(1, Duration::from_secs(10), |line| {
            line == "greeted seq=1 greeting=bonjour"
        })
        .await;
    let dead = format!("{}.dead", broker.queue("state"));
    broker.wait_for_ready(&dead, 1, Duration::from_secs(10)).await;
    let letter = broker.take(&dead).await.expect("the dead letter");
    let error = header(&letter.properties, "warren-dead-error").expect("the error");
    assert!(error.starts_with("no state of type `"), "{error}");
    assert!(error.contains("state_jobs::Database`"), "names the type: {error}");
    assert!(error.contains("setup"), "says how to provide it: {error}");
    assert!(
        error.contains("state_jobs::Greeting`"),
        "lists what the state holds: {error}"
    );
}

async fn setup_failure(broker: &TestBroker, env: (&str, &str)) -> (Option<i32>, String) {
    let output = Command::new(WORKER)
        .args(["work", "--queues", "state"])
        .env("AMQP_URL", amqp_url())
        .env("WARREN_QUEUE_PREFIX", broker.prefix())
        .env(env.0, env.1)
        .output()
        .expect("run the worker");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_panicking_setup_hook_exits_1_with_its_message_and_runs_nothing() {
    let broker = TestBroker::new().await;
    // Waiting in the queue: a worker that consumed before its hook ran would take it.
    broker.client().enqueue(Greet { seq: 3 }).await.expect("enqueue");

    let (code, stderr) = setup_failure(&broker, ("STATE_WORKER_DATABASE_DOWN", "postgres://db:5432")).await;
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("error: the setup hook failed: database unreachable at postgres://db:5432"),
        "{stderr}"
    );
    let (code, stderr) = setup_failure(&broker, ("STATE_WORKER_PANIC", "1")).await;
    assert_eq!(code, Some(1), "a panic is a failure like any other: {stderr}");
    assert!(
        stderr.contains("error: the setup hook panicked: config file missing"),
        "{stderr}"
    );

    assert_eq!(
        broker.ready(&broker.queue("state")).await,
        1,
        "the job is still waiting"
    );
}

#[test]
fn commands_other_than_work_do_not_run_the_setup_hook() {
    let output = Command::new(WORKER)
        .arg("jobs")
        .env("STATE_WORKER_DATABASE_DOWN", "postgres://db:5432")
        .output()
        .expect("run the worker");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("greet") && stdout.contains("query"), "{stdout}");
}
