//! Watermarks: the source's own `updated_at` values, compared as timestamps when they
//! are timestamps (RFC 3339, any offset) and as numbers or text otherwise.

use std::cmp::Ordering;
use std::time::Duration;

use jiff::Timestamp;

/// Orders two `updated_at` values.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (a.parse::<Timestamp>(), b.parse::<Timestamp>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(a), Ok(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            _ => a.cmp(b),
        },
    }
}

/// The later of two values.
pub fn later(a: Option<String>, b: &str) -> Option<String> {
    match a {
        Some(a) if compare(&a, b) != Ordering::Less => Some(a),
        _ => Some(b.to_string()),
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
    fn later_keeps_the_maximum() {
        let max = later(None, "2026-01-01T10:00:00Z");
        let max = later(max, "2026-01-01T09:00:00Z");
        assert_eq!(max.as_deref(), Some("2026-01-01T10:00:00Z"));
    }
}
