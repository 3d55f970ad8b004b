//! The queues warren uses for a job queue, and how they are declared.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ErrorKind};

use crate::{Error, hold};

/// The dead-letter queue of `queue`: jobs that failed for good.
pub(crate) fn dead_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

/// A queue to declare, durable, with its arguments.
#[derive(Debug, Clone)]
pub(crate) struct QueueSpec {
    pub(crate) name: String,
    pub(crate) arguments: FieldTable,
    /// Whether a publisher must declare it again now and then (hold queues,
    /// whose idle expiry each declaration restarts).
    pub(crate) expires: bool,
}

impl QueueSpec {
    /// A job queue or a dead-letter queue: durable with no arguments, so
    /// that any AMQP client declaring it `durable: true` (as the RabbitMQ
    /// tutorials do) agrees.
    pub(crate) fn plain(name: impl Into<String>) -> Self {
        QueueSpec {
            name: name.into(),
            arguments: FieldTable::default(),
            expires: false,
        }
    }

    /// The hold queue of `queue` (a full name) for waits of `hold`.
    pub(crate) fn hold(queue: &str, hold: Duration) -> Self {
        QueueSpec {
            name: hold::queue_name(queue, hold),
            arguments: hold::arguments(queue, hold),
            expires: true,
        }
    }
}

/// Declares `queues`.
///
/// A declaration whose arguments clash with an existing queue makes the
/// broker close the channel it ran on, so each batch runs on a channel of
/// its own that nothing else needs.
pub(crate) async fn declare(connection: &Connection, queues: &[QueueSpec]) -> Result<(), Error> {
    let names = queues
        .iter()
        .map(|queue| crate::client::short(&queue.name))
        .collect::<Result<Vec<_>, _>>()?;
    let channel = connection.create_channel().await?;
    for (queue, name) in queues.iter().zip(names) {
        let declared = channel
            .queue_declare(name, QueueDeclareOptions::durable(), queue.arguments.clone())
            .await;
        if let Err(source) = declared {
            return Err(declare_error(&queue.name, source));
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
