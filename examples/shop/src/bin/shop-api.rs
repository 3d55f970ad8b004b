//! The shop's web service: `POST /orders` with `{"email": "..."}` records an
//! order and enqueues its receipt, returning once RabbitMQ has confirmed
//! the job. One [`Client`], shared by every request.
//!
//! ```sh
//! cargo run -p warren-example-shop --bin shop-api -- --port 3000
//! curl -s -XPOST localhost:3000/orders -H 'content-type: application/json' -d '{"email": "ann@example.com"}'
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use serde::Deserialize;
use serde_json::{Value, json};
use shop_contracts::SendReceipt;
use warren::Client;

/// The shop's web service.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The port to listen on, on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// The broker.
    #[arg(long, env = "AMQP_URL", default_value = "amqp://127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// Prepended to queue names (the worker must use the same).
    #[arg(long, env = "WARREN_QUEUE_PREFIX", default_value = "")]
    queue_prefix: String,
}

/// What the handlers share.
#[derive(Debug, Clone)]
struct Shop {
    jobs: Client,
    next_order: Arc<AtomicU64>,
}

#[derive(Debug, Deserialize)]
struct NewOrder {
    email: String,
}

/// Takes an order and enqueues its receipt.
async fn create_order(State(shop): State<Shop>, Json(order): Json<NewOrder>) -> (StatusCode, Json<Value>) {
    let order_id = shop.next_order.fetch_add(1, Ordering::Relaxed);
    let receipt = SendReceipt {
        order_id,
        email: order.email,
    };
    match shop.jobs.enqueue(receipt).await {
        Ok(job_id) => (
            StatusCode::CREATED,
            Json(json!({ "order_id": order_id, "receipt_job": job_id.to_string() })),
        ),
        // The job is handed back in the error: a real shop might store it
        // and try again later; this one tells the caller.
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "order_id": order_id, "error": error.to_string() })),
        ),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let jobs = Client::builder(&args.amqp_url)
        .queue_prefix(&args.queue_prefix)
        .connection_name("shop-api")
        .connect()
        .await?;
    let shop = Shop {
        jobs: jobs.clone(),
        next_order: Arc::new(AtomicU64::new(1)),
    };
    let app = Router::new().route("/orders", post(create_order)).with_state(shop);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    jobs.close().await;
    Ok(())
}
