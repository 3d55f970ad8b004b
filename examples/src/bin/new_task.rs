//! The work-queue producer: enqueues one [`Task`] made of the command-line
//! words (`Hello World!` when there are none), like the tutorial's `new_task`.
//!
//! ```text
//! cargo run -p warren-examples --bin new_task -- "First message."
//! ```
//!
//! The broker is `AMQP_URL` (default `amqp://127.0.0.1:5672/%2f`).
//!
//! [`Task`]: warren_examples::Task

use std::process::ExitCode;

use warren::Client;
use warren_examples::Task;

#[tokio::main]
async fn main() -> ExitCode {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let text = if words.is_empty() {
        "Hello World!".to_owned()
    } else {
        words.join(" ")
    };
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://127.0.0.1:5672/%2f".to_owned());
    let prefix = std::env::var("WARREN_QUEUE_PREFIX").unwrap_or_default();
    let client = match Client::builder(url)
        .queue_prefix(prefix)
        .connection_name("new_task")
        .connect()
        .await
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = client.enqueue(Task(text.clone())).await;
    client.close().await;
    match result {
        Ok(_id) => {
            println!(" [x] Sent {text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}; the task was not sent: {:?}", error.job().0);
            ExitCode::FAILURE
        }
    }
}
