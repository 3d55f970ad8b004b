//! `amqps://` against the broker's own TLS listener, which `scripts/rabbitmq`
//! opens on 127.0.0.1:5671 with a CA and certificates it generates into
//! `$WARREN_TLS_DIR` (by default `/var/lib/rabbitmq/warren-tls`): jobs
//! enqueued and run over TLS, verified against that CA; the wrong CA, a
//! plaintext port and a client certificate the broker does not know all
//! fail, clearly, and never fall back to plaintext.

use crate::jobs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use jobs::Record;
use warren::{Client, Error};
use warren_tests::{TestBroker, WorkerProcess, rabbitmqctl, text};

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");

/// The broker's TLS listener.
fn tls_url() -> String {
    std::env::var("AMQPS_URL").unwrap_or_else(|_| "amqps://127.0.0.1:5671/%2f".to_owned())
}

/// The broker's plaintext listener, spoken to as if it were TLS.
const TLS_TO_PLAINTEXT_PORT: &str = "amqps://127.0.0.1:5672/%2f";

/// A file `scripts/rabbitmq` generated.
fn tls_file(name: &str) -> PathBuf {
    let dir = std::env::var("WARREN_TLS_DIR").unwrap_or_else(|_| "/var/lib/rabbitmq/warren-tls".to_owned());
    let path = PathBuf::from(dir).join(name);
    assert!(
        path.exists(),
        "{} is missing: scripts/rabbitmq generates the test certificates and opens the TLS listener",
        path.display()
    );
    path
}

/// A connection as `rabbitmqctl list_connections` shows it.
#[derive(Debug)]
struct ConnectionInfo {
    ssl: bool,
    peer_cert_subject: String,
}

/// The broker's connections by their `connection_name`, read by column
/// header (rabbitmqctl chooses the order of its columns).
fn connections() -> BTreeMap<String, ConnectionInfo> {
    let listing = rabbitmqctl(&[
        "list_connections",
        "--quiet",
        "ssl",
        "peer_cert_subject",
        "client_properties",
    ]);
    let mut lines = listing.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|column| column.trim() == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let (ssl, subject, properties) = (column("ssl"), column("peer_cert_subject"), column("client_properties"));
    lines
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .filter(|fields| fields.len() == header.len())
        .filter_map(|fields| {
            let name = fields[properties]
                .split("{\"connection_name\",\"")
                .nth(1)?
                .split('"')
                .next()?
                .to_owned();
            let info = ConnectionInfo {
                ssl: fields[ssl].trim() == "true",
                peer_cert_subject: fields[subject].trim().to_owned(),
            };
            Some((name, info))
        })
        .collect()
}

/// Runs the worker binary to completion with `args`, on the TLS listener
/// unless `url` says otherwise.
fn run(prefix: &str, url: &str, args: &[&str]) -> Output {
    Command::new(WORKER)
        .args(args)
        .env("AMQP_URL", url)
        .env("WARREN_QUEUE_PREFIX", prefix)
        .env_remove("WARREN_TLS_CA")
        .env_remove("WARREN_TLS_CERT")
        .env_remove("WARREN_TLS_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run the worker binary")
}

/// The `error:` lines a command printed.
fn error_lines(output: &Output) -> Vec<String> {
    text(&output.stderr)
        .lines()
        .filter(|line| line.starts_with("error: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_enqueued_and_run_over_tls_verified_against_the_generated_ca() {
    let broker = TestBroker::new().await;
    let ca = tls_file("ca.pem");
    let client_name = format!("{}tls client", broker.prefix());
    let client = Client::builder(tls_url())
        .tls_ca(&ca)
        .queue_prefix(broker.prefix())
        .connection_name(&client_name)
        .connect()
        .await
        .expect("connect over TLS with the generated CA");
    client
        .enqueue(Record { seq: 1, sleep_ms: 0 })
        .await
        .expect("enqueued over TLS");

    let enqueued = run(
        broker.prefix(),
        &tls_url(),
        &[
            "--tls-ca",
            ca.to_str().expect("UTF-8 path"),
            "enqueue",
            "record",
            r#"{"seq": 2, "sleep_ms": 0}"#,
        ],
    );
    assert!(enqueued.status.success(), "stderr: {}", text(&enqueued.stderr));
    assert_eq!(broker.ready(&broker.queue("work")).await, 2);

    let name = format!("{}tls", broker.prefix());
    let worker = WorkerProcess::spawn(
        Command::new(WORKER)
            .args(["work", "--queues", "work", "--workers", "1", "--name", &name])
            .env("AMQP_URL", tls_url())
            .env("WARREN_TLS_CA", &ca)
            .env("WARREN_QUEUE_PREFIX", broker.prefix()),
    );
    worker
        .wait_for_stdout(2, Duration::from_secs(20), |line| line.starts_with("done seq="))
        .await;

    // The client's connection and the worker's two, all TLS.
    let names = [
        client_name,
        format!("warren worker {name}"),
        format!("warren worker {name} (publisher)"),
    ];
    let listing = connections();
    for name in &names {
        let connection = listing
            .get(name)
            .unwrap_or_else(|| panic!("no connection named {name}: {listing:#?}"));
        assert!(connection.ssl, "{name} is not TLS: {connection:?}");
    }
    client.close().await;
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate_and_a_foreign_one_is_refused() {
    let name = format!("warren mtls test {}", uuid::Uuid::new_v4().simple());
    let client = Client::builder(tls_url())
        .tls_ca(tls_file("ca.pem"))
        .tls_client_cert(tls_file("client.pem"), tls_file("client.key"))
        .connection_name(&name)
        .connect()
        .await
        .expect("connect with the client certificate");
    let connection = connections().remove(&name).expect("the client's connection");
    assert!(connection.ssl);
    assert_eq!(connection.peer_cert_subject, "CN=warren test client");
    client.close().await;

    // Under TLS 1.3 the broker checks a client certificate after the
    // client's side of the handshake is done: its refusal arrives as an
    // alert, or as a reset when the reset overtakes the alert. Either way
    // the connection never opens.
    for _ in 0..5 {
        let error = Client::builder(tls_url())
            .tls_ca(tls_file("ca.pem"))
            .tls_client_cert(tls_file("other-client.pem"), tls_file("other-client.key"))
            .connect()
            .await
            .expect_err("the broker does not know the other CA");
        let message = error.to_string();
        match error {
            Error::Tls { .. } => assert!(message.contains("ended the TLS handshake"), "{message}"),
            Error::Connect { .. } => assert!(message.contains("reset"), "{message}"),
            other => panic!("neither the alert nor a reset: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_wrong_ca_fails_naming_certificate_verification() {
    let error = Client::builder(tls_url())
        .tls_ca(tls_file("other-ca.pem"))
        .connect()
        .await
        .expect_err("the broker's certificate is not signed by the other CA");
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    assert!(
        !error.is_transient(),
        "a certificate that does not verify is not retried"
    );
    let message = error.to_string();
    assert!(message.contains("certificate verification failed"), "{message}");
    assert!(message.contains("other-ca.pem"), "names the CA it trusted: {message}");

    // No CA at all: the system's roots do not know the test CA either.
    let error = Client::connect(&tls_url()).await.expect_err("not a public CA");
    assert!(error.to_string().contains("certificate verification failed"), "{error}");

    // A worker does not wait for a broker it cannot trust: it exits at once.
    let prefix = format!("test-{}-", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let other_ca = tls_file("other-ca.pem");
    let other_ca = other_ca.to_str().expect("UTF-8 path");
    for args in [
        vec!["--tls-ca", other_ca, "work", "--queues", "work"],
        vec![
            "--tls-ca",
            other_ca,
            "enqueue",
            "record",
            r#"{"seq": 1, "sleep_ms": 0}"#,
        ],
    ] {
        let output = run(&prefix, &tls_url(), &args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", text(&output.stderr));
        let errors = error_lines(&output);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("certificate verification failed"), "{errors:?}");
        assert!(!text(&output.stderr).contains("retrying"), "{}", text(&output.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_to_the_plaintext_port_fails_and_never_falls_back_to_plaintext() {
    let broker = TestBroker::new().await;
    let name = format!("{}plaintext", broker.prefix());
    let error = Client::builder(TLS_TO_PLAINTEXT_PORT)
        .connection_name(&name)
        .connect()
        .await
        .expect_err("port 5672 does not speak TLS");
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    assert!(!error.is_transient());
    let message = error.to_string();
    assert!(message.contains("did not answer in TLS"), "{message}");
    assert!(!connections().contains_key(&name), "no plaintext connection was opened");

    // The CLI: nothing is published, one error line, exit 1.
    let output = run(
        broker.prefix(),
        TLS_TO_PLAINTEXT_PORT,
        &["enqueue", "record", r#"{"seq": 1, "sleep_ms": 0}"#],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let errors = error_lines(&output);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("did not answer in TLS"), "{errors:?}");
    assert_eq!(broker.ready(&broker.queue("work")).await, 0);

    // Nor does a worker: it exits instead of waiting for TLS there.
    let output = run(broker.prefix(), TLS_TO_PLAINTEXT_PORT, &["work", "--queues", "work"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert_eq!(error_lines(&output).len(), 1, "{}", text(&output.stderr));
}
