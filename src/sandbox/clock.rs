//! Timestamps as the apps show them: RFC 3339 UTC with milliseconds, kept internally as
//! milliseconds since the Unix epoch so that comparisons and sorting are integer work.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// The wall clock, in milliseconds.
pub fn now_ms() -> Millis {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// "2026-12-04T10:00:00.123Z".
pub fn format_ms(ms: Millis) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Parses an RFC 3339 timestamp into nanoseconds since the epoch (nanoseconds, so that a
/// client's sub-millisecond watermark compares exactly). Accepts `Z` or a numeric
/// offset such as `+02:00`.
pub fn parse_rfc3339_ns(text: &str) -> Option<i128> {
    let (local, offset_secs) = split_offset(text)?;
    let utc = humantime::parse_rfc3339(&format!("{local}Z")).ok()?;
    let ns = i128::try_from(utc.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()?;
    Some(ns - i128::from(offset_secs) * 1_000_000_000)
}

/// Splits "…T10:00:00.5+02:00" into ("…T10:00:00.5", 7200); "…Z" has offset 0.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    if let Some(local) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return Some((local, 0));
    }
    // A numeric offset is the last six characters: sign, HH, ':', MM.
    let split = text.len().checked_sub(6)?;
    let (local, offset) = (text.get(..split)?, text.get(split..)?);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours: i64 = offset.get(1..3)?.parse().ok()?;
    let minutes: i64 = offset.get(4..6)?.parse().ok()?;
    if offset.as_bytes().get(3) != Some(&b':') || hours > 23 || minutes > 59 {
        return None;
    }
    Some((local, sign * (hours * 3600 + minutes * 60)))
}

/// Hands out write timestamps that are strictly increasing per app, even when two
/// writes land in the same millisecond or the wall clock steps back: clients that keep
/// a watermark rely on it.
#[derive(Debug, Default)]
pub struct WriteClock {
    last: Millis,
    /// How far this app's clock is off the wall clock (ms; negative: behind), to play
    /// two systems whose clocks disagree.
    offset_ms: i64,
}

impl WriteClock {
    pub fn next(&mut self) -> Millis {
        let now = now_ms().saturating_add_signed(self.offset_ms);
        self.last = now.max(self.last + 1);
        self.last
    }

    /// From now on, stamps run `offset_ms` off the wall clock (still increasing).
    pub fn set_offset(&mut self, offset_ms: i64) {
        self.offset_ms = offset_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds() {
        assert_eq!(format_ms(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let z = parse_rfc3339_ns("2026-11-18T11:06:40.123Z");
        assert_eq!(z, Some(1_795_000_000_123_000_000));
        assert_eq!(parse_rfc3339_ns("2026-11-18T13:06:40.123+02:00"), z);
        assert_eq!(parse_rfc3339_ns("2026-11-18T10:36:40.123-00:30"), z);
        assert_eq!(parse_rfc3339_ns("2026-11-18T11:06:40.123+00:00"), z);
        assert_eq!(parse_rfc3339_ns("2026-11-18 08:53:20"), None);
        assert_eq!(parse_rfc3339_ns("yesterday"), None);
    }

    #[test]
    fn write_clock_is_strictly_increasing() {
        let mut clock = WriteClock::default();
        let a = clock.next();
        let b = clock.next();
        assert!(b > a);
    }

    #[test]
    fn an_offset_clock_runs_ahead_or_behind() {
        let mut ahead = WriteClock::default();
        ahead.set_offset(60_000);
        assert!(ahead.next() >= now_ms() + 59_000);
        let mut behind = WriteClock::default();
        behind.set_offset(-60_000);
        assert!(behind.next() <= now_ms() - 59_000);
    }
}
