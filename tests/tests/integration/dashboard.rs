//! The web dashboard (`dashboard --addr`) as an operator and a browser use
//! it, over plain HTTP: the queues' depth from RabbitMQ's management API,
//! the running workers from their heartbeats, dead letters shown escaped
//! and retried with a POST that must carry the page's CSRF token; and an
//! open address refused without a token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren::JobId;
use warren_tests::{TestBroker, WorkerProcess, field, run_worker_command, text};

use crate::jobs::Record;

const WORKER: &str = env!("CARGO_BIN_EXE_test-worker");
/// The longest any wait here may take before the test fails instead.
const PATIENCE: Duration = Duration::from_secs(45);

/// An answer: its status and body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("{error}: {}", self.body))
    }
}

/// One HTTP/1.1 request to `base` (`http://host:port/`), the connection
/// closed after it.
async fn request(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connect to the dashboard");
    let mut head = format!(
        "{method} /{path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("host: {host}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("send");
    stream.write_all(body.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = text(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    // Small answers: axum sends them whole, with a content-length.
    Answer {
        status,
        body: body.to_owned(),
    }
}

async fn get(base: &str, path: &str) -> Answer {
    request(base, "GET", path, &[], "").await
}

/// Starts `dashboard --addr 127.0.0.1:0` under the test's prefix; returns
/// it and the URL it logged.
async fn dashboard(broker: &TestBroker, extra: &[&str]) -> (WorkerProcess, String) {
    let mut args = vec!["dashboard", "--addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let process = broker.worker(WORKER, &args);
    process.wait_for_stderr("dashboard serving", PATIENCE).await;
    let url = process
        .stderr()
        .iter()
        .find_map(|line| field(line, "url").map(str::to_owned))
        .expect("the dashboard logs its URL");
    (process, url)
}

/// Polls `what` until `condition` holds for the JSON at `path`.
async fn until(base: &str, path: &str, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let answer = get(base, path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        let json = answer.json();
        if condition(&json) {
            return json;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: never; last {json}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

/// Publishes to `work.dead` the dead letter of `record` job `seq`, with
/// markup in its body and error, as a worker writes it.
async fn dead_record(broker: &TestBroker, seq: u32) -> JobId {
    let id = JobId::new();
    let queue = broker.queue("work");
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    let mut headers = FieldTable::default();
    headers.insert("warren-attempt".into(), AMQPValue::LongLongInt(3));
    headers.insert("warren-dead-reason".into(), text("failed"));
    headers.insert("warren-dead-error".into(), text("<img src=x onerror=alert(2)>"));
    headers.insert("warren-dead-at".into(), AMQPValue::Timestamp(now_secs()));
    headers.insert("warren-dead-queue".into(), text(&queue));
    let properties = BasicProperties::default()
        .with_type("record".into())
        .with_message_id(id.to_string().into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_timestamp(now_secs() - 60)
        .with_headers(headers);
    let body = format!(r#"{{"seq":{seq},"sleep_ms":0,"note":"<script>alert(1)</script>"}}"#);
    broker
        .publish_raw(&format!("{queue}.dead"), body.as_bytes(), properties)
        .await;
    id
}

/// The CSRF token a page carries for its POSTs.
fn csrf(page: &str) -> String {
    let start = page.find("name=\"warren-csrf\" content=\"").expect("the CSRF meta tag") + 28;
    page[start..start + 32].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_depth_and_workers_and_a_posted_retry_runs_the_dead_job_once() {
    let broker = TestBroker::new().await;
    let queue = broker.queue("work");
    let (_dashboard, base) = dashboard(&broker, &[]).await;
    for seq in 1..=3 {
        broker
            .client()
            .enqueue(Record { seq, sleep_ms: 0 })
            .await
            .expect("enqueue");
    }
    let id = dead_record(&broker, 5).await;

    // The depth, from the management API's statistics (refreshed every few seconds).
    let row = |json: &Value, name: &str| {
        json["rows"]
            .as_array()
            .and_then(|rows| rows.iter().find(|row| row["queue"] == name).cloned())
    };
    let queues = until(&base, "api/queues", "the queue's depth and dead count", |json| {
        row(json, &queue).is_some_and(|row| row["ready"] == 3 && row["dead"] == 1)
    })
    .await;
    assert_eq!(row(&queues, &queue).expect("the row")["consumers"], 0);
    let page = get(&base, "queues").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!(">{queue}</td>")), "{}", page.body);

    // The dead letter, every text from it escaped.
    let dead_page = get(&base, &format!("dead?queue={queue}")).await;
    assert_eq!(dead_page.status, 200, "{}", dead_page.body);
    assert!(dead_page.body.contains(&id.to_string()));
    assert!(
        dead_page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        dead_page.body
    );
    assert!(dead_page.body.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(
        !dead_page.body.contains("<script>alert"),
        "unescaped body: {}",
        dead_page.body
    );
    assert!(!dead_page.body.contains("<img"), "unescaped error");
    let listed = get(&base, &format!("api/dead?queue={queue}")).await.json();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["letters"][0]["id"], id.to_string());

    // A running worker, from its heartbeats.
    let worker = broker.worker(
        WORKER,
        &["work", "--queues", "work", "--workers", "1", "--name", "dash-test"],
    );
    worker
        .wait_for_stdout(3, PATIENCE, |line| line.starts_with("done seq="))
        .await;
    let workers = until(&base, "api/workers", "the worker's heartbeat with its 3 jobs", |json| {
        json["rows"][0]["done"] == 3
    })
    .await;
    let listed = &workers["rows"][0];
    assert_eq!(listed["name"], "dash-test");
    assert_eq!(listed["queues"], "work");
    assert_eq!(
        (listed["prefetch"].clone(), listed["ack"].clone()),
        (10.into(), "late".into())
    );
    assert_eq!(listed["stale"], false);
    assert!(get(&base, "workers").await.body.contains(">dash-test</td>"));

    // A POST without the page's CSRF token, or from another origin, changes nothing.
    let retry = format!(r#"{{"queue":"{queue}","id":"{id}"}}"#);
    let json = [("content-type", "application/json")];
    let refused = request(&base, "POST", "api/dead/retry", &json, &retry).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let token = csrf(&dead_page.body);
    let foreign = [
        ("content-type", "application/json"),
        ("x-warren-csrf", token.as_str()),
        ("origin", "http://evil.example"),
    ];
    let refused = request(&base, "POST", "api/dead/retry", &foreign, &retry).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    // A page whose DNS name was rebound to 127.0.0.1 is same-origin with
    // itself: without a token, only loopback names are served.
    let port = base.trim_end_matches('/').rsplit(':').next().expect("a port");
    let rebound_host = format!("evil.example:{port}");
    let rebound_origin = format!("http://evil.example:{port}");
    let rebound = [
        ("host", rebound_host.as_str()),
        ("origin", rebound_origin.as_str()),
        ("content-type", "application/json"),
        ("x-warren-csrf", token.as_str()),
    ];
    let refused = request(&base, "POST", "api/dead/retry", &rebound, &retry).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let page = request(&base, "GET", "dead", &rebound[..1], "").await;
    assert_eq!(
        page.status, 403,
        "a rebound page cannot read the CSRF token: {}",
        page.body
    );
    assert_eq!(broker.ready(&format!("{queue}.dead")).await, 1, "still dead");

    // With it, the job is back and runs, once, afresh.
    let headers = [("content-type", "application/json"), ("x-warren-csrf", token.as_str())];
    let retried = request(&base, "POST", "api/dead/retry", &headers, &retry).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.json()["retried"], 1);
    worker
        .wait_for_stdout(1, PATIENCE, |line| {
            line.starts_with("ran seq=5 ") && field(line, "attempt") == Some("1")
        })
        .await;
    assert_eq!(broker.ready(&format!("{queue}.dead")).await, 0);
    until(&base, "api/workers", "the retried job counted done", |json| {
        json["rows"][0]["done"] == 4
    })
    .await;
    let runs = worker
        .stdout()
        .iter()
        .filter(|line| line.starts_with("ran seq=5 "))
        .count();
    assert_eq!(runs, 1);

    // Retrying it again finds nothing.
    let again = request(&base, "POST", "api/dead/retry", &headers, &retry).await;
    assert_eq!(again.status, 404, "{}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_address_needs_a_token_and_every_request_then_carries_it() {
    let broker = TestBroker::new().await;
    let output = run_worker_command(WORKER, broker.prefix(), &["dashboard", "--addr", "0.0.0.0:0"]);
    assert_eq!(output.status.code(), Some(2), "stderr: {}", text(&output.stderr));
    assert!(text(&output.stderr).contains("--token"), "{}", text(&output.stderr));

    let (_dashboard, base) = dashboard(&broker, &["--token", "s3cret"]).await;
    assert_eq!(get(&base, "queues").await.status, 401);
    let wrong = request(&base, "GET", "queues", &[("authorization", "Bearer nope")], "").await;
    assert_eq!(wrong.status, 401);
    let bearer = request(&base, "GET", "api/workers", &[("authorization", "Bearer s3cret")], "").await;
    assert_eq!(bearer.status, 200, "{}", bearer.body);
    // A browser's basic auth: any user, the token as password ("admin:s3cret").
    let basic = request(
        &base,
        "GET",
        "queues",
        &[("authorization", "Basic YWRtaW46czNjcmV0")],
        "",
    )
    .await;
    assert_eq!(basic.status, 200);
}
