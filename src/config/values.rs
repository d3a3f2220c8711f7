//! Typed scalar values of the pipeline language: templates, JSONPath expressions,
//! durations, percentages and schedules.
//!
//! Each is written as a string in YAML. Durations and percentages carry a pattern in
//! the JSON schema, so a file that passes the schema always deserializes; templates,
//! paths and schedules are kept as text here and compiled by the semantic checks
//! (`config::semantic`), which report every bad one with its position instead of
//! stopping at the first.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The units `humantime` understands that make sense for a pipeline (no months or
/// years: their length is not fixed).
const DURATION_UNITS: &str =
    "nsec|ns|usec|us|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|w";

/// Pattern a duration string must match; kept in the schema so editors and the
/// schema check flag a bad duration before deserialization sees it.
pub fn duration_pattern() -> String {
    format!(r"^\s*([0-9]+\s*({DURATION_UNITS})\s*)+$")
}

/// Pattern of a percentage such as `1%` or `0.5%`.
pub const PERCENT_PATTERN: &str = r"^\s*[0-9]+(\.[0-9]+)?\s*%\s*$";

/// A minijinja template, e.g. `"{{ env.CRM_URL }}/v1"`. In YAML a number or boolean
/// is accepted too (`limit: 100`) and kept as its text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Template(pub String);

impl Template {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Text(String),
            Integer(i64),
            Float(f64),
            Bool(bool),
        }
        Ok(Template(match Scalar::deserialize(deserializer)? {
            Scalar::Text(text) => text,
            Scalar::Integer(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }))
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl JsonSchema for Template {
    fn schema_name() -> Cow<'static, str> {
        "Template".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A minijinja template, e.g. \"{{ env.CRM_URL }}\". Numbers and booleans are taken as their text.",
            "type": ["string", "number", "boolean"]
        })
    }
}

/// A JSONPath expression (RFC 9535), e.g. `$.data[*]`.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(transparent)]
pub struct JsonPath(pub String);

impl JsonPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl JsonSchema for JsonPath {
    fn schema_name() -> Cow<'static, str> {
        "JsonPath".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A JSONPath expression (RFC 9535) starting at `$`, e.g. \"$.data[*]\" or \"$.id\".",
            "type": "string",
            "pattern": "^\\$"
        })
    }
}

/// A span of time written for people: `250ms`, `30s`, `15m`, `1h 30m`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_millis(ms: u64) -> Self {
        HumanDuration(Duration::from_millis(ms))
    }

    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration: {e}")))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration such as 250ms, 30s, 15m, 1h or 1h 30m.",
            "type": "string",
            "pattern": duration_pattern()
        })
    }
}

/// A percentage written as `1%` or `0.5%`, held as a fraction (`0.01`).
#[derive(Clone, Copy, PartialEq, PartialOrd)]
pub struct Percent(f64);

impl Percent {
    pub const fn from_fraction(fraction: f64) -> Self {
        Percent(fraction)
    }

    /// The share as a fraction of one: `1%` is `0.01`.
    pub fn fraction(self) -> f64 {
        self.0
    }
}

impl fmt::Debug for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0 * 100.0)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let number = text.trim().trim_end_matches('%').trim();
        match number.parse::<f64>() {
            Ok(n) if text.trim().ends_with('%') && n.is_finite() && n >= 0.0 => {
                Ok(Percent(n / 100.0))
            }
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not a percentage such as 1% or 0.5%"
            ))),
        }
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl JsonSchema for Percent {
    fn schema_name() -> Cow<'static, str> {
        "Percent".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A percentage such as 1% or 0.5%.",
            "type": "string",
            "pattern": PERCENT_PATTERN
        })
    }
}

/// When something runs: `every 15m` (an interval) or a cron expression such as
/// `0 2 * * *` (minute hour day-of-month month day-of-week).
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ScheduleSpec(pub String);

/// A parsed [`ScheduleSpec`].
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

impl ScheduleSpec {
    /// Parses the spec; the error says what was expected.
    pub fn parse(&self) -> Result<Schedule, String> {
        let text = self.0.trim();
        if let Some(interval) = text.strip_prefix("every ") {
            return match humantime::parse_duration(interval.trim()) {
                Ok(d) if d.is_zero() => Err("the interval of `every` must be longer than 0".into()),
                Ok(d) => Ok(Schedule::Every(d)),
                Err(_) => Err(format!(
                    "`{text}` is not a schedule: `{}` is not a duration such as 15m or 1h",
                    interval.trim()
                )),
            };
        }
        text.parse::<croner::Cron>()
            .map(|cron| Schedule::Cron(Box::new(cron)))
            .map_err(|e| {
                format!("`{text}` is not a schedule: write `every <duration>` or a cron expression ({e})")
            })
    }
}

impl fmt::Debug for ScheduleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl JsonSchema for ScheduleSpec {
    fn schema_name() -> Cow<'static, str> {
        "Schedule".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "`every <duration>` (e.g. \"every 15m\") or a cron expression (e.g. \"0 2 * * *\").",
            "type": "string"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_from_human_text() {
        let d: HumanDuration = serde_json::from_value(serde_json::json!("250ms")).unwrap();
        assert_eq!(d.get(), Duration::from_millis(250));
        let d: HumanDuration = serde_json::from_value(serde_json::json!("1h 30m")).unwrap();
        assert_eq!(d.get(), Duration::from_secs(5400));
    }

    #[test]
    fn duration_pattern_accepts_what_humantime_parses() {
        let pattern = regex_lite_match(&duration_pattern());
        for ok in ["250ms", "30s", "15m", "1h 30m", "2 days", "5m"] {
            assert!(pattern(ok), "{ok} should match");
            assert!(humantime::parse_duration(ok).is_ok(), "{ok} should parse");
        }
        for bad in ["fast", "15", "m15", "1 parsec"] {
            assert!(!pattern(bad), "{bad} should not match");
        }
    }

    /// Checks the schema pattern through the schema validator itself, the same engine
    /// that enforces it on pipelines.
    fn regex_lite_match(pattern: &str) -> impl Fn(&str) -> bool {
        let validator =
            jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": pattern}))
                .unwrap();
        move |text| validator.is_valid(&serde_json::json!(text))
    }

    #[test]
    fn percentages_become_fractions() {
        let p: Percent = serde_json::from_value(serde_json::json!("1%")).unwrap();
        assert!((p.fraction() - 0.01).abs() < 1e-12);
        let p: Percent = serde_json::from_value(serde_json::json!("0.5%")).unwrap();
        assert!((p.fraction() - 0.005).abs() < 1e-12);
        assert!(serde_json::from_value::<Percent>(serde_json::json!("5")).is_err());
        assert!(regex_lite_match(PERCENT_PATTERN)("12.5%"));
        assert!(!regex_lite_match(PERCENT_PATTERN)("12.5"));
    }

    #[test]
    fn schedules_are_intervals_or_cron() {
        assert!(matches!(
            ScheduleSpec("every 15m".into()).parse(),
            Ok(Schedule::Every(d)) if d == Duration::from_secs(900)
        ));
        assert!(matches!(
            ScheduleSpec("0 2 * * *".into()).parse(),
            Ok(Schedule::Cron(_))
        ));
        assert!(ScheduleSpec("every fortnight".into()).parse().is_err());
        assert!(ScheduleSpec("sometimes".into()).parse().is_err());
        assert!(ScheduleSpec("every 0s".into()).parse().is_err());
    }

    #[test]
    fn templates_accept_scalars_as_text() {
        let t: Template = serde_json::from_value(serde_json::json!(100)).unwrap();
        assert_eq!(t.as_str(), "100");
        let t: Template = serde_json::from_value(serde_json::json!(true)).unwrap();
        assert_eq!(t.as_str(), "true");
    }
}
