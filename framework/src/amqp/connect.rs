//! The one connector: every connection warren opens goes through
//! [`Endpoint::connect`], and every loop that waits for the broker through
//! [`with_retries`].
//!
//! - The URLs are checked before anything is dialled: a malformed URL, an
//!   unknown scheme or an empty list is a configuration error, never a
//!   reason to retry.
//! - `amqps://` is TLS with rustls, verifying the broker's certificate
//!   against the system's roots and, for a private CA, a CA file; a client
//!   certificate makes it mutual TLS. It never falls back to plaintext: lapin
//!   without a TLS feature would, so the workspace builds it with rustls.
//! - A failure is classified ([`Error::is_transient`]): refused credentials,
//!   an unknown virtual host and a failed TLS handshake are named as such;
//!   only a refused, reset or silent connection is worth another try.
//! - The connection runs on a runtime that outlives the caller.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties, ErrorKind};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::runtime::Handle;

use crate::Error;
use crate::amqp::backoff::Backoff;
use crate::error::AmqpError;
use crate::error::redact;

/// The TLS files of a connection: a CA file for a broker whose certificate
/// a private CA signed (trusted besides the system's roots), and a client
/// certificate and key for mutual TLS.
///
/// They are read on every connection attempt, so renewed files are used
/// from the next reconnection on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// CA certificates (PEM) to trust.
    pub(crate) ca: Option<PathBuf>,
    /// The client certificate (PEM, with its chain) and its private key (PEM).
    pub(crate) client: Option<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    fn is_set(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }

    /// Reads and checks the files: a missing file, or one without a
    /// certificate or key in it, fails here rather than as a TLS failure.
    fn load(&self) -> Result<OwnedTLSConfig, Error> {
        let cert_chain = match &self.ca {
            Some(path) => {
                let pem = read_certificates(path, "CA file")?;
                // PEM is ASCII: certificates were found in it.
                Some(String::from_utf8_lossy(&pem).into_owned())
            }
            None => None,
        };
        let identity = match &self.client {
            Some((cert, key)) => {
                let pem = read_certificates(cert, "client certificate")?;
                let key_pem = read(key, "client key")?;
                PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| Error::TlsFile {
                    what: "client key",
                    path: key.clone(),
                    reason: format!("no private key in it (PEM: PKCS#8, PKCS#1 or SEC1): {error}"),
                })?;
                Some(OwnedIdentity::PKCS8 { pem, key: key_pem })
            }
            None => None,
        };
        Ok(OwnedTLSConfig { identity, cert_chain })
    }

    /// What a failed verification should name as trusted.
    fn trusted(&self) -> String {
        match &self.ca {
            Some(ca) => format!("the system's roots and the CA file `{}`", ca.display()),
            None => "the system's roots (give a private CA's file with --tls-ca / ClientBuilder::tls_ca)".to_owned(),
        }
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|error| Error::TlsFile {
        what,
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

/// The file, once it is known to hold at least one PEM certificate.
fn read_certificates(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    let pem = read(path, what)?;
    let invalid = |reason: String| Error::TlsFile {
        what,
        path: path.to_owned(),
        reason,
    };
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("not a PEM file: {error}")))?;
    if certificates.is_empty() {
        return Err(invalid(
            "no certificate in it (PEM, `-----BEGIN CERTIFICATE-----`)".to_owned(),
        ));
    }
    Ok(pem)
}

/// Where and as what a process connects: the URL (or a cluster's URLs,
/// comma-separated), the TLS files, the connection name shown by
/// `rabbitmqctl list_connections`, and the I/O runtime.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) io: Handle,
    tls: TlsFiles,
    /// The URL that answered last: tried first next time, so a dead node
    /// does not cost a connect timeout on every reconnection.
    preferred: Arc<AtomicUsize>,
    /// The frame size to ask for when the URL does not set `frame_max`;
    /// `None`: the broker's (128 KiB by default).
    frame_max: Option<u32>,
    /// The broker's frame size, by URL, once a connection has learned it
    /// (see [`Endpoint::connect`]).
    broker_frame_max: Arc<Mutex<HashMap<String, u32>>>,
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
            tls: TlsFiles::default(),
            preferred: Arc::default(),
            frame_max: None,
            broker_frame_max: Arc::default(),
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

    /// Uses these TLS files for `amqps://` URLs.
    pub(crate) fn with_tls(mut self, tls: TlsFiles) -> Self {
        self.tls = tls;
        self
    }

    /// Makes the next URL of the list the first to try: the one in use failed.
    pub(crate) fn fail_over(&self) {
        let count = split_urls(&self.url).count().max(1);
        let next = (self.preferred.load(Ordering::Relaxed) + 1) % count;
        self.preferred.store(next, Ordering::Relaxed);
    }

    /// Opens a connection to the first URL that answers, starting from the
    /// one that answered last. When none does, the failure that is not
    /// transient (refused credentials, say) wins over the others: it is the
    /// one that needs fixing.
    pub(crate) async fn connect(&self) -> Result<Connection, Error> {
        let targets = targets(&self.url, &self.tls)?;
        let tls = if targets.iter().any(Target::is_tls) {
            self.tls.load()?
        } else {
            OwnedTLSConfig::default()
        };
        let start = self.preferred.load(Ordering::Relaxed) % targets.len();
        let mut lasting = None;
        let mut last = None;
        for offset in 0..targets.len() {
            let index = (start + offset) % targets.len();
            match self.connect_to(&targets[index], &tls).await {
                Ok(connection) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(connection);
                }
                Err(error) => {
                    if targets.len() > 1 {
                        tracing::debug!(%error, "node unreachable; trying the next");
                    }
                    if !error.is_transient() && lasting.is_none() {
                        lasting = Some(error);
                    } else {
                        last = Some(error);
                    }
                }
            }
        }
        Err(lasting.or(last).unwrap_or_else(no_url))
    }
}

impl Endpoint {
    /// Opens a connection to `target` with this endpoint's frame size.
    ///
    /// A connection that takes the broker's frame size learns it the first
    /// time, and is opened once more asking for exactly that size. lapin
    /// sizes its send and receive buffers (32 frames each) by the frame size
    /// asked for; when the broker's turns out larger, it grows them and
    /// zeroes every byte, so they are resident from the start: 8 MiB at
    /// RabbitMQ's default of 128 KiB, half an idle worker's memory. Sized
    /// right from the start, a buffer's pages are only touched as frames
    /// fill them (measured: an idle worker's RSS 17.3 -> 9.6 MiB). The cost
    /// is one more handshake, once per URL and process.
    async fn connect_to(&self, target: &Target, tls: &OwnedTLSConfig) -> Result<Connection, Error> {
        let asks = self.frame_max.is_some() || target.uri.query.frame_max.is_some();
        let learned = || {
            self.broker_frame_max
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&target.url)
                .copied()
        };
        let known = if asks { None } else { learned() };
        let frame_max = self.frame_max.or(known);
        let connection = connect_one(target, &self.name, frame_max, tls, &self.tls, self.io.clone()).await?;
        if asks || known.is_some() {
            return Ok(connection);
        }
        let broker = connection.configuration().frame_max();
        self.broker_frame_max
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(target.url.clone(), broker);
        // The connection served its purpose; whether it closes cleanly
        // changes nothing.
        let _ = connection.close(200, "frame size learned".into()).await;
        connect_one(target, &self.name, Some(broker), tls, &self.tls, self.io.clone()).await
    }
}

/// Checks a configuration without connecting: the URLs parse, and the TLS
/// files (if any URL is `amqps://`) can be read. A worker checks before
/// it starts, so that what cannot work is reported at once.
#[cfg(feature = "worker")]
pub(crate) fn check(url: &str, tls: &TlsFiles) -> Result<(), Error> {
    let targets = targets(url, tls)?;
    if targets.iter().any(Target::is_tls) {
        tls.load()?;
    }
    Ok(())
}

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest frame a publishing connection asks for, unless the URL sets
/// `frame_max`.
///
/// lapin keeps a send and a receive buffer of 32 frames per connection:
/// at RabbitMQ's default frame size (128 KiB) that is 8 MiB per connection,
/// resident once traffic has gone through them. 32 KiB frames make it
/// 2 MiB; a message
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

/// One URL of the list, parsed.
#[derive(Debug)]
struct Target {
    uri: AMQPUri,
    /// The URL as given, without its password: for errors and logs.
    url: String,
}

impl Target {
    fn is_tls(&self) -> bool {
        self.uri.scheme == AMQPScheme::AMQPS
    }
}

fn no_url() -> Error {
    Error::InvalidUrl {
        url: String::new(),
        reason: "no URL given; expected amqp://host:5672/vhost, or amqps://host:5671/vhost for TLS".to_owned(),
    }
}

/// Every URL of the list, parsed, or the first that does not parse.
fn targets(urls: &str, tls: &TlsFiles) -> Result<Vec<Target>, Error> {
    let targets = split_urls(urls)
        .map(|url| {
            Ok(Target {
                uri: parse_url(url)?,
                url: redact(url),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    if targets.is_empty() {
        return Err(no_url());
    }
    if tls.is_set()
        && let Some(plain) = targets.iter().find(|target| !target.is_tls())
    {
        // Whoever set a CA or a client certificate means TLS: connecting in
        // clear instead would send the password and every job unencrypted.
        return Err(Error::InvalidUrl {
            url: plain.url.clone(),
            reason: "TLS files are set (a CA or a client certificate), but this URL is plain `amqp://`: use `amqps://`"
                .to_owned(),
        });
    }
    Ok(targets)
}

/// Parses one URL, naming what is wrong with it (its password redacted).
fn parse_url(url: &str) -> Result<AMQPUri, Error> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: redact(url),
        reason,
    };
    let expected = "expected amqp://host:5672/vhost, or amqps://host:5671/vhost for TLS";
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(invalid(format!(
            "it does not start with `amqp://` or `amqps://`; {expected}"
        )));
    };
    if !scheme.eq_ignore_ascii_case("amqp") && !scheme.eq_ignore_ascii_case("amqps") {
        // A scheme is letters, digits and `+-.`; anything else before `://`
        // may be a mangled password: not repeated.
        let named = if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
            format!("unknown scheme `{scheme}`")
        } else {
            "no scheme".to_owned()
        };
        return Err(invalid(format!("{named}; {expected}")));
    }
    let parsed = url::Url::parse(url).map_err(|error| invalid(format!("{error}; {expected}")))?;
    let host = match parsed.host() {
        Some(url::Host::Domain(domain)) if !domain.is_empty() => None,
        // amq-protocol-uri takes only domain names, and reads an IP address
        // as `localhost`: connecting to 10.0.0.5 would reach this machine.
        Some(url::Host::Ipv4(ip)) => Some(ip.to_string()),
        Some(url::Host::Ipv6(ip)) => Some(ip.to_string()),
        _ => return Err(invalid(format!("no host; {expected}"))),
    };
    let mut uri: AMQPUri = url.parse().map_err(|reason: String| invalid(reason))?;
    if let Some(host) = host {
        uri.authority.host = host;
    }
    Ok(uri)
}

/// Opens a connection whose I/O runs on `handle`'s runtime.
///
/// lapin drives a connection on the runtime it is given; actix arbiters have
/// runtimes of their own that die with them, so worker connections are
/// pinned to a runtime that lives as long as the process.
async fn connect_one(
    target: &Target,
    name: &str,
    frame_max: Option<u32>,
    tls: &OwnedTLSConfig,
    files: &TlsFiles,
    handle: Handle,
) -> Result<Connection, Error> {
    let mut uri = target.uri.clone();
    if let Some(frame_max) = frame_max {
        uri.query.frame_max.get_or_insert(frame_max);
    }
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = async_rs::Runtime::tokio_with_handle(handle);
    let connect = Connection::connect_uri_with_config(uri, properties, tls.clone(), runtime);
    // lapin has no handshake timeout: a peer that accepts and never speaks
    // would hang the caller.
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(connected) => connected.map_err(|source| classify(target, files, source)),
        Err(_elapsed) => Err(Error::ConnectTimeout {
            url: target.url.clone(),
            timeout: CONNECT_TIMEOUT,
        }),
    }
}

/// AMQP's reply code for refused credentials.
const ACCESS_REFUSED: u16 = 403;
/// AMQP's reply code RabbitMQ gives for a virtual host that does not exist
/// or that the user may not use (and for some limits).
const NOT_ALLOWED: u16 = 530;

/// Names a failed connection attempt by what the user can do about it.
fn classify(target: &Target, files: &TlsFiles, error: lapin::Error) -> Error {
    let url = target.url.clone();
    let user = &target.uri.authority.userinfo.username;
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => {
            let reason = amqp.get_message().to_string();
            match amqp.get_id() {
                ACCESS_REFUSED => {
                    return Error::AccessRefused {
                        url,
                        user: user.clone(),
                        reason,
                    };
                }
                // "connection limit reached" and the like pass.
                NOT_ALLOWED if !reason.contains("limit") => {
                    return Error::VhostRefused {
                        url,
                        vhost: target.uri.vhost.clone(),
                        user: user.clone(),
                        reason,
                    };
                }
                _ => {}
            }
        }
        ErrorKind::IOError(io) if target.is_tls() => {
            if let Some(reason) = tls_failure(io, files) {
                return Error::Tls { url, reason };
            }
        }
        _ => {}
    }
    Error::Connect {
        url,
        source: AmqpError::new(error),
    }
}

/// What went wrong in TLS, if the I/O error is a TLS failure rather than
/// the network's.
fn tls_failure(io: &std::io::Error, files: &TlsFiles) -> Option<String> {
    let inner = io.get_ref();
    if let Some(tls) = inner.and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return Some(match tls {
            rustls::Error::InvalidCertificate(_) => format!(
                "certificate verification failed: the broker's certificate is not trusted ({tls}); trusted are {}",
                files.trusted()
            ),
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. } => format!(
                "the broker did not answer in TLS ({tls}): is this a plain AMQP port? (RabbitMQ's TLS port is usually 5671, its plain one 5672)"
            ),
            rustls::Error::AlertReceived(_) => format!(
                "the broker ended the TLS handshake ({tls}): it may require a client certificate (--tls-cert/--tls-key) or not accept the one given"
            ),
            _ => tls.to_string(),
        });
    }
    let text = io.to_string();
    if text.contains("native certificates") {
        return Some(format!(
            "no system root certificates could be loaded ({text}); install the system's CA certificates (e.g. the `ca-certificates` package)"
        ));
    }
    (io.kind() == std::io::ErrorKind::InvalidData).then_some(text)
}

/// What a loop that waits for the broker does with a failure that is not
/// transient (refused credentials, an invalid URL, a TLS failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusals {
    /// Returns it: someone is there to fix the configuration (a process
    /// starting, an enqueue waiting for its answer).
    Fail,
    /// Logs it as an error and tries again at the backoff's pace: a worker
    /// that was running keeps going until the broker accepts it again (an
    /// authentication backend that failed for a moment refuses credentials
    /// too).
    #[cfg(feature = "worker")]
    Retry,
}

/// Calls `connect` until it succeeds, waiting `backoff`'s growing, jittered
/// waits after each transient failure, and logging one line per failure.
///
/// Every wait-and-reconnect loop of warren goes through here, so a fleet of
/// workers that lost its broker together does not return in step.
/// Cancel it by dropping it (a deadline, a signal).
pub(crate) async fn with_retries<T, F, Fut>(
    connection: &str,
    mut backoff: Backoff,
    refusals: Refusals,
    mut connect: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut attempt = 1u32;
    loop {
        let error = match connect().await {
            Ok(connected) => return Ok(connected),
            Err(error) => error,
        };
        let wait = backoff.next_wait();
        if error.is_transient() {
            tracing::warn!(%error, connection, attempt, retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "RabbitMQ unreachable; retrying");
        } else if refusals == Refusals::Fail {
            return Err(error);
        } else {
            tracing::error!(%error, connection, attempt, retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "RabbitMQ refused the connection; retrying");
        }
        tokio::time::sleep(wait).await;
        attempt = attempt.saturating_add(1);
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

    fn invalid(urls: &str) -> String {
        match targets(urls, &TlsFiles::default()) {
            Err(error @ Error::InvalidUrl { .. }) => {
                assert!(!error.is_transient());
                error.to_string()
            }
            other => panic!("{urls:?} is accepted: {other:?}"),
        }
    }

    #[test]
    fn malformed_urls_are_named_with_what_is_wrong_and_no_password() {
        let text = invalid("amqp//guest:secret@127.0.0.1:5672");
        assert_eq!(
            text,
            "invalid RabbitMQ URL `amqp//guest:***@127.0.0.1:5672`: it does not start with `amqp://` or `amqps://`; \
             expected amqp://host:5672/vhost, or amqps://host:5671/vhost for TLS"
        );
        assert!(invalid("127.0.0.1:5672").contains("does not start with `amqp://`"));
        assert!(invalid("amq://127.0.0.1:5672").contains("unknown scheme `amq`"));
        assert!(invalid("http://127.0.0.1:5672").contains("unknown scheme `http`"));
        assert!(invalid("amqp://127.0.0.1:99999").contains("invalid port number"));
        assert!(invalid("amqp://:5672/%2f").contains("empty host"));
        assert!(invalid("amqp:///%2f").contains("no host"));
        assert!(invalid("").contains("no URL given"));
        assert!(invalid(" , ").contains("no URL given"));
        let one_bad = invalid("amqp://a:5672, amqp:/u:pw@b:5672");
        assert!(one_bad.contains("***@b:5672`") && !one_bad.contains("pw"), "{one_bad}");
    }

    #[test]
    fn an_ip_address_is_the_host_connected_to_not_localhost() {
        let uri = parse_url("amqps://guest:guest@10.1.2.3:5671/%2f").expect("valid");
        assert_eq!(uri.authority.host, "10.1.2.3");
        assert_eq!(uri.authority.port, 5671);
        assert_eq!(uri.scheme, AMQPScheme::AMQPS);
        assert_eq!(parse_url("amqp://[::1]:5672").expect("valid").authority.host, "::1");
        assert_eq!(
            parse_url("AMQP://rabbit.internal").expect("valid").authority.host,
            "rabbit.internal"
        );
    }

    #[test]
    fn tls_files_with_a_plain_url_are_refused() {
        let tls = TlsFiles {
            ca: Some("ca.pem".into()),
            client: None,
        };
        let error = targets("amqps://a:5671, amqp://b:5672", &tls).expect_err("plain URL with a CA");
        assert!(error.to_string().contains("use `amqps://`"), "{error}");
        assert!(targets("amqps://a:5671", &tls).is_ok());
    }

    #[test]
    fn a_missing_or_empty_tls_file_is_named() {
        let missing = TlsFiles {
            ca: Some("/nonexistent/ca.pem".into()),
            client: None,
        };
        let error = missing.load().expect_err("missing CA");
        assert!(matches!(error, Error::TlsFile { .. }) && !error.is_transient());
        assert!(
            error
                .to_string()
                .starts_with("cannot use the TLS CA file `/nonexistent/ca.pem`: "),
            "{error}"
        );

        let dir = std::env::temp_dir().join(format!("warren-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let not_pem = dir.join("not-pem.pem");
        std::fs::write(&not_pem, "hello\n").expect("write");
        let error = TlsFiles {
            ca: Some(not_pem.clone()),
            client: None,
        }
        .load()
        .expect_err("no certificate");
        assert!(error.to_string().contains("no certificate in it"), "{error}");

        let cert = dir.join("cert.pem");
        std::fs::write(&cert, TEST_CERT).expect("write");
        let error = TlsFiles {
            ca: None,
            client: Some((cert.clone(), not_pem)),
        }
        .load()
        .expect_err("no key");
        assert!(
            error.to_string().starts_with("cannot use the TLS client key"),
            "{error}"
        );
        assert!(
            TlsFiles {
                ca: Some(cert),
                client: None
            }
            .load()
            .is_ok()
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The shape of a PEM certificate (three zero bytes, not a certificate:
    /// only the shape is checked before TLS).
    const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
}
