//! The bench's own vhost: created on first use through RabbitMQ's
//! management API (with the URL's user, given every permission on it), or
//! with `rabbitmqctl` when the broker runs on this machine without the
//! management plugin, or else the error gives the exact commands.

use std::time::Duration;

use lapin::uri::AMQPUri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether a connection error says the URL's vhost does not exist.
pub(crate) fn vhost_missing(error: &str) -> bool {
    error.contains("vhost") && error.contains("not found")
}

/// Creates the vhost of `amqp_url` and gives its user every permission on
/// it, through the management API on `management_port` of the same host.
/// The error is a sentence that says what to run instead.
pub(crate) async fn create_vhost(amqp_url: &str, management_port: u16) -> Result<(), String> {
    let uri: AMQPUri = amqp_url
        .parse()
        .map_err(|error| format!("the AMQP URL {amqp_url} is not valid: {error}"))?;
    let vhost = uri.vhost.clone();
    let user = uri.authority.userinfo.username.clone();
    let by_hand = format!(
        "create it with:\n  rabbitmqctl add_vhost {vhost}\n  rabbitmqctl set_permissions -p {vhost} {user} \".*\" \".*\" \".*\"\nor pass another vhost with --amqp-url"
    );
    let api = Api {
        host: uri.authority.host.clone(),
        port: management_port,
        user: user.clone(),
        password: uri.authority.userinfo.password.clone(),
    };
    let path = format!("/api/vhosts/{}", encode(&vhost));
    if let Err(error) = api.put(&path, "{}").await {
        // Without the management plugin, a broker on this machine still has its CLI.
        let local = matches!(api.host.as_str(), "127.0.0.1" | "localhost" | "::1");
        if local && rabbitmqctl(&["add_vhost", &vhost]).is_ok() {
            rabbitmqctl(&["set_permissions", "-p", &vhost, &user, ".*", ".*", ".*"]).map_err(|cli| {
                format!("created the vhost `{vhost}`, but could not give `{user}` permissions on it ({cli}); {by_hand}")
            })?;
            println!(
                "# created the vhost `{vhost}` for the bench with rabbitmqctl, with every permission for `{user}`"
            );
            return Ok(());
        }
        return Err(format!(
            "the vhost `{vhost}` does not exist, and neither the management API at {}:{management_port} ({error}) nor rabbitmqctl could create it; {by_hand}",
            api.host
        ));
    }
    let path = format!("/api/permissions/{}/{}", encode(&vhost), encode(&user));
    api.put(&path, r#"{"configure":".*","write":".*","read":".*"}"#)
        .await
        .map_err(|error| {
            format!("created the vhost `{vhost}`, but could not give `{user}` permissions on it ({error}); {by_hand}")
        })?;
    println!("# created the vhost `{vhost}` for the bench, with every permission for `{user}`");
    Ok(())
}

/// Runs `rabbitmqctl` with `args`; `Err` is what it said.
fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let output = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|error| format!("cannot run rabbitmqctl: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

struct Api {
    host: String,
    port: u16,
    user: String,
    password: String,
}

impl Api {
    /// One `PUT` with a JSON body; `Err` says the status or what failed.
    async fn put(&self, path: &str, body: &str) -> Result<(), String> {
        let exchange = async {
            let mut stream = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|error| format!("cannot connect: {error}"))?;
            let credentials = base64(format!("{}:{}", self.user, self.password).as_bytes());
            let request = format!(
                "PUT {path} HTTP/1.1\r\nHost: {}:{}\r\nAuthorization: Basic {credentials}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.host,
                self.port,
                body.len()
            );
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(|error| format!("cannot send: {error}"))?;
            let mut response = Vec::new();
            stream
                .read_to_end(&mut response)
                .await
                .map_err(|error| format!("cannot read the answer: {error}"))?;
            let response = String::from_utf8_lossy(&response);
            let status = response.lines().next().unwrap_or_default();
            match status.split_whitespace().nth(1) {
                Some("201" | "204") => Ok(()),
                Some(_) => Err(format!("it answered `{}`", status.trim())),
                None => Err("it gave no HTTP answer".to_owned()),
            }
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| "no answer within 10 s".to_owned())?
    }
}

/// Percent-encodes a path segment (a vhost may be `/`).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(byte).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Standard base64 with padding, for HTTP basic authentication.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b"guest:guest"), "Z3Vlc3Q6Z3Vlc3Q=");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    #[test]
    fn vhost_segments_are_percent_encoded() {
        assert_eq!(encode("/"), "%2F");
        assert_eq!(encode("warren-bench"), "warren-bench");
    }

    #[test]
    fn a_missing_vhost_is_recognised() {
        assert!(vhost_missing(
            "protocol error: NOT_ALLOWED - vhost warren-bench not found"
        ));
        assert!(!vhost_missing("connection refused"));
    }
}
