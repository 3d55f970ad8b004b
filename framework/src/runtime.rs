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

/// Opens a connection whose I/O runs on `handle`'s runtime.
///
/// lapin drives a connection on the runtime it is given; actix arbiters have
/// runtimes of their own that die with them, so worker connections are
/// pinned to a runtime that lives as long as the process.
pub(crate) async fn connect(url: &str, name: &str, handle: Handle) -> Result<Connection, Error> {
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
