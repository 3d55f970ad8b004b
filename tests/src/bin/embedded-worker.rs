//! A service that runs warren's worker through the public builder, next to
//! arguments and a server of its own, as an application embeds it:
//!
//! ```text
//! embedded-worker --port <port>
//! ```
//!
//! It serves `ok` on `127.0.0.1:<port>` (standing in for a web server),
//! reads `AMQP_URL` and `WARREN_QUEUE_PREFIX` itself, and runs the jobs of
//! `src/jobs.rs` on queue `work` until SIGTERM drains it. Its runtime is a
//! current-thread one: the worker brings the threads it needs.

#[path = "../jobs.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "job fields are read only by the tests that enqueue them"
)]
mod jobs;

use std::process::ExitCode;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use warren::cli::{LogFormat, init_logging};
use warren::{Exit, Worker};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut port = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|value| value.parse())) {
            ("--port", Some(Ok(value))) => port = value,
            _ => {
                eprintln!("usage: embedded-worker --port <port>");
                return ExitCode::from(2);
            }
        }
    }
    let _logging = init_logging(LogFormat::Pretty);
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on port {port}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let port = listener.local_addr().map_or(port, |address| address.port());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(b"ok\n").await;
        }
    });
    println!("listening on port {port}");

    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://127.0.0.1:5672/%2f".into());
    let prefix = std::env::var("WARREN_QUEUE_PREFIX").unwrap_or_default();
    let exit = Worker::builder(url)
        .queue_prefix(prefix)
        .queues(["work"])
        .workers_per_queue(1)
        .name("embedded")
        .run()
        .await;
    println!("worker exited: {exit:?}");
    match exit {
        Ok(Exit::Drained) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(3),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
