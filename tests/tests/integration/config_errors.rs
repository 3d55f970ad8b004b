//! What cannot work fails at once and says why; only what may pass is
//! retried. A malformed URL, an unknown scheme or a missing TLS file exits
//! 2 before anything is dialled; refused credentials and an unknown virtual
//! host exit 1, naming which; a running worker whose credentials the broker
//! refuses for a while keeps trying and comes back.

use crate::jobs;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use jobs::Record;
use warren::{Client, Error};
use warren_tests::{TestVhost, WorkerProcess, amqp_url, eventually, rabbitmqctl, text};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// Runs the worker binary with `args` and `AMQP_URL` unset (the URL, if
/// any, is in `args`), returning its output and how long it ran.
fn run(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(WORKER)
        .args(args)
        .env_remove("AMQP_URL")
        .env_remove("WARREN_TLS_CA")
        .env_remove("WARREN_TLS_CERT")
        .env_remove("WARREN_TLS_KEY")
        .env("WARREN_QUEUE_PREFIX", "test-config-errors-")
        .stdin(Stdio::null())
        .output()
        .expect("run the worker binary");
    (output, started.elapsed())
}

/// The `error:` lines of a command's output.
fn error_lines(output: &Output) -> Vec<String> {
    text(&output.stderr)
        .lines()
        .filter(|line| line.starts_with("error: "))
        .map(str::to_owned)
        .collect()
}

/// `amqp://user:password@host:port/<vhost>` on the test broker.
fn url_with(user: &str, password: &str, vhost: &str) -> String {
    let base = amqp_url();
    let (_, rest) = base.split_once("://").expect("AMQP_URL has a scheme");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host.split_once('/').map_or(host, |(host, _)| host);
    format!("amqp://{user}:{password}@{host}/{vhost}")
}

#[test]
fn work_with_a_malformed_url_exits_2_within_a_second_naming_it() {
    for (url, names) in [
        ("amqp//x", "it does not start with `amqp://`"),
        ("amqp//guest:hunter2@127.0.0.1:5672", "it does not start with `amqp://`"),
        ("amq://127.0.0.1:5672", "unknown scheme `amq`"),
        ("127.0.0.1:5672", "it does not start with `amqp://`"),
        ("", "no URL given"),
        (" , ", "no URL given"),
        ("amqp://127.0.0.1:99999/%2f", "invalid port number"),
    ] {
        let (output, took) = run(&["--amqp-url", url, "work"]);
        assert_eq!(output.status.code(), Some(2), "{url:?}: {}", text(&output.stderr));
        assert!(took < Duration::from_secs(1), "{url:?} took {took:?}");
        let errors = error_lines(&output);
        assert_eq!(errors.len(), 1, "{url:?}: {}", text(&output.stderr));
        assert!(errors[0].contains(names), "{url:?}: {errors:?}");
        assert!(!errors[0].contains("hunter2"), "the password is redacted: {errors:?}");
        // It stopped before the setup hook and before any connection attempt.
        assert_eq!(text(&output.stderr).lines().count(), 1, "{}", text(&output.stderr));
    }
    // The one-shot commands say the same.
    let job = r#"{"seq": 1, "sleep_ms": 0}"#;
    let (output, _) = run(&["--amqp-url", "amq://127.0.0.1:5672", "enqueue", "record", job]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(error_lines(&output)[0].contains("unknown scheme `amq`"));
    let (output, _) = run(&["--amqp-url", "amqp//x", "dead", "list"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
}

#[test]
fn a_missing_tls_file_or_tls_files_with_a_plain_url_exit_2() {
    let (output, took) = run(&[
        "--amqp-url",
        "amqps://127.0.0.1:5671/%2f",
        "--tls-ca",
        "/nonexistent/warren-ca.pem",
        "work",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let errors = error_lines(&output);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("error: cannot use the TLS CA file `/nonexistent/warren-ca.pem`: "),
        "{errors:?}"
    );

    let key = std::env::temp_dir().join(format!("warren-not-a-key-{}.pem", std::process::id()));
    std::fs::write(&key, "not a key\n").expect("write");
    let (output, _) = run(&[
        "--amqp-url",
        "amqps://127.0.0.1:5671/%2f",
        "--tls-cert",
        key.to_str().expect("UTF-8 path"),
        "--tls-key",
        key.to_str().expect("UTF-8 path"),
        "enqueue",
        "record",
        r#"{"seq": 1, "sleep_ms": 0}"#,
    ]);
    let _ = std::fs::remove_file(&key);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        error_lines(&output)[0].contains("cannot use the TLS client certificate"),
        "{}",
        text(&output.stderr)
    );

    // A CA with a plain URL would send everything in clear: refused.
    let (output, _) = run(&["--amqp-url", &amqp_url(), "--tls-ca", "/any/ca.pem", "work"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        error_lines(&output)[0].contains("use `amqps://`"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_wrong_password_exits_1_at_once_naming_the_credentials() {
    let url = url_with("guest", "not-the-password", "%2f");
    let (output, took) = run(&["--amqp-url", &url, "work", "--queues", "work"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let stderr = text(&output.stderr);
    let errors = error_lines(&output);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("refused the credentials of user `guest`"),
        "{errors:?}"
    );
    assert!(
        !stderr.contains("not-the-password"),
        "the password is redacted: {stderr}"
    );
    assert!(!stderr.contains("retrying"), "not retried: {stderr}");
    assert!(!stderr.contains("lapin"), "lapin's own error lines stay out: {stderr}");

    let (output, _) = run(&["--amqp-url", &url, "enqueue", "record", r#"{"seq": 1, "sleep_ms": 0}"#]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(error_lines(&output)[0].contains("refused the credentials"));
}

#[test]
fn an_unknown_vhost_exits_1_naming_it() {
    let url = url_with("guest", "guest", "warren-no-such-vhost");
    let (output, took) = run(&["--amqp-url", &url, "work", "--queues", "work"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let stderr = text(&output.stderr);
    let errors = error_lines(&output);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("refused virtual host `warren-no-such-vhost`"),
        "{errors:?}"
    );
    assert!(!stderr.contains("retrying") && !stderr.contains("lapin"), "{stderr}");
}

#[tokio::test]
async fn the_client_api_names_refusals_and_does_not_call_them_transient() {
    let error = Client::connect(&url_with("guest", "not-the-password", "%2f"))
        .await
        .expect_err("wrong password");
    assert!(
        matches!(error, Error::AccessRefused { ref user, .. } if user == "guest"),
        "{error:?}"
    );
    assert!(!error.is_transient());

    let error = Client::connect(&url_with("guest", "guest", "warren-no-such-vhost"))
        .await
        .expect_err("no such vhost");
    assert!(
        matches!(error, Error::VhostRefused { ref vhost, .. } if vhost == "warren-no-such-vhost"),
        "{error:?}"
    );
    assert!(!error.is_transient());

    let error = Client::connect("amqp://127.0.0.1:1/%2f")
        .await
        .expect_err("nothing listens");
    assert!(
        error.is_transient(),
        "a refused connection is worth retrying: {error:?}"
    );
}

/// A user of the test's own on a vhost of its own, deleted on drop.
struct TestUser {
    name: String,
}

impl TestUser {
    fn new(vhost: &TestVhost, password: &str) -> Self {
        let name = format!("warren-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        rabbitmqctl(&["add_user", &name, password]);
        rabbitmqctl(&["set_permissions", "-p", vhost.name(), &name, ".*", ".*", ".*"]);
        TestUser { name }
    }

    fn change_password(&self, password: &str) {
        rabbitmqctl(&["change_password", &self.name, password]);
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        rabbitmqctl(&["delete_user", &self.name]);
    }
}

#[tokio::test]
async fn an_enqueue_whose_reconnection_is_refused_fails_at_once_not_after_the_recovery_timeout() {
    let vhost = TestVhost::new();
    let user = TestUser::new(&vhost, "first");
    let client = Client::builder(url_with(&user.name, "first", vhost.name()))
        .recovery_timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("connect");
    client
        .enqueue(Record { seq: 1, sleep_ms: 0 })
        .await
        .expect("first enqueue");

    user.change_password("second");
    vhost.close_all_connections();
    let started = Instant::now();
    let error = client
        .enqueue(Record { seq: 2, sleep_ms: 0 })
        .await
        .expect_err("the broker refuses the old password");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed after {:?}, not at once",
        started.elapsed()
    );
    // Sent on a connection already closed: perhaps stored, perhaps not
    // (outcome unknown), and the reconnection it waited for was refused.
    let refused = match error.error() {
        Error::OutcomeUnknown { cause, .. } => &**cause,
        other => other,
    };
    assert!(matches!(refused, Error::AccessRefused { .. }), "{error:?}");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_refused_for_a_while_keeps_trying_and_comes_back() {
    let vhost = TestVhost::new();
    let user = TestUser::new(&vhost, "first");
    let mut worker = WorkerProcess::spawn(
        Command::new(WORKER)
            .args(["work", "--queues", "work", "--workers", "1"])
            .env("AMQP_URL", url_with(&user.name, "first", vhost.name()))
            .env("WARREN_QUEUE_PREFIX", ""),
    );
    eventually(Duration::from_secs(20), "the worker consumes", || {
        vhost.queue("work").is_some_and(|(_, consumers)| consumers == 1)
    })
    .await;

    user.change_password("second");
    vhost.close_all_connections();
    worker
        .wait_for_stderr("refused the credentials", Duration::from_secs(20))
        .await;
    assert!(worker.is_running(), "a running worker does not exit on a refusal");

    user.change_password("first");
    eventually(Duration::from_secs(60), "the worker consumes again", || {
        vhost.queue("work").is_some_and(|(_, consumers)| consumers == 1)
    })
    .await;
    worker
        .wait_for_stderr("reconnected to RabbitMQ", Duration::from_secs(5))
        .await;
    assert!(
        !worker.stderr().iter().any(|line| line.contains("lapin")),
        "{:#?}",
        worker.stderr()
    );
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{:#?}", worker.stderr());
}
