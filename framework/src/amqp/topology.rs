//! The queues warren uses for a job queue, and how they are declared.
//!
//! A classic job queue `q` and its dead-letter queue `q.dead` are durable
//! with no arguments. A quorum job queue is declared with `x-queue-type =
//! quorum`, a delivery limit and RabbitMQ's dead-lettering to `q.dead` (a
//! quorum queue too), so that a message whose deliveries keep coming back
//! unacknowledged cannot loop. Hold queues have the kind of their job queue
//! (see [`hold`]).

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Connection, ErrorKind};

use crate::amqp::hold;
use crate::error::AmqpError;
use crate::job::QueueShape;
use crate::{Error, QueueType};

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
    /// The job queue `name` (a full name) of shape `shape`.
    ///
    /// Classic: durable with no arguments, so that any AMQP client declaring
    /// it `durable: true` (as the RabbitMQ tutorials do) agrees, unless its
    /// jobs opt in to priorities (`x-max-priority`). Quorum: with the
    /// delivery limit and dead-lettering to its dead-letter queue.
    pub(crate) fn job(name: &str, shape: QueueShape) -> Self {
        let mut arguments = FieldTable::default();
        if let Some(max) = shape.max_priority {
            arguments.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(max));
        }
        if shape.queue_type == QueueType::Quorum {
            arguments.insert("x-queue-type".into(), text(QueueType::Quorum.as_str()));
            arguments.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(QueueType::QUORUM_DELIVERY_LIMIT.into()),
            );
            arguments.insert("x-dead-letter-exchange".into(), text(""));
            arguments.insert("x-dead-letter-routing-key".into(), text(&dead_queue(name)));
        }
        QueueSpec {
            name: name.to_owned(),
            arguments,
            expires: false,
        }
    }

    /// The dead-letter queue of the job queue `queue` (a full name), of the
    /// same kind: durable, and for quorum only `x-queue-type`.
    pub(crate) fn dead(queue: &str, queue_type: QueueType) -> Self {
        let mut arguments = FieldTable::default();
        if queue_type == QueueType::Quorum {
            arguments.insert("x-queue-type".into(), text(QueueType::Quorum.as_str()));
        }
        QueueSpec {
            name: dead_queue(queue),
            arguments,
            expires: false,
        }
    }

    /// The hold queue of `queue` (a full name, of kind `queue_type`) for
    /// waits of `hold`.
    pub(crate) fn hold(queue: &str, queue_type: QueueType, hold: Duration) -> Self {
        QueueSpec {
            name: hold::queue_name(queue, queue_type, hold),
            arguments: hold::arguments(queue, queue_type, hold),
            expires: true,
        }
    }
}

/// What a publisher to the job queue `queue` (a full name) declares: the
/// queue, and for quorum first its dead-letter queue, since RabbitMQ drops
/// what it dead-letters to a queue that does not exist. (A classic queue
/// has no dead-lettering of its own; its workers declare `q.dead`.)
pub(crate) fn publisher_queues(queue: &str, shape: QueueShape) -> Vec<QueueSpec> {
    match shape.queue_type {
        QueueType::Quorum => vec![QueueSpec::dead(queue, shape.queue_type), QueueSpec::job(queue, shape)],
        QueueType::Classic => vec![QueueSpec::job(queue, shape)],
    }
}

/// What a worker consuming the job queue `queue` (a full name) declares:
/// its dead-letter queue and the queue.
#[cfg(feature = "worker")]
pub(crate) fn worker_queues(queue: &str, shape: QueueShape) -> [QueueSpec; 2] {
    [QueueSpec::dead(queue, shape.queue_type), QueueSpec::job(queue, shape)]
}

fn text(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

/// Declares `queues`.
///
/// A declaration whose arguments clash with an existing queue makes the
/// broker close the channel it ran on, so each batch runs on a channel of
/// its own that nothing else needs.
pub(crate) async fn declare(connection: &Connection, queues: &[QueueSpec]) -> Result<(), Error> {
    let names = queues
        .iter()
        .map(|queue| crate::amqp::short(&queue.name))
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

/// The error for a failed declaration, in the broker's words: RabbitMQ
/// answers `PRECONDITION_FAILED` both for arguments that differ from the
/// existing queue's and for a limit (a vhost's `max-queues`), which need
/// different fixes.
fn declare_error(queue: &str, source: lapin::Error) -> Error {
    if let ErrorKind::ProtocolError(amqp) = source.kind() {
        let reason = amqp.get_message().to_string();
        if reason.contains("inequivalent arg") {
            return Error::QueueMismatch {
                queue: queue.to_owned(),
                reason,
            };
        }
        return Error::DeclareRefused {
            queue: queue.to_owned(),
            reason,
        };
    }
    Error::Declare {
        queue: queue.to_owned(),
        source: AmqpError::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classic() -> QueueShape {
        QueueShape::default()
    }

    fn quorum() -> QueueShape {
        QueueShape {
            queue_type: QueueType::Quorum,
            max_priority: None,
        }
    }

    #[test]
    fn only_queues_whose_jobs_opt_in_take_priorities() {
        let shape = QueueShape {
            queue_type: QueueType::Classic,
            max_priority: Some(10),
        };
        let [dead, job] = worker_queues("prod-urgent", shape);
        assert_eq!(arguments(&job), [("x-max-priority", &AMQPValue::ShortShortUInt(10))]);
        assert!(dead.arguments.inner().is_empty(), "dead letters are not ordered");
        assert!(worker_queues("task_queue", classic())[1].arguments.inner().is_empty());
    }

    fn arguments(spec: &QueueSpec) -> Vec<(&str, &AMQPValue)> {
        spec.arguments
            .inner()
            .iter()
            .map(|(name, value)| (name.as_str(), value))
            .collect()
    }

    #[test]
    fn classic_queues_are_declared_with_no_arguments() {
        let queues = worker_queues("prod-images", classic());
        assert_eq!(queues[0].name, "prod-images.dead");
        assert_eq!(queues[1].name, "prod-images");
        assert!(
            queues
                .iter()
                .all(|queue| queue.arguments.inner().is_empty() && !queue.expires)
        );
        let published: Vec<String> = publisher_queues("prod-images", classic())
            .into_iter()
            .map(|queue| queue.name)
            .collect();
        assert_eq!(published, ["prod-images"], "as before quorum queues");
    }

    #[test]
    fn quorum_queues_have_a_delivery_limit_and_dead_letter_to_their_dead_letter_queue() {
        let [dead, job] = worker_queues("prod-payments", quorum());
        assert_eq!(
            arguments(&job),
            [
                ("x-dead-letter-exchange", &text("")),
                ("x-dead-letter-routing-key", &text("prod-payments.dead")),
                ("x-delivery-limit", &AMQPValue::LongLongInt(5)),
                ("x-queue-type", &text("quorum")),
            ]
        );
        assert_eq!(dead.name, "prod-payments.dead");
        assert_eq!(arguments(&dead), [("x-queue-type", &text("quorum"))]);
        let published: Vec<String> = publisher_queues("prod-payments", quorum())
            .into_iter()
            .map(|queue| queue.name)
            .collect();
        assert_eq!(
            published,
            ["prod-payments.dead", "prod-payments"],
            "the dead-letter queue exists before anything can be dead-lettered to it"
        );
    }
}
