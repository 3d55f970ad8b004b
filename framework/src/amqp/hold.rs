//! Hold queues: where a job waits out a delay or a retry's backoff, on the
//! broker, never in a worker's memory or as an unacked delivery.
//!
//! A hold queue `<queue>.retry.<ms>` has a message TTL of `<ms>` and
//! dead-letters expired messages back to `<queue>`. All its messages share
//! one TTL, so they expire in the order they came: a one-hour delay never
//! holds back a one-second one, which waits in a queue of its own. Idle hold
//! queues delete themselves (`x-expires`).
//!
//! To keep the number of hold queues small, a wait up to ten minutes is held
//! in one queue, rounded up to 100 ms (under ten seconds) or to the second;
//! a longer wait is held in steps of 10 min × 2ⁿ, the job coming back early
//! and being held again for what remains (its due time travels in the
//! `warren-eta` header): five hops for thirty days, never more than 13.
//!
//! A hold queue has the kind of its job queue. A classic job queue's hold
//! queues are classic `<queue>.retry.<ms>`: they live on the node they were
//! declared on, and while it is down the jobs held there wait (durable and
//! persistent, not lost) and a retry that cannot reach it returns its
//! delivery to the job queue. A quorum job queue's hold queues are quorum
//! queues `<queue>.hold.<ms>` (RabbitMQ 3.10 or later: quorum queues take
//! `x-message-ttl` from 3.10), replicated like the job queue, so a held job
//! survives the loss of any one node and is not delayed by it. They
//! dead-letter `at-least-once` (with `x-overflow = reject-publish`, which
//! that strategy needs): the broker keeps an expired message until the job
//! queue has confirmed it, where classic dead-lettering is at most once.
//! Their own name, not `.retry.`: a classic hold queue of that name, from
//! a warren that held quorum jobs in classic queues, cannot be declared
//! again as quorum, and expires on its own once it has emptied.

use std::time::{Duration, SystemTime};

use lapin::types::{AMQPValue, FieldTable, LongString};

use crate::QueueType;

/// The longest delay a job can be enqueued with.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How far past [`MAX_DELAY`] a due time may be (clocks of producers and
/// workers differ) before a worker refuses it as nonsense.
#[cfg(feature = "worker")]
pub(crate) const CLOCK_SLACK: Duration = Duration::from_secs(24 * 60 * 60);

/// A job due within this much is run rather than held again, so that clock
/// jitter does not send it round once more.
#[cfg(feature = "worker")]
pub(crate) const EARLY_TOLERANCE: Duration = Duration::from_millis(250);

/// A hold queue is re-declared by a publisher whose last declaration is
/// older than this, which restarts its idle expiry ([`IDLE_EXPIRY`]).
pub(crate) const REDECLARE_AFTER: Duration = Duration::from_secs(10 * 60);

/// How long a hold queue outlives its TTL once nobody declares it any more:
/// well past [`REDECLARE_AFTER`], so a queue still in use never expires with
/// jobs in it.
const IDLE_EXPIRY: Duration = Duration::from_secs(60 * 60);

/// Waits up to this long are held in one queue.
const ONE_HOP: Duration = Duration::from_secs(10 * 60);

/// The longest single hold, 10 min × 2¹¹ (about 14 days): TTL and expiry
/// stay well inside the 32-bit milliseconds RabbitMQ accepts.
pub(crate) const LONGEST_HOLD: Duration = Duration::from_secs(10 * 60 * (1 << 11));

/// How long a job due in `remaining` is held in one hold queue.
pub(crate) fn hold_time(remaining: Duration) -> Duration {
    let millis = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
    if remaining <= Duration::from_secs(10) {
        Duration::from_millis(millis.div_ceil(100).max(1) * 100)
    } else if remaining <= ONE_HOP {
        Duration::from_secs(millis.div_ceil(1000))
    } else {
        let mut step = ONE_HOP;
        while step * 2 <= remaining && step < LONGEST_HOLD {
            step *= 2;
        }
        step
    }
}

/// How long until `eta`; zero once it has passed.
pub(crate) fn due_in(eta: SystemTime) -> Duration {
    eta.duration_since(SystemTime::now()).unwrap_or_default()
}

/// The name of the hold queue of `queue` (a full name, of kind
/// `queue_type`) for `hold`. The classic name is the longer.
pub(crate) fn queue_name(queue: &str, queue_type: QueueType, hold: Duration) -> String {
    let kind = match queue_type {
        QueueType::Classic => "retry",
        QueueType::Quorum => "hold",
    };
    format!("{queue}.{kind}.{}", hold.as_millis())
}

/// The arguments of that hold queue: TTL, dead-letter back to `queue`, and
/// expiry when idle; for quorum also its kind and at-least-once
/// dead-lettering.
pub(crate) fn arguments(queue: &str, queue_type: QueueType, hold: Duration) -> FieldTable {
    let text = |text: &str| AMQPValue::LongString(LongString::from(text));
    let millis = |duration: Duration| AMQPValue::LongLongInt(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX));
    let mut arguments = FieldTable::default();
    arguments.insert("x-message-ttl".into(), millis(hold));
    arguments.insert("x-dead-letter-exchange".into(), text(""));
    arguments.insert("x-dead-letter-routing-key".into(), text(queue));
    arguments.insert("x-expires".into(), millis(hold + IDLE_EXPIRY));
    if queue_type == QueueType::Quorum {
        arguments.insert("x-queue-type".into(), text(QueueType::Quorum.as_str()));
        arguments.insert("x-dead-letter-strategy".into(), text("at-least-once"));
        arguments.insert("x-overflow".into(), text("reject-publish"));
    }
    arguments
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn short_waits_are_held_once_rounded_up() {
        assert_eq!(hold_time(Duration::from_millis(1)), Duration::from_millis(100));
        assert_eq!(hold_time(3 * SECOND), 3 * SECOND);
        assert_eq!(hold_time(Duration::from_millis(2_950)), 3 * SECOND);
        assert_eq!(hold_time(Duration::from_millis(10_001)), 11 * SECOND);
        assert_eq!(hold_time(Duration::from_millis(59_001)), 60 * SECOND);
        assert_eq!(hold_time(10 * MINUTE), 10 * MINUTE);
    }

    #[test]
    fn long_waits_are_held_in_hops_that_never_overshoot() {
        for remaining in [11 * MINUTE, 90 * MINUTE, 26 * 60 * MINUTE, MAX_DELAY] {
            let mut left = remaining;
            let mut hops = 0;
            while !left.is_zero() {
                let hold = hold_time(left);
                assert!(
                    hold <= left || left <= ONE_HOP,
                    "{remaining:?}: held {hold:?} of {left:?}"
                );
                left = left.saturating_sub(hold);
                hops += 1;
            }
            assert!(hops <= 16, "{remaining:?} took {hops} hops");
        }
        assert_eq!(hold_time(MAX_DELAY), LONGEST_HOLD);
    }

    #[test]
    fn hold_queues_expire_only_well_after_their_ttl() {
        let arguments = arguments("q", QueueType::Classic, LONGEST_HOLD);
        let get = |name: &str| match arguments.inner().get(name) {
            Some(AMQPValue::LongLongInt(n)) => *n,
            other => panic!("{name}: {other:?}"),
        };
        assert!(get("x-expires") > get("x-message-ttl") + i64::try_from(REDECLARE_AFTER.as_millis()).unwrap());
        assert!(get("x-expires") < i64::from(i32::MAX), "RabbitMQ takes 32-bit expiries");
        assert_eq!(queue_name("q", QueueType::Classic, 3 * SECOND), "q.retry.3000");
    }

    #[test]
    fn a_quorum_job_queue_holds_in_quorum_queues_that_dead_letter_at_least_once() {
        let name = queue_name("q", QueueType::Quorum, 3 * SECOND);
        assert_eq!(name, "q.hold.3000", "not the name of an existing classic hold queue");
        assert!(name.len() < queue_name("q", QueueType::Classic, 3 * SECOND).len());
        let quorum = arguments("q", QueueType::Quorum, 3 * SECOND);
        let get = |name: &str| quorum.inner().get(name).cloned();
        let text = |text: &str| Some(AMQPValue::LongString(LongString::from(text)));
        assert_eq!(get("x-queue-type"), text("quorum"));
        assert_eq!(get("x-dead-letter-strategy"), text("at-least-once"));
        assert_eq!(get("x-overflow"), text("reject-publish"));
        assert_eq!(get("x-dead-letter-routing-key"), text("q"));
        assert_eq!(get("x-message-ttl"), Some(AMQPValue::LongLongInt(3000)));
        let classic = arguments("q", QueueType::Classic, 3 * SECOND);
        assert_eq!(classic.inner().get("x-queue-type"), None);
        assert_eq!(classic.inner().get("x-dead-letter-strategy"), None);
    }
}
