//! A publish the broker confirmed: one mandatory publish on a confirm
//! channel, and what its confirm means for the caller.

use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation};

use crate::Error;

/// Publishes `body` to `queue` on the confirm channel `channel`, mandatory,
/// and waits for the broker's confirm: a nack or a return is an error.
pub(crate) async fn publish(
    channel: &Channel,
    queue: &ShortString,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), Error> {
    let confirmation = channel
        .basic_publish("".into(), queue.clone(), mandatory(), body, properties)
        .await?
        .await?;
    outcome(confirmation, queue.as_str())
}

/// Publish options that make the broker return a message it cannot route
/// (its queue was deleted): an error, never a silent drop.
pub(crate) fn mandatory() -> BasicPublishOptions {
    BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    }
}

/// What the broker's confirm of a mandatory publish to `queue` means:
/// returned is [`Error::Unroutable`], nacked [`Error::Nacked`].
pub(crate) fn outcome(confirmation: Confirmation, queue: &str) -> Result<(), Error> {
    match confirmation {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_returned)) => Err(Error::Unroutable {
            queue: queue.to_owned(),
        }),
        Confirmation::Nack(_) => Err(Error::Nacked {
            queue: queue.to_owned(),
        }),
    }
}
