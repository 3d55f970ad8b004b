//! Why a job failed for good.

use std::fmt;

/// Why a job ended in its queue's dead-letter queue, as the
/// `warren-dead-reason` header, `dead list` and
/// [`testing::DeadLetter`](crate::testing::DeadLetter) say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadReason {
    /// The handler returned an error, and the job had no retries left.
    Failed,
    /// The handler ran past its timeout, and the job had no retries left.
    Timeout,
    /// The handler panicked, and the job had no retries left.
    Panic,
    /// The message cannot be this job: its body did not decode, or its
    /// properties are malformed (see the guide's poison messages).
    Undecodable,
    /// No job with the message's `type` is registered (or the message has no
    /// `type` and the queue has no default job).
    UnknownJob,
    /// The handler said retrying cannot help ([`JobError::reject`](crate::JobError::reject)).
    Rejected,
    /// A quorum queue's delivery limit: the message came back unacknowledged
    /// too often (a job that kills its worker).
    DeliveryLimit,
}

impl DeadReason {
    /// The reason as the `warren-dead-reason` header carries it (`failed`,
    /// `unknown_job`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            DeadReason::Failed => "failed",
            DeadReason::Timeout => "timeout",
            DeadReason::Panic => "panic",
            DeadReason::Undecodable => "undecodable",
            DeadReason::UnknownJob => "unknown_job",
            DeadReason::Rejected => "rejected",
            DeadReason::DeliveryLimit => "delivery_limit",
        }
    }
}

impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
