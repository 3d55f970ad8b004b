//! Connecting to RabbitMQ on a tokio runtime that outlives the caller.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use tokio::runtime::Handle;

use crate::Error;
use crate::error::AmqpError;
use crate::error::redact;

/// Where and as what a process connects: the URL (or a cluster's URLs,
/// comma-separated), the connection name shown by `rabbitmqctl
/// list_connections`, and the I/O runtime.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) io: Handle,
    /// The URL that answered last: tried first next time, so a dead node
    /// does not cost a connect timeout on every reconnection.
    preferred: Arc<AtomicUsize>,
    /// The frame size to ask for when the URL does not set `frame_max`;
    /// `None`: the broker's (128 KiB by default).
    frame_max: Option<u32>,
}

impl Endpoint {
    /// A consuming connection: it takes the broker's frame size, since it
    /// must be able to receive any message the broker accepted (a message's
    /// properties travel in one frame, and a larger frame than agreed closes
    /// the connection, for ever if the message is redelivered).
    pub(crate) fn new(url: impl Into<String>, name: impl Into<String>, io: Handle) -> Self {
        Endpoint {
            url: url.into(),
            name: name.into(),
            io,
            preferred: Arc::default(),
            frame_max: None,
        }
    }

    /// A publishing connection (a [`Client`](crate::Client)): it asks for
    /// [`PUBLISHER_FRAME_MAX`], which saves memory; it only ever sends.
    pub(crate) fn publisher(url: impl Into<String>, name: impl Into<String>, io: Handle) -> Self {
        Endpoint {
            frame_max: Some(PUBLISHER_FRAME_MAX),
            ..Endpoint::new(url, name, io)
        }
    }

    /// Makes the next URL of the list the first to try: the one in use failed.
    pub(crate) fn fail_over(&self) {
        let count = split_urls(&self.url).count().max(1);
        let next = (self.preferred.load(Ordering::Relaxed) + 1) % count;
        self.preferred.store(next, Ordering::Relaxed);
    }

    /// Opens a connection to the first URL that answers, starting from the
    /// one that answered last.
    pub(crate) async fn connect(&self) -> Result<Connection, Error> {
        let urls: Vec<&str> = split_urls(&self.url).collect();
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last_error = None;
        for offset in 0..urls.len() {
            let index = (start + offset) % urls.len();
            match connect_one(urls[index], &self.name, self.frame_max, self.io.clone()).await {
                Ok(connection) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(connection);
                }
                Err(error) => {
                    if urls.len() > 1 {
                        tracing::debug!(%error, "node unreachable; trying the next");
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Connect {
            url: String::new(),
            source: AmqpError::new(lapin::Error::from(std::io::Error::other("no RabbitMQ URL given"))),
        }))
    }
}

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest frame a publishing connection asks for, unless the URL sets
/// `frame_max`.
///
/// lapin keeps a send and a receive buffer of 32 frames per connection and
/// zeroes them when the connection opens: at RabbitMQ's default frame size
/// (128 KiB) that is 8 MiB per connection, and a worker process has two,
/// most of an idle worker's memory. 32 KiB frames make it 2 MiB; a message
/// larger than a frame travels in several, at 8 bytes of framing each. Only
/// a job whose properties exceed 32 KiB (a foreign message with huge
/// headers, retried or dead-lettered) cannot be published: it stays on the
/// broker, returned to its queue. Consuming connections keep the broker's
/// frame size: with 32 KiB, a message with 40 KB of headers closed the
/// worker's connection on every delivery.
const PUBLISHER_FRAME_MAX: u32 = 32 * 1024;

/// The URLs of a comma-separated list, trimmed, empty entries skipped.
pub(crate) fn split_urls(urls: &str) -> impl Iterator<Item = &str> {
    urls.split(',').map(str::trim).filter(|url| !url.is_empty())
}

/// Opens a connection whose I/O runs on `handle`'s runtime.
///
/// lapin drives a connection on the runtime it is given; actix arbiters have
/// runtimes of their own that die with them, so worker connections are
/// pinned to a runtime that lives as long as the process.
async fn connect_one(url: &str, name: &str, frame_max: Option<u32>, handle: Handle) -> Result<Connection, Error> {
    let mut uri: AMQPUri = url.parse().map_err(|reason: String| Error::Connect {
        url: redact(url),
        source: AmqpError::new(lapin::Error::from(std::io::Error::other(reason))),
    })?;
    if let Some(frame_max) = frame_max {
        uri.query.frame_max.get_or_insert(frame_max);
    }
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = async_rs::Runtime::tokio_with_handle(handle);
    let connect = Connection::connect_uri_with_runtime(uri, properties, runtime);
    // lapin has no handshake timeout: a peer that accepts and never speaks
    // would hang the caller.
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(connected) => connected.map_err(|source| Error::Connect {
            url: redact(url),
            source: AmqpError::new(source),
        }),
        Err(_elapsed) => Err(Error::ConnectTimeout {
            url: redact(url),
            timeout: CONNECT_TIMEOUT,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_urls_are_split_on_commas() {
        let urls: Vec<_> = split_urls("amqp://a:5672/%2f, amqp://b:5672/%2f,,").collect();
        assert_eq!(urls, ["amqp://a:5672/%2f", "amqp://b:5672/%2f"]);
        assert_eq!(split_urls("amqp://a").count(), 1);
    }
}
