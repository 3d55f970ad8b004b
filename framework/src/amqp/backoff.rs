//! Capped exponential backoff with full jitter, for every wait-and-try-again
//! loop: a fleet of workers that failed together must not retry together.

use std::time::Duration;

/// The waits of one retry loop: each draw is uniform in `[0, ceiling]`
/// (full jitter), and the ceiling doubles from `first` up to `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    ceiling: Duration,
    max: Duration,
}

impl Backoff {
    /// Waits starting from `first`, never longer than `max`.
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            ceiling: first.min(max),
            max,
        }
    }

    /// The next wait.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(self.max);
        ceiling.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_jittered_below_a_doubling_capped_ceiling() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let ceilings = [1, 2, 4, 5, 5, 5];
        for ceiling in ceilings {
            let wait = backoff.next_wait();
            assert!(wait <= Duration::from_secs(ceiling), "{wait:?} over {ceiling}s");
        }
        let spread: std::collections::BTreeSet<_> = (0..20).map(|_| backoff.next_wait()).collect();
        assert!(spread.len() > 10, "full jitter spreads the waits: {spread:?}");
    }
}
