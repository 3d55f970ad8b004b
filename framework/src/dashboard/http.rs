//! A GET over HTTP/1.1 on a connection of its own: all the dashboard asks
//! of RabbitMQ's management API, a few times a minute.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// How long one request may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response read.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Why a GET failed, in a line an operator reads on the page.
pub(crate) type Failure = String;

/// GETs `path_and_query` from `host:port` with the given `Authorization`;
/// the body of a 2xx answer.
pub(crate) async fn get(host: &str, port: u16, path_and_query: &str, authorization: &str) -> Result<Bytes, Failure> {
    let request = async {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|error| format!("cannot connect to {host}:{port}: {error}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| format!("HTTP handshake with {host}:{port} failed: {error}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = hyper::Request::get(path_and_query)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::AUTHORIZATION, authorization)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|error| format!("bad request {path_and_query}: {error}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| format!("GET {path_and_query} failed: {error}"))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|error| format!("reading the answer to GET {path_and_query} failed: {error}"))?
            .to_bytes();
        if status.is_success() {
            Ok(body)
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            Err(format!("GET {path_and_query} answered {status}: {text}"))
        }
    };
    tokio::time::timeout(TIMEOUT, request)
        .await
        .unwrap_or_else(|_| Err(format!("GET {path_and_query} from {host}:{port} took over {TIMEOUT:?}")))
}
