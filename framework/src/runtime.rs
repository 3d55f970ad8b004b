//! Connecting to RabbitMQ on a tokio runtime that outlives the caller.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use tokio::runtime::Handle;

use crate::Error;
use crate::error::redact;

/// Where and as what a worker process connects: the URL, the connection
/// name shown by `rabbitmqctl list_connections`, and the I/O runtime.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) io: Handle,
}

impl Endpoint {
    /// Opens a connection to the endpoint.
    pub(crate) async fn connect(&self) -> Result<Connection, Error> {
        connect(&self.url, &self.name, self.io.clone()).await
    }
}

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection whose I/O runs on `handle`'s runtime, to the first
/// of `urls` (one URL, or several separated by commas: the nodes of a
/// cluster) that answers.
///
/// lapin drives a connection on the runtime it is given; actix arbiters have
/// runtimes of their own that die with them, so worker connections are
/// pinned to a runtime that lives as long as the process.
pub(crate) async fn connect(urls: &str, name: &str, handle: Handle) -> Result<Connection, Error> {
    let mut last_error = None;
    for url in split_urls(urls) {
        match connect_one(url, name, handle.clone()).await {
            Ok(connection) => return Ok(connection),
            Err(error) => {
                if last_error.is_some() || urls.contains(',') {
                    tracing::debug!(%error, "node unreachable; trying the next");
                }
                last_error = Some(error);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| Error::Connect {
        url: String::new(),
        source: lapin::Error::from(std::io::Error::other("no RabbitMQ URL given")),
    }))
}

/// The URLs of a comma-separated list, trimmed, empty entries skipped.
pub(crate) fn split_urls(urls: &str) -> impl Iterator<Item = &str> {
    urls.split(',').map(str::trim).filter(|url| !url.is_empty())
}

async fn connect_one(url: &str, name: &str, handle: Handle) -> Result<Connection, Error> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = async_rs::Runtime::tokio_with_handle(handle);
    let connect = Connection::connect_with_runtime(url, properties, runtime);
    // lapin has no handshake timeout: a peer that accepts and never speaks
    // would hang the caller.
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(connected) => connected.map_err(|source| Error::Connect {
            url: redact(url),
            source,
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
