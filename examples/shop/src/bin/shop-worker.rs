//! The shop's worker: binds a handler to the contract job `SendReceipt` and
//! runs it through warren's public worker API, from its own `main`.
//!
//! ```sh
//! cargo run -p warren-example-shop --bin shop-worker
//! ```

use shop_contracts::SendReceipt;
use warren::{AckMode, Exit, JobContext, JobError, Worker};

/// Sends the receipt (here: prints it).
async fn send_receipt(receipt: SendReceipt, ctx: &JobContext) -> Result<(), JobError> {
    println!(
        "receipt sent order={} to={} job={} attempt={}",
        receipt.order_id,
        receipt.email,
        ctx.job_id(),
        ctx.attempt()
    );
    Ok(())
}

warren::handler!(SendReceipt => send_receipt);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://127.0.0.1:5672/%2f".to_owned());
    let prefix = std::env::var("WARREN_QUEUE_PREFIX").unwrap_or_default();
    // SIGINT/SIGTERM drain it; the exit says how that went.
    let worker = Worker::builder(url)
        .queue_prefix(prefix)
        .name("shop")
        .workers_per_queue(2)
        .prefetch(10)
        .ack(AckMode::Late)
        .run()
        .await;
    match worker {
        Ok(Exit::Drained) => std::process::ExitCode::SUCCESS,
        Ok(other) => {
            eprintln!("worker stopped: {other:?}");
            std::process::ExitCode::from(3)
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
