//! Watermarks: the source's own `updated_at` values, compared as timestamps when they
//! are timestamps (RFC 3339, any offset) and as numbers or text otherwise.

use std::cmp::Ordering;
use std::time::Duration;

use jiff::Timestamp;

/// An `updated_at` value, parsed for comparing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Parsed {
    Time(Timestamp),
    Number(f64),
    Text,
}

fn parse(text: &str) -> Parsed {
    if let Ok(at) = text.parse::<Timestamp>() {
        Parsed::Time(at)
    } else if let Ok(n) = text.parse::<f64>() {
        Parsed::Number(n)
    } else {
        Parsed::Text
    }
}

fn order(a: (Parsed, &str), b: (Parsed, &str)) -> Ordering {
    match (a.0, b.0) {
        (Parsed::Time(x), Parsed::Time(y)) => x.cmp(&y),
        (Parsed::Number(x), Parsed::Number(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.1.cmp(b.1),
    }
}

/// Orders two `updated_at` values.
pub fn compare(a: &str, b: &str) -> Ordering {
    order((parse(a), a), (parse(b), b))
}

/// The latest of the `updated_at` values offered, each parsed once.
#[derive(Debug, Clone, Default)]
pub struct Latest {
    latest: Option<(Parsed, String)>,
}

impl Latest {
    /// Starting from a value kept from before (a checkpoint), if any.
    pub fn from(value: Option<String>) -> Latest {
        Latest {
            latest: value.map(|text| (parse(&text), text)),
        }
    }

    pub fn offer(&mut self, candidate: &str) {
        let parsed = parse(candidate);
        let newer = match &self.latest {
            Some((at, text)) => order((parsed, candidate), (*at, text)).is_gt(),
            None => true,
        };
        if newer {
            self.latest = Some((parsed, candidate.to_string()));
        }
    }

    pub fn value(&self) -> Option<&str> {
        self.latest.as_ref().map(|(_, text)| text.as_str())
    }
}

/// The value sent as `{{ watermark }}`: the watermark moved back by `overlap` when it
/// is a timestamp (clock skew between the source's servers, records sharing a
/// timestamp), unchanged otherwise.
pub fn with_overlap(watermark: &str, overlap: Duration) -> String {
    match watermark.parse::<Timestamp>() {
        Ok(at) if !overlap.is_zero() => {
            let span =
                jiff::SignedDuration::try_from(overlap).unwrap_or(jiff::SignedDuration::ZERO);
            at.checked_sub(span).unwrap_or(at).to_string()
        }
        _ => watermark.to_string(),
    }
}

/// The text of an `updated_at` value found in a record.
pub fn text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_compare_as_instants_whatever_their_offset() {
        assert_eq!(
            compare("2026-01-01T10:00:00Z", "2026-01-01T11:00:00+02:00"),
            Ordering::Greater
        );
        assert_eq!(
            compare("2026-01-01T10:00:00.5Z", "2026-01-01T10:00:00.25Z"),
            Ordering::Greater
        );
        assert_eq!(compare("10", "9"), Ordering::Greater);
        assert_eq!(compare("b", "a"), Ordering::Greater);
    }

    #[test]
    fn the_overlap_moves_a_timestamp_back() {
        assert_eq!(
            with_overlap("2026-01-01T10:00:00Z", Duration::from_secs(2)),
            "2026-01-01T09:59:58Z"
        );
        assert_eq!(
            with_overlap("cursor-17", Duration::from_secs(2)),
            "cursor-17"
        );
    }

    #[test]
    fn latest_keeps_the_maximum() {
        let mut latest = Latest::from(None);
        latest.offer("2026-01-01T10:00:00Z");
        latest.offer("2026-01-01T09:00:00Z");
        latest.offer("2026-01-01T11:30:00+02:00");
        assert_eq!(latest.value(), Some("2026-01-01T10:00:00Z"));
        let mut numbers = Latest::from(Some("9".into()));
        numbers.offer("10");
        assert_eq!(numbers.value(), Some("10"));
    }
}
