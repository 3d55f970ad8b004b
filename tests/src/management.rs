//! The broker's management HTTP API, for the harness's bookkeeping: listing
//! and deleting a test's queues, creating and deleting its vhost.
//!
//! Each `rabbitmqctl` call starts an Erlang VM (about half a second of CPU);
//! the tests made some 500 of them per run, most to clean up after
//! themselves, and on two cores that was the larger part of the suite's
//! time. A request here costs milliseconds. What a test asserts about the
//! broker (message counts, consumers, arguments) still comes from
//! `rabbitmqctl`, which reads the queues' live state: the API's statistics
//! lag by seconds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;

/// The management API's port (`RABBITMQ_MANAGEMENT_PORT`, as `scripts/rabbitmq`
/// reads it, or RabbitMQ's default).
fn port() -> u16 {
    std::env::var("RABBITMQ_MANAGEMENT_PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(15672)
}

/// The host, user and password of the test broker's URL.
fn server() -> (String, String, String) {
    let url = url::Url::parse(&crate::amqp_url()).expect("AMQP_URL is a URL");
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let user = match url.username() {
        "" => "guest".to_owned(),
        user => user.to_owned(),
    };
    let password = url.password().unwrap_or("guest").to_owned();
    (host, user, password)
}

/// The vhost of the test broker's URL (`/` for `…/%2f`).
pub fn url_vhost() -> String {
    let url = url::Url::parse(&crate::amqp_url()).expect("AMQP_URL is a URL");
    match url.path().trim_start_matches('/') {
        "" => "/".to_owned(),
        path => percent_decode(path),
    }
}

/// Decodes `%XX` escapes.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| text.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                at += 3;
            }
            None => {
                decoded.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Percent-encodes one path segment (a vhost or queue name).
pub fn segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => encoded.push(char::from(byte)),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

/// Sends one request and returns the status code and body. HTTP/1.0, so
/// the body is neither chunked nor kept alive: read to the end.
fn request(method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let (host, user, password) = server();
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut stream = TcpStream::connect((host.as_str(), port())).unwrap_or_else(|error| {
        panic!(
            "the management API on {host}:{} (scripts/rabbitmq enables it): {error}",
            port()
        )
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nAuthorization: Basic {credentials}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the request");
    stream.write_all(body.as_bytes()).expect("send the body");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP status in {head:?}"));
    (status, body.to_owned())
}

/// Sends a request that must succeed (or find nothing, for a delete).
fn expect(method: &str, path: &str, body: Option<&str>) -> String {
    let (status, text) = request(method, path, body);
    let gone = method == "DELETE" && status == 404;
    assert!(
        (200..300).contains(&status) || gone,
        "management API: {method} {path} answered {status}: {text}"
    );
    text
}

/// The names of the queues of `vhost`, as they are now (the list is read
/// from the broker's metadata, not from the lagging statistics).
pub fn queue_names(vhost: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Queue {
        name: String,
    }
    let body = expect("GET", &format!("/api/queues/{}?columns=name", segment(vhost)), None);
    let queues: Vec<Queue> =
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("queues of {vhost}: {error}: {body}"));
    queues.into_iter().map(|queue| queue.name).collect()
}

/// Deletes `queue` of `vhost`, if it is there.
pub fn delete_queue(vhost: &str, queue: &str) {
    expect(
        "DELETE",
        &format!("/api/queues/{}/{}", segment(vhost), segment(queue)),
        None,
    );
}

/// Creates `vhost` and gives the URL's user every permission on it.
pub fn add_vhost(vhost: &str) {
    let (_, user, _) = server();
    expect("PUT", &format!("/api/vhosts/{}", segment(vhost)), Some("{}"));
    expect(
        "PUT",
        &format!("/api/permissions/{}/{}", segment(vhost), segment(&user)),
        Some(r#"{"configure":".*","write":".*","read":".*"}"#),
    );
}

/// Deletes `vhost` with everything in it, if it is there.
pub fn delete_vhost(vhost: &str) {
    expect("DELETE", &format!("/api/vhosts/{}", segment(vhost)), None);
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn names_are_encoded_as_one_path_segment() {
        assert_eq!(segment("/"), "%2F");
        assert_eq!(segment("test-ab12-work.retry.1000"), "test-ab12-work.retry.1000");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(super::percent_decode("%2f"), "/");
        assert_eq!(super::percent_decode("warren-%41%"), "warren-A%");
    }
}
