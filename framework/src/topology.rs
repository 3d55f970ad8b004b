//! The queues warren uses for a job queue, and how they are declared.

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ErrorKind};

use crate::Error;

/// The dead-letter queue of `queue`: jobs that failed for good.
pub(crate) fn dead_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

/// Declares `queues` durable, with no arguments, so that any AMQP client
/// declaring them `durable: true` (as the RabbitMQ tutorials do) agrees.
///
/// A declaration whose arguments clash with an existing queue makes the
/// broker close the channel it ran on, so each batch runs on a channel of
/// its own that nothing else needs.
pub(crate) async fn declare(connection: &Connection, queues: &[&str]) -> Result<(), Error> {
    let channel = connection.create_channel().await?;
    for queue in queues {
        let declared = channel
            .queue_declare((*queue).into(), QueueDeclareOptions::durable(), FieldTable::default())
            .await;
        if let Err(source) = declared {
            return Err(declare_error(queue, source));
        }
    }
    // The channel was only for declaring; if closing fails it is gone anyway.
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

fn declare_error(queue: &str, source: lapin::Error) -> Error {
    if let ErrorKind::ProtocolError(amqp) = source.kind()
        && amqp.get_id() == 406
    {
        return Error::QueueMismatch {
            queue: queue.to_owned(),
            reason: amqp.get_message().to_string(),
        };
    }
    Error::Declare {
        queue: queue.to_owned(),
        source,
    }
}
