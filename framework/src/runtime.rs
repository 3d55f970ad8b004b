//! Connecting to RabbitMQ on a tokio runtime that outlives the caller.

use lapin::{Connection, ConnectionProperties};
use tokio::runtime::Handle;

use crate::Error;
use crate::error::redact;

/// Opens a connection whose I/O runs on `handle`'s runtime.
///
/// lapin drives a connection on the runtime it is given; actix arbiters have
/// runtimes of their own that die with them, so worker connections are
/// pinned to a runtime that lives as long as the process.
pub(crate) async fn connect(url: &str, name: &str, handle: Handle) -> Result<Connection, Error> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = async_rs::Runtime::tokio_with_handle(handle);
    Connection::connect_with_runtime(url, properties, runtime)
        .await
        .map_err(|source| Error::Connect {
            url: redact(url),
            source,
        })
}
