//! Durations as people write them: `40days`, `1h 30m`, `250ms`.
//!
//! humantime's formatter counts in months of 30.44 days and years, so a
//! 40-day delay read back as `1month 9days 13h 26m 24s`: not what anyone
//! typed, and not something humantime's own parser gives back the same
//! for. Here the largest unit is the day, and every unit is one that
//! `humantime::parse_duration` reads.

use std::fmt;
use std::time::Duration;

/// Displays a duration in days, hours, minutes, seconds and milliseconds,
/// largest first, leaving out the units that are zero (`0s` for zero).
/// What is below a millisecond is left out unless it is all there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written(pub(crate) Duration);

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duration = self.0;
        if duration.is_zero() {
            return f.write_str("0s");
        }
        if duration < Duration::from_millis(1) {
            return write!(f, "{}us", duration.as_micros());
        }
        let seconds = duration.as_secs();
        let parts = [
            (seconds / 86_400, if seconds / 86_400 == 1 { "day" } else { "days" }),
            (seconds / 3_600 % 24, "h"),
            (seconds / 60 % 60, "m"),
            (seconds % 60, "s"),
            (u64::from(duration.subsec_millis()), "ms"),
        ];
        let mut first = true;
        for (value, unit) in parts {
            if value == 0 {
                continue;
            }
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{value}{unit}")?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(duration: Duration) -> String {
        Written(duration).to_string()
    }

    #[test]
    fn durations_read_as_they_were_written() {
        assert_eq!(written(Duration::from_secs(40 * 86_400)), "40days");
        assert_eq!(written(Duration::from_secs(86_400 + 7_200)), "1day 2h");
        assert_eq!(written(Duration::from_secs(5_400)), "1h 30m");
        assert_eq!(written(Duration::from_secs(30)), "30s");
        assert_eq!(written(Duration::from_millis(1_250)), "1s 250ms");
        assert_eq!(written(Duration::from_micros(20)), "20us");
        assert_eq!(written(Duration::ZERO), "0s");
    }

    #[test]
    fn what_is_written_parses_back_to_the_same_duration() {
        for seconds in [
            1,
            59,
            61,
            3_599,
            3_601,
            86_399,
            86_401,
            30 * 86_400,
            40 * 86_400,
            400 * 86_400,
        ] {
            let duration = Duration::from_secs(seconds) + Duration::from_millis(seconds % 1_000);
            let text = written(duration);
            assert_eq!(humantime::parse_duration(&text), Ok(duration), "{text}");
        }
    }
}
