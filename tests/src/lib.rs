//! The harness of warren's integration tests: each test gets a unique queue
//! prefix on the real broker (so tests run in parallel and leave nothing
//! behind), starts worker processes as a user would, and looks at what the
//! broker holds afterwards.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use warren::Client;

pub mod management;
pub mod raw_amqp;

/// The broker the tests use: `AMQP_URL`, or the local default.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://127.0.0.1:5672/%2f".to_owned())
}

/// One test's corner of the broker: queues named `<prefix><queue>`.
#[derive(Debug)]
pub struct TestBroker {
    prefix: String,
    client: Client,
    connection: Connection,
}

impl TestBroker {
    /// Connects, with a fresh prefix.
    pub async fn new() -> Self {
        let prefix = format!("test-{}-", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let client = Client::builder(amqp_url())
            .queue_prefix(&prefix)
            .connection_name(format!("{prefix}client"))
            .connect()
            .await
            .expect("RabbitMQ must be running for the integration tests (scripts/rabbitmq starts it)");
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("raw connection");
        TestBroker {
            prefix,
            client,
            connection,
        }
    }

    /// A warren client publishing under this test's prefix.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// This test's queue prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full name of job queue `queue`.
    pub fn queue(&self, queue: &str) -> String {
        format!("{}{queue}", self.prefix)
    }

    /// Messages ready in `full` (0 if it does not exist).
    pub async fn ready(&self, full: &str) -> u32 {
        self.passive(full).await.map_or(0, |(messages, _)| messages)
    }

    /// Consumers on `full` (0 if it does not exist).
    pub async fn consumers(&self, full: &str) -> u32 {
        self.passive(full).await.map_or(0, |(_, consumers)| consumers)
    }

    async fn passive(&self, full: &str) -> Option<(u32, u32)> {
        // A passive declare of a missing queue closes its channel: use a fresh one.
        let channel = self.connection.create_channel().await.ok()?;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare(full.into(), options, FieldTable::default())
            .await
            .ok()?;
        let _ = channel.close(200, "ok".into()).await;
        Some((queue.message_count(), queue.consumer_count()))
    }

    /// Waits until `full` has `count` consumers.
    pub async fn wait_for_consumers(&self, full: &str, count: u32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.consumers(full).await != count {
            assert!(Instant::now() < deadline, "queue {full} never got {count} consumers");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `full` holds `count` ready messages.
    pub async fn wait_for_ready(&self, full: &str, count: u32, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ready = self.ready(full).await;
            if ready == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "queue {full} holds {ready} messages, expected {count}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Takes one message off `full` (acknowledged), if there is one.
    pub async fn take(&self, full: &str) -> Option<lapin::message::Delivery> {
        let channel = self.connection.create_channel().await.expect("channel");
        let options = BasicGetOptions { no_ack: true };
        let message = channel.basic_get(full.into(), options).await.ok()??;
        Some(message.delivery)
    }

    /// Takes every message off `full` (acknowledged), on one channel.
    pub async fn take_all(&self, full: &str) -> Vec<lapin::message::Delivery> {
        let channel = self.connection.create_channel().await.expect("channel");
        let mut taken = Vec::new();
        while let Some(message) = channel
            .basic_get(full.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            taken.push(message.delivery);
        }
        let _ = channel.close(200, "ok".into()).await;
        taken
    }

    /// Publishes raw bytes to `full` through the default exchange, as a
    /// producer that knows nothing of warren would, and waits for the confirm.
    pub async fn publish_raw(&self, full: &str, body: &[u8], properties: BasicProperties) {
        let channel = self.connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        channel
            .queue_declare(full.into(), QueueDeclareOptions::durable(), FieldTable::default())
            .await
            .expect("declare");
        let confirm = channel
            .basic_publish("".into(), full.into(), BasicPublishOptions::default(), body, properties)
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack(), "broker refused the raw message");
    }

    /// Publishes `body` to the existing queue `full` (not declared: its
    /// arguments are the framework's) and waits for the confirm.
    pub async fn publish_to_existing(&self, full: &str, body: &[u8], properties: BasicProperties) {
        let channel = self.connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let confirm = channel
            .basic_publish("".into(), full.into(), BasicPublishOptions::default(), body, properties)
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack(), "broker refused the message for {full}");
        let _ = channel.close(200, "ok".into()).await;
    }

    /// The full names of this test's queues whose names contain `fragment`.
    pub fn queues_containing(&self, fragment: &str) -> Vec<String> {
        rabbitmqctl(&["list_queues", "--quiet", "--no-table-headers", "name"])
            .lines()
            .map(str::trim)
            .filter(|name| name.starts_with(&self.prefix) && name.contains(fragment))
            .map(str::to_owned)
            .collect()
    }

    /// Declares `full` durable with `arguments`, as another application might.
    pub async fn declare(&self, full: &str, arguments: FieldTable) {
        let channel = self.connection.create_channel().await.expect("channel");
        channel
            .queue_declare(full.into(), QueueDeclareOptions::durable(), arguments)
            .await
            .expect("declare");
        let _ = channel.close(200, "ok".into()).await;
    }

    /// Starts the worker binary `bin` with `args`, under this test's prefix.
    pub fn worker(&self, bin: &str, args: &[&str]) -> WorkerProcess {
        WorkerProcess::spawn(Command::new(bin).args(args).env("WARREN_QUEUE_PREFIX", &self.prefix))
    }
}

impl Drop for TestBroker {
    /// Deletes every queue with this test's prefix, and the workers'
    /// heartbeat exchange, so nothing is left behind.
    fn drop(&mut self) {
        let vhost = management::url_vhost();
        for queue in management::queue_names(&vhost)
            .iter()
            .filter(|queue| queue.starts_with(&self.prefix))
        {
            management::delete_queue(&vhost, queue);
        }
        delete_exchange(&format!("{}warren.heartbeats", self.prefix));
    }
}

/// Deletes an exchange, if it is there, on a connection and runtime of its
/// own (a `Drop` cannot await, and may run on a runtime it must not block).
fn delete_exchange(name: &str) {
    let name = name.to_owned();
    let deleted = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
                .await
                .ok()?;
            let channel = connection.create_channel().await.ok()?;
            let _ = channel
                .exchange_delete(name.as_str().into(), lapin::options::ExchangeDeleteOptions::default())
                .await;
            let _ = connection.close(200, "cleaned up".into()).await;
            Some(())
        })
    });
    let _ = deleted.join();
}

/// A command running `tests/interop/<script>` under the Python with pika
/// that `scripts/test` names in `WARREN_PYTHON`, with `QUEUE` and `AMQP_URL`
/// set for the test.
pub fn python(script: &str, queue: &str) -> Command {
    let python = std::env::var("WARREN_PYTHON")
        .expect("WARREN_PYTHON must name a Python with pika: run the tests through scripts/test");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("interop")
        .join(script);
    let mut command = Command::new(python);
    command.arg(path).env("QUEUE", queue).env("AMQP_URL", amqp_url());
    command
}

/// Runs the worker binary `bin` with `args` under queue prefix `prefix`,
/// stdin not a terminal, and waits for it to exit.
pub fn run_worker_command(bin: &str, prefix: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env("AMQP_URL", amqp_url())
        .env("WARREN_QUEUE_PREFIX", prefix)
        .stdin(Stdio::null())
        .output()
        .expect("run the worker binary")
}

/// What a process printed, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `rabbitmqctl` and returns its standard output.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl must be installed");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A program the test started, its output collected line by line.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// The threads reading stdout and stderr; finished once both hit EOF.
    readers: [JoinHandle<()>; 2],
}

impl WorkerProcess {
    /// Starts `command` with its output captured, and `AMQP_URL` set to the
    /// test broker unless the command sets it.
    pub fn spawn(command: &mut Command) -> Self {
        if !command.get_envs().any(|(name, _)| name == "AMQP_URL") {
            command.env("AMQP_URL", amqp_url());
        }
        // Jobs of unknown names go to the dead-letter queue at once, as the
        // tests of bad input expect, unless a test sets the rolling-deploy
        // window itself (`--unknown-job-window` beats this).
        if !command.get_envs().any(|(name, _)| name == "WARREN_UNKNOWN_JOB_WINDOW") {
            command.env("WARREN_UNKNOWN_JOB_WINDOW", "0s");
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the worker binary");
        let (stdout, out_reader) = collect(child.stdout.take().expect("piped stdout"));
        let (stderr, err_reader) = collect(child.stderr.take().expect("piped stderr"));
        WorkerProcess {
            child,
            stdout,
            stderr,
            readers: [out_reader, err_reader],
        }
    }

    /// What the process printed to standard output so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// What the process logged to standard error so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until `count` lines of standard output satisfy `matches`.
    pub async fn wait_for_stdout(&self, count: usize, within: Duration, matches: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let lines = self.stdout();
            if lines.iter().filter(|line| matches(line)).count() >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} matching lines; stdout: {lines:#?}\nstderr: {:#?}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a line of standard error contains `text`.
    pub async fn wait_for_stderr(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.stderr().iter().any(|line| line.contains(text)) {
            assert!(Instant::now() < deadline, "no `{text}` in stderr: {:#?}", self.stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success(), "could not signal worker {pid}");
    }

    /// Sends SIGKILL, as the OOM killer or a lost machine would: no drain,
    /// no acks, no closing of channels. Returns once the process is gone and
    /// every line it printed has been collected.
    pub async fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL the worker");
        self.wait_exit(Duration::from_secs(10)).await
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the process to exit, and for every line it printed to be
    /// collected.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            // The pipes reach EOF after the last line was read: until then
            // stdout() could miss what the process printed just before it ended.
            let output_read = self.readers.iter().all(JoinHandle::is_finished);
            if let Some(status) = self.child.try_wait().expect("try_wait")
                && output_read
            {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit; stderr: {:#?}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Already exited is fine; the test asserted what it needed.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stream: impl std::io::Read + Send + 'static) -> (Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let reader = std::thread::spawn(move || {
        // By bytes, not `lines()`: one line of invalid UTF-8 must not stop
        // the reading, or the process would block on a full pipe.
        for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).into_owned();
            sink.lock().unwrap_or_else(PoisonError::into_inner).push(line);
        }
    });
    (lines, reader)
}

/// The `seq` numbers each worker ran, from lines `ran seq=<n> worker=<id> …`.
pub fn runs_by_worker(lines: &[String]) -> std::collections::BTreeMap<String, Vec<u32>> {
    let mut runs = std::collections::BTreeMap::<String, Vec<u32>>::new();
    for line in lines.iter().filter(|line| line.starts_with("ran ")) {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(name))
                .unwrap_or_default()
                .to_owned()
        };
        let seq = field("seq=").parse().expect("seq");
        runs.entry(field("worker=")).or_default().push(seq);
    }
    runs
}

/// The `seq` of every line starting with `prefix` (`"ran "`, `"done "`), in
/// order, repeats included.
pub fn seqs(lines: &[String], prefix: &str) -> Vec<u32> {
    lines
        .iter()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.split_whitespace().find_map(|word| word.strip_prefix("seq=")))
        .map(|seq| seq.parse().expect("seq"))
        .collect()
}

/// A consumer as `rabbitmqctl list_consumers` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    /// The consumer tag.
    pub tag: String,
    /// Whether deliveries must be acknowledged (false for AMQP `no-ack`).
    pub ack_required: bool,
    /// The consumer's prefetch count (0: unlimited).
    pub prefetch: u32,
}

/// The consumers of `full`, from `rabbitmqctl list_consumers`.
pub fn list_consumers(full: &str) -> Vec<ConsumerInfo> {
    // rabbitmqctl prints these columns in this order whatever order they are asked in.
    let listing = rabbitmqctl(&[
        "list_consumers",
        "--quiet",
        "--no-table-headers",
        "queue_name",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
    ]);
    listing
        .lines()
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .filter(|fields| fields.len() == 4 && fields[0] == full)
        .map(|fields| ConsumerInfo {
            tag: fields[1].to_owned(),
            ack_required: fields[2] == "true",
            prefetch: fields[3].parse().expect("prefetch_count"),
        })
        .collect()
}

/// A queue as `rabbitmqctl list_queues` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// Whether the queue survives a broker restart.
    pub durable: bool,
    /// Ready plus unacknowledged messages.
    pub messages: u32,
    /// Messages awaiting an acknowledgement.
    pub unacked: u32,
    /// Messages written to disk (persistent).
    pub persistent: u32,
}

/// `full` as `rabbitmqctl list_queues` shows it, if it exists.
pub fn list_queue(full: &str) -> Option<QueueInfo> {
    let listing = rabbitmqctl(&[
        "list_queues",
        "--quiet",
        "--no-table-headers",
        "name",
        "durable",
        "messages",
        "messages_unacknowledged",
        "messages_persistent",
    ]);
    listing
        .lines()
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .find(|fields| fields.len() == 5 && fields[0] == full)
        .map(|fields| QueueInfo {
            durable: fields[1] == "true",
            messages: fields[2].parse().expect("messages"),
            unacked: fields[3].parse().expect("messages_unacknowledged"),
            persistent: fields[4].parse().expect("messages_persistent"),
        })
}

/// How a queue was declared, as `rabbitmqctl list_queues name type durable
/// arguments` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDeclaration {
    /// `classic` or `quorum`.
    pub kind: String,
    /// Whether the queue survives a broker restart.
    pub durable: bool,
    /// The `x-` arguments, their values as rabbitmqctl prints them without
    /// quotes (the empty string, which it prints as `[]`, as "").
    pub arguments: std::collections::BTreeMap<String, String>,
}

/// How `full` was declared, if it exists.
pub fn queue_declaration(full: &str) -> Option<QueueDeclaration> {
    let listing = rabbitmqctl(&[
        "list_queues",
        "--quiet",
        "--no-table-headers",
        "name",
        "type",
        "durable",
        "arguments",
    ]);
    let fields = listing
        .lines()
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .find(|fields| fields.len() == 4 && fields[0] == full)?;
    Some(QueueDeclaration {
        kind: fields[1].to_owned(),
        durable: fields[2] == "true",
        arguments: parse_arguments(fields[3]),
    })
}

/// Reads rabbitmqctl's `[{"x-queue-type","quorum"},{"x-delivery-limit",5}]`.
/// Enough for warren's arguments, whose values hold no `,` or `}`.
fn parse_arguments(text: &str) -> std::collections::BTreeMap<String, String> {
    let unquote = |text: &str| match text {
        "[]" => String::new(),
        text => text.trim_matches('"').to_owned(),
    };
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split("},{")
        .map(|pair| pair.trim_matches(|c| c == '{' || c == '}'))
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once(',').unwrap_or((pair, ""));
            (unquote(name), unquote(value))
        })
        .collect()
}

/// The messages (ready plus unacked) and consumers of `queue` in a
/// `rabbitmqctl list_queues … name messages consumers` listing.
pub fn queue_counts(listing: &str, queue: &str) -> Option<(u32, u32)> {
    listing
        .lines()
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .find(|fields| fields.len() == 3 && fields[0] == queue)
        .map(|fields| {
            (
                fields[1].trim().parse().unwrap_or(0),
                fields[2].trim().parse().unwrap_or(0),
            )
        })
}

/// Polls `condition` until it holds, failing the test with `what` after `within`.
pub async fn eventually(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many lines of `lines` start with `prefix`.
pub fn count_starting(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|line| line.starts_with(prefix)).count()
}

/// How many channels the connection named `name` has open, if it exists.
pub fn connection_channels(name: &str) -> Option<u32> {
    let listing = rabbitmqctl(&[
        "list_connections",
        "--quiet",
        "--no-table-headers",
        "client_properties",
        "channels",
    ]);
    let quoted = format!("\"connection_name\",\"{name}\"");
    listing
        .lines()
        .find(|line| line.contains(&quoted))
        .and_then(|line| line.rsplit('\t').next())
        .map(|channels| channels.trim().parse().expect("channels"))
}

/// Closes the broker-side connection named `name` (its `connection_name`),
/// as an operator's `rabbitmqctl close_connection` would.
pub fn close_connection(name: &str) {
    let listing = rabbitmqctl(&[
        "list_connections",
        "--quiet",
        "--no-table-headers",
        "pid",
        "client_properties",
    ]);
    let quoted = format!("\"connection_name\",\"{name}\"");
    let pid = listing
        .lines()
        .find(|line| line.contains(&quoted))
        .and_then(|line| line.split('\t').next())
        .unwrap_or_else(|| panic!("no connection named {name} in {listing}"));
    rabbitmqctl(&["close_connection", pid, "closed by the test"]);
}

/// The value of `name=<value>` among the words of `line`.
pub fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(prefix.as_str()))
}

/// A message header as text (strings) or as a number (integers and
/// timestamps), for assertions.
pub fn header(properties: &BasicProperties, name: &str) -> Option<String> {
    use lapin::types::AMQPValue;
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        AMQPValue::LongInt(n) => Some(n.to_string()),
        AMQPValue::Timestamp(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// A virtual host of the test's own, deleted (with its queues) on drop:
/// for fault tests that close every connection of a vhost without touching
/// the tests running beside them.
#[derive(Debug)]
pub struct TestVhost {
    name: String,
}

impl TestVhost {
    /// Creates the vhost and lets the test URL's user (guest) use it.
    pub fn new() -> Self {
        let name = format!("warren-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        management::add_vhost(&name);
        TestVhost { name }
    }

    /// The vhost's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The broker's URL with this vhost.
    pub fn url(&self) -> String {
        let base = amqp_url();
        let server = base.rsplit_once('/').map_or(base.as_str(), |(server, _)| server);
        format!("{server}/{}", self.name)
    }

    /// Ready plus unacked messages, and consumers, of `queue` in this vhost.
    pub fn queue(&self, queue: &str) -> Option<(u32, u32)> {
        let listing = rabbitmqctl(&[
            "list_queues",
            "-p",
            &self.name,
            "--quiet",
            "--no-table-headers",
            "name",
            "messages",
            "consumers",
        ]);
        queue_counts(&listing, queue)
    }

    /// `rabbitmqctl close_all_connections` for this vhost.
    pub fn close_all_connections(&self) {
        rabbitmqctl(&[
            "close_all_connections",
            "--vhost",
            &self.name,
            "--limit",
            "1000",
            "closed by a warren fault test",
        ]);
    }
}

impl Default for TestVhost {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        management::delete_vhost(&self.name);
    }
}

/// The sequence numbers of every `done seq=<n>` line among `lines`.
pub fn done_seqs(lines: &[String]) -> std::collections::BTreeSet<u32> {
    lines
        .iter()
        .filter(|line| line.starts_with("done seq="))
        .filter_map(|line| field(line, "seq")?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arguments_read_as_rabbitmqctl_prints_them() {
        let arguments = parse_arguments(
            r#"[{"x-queue-type","quorum"},{"x-delivery-limit",5},{"x-dead-letter-exchange",[]},{"x-dead-letter-routing-key","q.dead"}]"#,
        );
        let pairs: Vec<(&str, &str)> = arguments.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("x-dead-letter-exchange", ""),
                ("x-dead-letter-routing-key", "q.dead"),
                ("x-delivery-limit", "5"),
                ("x-queue-type", "quorum"),
            ]
        );
        assert!(parse_arguments("[]").is_empty());
    }
}

/// A TCP proxy in front of the broker that a test can cut silently (it
/// stops passing bytes and accepting new connections but keeps every socket
/// open, as a network partition does, with no reset to notice) or reset
/// (every connection through it is aborted with a TCP reset, as when a
/// node or a load balancer dies; new connections are still passed on).
/// Held first, it stops reading, so that what the client writes piles up
/// in the client before the reset.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    held: Arc<Held>,
    resets: tokio::sync::watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts the proxy on a free local port, forwarding to the broker.
    pub async fn start() -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let cut = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Held::default());
        let (resets, _) = tokio::sync::watch::channel(0);
        let upstream = broker_address();
        let accept = tokio::spawn({
            let cut = Arc::clone(&cut);
            let held = Arc::clone(&held);
            let resets = resets.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if cut.load(Ordering::Relaxed) {
                        // Accepted and never answered: a silent node.
                        std::mem::forget(client);
                        continue;
                    }
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    let lines = (Arc::clone(&cut), Arc::clone(&held));
                    tokio::spawn(relay(client, server, lines, resets.subscribe()));
                }
            }
        });
        Proxy {
            port,
            cut,
            held,
            resets,
            accept,
        }
    }

    /// The broker's URL through this proxy, with `vhost`.
    pub fn url(&self, vhost: &str) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/{vhost}", self.port)
    }

    /// Cuts the network silently: nothing passes any more, nothing closes.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops passing bytes on: the proxy reads at most [`HELD_BYTES`] of what
    /// clients send, then no more, so that the rest waits in the clients.
    pub fn hold(&self) {
        self.held.on.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether, since [`hold`](Self::hold), clients have sent more than the
    /// proxy takes in: what they write from now on waits in them.
    pub fn holding_back(&self) -> bool {
        self.held.bytes.load(std::sync::atomic::Ordering::Relaxed) >= HELD_BYTES
    }

    /// Ends a [`cut`](Self::cut): new connections pass again.
    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Aborts every connection open through the proxy with a TCP reset
    /// (the client reads `ECONNRESET`) and ends a [`hold`](Self::hold):
    /// connections made afterwards pass.
    pub fn reset(&self) {
        self.held.on.store(false, std::sync::atomic::Ordering::Relaxed);
        self.held.bytes.store(0, std::sync::atomic::Ordering::Relaxed);
        self.resets.send_modify(|count| *count += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// How much a held [`Proxy`] reads before it stops reading.
pub const HELD_BYTES: usize = 256 * 1024;

/// Whether a [`Proxy`] is held, and how much it has read since.
#[derive(Debug, Default)]
struct Held {
    on: std::sync::atomic::AtomicBool,
    bytes: std::sync::atomic::AtomicUsize,
}

/// Passes bytes both ways between a client and the broker until either
/// side closes, or until the proxy is reset: then the client's socket is
/// closed with a reset, never a FIN.
async fn relay(
    mut client: tokio::net::TcpStream,
    mut server: tokio::net::TcpStream,
    (cut, held): (Arc<std::sync::atomic::AtomicBool>, Arc<Held>),
    mut resets: tokio::sync::watch::Receiver<u64>,
) {
    // Closing a socket with a zero linger time sends a reset.
    let _ = client.set_zero_linger();
    // Borrowed halves: dropping them does not shut the socket down (a FIN).
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    tokio::select! {
        _ = async { tokio::join!(
                pipe(client_read, server_write, &cut, &held),
                pipe(server_read, client_write, &cut, &held)
            ) } => {}
        _ = resets.changed() => {}
    }
}

/// Copies bytes until either side closes; once the proxy is cut, swallows
/// them, keeping the socket open.
async fn pipe(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    cut: &std::sync::atomic::AtomicBool,
    held: &Held,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0; 64 * 1024];
    loop {
        if held.on.load(Ordering::Relaxed) && held.bytes.load(Ordering::Relaxed) >= HELD_BYTES {
            // Read no more: until a reset, the sender's writes pile up.
            std::future::pending::<()>().await;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                // Passes the close on (a FIN), as a direct connection would.
                let _ = to.shutdown().await;
                return;
            }
            Ok(read) => read,
        };
        if held.on.load(Ordering::Relaxed) {
            held.bytes.fetch_add(read, Ordering::Relaxed);
            continue;
        }
        if cut.load(Ordering::Relaxed) {
            // Keep the other side open (no FIN) for as long as the reader lives.
            continue;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// `host:port` of the broker in `AMQP_URL`.
pub(crate) fn broker_address() -> String {
    let url = amqp_url();
    let authority = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or(authority);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5672")
    }
}

/// `GET http://<addr><path>` over HTTP/1.1: the status code and the body.
pub async fn http_get(addr: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|error| panic!("connect to {addr}: {error}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send the request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read the response");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    (status, body.to_owned())
}

/// The value of the Prometheus sample of metric `name` whose labels include
/// every one of `labels`, in a `/metrics` page; the sum if several match.
pub fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let values: Vec<f64> = page
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            if !(rest.is_empty() || rest.starts_with('{')) {
                return None;
            }
            let all = labels
                .iter()
                .all(|(label, wanted)| rest.contains(&format!("{label}=\"{wanted}\"")));
            all.then(|| value.parse().ok()).flatten()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
