//! The raw side of `warren-bench`: a hand-written lapin consumer with the
//! guarantees warren's worker gives under `--ack late` (manual acks after
//! the handler, prefetch per consumer), running the same handler bodies.
//! `warren-bench` spawns it; it is the ceiling warren is measured against.
//!
//! ```text
//! raw-worker <amqp-url> <queue>[,<queue>…] <prefetch> <workers>
//! ```
//!
//! Each of the `workers` consumers of each queue has its own channel; the
//! process has as many runtime threads as consumers per queue, so a CPU-bound handler gets as many
//! cores. Deliveries are decoded from JSON (as warren does) and run as tasks.

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use warren_bench::{CPU_QUEUE, Noop, Probe, Spin, spin};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, queue, prefetch, workers] = args.as_slice() else {
        return Err("usage: raw-worker <amqp-url> <queue> <prefetch> <workers>".into());
    };
    let prefetch: u16 = prefetch.parse()?;
    let workers: usize = workers.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    runtime.block_on(consume(url, queue, prefetch, workers))
}

async fn consume(url: &str, queue: &str, prefetch: u16, workers: usize) -> Result<(), Box<dyn std::error::Error>> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let mut consumers = Vec::new();
    for (queue, worker) in queue
        .split(',')
        .flat_map(|queue| (0..workers).map(move |worker| (queue, worker)))
    {
        let cpu = queue == CPU_QUEUE;
        let channel = connection.create_channel().await?;
        channel
            .queue_declare(queue.into(), QueueDeclareOptions::durable(), FieldTable::default())
            .await?;
        channel.basic_qos(prefetch, BasicQosOptions { global: false }).await?;
        let tag = format!("raw-{queue}-{worker}");
        let consumer = channel
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        consumers.push(tokio::spawn(async move {
            let mut consumer = consumer;
            while let Some(Ok(delivery)) = consumer.next().await {
                tokio::spawn(async move {
                    let probe = Probe::global();
                    if cpu {
                        if let Ok(job) = serde_json::from_slice::<Spin>(&delivery.data) {
                            probe.started(job.sent_us);
                            std::hint::black_box(spin(job.seq, job.rounds));
                        }
                    } else if let Ok(job) = serde_json::from_slice::<Noop>(&delivery.data) {
                        probe.started(job.sent_us);
                    }
                    probe.finished();
                    // The bench notices a lost channel as a missing report.
                    let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                });
            }
            // Keeps the channel open as long as its consumer runs.
            drop(channel);
        }));
    }
    for consumer in consumers {
        consumer.await?;
    }
    Ok(())
}
