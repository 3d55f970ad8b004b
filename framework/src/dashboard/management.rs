//! Queue statistics from RabbitMQ's management HTTP API, grouped by job
//! queue: its hold queues (`<queue>.retry.<ms>`) and dead-letter queue
//! (`<queue>.dead`) under it.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use url::Url;

use super::DashboardError;
use super::http;
use crate::error::redact;

/// The management API's default port.
const PORT: u16 = 15672;

/// Where the management API is and how to log in.
#[derive(Clone)]
pub(crate) struct Management {
    host: String,
    port: u16,
    /// `Basic …`.
    authorization: String,
    /// The virtual host, percent-encoded for a path.
    vhost: String,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the credentials.
        f.debug_struct("Management")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("vhost", &self.vhost)
            .finish_non_exhaustive()
    }
}

impl Management {
    /// From the AMQP URL (the first of several), or `management_url`'s host,
    /// port and credentials with the AMQP URL's virtual host.
    pub(crate) fn new(amqp_url: &str, management_url: Option<&str>) -> Result<Self, DashboardError> {
        let first = amqp_url.split(',').next().unwrap_or_default().trim();
        let invalid = |url: &str, reason: &str| DashboardError::ManagementUrl {
            url: redact(url),
            reason: reason.to_owned(),
        };
        let amqp = Url::parse(first).map_err(|error| invalid(first, &error.to_string()))?;
        let vhost = match amqp.path() {
            "" | "/" => "%2F".to_owned(),
            path => path[1..].to_owned(),
        };
        let (base, port) = match management_url {
            Some(given) => {
                let url = Url::parse(given).map_err(|error| invalid(given, &error.to_string()))?;
                if url.scheme() != "http" {
                    return Err(invalid(given, "only http:// management URLs are supported"));
                }
                let port = url.port().unwrap_or(80);
                (url, port)
            }
            None => (amqp, PORT),
        };
        let host = base
            .host_str()
            .ok_or_else(|| invalid(base.as_str(), "it has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = percent_decode;
        let user = if base.username().is_empty() {
            "guest".to_owned()
        } else {
            decode(base.username())
        };
        let password = base.password().map_or_else(|| "guest".to_owned(), decode);
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Ok(Management {
            host,
            port,
            authorization: format!("Basic {credentials}"),
            vhost,
        })
    }

    /// The queues of the virtual host whose names start with `prefix`,
    /// grouped by job queue.
    pub(crate) async fn queues(&self, prefix: &str) -> Result<Vec<JobQueue>, http::Failure> {
        let path = format!("/api/queues/{}?columns={COLUMNS}", self.vhost);
        let body = http::get(&self.host, self.port, &path, &self.authorization).await?;
        let queues: Vec<Queue> = serde_json::from_slice(&body)
            .map_err(|error| format!("unexpected answer from the management API: {error}"))?;
        Ok(group(
            queues
                .into_iter()
                .filter(|queue| queue.name.starts_with(prefix))
                .collect(),
        ))
    }
}

/// The columns asked for: the statistics of a listing that is otherwise
/// large.
const COLUMNS: &str = "name,type,messages_ready,messages_unacknowledged,consumers,head_message_timestamp,\
message_stats.publish_details.rate,message_stats.deliver_get_details.rate,message_stats.ack_details.rate";

/// One queue as the management API lists it.
#[derive(Debug, Deserialize)]
struct Queue {
    name: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    messages_ready: Option<u64>,
    #[serde(default)]
    messages_unacknowledged: Option<u64>,
    #[serde(default)]
    consumers: Option<u64>,
    /// Seconds since the epoch: the `timestamp` of the message at its head
    /// (classic queues; warren stamps every job).
    #[serde(default)]
    head_message_timestamp: Option<u64>,
    #[serde(default)]
    message_stats: Option<Stats>,
}

#[derive(Debug, Default, Deserialize)]
struct Stats {
    #[serde(default)]
    publish_details: Option<Rate>,
    #[serde(default)]
    deliver_get_details: Option<Rate>,
    #[serde(default)]
    ack_details: Option<Rate>,
}

#[derive(Debug, Deserialize)]
struct Rate {
    rate: f64,
}

/// A queue's row on the queues page.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct QueueRow {
    /// The full name.
    pub(crate) queue: String,
    /// The job queue it belongs to (itself for a job queue).
    pub(crate) job_queue: String,
    /// `job`, `hold` or `dead`.
    pub(crate) role: &'static str,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) ready: u64,
    pub(crate) unacked: u64,
    pub(crate) consumers: u64,
    /// Messages per second.
    pub(crate) publish_rate: String,
    pub(crate) deliver_rate: String,
    pub(crate) ack_rate: String,
    /// How long the job at the head has waited, e.g. `3m 12s`; `-` when unknown.
    pub(crate) oldest: String,
    /// Jobs waiting in the queue's hold queues (retries and delays).
    pub(crate) held: u64,
    /// Jobs in the queue's dead-letter queue.
    pub(crate) dead: u64,
}

/// A job queue with its hold queues.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct JobQueue {
    #[serde(flatten)]
    pub(crate) row: QueueRow,
    pub(crate) holds: Vec<QueueRow>,
}

fn row(queue: &Queue, job_queue: &str, role: &'static str) -> QueueRow {
    let rate = |rate: Option<&Rate>| rate.map_or_else(|| "0.0".to_owned(), |rate| format!("{:.1}", rate.rate));
    let stats = queue.message_stats.as_ref();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    QueueRow {
        queue: queue.name.clone(),
        job_queue: job_queue.to_owned(),
        role,
        kind: queue.kind.clone().unwrap_or_else(|| "-".to_owned()),
        ready: queue.messages_ready.unwrap_or(0),
        unacked: queue.messages_unacknowledged.unwrap_or(0),
        consumers: queue.consumers.unwrap_or(0),
        publish_rate: rate(stats.and_then(|stats| stats.publish_details.as_ref())),
        deliver_rate: rate(stats.and_then(|stats| stats.deliver_get_details.as_ref())),
        ack_rate: rate(stats.and_then(|stats| stats.ack_details.as_ref())),
        oldest: queue
            .head_message_timestamp
            .filter(|_| queue.messages_ready.unwrap_or(0) > 0)
            .map_or_else(|| "-".to_owned(), |at| age(now.saturating_sub(at))),
        held: 0,
        dead: 0,
    }
}

/// `42s`, `3m 12s`, `5h 2m`, `3d 4h`.
pub(crate) fn age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// The job queue a queue belongs to, and its role there.
fn role(name: &str) -> (&str, &'static str) {
    if let Some(queue) = name.strip_suffix(".dead") {
        return (queue, "dead");
    }
    if let Some((queue, ms)) = name.rsplit_once(".retry.")
        && !ms.is_empty()
        && ms.bytes().all(|byte| byte.is_ascii_digit())
    {
        return (queue, "hold");
    }
    (name, "job")
}

/// Groups queues by job queue, sorted by name; a job queue with only hold
/// or dead-letter queues left still gets a row.
fn group(queues: Vec<Queue>) -> Vec<JobQueue> {
    let mut groups: BTreeMap<String, JobQueue> = BTreeMap::new();
    for queue in &queues {
        let (job_queue, role) = role(&queue.name);
        let group = groups.entry(job_queue.to_owned()).or_insert_with(|| JobQueue {
            row: QueueRow {
                queue: job_queue.to_owned(),
                job_queue: job_queue.to_owned(),
                role: "job",
                kind: "-".to_owned(),
                publish_rate: "-".to_owned(),
                deliver_rate: "-".to_owned(),
                ack_rate: "-".to_owned(),
                oldest: "-".to_owned(),
                ..QueueRow::default()
            },
            holds: Vec::new(),
        });
        match role {
            "dead" => group.row.dead = queue.messages_ready.unwrap_or(0),
            "hold" => {
                group.row.held += queue.messages_ready.unwrap_or(0);
                group.holds.push(row(queue, job_queue, "hold"));
            }
            _ => {
                let (held, dead) = (group.row.held, group.row.dead);
                group.row = QueueRow {
                    held,
                    dead,
                    ..row(queue, job_queue, "job")
                };
            }
        }
    }
    groups.into_values().collect()
}

/// `%2F` → `/`; a malformed escape stays as it is.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str, ready: u64) -> Queue {
        Queue {
            name: name.to_owned(),
            kind: Some("classic".to_owned()),
            messages_ready: Some(ready),
            messages_unacknowledged: Some(1),
            consumers: Some(2),
            head_message_timestamp: None,
            message_stats: None,
        }
    }

    #[test]
    fn hold_and_dead_letter_queues_group_under_their_job_queue() {
        let groups = group(vec![
            queue("emails.dead", 3),
            queue("emails", 5),
            queue("emails.retry.1000", 2),
            queue("emails.retry.60000", 1),
            queue("orphan.retry.500", 4),
            queue("my.retry.queue", 7),
        ]);
        let names: Vec<_> = groups.iter().map(|group| group.row.queue.as_str()).collect();
        assert_eq!(names, ["emails", "my.retry.queue", "orphan"]);
        let emails = &groups[0];
        assert_eq!((emails.row.ready, emails.row.held, emails.row.dead), (5, 3, 3));
        assert_eq!(emails.holds.len(), 2);
        assert_eq!(groups[2].row.held, 4);
        assert_eq!(groups[2].row.consumers, 0);
    }

    #[test]
    fn the_management_api_is_found_beside_the_broker() {
        let management = Management::new("amqp://user:p%40ss@rabbit:5672/prod", None).unwrap();
        assert_eq!((management.host.as_str(), management.port), ("rabbit", 15672));
        assert_eq!(management.vhost, "prod");
        let credentials = base64::engine::general_purpose::STANDARD.encode("user:p@ss");
        assert_eq!(management.authorization, format!("Basic {credentials}"));

        let default = Management::new("amqp://127.0.0.1", None).unwrap();
        assert_eq!(default.vhost, "%2F");
        let credentials = base64::engine::general_purpose::STANDARD.encode("guest:guest");
        assert_eq!(default.authorization, format!("Basic {credentials}"));

        let given = Management::new("amqp://rabbit/%2f", Some("http://admin:x@mgmt:8080")).unwrap();
        assert_eq!((given.host.as_str(), given.port), ("mgmt", 8080));
        assert!(Management::new("amqp://rabbit/%2f", Some("https://mgmt")).is_err());
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(42), "42s");
        assert_eq!(age(192), "3m 12s");
        assert_eq!(age(3 * 3600 + 120), "3h 2m");
        assert_eq!(age(2 * 86_400 + 3600), "2d 1h");
    }
}
