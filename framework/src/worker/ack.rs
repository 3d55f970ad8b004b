//! When a worker acknowledges a delivery, and what that guarantees.

use std::fmt;
use std::str::FromStr;

/// When a worker acknowledges a delivery to RabbitMQ.
///
/// | mode | acked | guarantee | prefetch |
/// | --- | --- | --- | --- |
/// | `none` | by the broker as it sends | at most once | no effect |
/// | `early` | on receipt, before the handler | at most once | limits unstarted jobs |
/// | `late` | after the outcome is settled | at least once | limits running jobs |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[non_exhaustive]
pub enum AckMode {
    /// The broker forgets a message as soon as it sends it (AMQP `no-ack`,
    /// the tutorial's `noAck: true`). A worker that dies loses every message
    /// pushed to it, and prefetch limits nothing.
    None,
    /// The worker acks on receipt, before running the job: a crash mid-job
    /// loses that job, but unstarted prefetched jobs go back to the queue.
    Early,
    /// The worker acks once the job succeeded or its failure is safely
    /// recorded in the dead-letter queue: a crash mid-job means the job runs
    /// again elsewhere. Handlers should be idempotent.
    #[default]
    Late,
}

impl AckMode {
    /// The name used on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            AckMode::None => "none",
            AckMode::Early => "early",
            AckMode::Late => "late",
        }
    }

    /// Whether the consumer must acknowledge deliveries (AMQP `no-ack` off).
    pub const fn ack_required(self) -> bool {
        !matches!(self, AckMode::None)
    }
}

impl fmt::Display for AckMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AckMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(AckMode::None),
            "early" => Ok(AckMode::Early),
            "late" => Ok(AckMode::Late),
            other => Err(format!("unknown ack mode `{other}`: expected none, early or late")),
        }
    }
}
