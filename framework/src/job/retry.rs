//! When a failed attempt is tried again: how many retries a job gets and
//! how long each waits (exponential backoff with jitter).

use std::time::Duration;

use crate::JobOptions;

/// The longest wait between two attempts, however many retries a job has.
const MAX_BACKOFF: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest wait between two attempts: a zero backoff must not turn a
/// failing job into a hot loop.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The most retries a job can have, whatever its attribute or its message
/// says: a message claiming billions must not retry for ever.
pub(crate) const MAX_RETRIES: u32 = 1000;

/// A job's retry settings: the attribute's, or an enqueue-time override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// The wait before the first retry.
    pub(crate) backoff: Duration,
}

impl RetryPolicy {
    /// The policy of a job with these options.
    pub(crate) const fn of(options: &JobOptions) -> Self {
        RetryPolicy {
            retries: options.effective_retries(),
            backoff: options.effective_backoff(),
        }
        .bounded()
    }

    /// The policy with retries capped at [`MAX_RETRIES`].
    pub(crate) const fn bounded(mut self) -> Self {
        if self.retries > MAX_RETRIES {
            self.retries = MAX_RETRIES;
        }
        self
    }

    /// Whether the attempt numbered `attempt` (from 1) may be followed by another.
    pub(crate) const fn retries_after(&self, attempt: u32) -> bool {
        attempt <= self.retries
    }

    /// How long to wait after the failed attempt numbered `attempt` (from
    /// 1): `backoff × 2^(attempt−1)`, capped at a day, drawn uniformly from
    /// its upper half. The jitter spreads out jobs that failed together (say,
    /// when a database went away) so they do not all come back at once,
    /// while each wait stays longer than the one before.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        let full = self
            .backoff
            .checked_mul(1 << doublings.min(31))
            .map_or(MAX_BACKOFF, |delay| delay.min(MAX_BACKOFF));
        let half = full / 2;
        let jitter_ms = u64::try_from((full - half).as_millis()).unwrap_or(u64::MAX);
        (half + Duration::from_millis(fastrand::u64(0..=jitter_ms))).max(MIN_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_three_retries_from_ten_seconds() {
        let policy = RetryPolicy::of(&JobOptions::new());
        assert_eq!(policy.retries, 3);
        assert!(policy.retries_after(3));
        assert!(!policy.retries_after(4), "the fourth attempt is the last");
    }

    #[test]
    fn waits_double_within_jitter_and_never_shrink() {
        let policy = RetryPolicy {
            retries: 10,
            backoff: Duration::from_secs(10),
        };
        for _ in 0..1000 {
            let delays: Vec<_> = (1..=4).map(|attempt| policy.delay(attempt)).collect();
            for (attempt, delay) in (1u32..).zip(&delays) {
                let full = Duration::from_secs(10 * (1 << (attempt - 1)));
                assert!(*delay >= full / 2 && *delay <= full, "attempt {attempt}: {delay:?}");
            }
            assert!(delays.windows(2).all(|pair| pair[0] <= pair[1]), "{delays:?}");
        }
    }

    #[test]
    fn zero_backoff_and_absurd_retries_are_bounded() {
        let policy = RetryPolicy {
            retries: u32::MAX,
            backoff: Duration::ZERO,
        }
        .bounded();
        assert_eq!(policy.retries, MAX_RETRIES);
        assert!(!policy.retries_after(u32::MAX));
        assert_eq!(policy.delay(1), MIN_BACKOFF);
    }

    #[test]
    fn waits_are_capped_at_a_day() {
        let policy = RetryPolicy {
            retries: 100,
            backoff: Duration::from_secs(3600),
        };
        assert!(policy.delay(100) <= MAX_BACKOFF);
        assert!(policy.delay(100) >= MAX_BACKOFF / 2);
    }
}
