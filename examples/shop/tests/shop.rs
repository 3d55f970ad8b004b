//! The shop end to end on a real RabbitMQ (`AMQP_URL`, or the local one):
//! an HTTP POST to the web service enqueues a receipt, which the worker
//! runs; SIGTERM drains the worker cleanly.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const API: &str = env!("CARGO_BIN_EXE_shop-api");
const WORKER: &str = env!("CARGO_BIN_EXE_shop-worker");

fn start(bin: &str, args: &[&str], prefix: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(bin)
        .args(args)
        .env("WARREN_QUEUE_PREFIX", prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the binary");
    let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    (child, lines)
}

/// The next line a process prints that contains `text`, within 30 s.
async fn line_with(lines: &mut Lines<BufReader<ChildStdout>>, text: &str) -> String {
    let find = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if line.contains(text) {
                return line;
            }
        }
        panic!("the process ended without printing `{text}`");
    };
    tokio::time::timeout(Duration::from_secs(30), find)
        .await
        .unwrap_or_else(|_| panic!("nothing printed `{text}` within 30 s"))
}

/// POSTs `body` as JSON to `path` and returns the status line and body.
async fn post(address: &str, path: &str, body: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the service");
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

fn rabbitmqctl(args: &[&str]) {
    let _ = std::process::Command::new("rabbitmqctl").args(args).output();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_posted_to_the_service_has_its_receipt_sent_by_the_worker() {
    let prefix = format!("shop-test-{}-", std::process::id());
    let (mut worker, mut worker_out) = start(WORKER, &[], &prefix);
    let (mut api, mut api_out) = start(API, &["--port", "0"], &prefix);
    let listening = line_with(&mut api_out, "listening on ").await;
    let address = listening.trim_start_matches("listening on ").to_owned();

    let (status, body) = post(&address, "/orders", r#"{"email": "ann@example.com"}"#).await;
    assert_eq!(status, "HTTP/1.1 201 Created", "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let job = answer["receipt_job"].as_str().expect("the job id").to_owned();

    let sent = line_with(&mut worker_out, "receipt sent").await;
    assert_eq!(
        sent,
        format!("receipt sent order=1 to=ann@example.com job={job} attempt=1")
    );

    let pid = worker.id().expect("running").to_string();
    let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
    let status = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("the worker drains within 30 s")
        .expect("exit status");
    assert!(status.success(), "a clean drain exits 0: {status}");
    let _ = api.kill().await;
    for queue in ["receipts", "receipts.dead"] {
        rabbitmqctl(&["delete_queue", &format!("{prefix}{queue}")]);
    }
}
