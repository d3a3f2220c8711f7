//! The three-way merge of one pair of records, field by field, against the base: the
//! value each side had when the runner last synced it.
//!
//! A side changed a field when its value differs from its base. Then:
//! - both sides agree → nothing to write (however they got there);
//! - one side changed → copied to the other side, unless the other side owns the
//!   field: then the change is reverted from the owner (a "rejected change");
//! - both changed to different values → a conflict: the owner wins, or with
//!   `last_write_wins` the side whose record is newer by more than the clock skew;
//!   closer than that is a tie, which side `a` wins (a fixed rule, so every run and
//!   every runner decide alike);
//! - neither changed but they differ (a write of an earlier run still in the outbox,
//!   or a side not read this run) → nothing now: the outbox or the next change settles
//!   it.
//!
//! Pure: no I/O, so every rule is tested on its own.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::stream::{ConflictRule, Side};
use crate::store::Clash;
use crate::sync::watermark;

/// The rule of one shared field.
#[derive(Debug, Clone)]
pub struct FieldRule {
    pub name: String,
    pub owner: Option<Side>,
    pub conflict: Option<ConflictRule>,
}

/// One side's record as this run read it.
#[derive(Debug, Clone, Default)]
pub struct SideValues {
    /// Field name → value (missing fields are null).
    pub values: Map<String, Value>,
    /// The record's `updated_at`, for last-write-wins.
    pub updated_at: Option<String>,
}

/// Why a value was written to a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The other side changed it.
    Changed,
    /// This side changed a field the other side owns: put back.
    Rejected,
    /// Both changed it: settled by the field's rule.
    Conflict,
    /// The record is new on the other side (first sync of the pair).
    New,
}

/// A value to write to a side.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub field: String,
    pub value: Value,
    pub reason: Reason,
    /// The rule that decided it, for people: "owner a", "last_write_wins (b newer)".
    pub rule: String,
}

/// What the merge of one pair decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged {
    pub to_a: Vec<Write>,
    pub to_b: Vec<Write>,
    pub clashes: Vec<Clash>,
    /// Each side's field values once the writes are done (its next base).
    pub after_a: Map<String, Value>,
    pub after_b: Map<String, Value>,
}

impl Merged {
    pub fn writes(&self) -> bool {
        !self.to_a.is_empty() || !self.to_b.is_empty()
    }
}

/// Merges a pair. `a` / `b` are the sides read this run (`None`: not read — its values
/// are its base); `base_a` / `base_b` the values last synced to each side (empty on
/// first contact).
pub fn merge(
    rules: &[FieldRule],
    a: Option<&SideValues>,
    b: Option<&SideValues>,
    base_a: &Map<String, Value>,
    base_b: &Map<String, Value>,
    clock_skew: Duration,
) -> Merged {
    let mut merged = Merged::default();
    let first_contact = base_a.is_empty() && base_b.is_empty();
    for rule in rules {
        let field = rule.name.as_str();
        let was_a = base_a.get(field).cloned().unwrap_or(Value::Null);
        let was_b = base_b.get(field).cloned().unwrap_or(Value::Null);
        let now_a = a.map_or_else(|| was_a.clone(), |s| value(s, field));
        let now_b = b.map_or_else(|| was_b.clone(), |s| value(s, field));
        let changed_a = a.is_some() && (now_a != was_a || first_contact);
        let changed_b = b.is_some() && (now_b != was_b || first_contact);
        let (mut final_a, mut final_b) = (now_a.clone(), now_b.clone());
        if now_a != now_b {
            match (changed_a, changed_b) {
                (true, false) => decide_one(
                    rule,
                    Side::A,
                    &now_a,
                    &now_b,
                    &was_a,
                    &was_b,
                    &mut merged,
                    &mut final_a,
                    &mut final_b,
                ),
                (false, true) => decide_one(
                    rule,
                    Side::B,
                    &now_b,
                    &now_a,
                    &was_a,
                    &was_b,
                    &mut merged,
                    &mut final_a,
                    &mut final_b,
                ),
                (true, true) => {
                    let (winner, rule_text) = if first_contact {
                        first_values(rule, &now_a, &now_b)
                    } else {
                        None
                    }
                    .unwrap_or_else(|| settle(rule, a, b, clock_skew));
                    let value = if winner == Side::A {
                        now_a.clone()
                    } else {
                        now_b.clone()
                    };
                    let reason = if first_contact && (now_a.is_null() || now_b.is_null()) {
                        Reason::New
                    } else {
                        Reason::Conflict
                    };
                    if reason == Reason::Conflict {
                        merged.clashes.push(Clash {
                            field: field.to_string(),
                            a: now_a.clone(),
                            b: now_b.clone(),
                            base_a: was_a.clone(),
                            base_b: was_b.clone(),
                            winner,
                            rule: rule_text.clone(),
                            rejected: false,
                            a_updated_at: a.and_then(|s| s.updated_at.clone()),
                            b_updated_at: b.and_then(|s| s.updated_at.clone()),
                        });
                    }
                    push(
                        &mut merged,
                        winner.other(),
                        field,
                        value.clone(),
                        reason,
                        rule_text,
                    );
                    final_a = value.clone();
                    final_b = value;
                }
                // Neither changed, yet they differ: an earlier write is still pending
                // or a side was not read. Nothing to decide now.
                (false, false) => {}
            }
        }
        merged.after_a.insert(field.to_string(), final_a);
        merged.after_b.insert(field.to_string(), final_b);
    }
    merged
}

/// One side changed a field the other did not: copy it over, or — when the other
/// side owns the field — put the owner's value back.
#[allow(clippy::too_many_arguments)]
fn decide_one(
    rule: &FieldRule,
    changed: Side,
    new: &Value,
    other: &Value,
    was_a: &Value,
    was_b: &Value,
    merged: &mut Merged,
    final_a: &mut Value,
    final_b: &mut Value,
) {
    let field = rule.name.as_str();
    let owner_is_other = rule.owner == Some(changed.other());
    if owner_is_other {
        let (a, b) = if changed == Side::A {
            (new, other)
        } else {
            (other, new)
        };
        merged.clashes.push(Clash {
            field: field.to_string(),
            a: a.clone(),
            b: b.clone(),
            base_a: was_a.clone(),
            base_b: was_b.clone(),
            winner: changed.other(),
            rule: format!("owner {}", side_name(changed.other())),
            rejected: true,
            a_updated_at: None,
            b_updated_at: None,
        });
        push(
            merged,
            changed,
            field,
            other.clone(),
            Reason::Rejected,
            format!("owner {}", side_name(changed.other())),
        );
        set(changed, other.clone(), final_a, final_b);
    } else {
        let rule_text = match rule.owner {
            Some(owner) => format!("owner {}", side_name(owner)),
            None => format!("changed on {}", side_name(changed)),
        };
        push(
            merged,
            changed.other(),
            field,
            new.clone(),
            Reason::Changed,
            rule_text,
        );
        set(changed.other(), new.clone(), final_a, final_b);
    }
}

/// On first contact a side without a value has not cleared it: it never had one. So for
/// a field without an owner the value fills the gap, whichever record is newer. (An
/// owned field takes the owner's value, even none: the owner is the truth.)
fn first_values(rule: &FieldRule, a: &Value, b: &Value) -> Option<(Side, String)> {
    if rule.owner.is_some() {
        return None;
    }
    match (a.is_null(), b.is_null()) {
        (false, true) => Some((Side::A, "first sync: only a has a value".into())),
        (true, false) => Some((Side::B, "first sync: only b has a value".into())),
        _ => None,
    }
}

/// Who wins a field changed on both sides, and the rule that said so.
fn settle(
    rule: &FieldRule,
    a: Option<&SideValues>,
    b: Option<&SideValues>,
    clock_skew: Duration,
) -> (Side, String) {
    if let Some(owner) = rule.owner {
        return (owner, format!("owner {}", side_name(owner)));
    }
    let at = |s: Option<&SideValues>| s.and_then(|s| s.updated_at.clone());
    match (at(a), at(b)) {
        (Some(ta), Some(tb)) => match distance(&ta, &tb) {
            // Closer than the skew the two clocks may have: a tie, side a wins.
            Some(gap) if gap <= clock_skew => {
                (Side::A, "last_write_wins (tie within clock_skew: a)".into())
            }
            _ if watermark::compare(&ta, &tb).is_ge() => {
                (Side::A, "last_write_wins (a newer)".into())
            }
            _ => (Side::B, "last_write_wins (b newer)".into()),
        },
        (Some(_), None) => (Side::A, "last_write_wins (only a has a time)".into()),
        (None, Some(_)) => (Side::B, "last_write_wins (only b has a time)".into()),
        (None, None) => (Side::A, "last_write_wins (no times: a)".into()),
    }
}

/// How far apart two timestamps are, when both are timestamps.
fn distance(a: &str, b: &str) -> Option<Duration> {
    let a: jiff::Timestamp = a.parse().ok()?;
    let b: jiff::Timestamp = b.parse().ok()?;
    let gap = a.duration_since(b).abs();
    Duration::try_from(gap).ok()
}

fn value(side: &SideValues, field: &str) -> Value {
    side.values.get(field).cloned().unwrap_or(Value::Null)
}

fn push(merged: &mut Merged, to: Side, field: &str, value: Value, reason: Reason, rule: String) {
    let write = Write {
        field: field.to_string(),
        value,
        reason,
        rule,
    };
    match to {
        Side::A => merged.to_a.push(write),
        Side::B => merged.to_b.push(write),
    }
}

fn set(side: Side, value: Value, final_a: &mut Value, final_b: &mut Value) {
    match side {
        Side::A => *final_a = value,
        Side::B => *final_b = value,
    }
}

pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::A => "a",
        Side::B => "b",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules() -> Vec<FieldRule> {
        vec![
            FieldRule {
                name: "email".into(),
                owner: Some(Side::A),
                conflict: None,
            },
            FieldRule {
                name: "plan".into(),
                owner: Some(Side::B),
                conflict: None,
            },
            FieldRule {
                name: "notes".into(),
                owner: None,
                conflict: Some(ConflictRule::LastWriteWins),
            },
        ]
    }

    fn values(v: Value, at: &str) -> SideValues {
        SideValues {
            values: v.as_object().cloned().unwrap(),
            updated_at: Some(at.to_string()),
        }
    }

    fn base() -> Map<String, Value> {
        json!({"email": "a@x", "plan": "free", "notes": "n0"})
            .as_object()
            .cloned()
            .unwrap()
    }

    const T0: &str = "2026-01-01T10:00:00Z";
    const T5: &str = "2026-01-01T10:00:05Z";
    const SKEW: Duration = Duration::from_secs(2);

    #[test]
    fn an_unchanged_pair_needs_nothing() {
        let a = values(json!({"email": "a@x", "plan": "free", "notes": "n0"}), T0);
        let b = values(json!({"email": "a@x", "plan": "free", "notes": "n0"}), T0);
        let merged = merge(&rules(), Some(&a), Some(&b), &base(), &base(), SKEW);
        assert!(!merged.writes());
        assert!(merged.clashes.is_empty());
    }

    #[test]
    fn the_owners_change_is_copied_and_the_other_sides_is_reverted() {
        // a owns email and changed it; b changed plan, which b owns.
        let a = values(json!({"email": "new@x", "plan": "free", "notes": "n0"}), T0);
        let b = values(json!({"email": "a@x", "plan": "pro", "notes": "n0"}), T0);
        let merged = merge(&rules(), Some(&a), Some(&b), &base(), &base(), SKEW);
        assert_eq!(
            merged
                .to_b
                .iter()
                .map(|w| (&w.field[..], &w.value))
                .collect::<Vec<_>>(),
            vec![("email", &json!("new@x"))]
        );
        assert_eq!(
            merged
                .to_a
                .iter()
                .map(|w| (&w.field[..], &w.value))
                .collect::<Vec<_>>(),
            vec![("plan", &json!("pro"))]
        );
        // Now b (not the owner) changes email: it is put back from a.
        let b = values(
            json!({"email": "hijack@x", "plan": "free", "notes": "n0"}),
            T0,
        );
        let merged = merge(&rules(), None, Some(&b), &base(), &base(), SKEW);
        assert_eq!(merged.to_b[0].value, json!("a@x"));
        assert_eq!(merged.to_b[0].reason, Reason::Rejected);
        assert!(merged.to_a.is_empty());
        assert!(merged.clashes[0].rejected);
        assert_eq!(merged.after_b["email"], json!("a@x"));
    }

    #[test]
    fn last_write_wins_both_ways_and_ties_go_to_a() {
        let edit = |notes_a: &str, at_a: &str, notes_b: &str, at_b: &str| {
            let a = values(
                json!({"email": "a@x", "plan": "free", "notes": notes_a}),
                at_a,
            );
            let b = values(
                json!({"email": "a@x", "plan": "free", "notes": notes_b}),
                at_b,
            );
            merge(&rules(), Some(&a), Some(&b), &base(), &base(), SKEW)
        };
        let b_newer = edit("from a", T0, "from b", T5);
        assert_eq!(b_newer.to_a[0].value, json!("from b"));
        assert_eq!(b_newer.clashes[0].winner, Side::B);
        let a_newer = edit("from a", T5, "from b", T0);
        assert_eq!(a_newer.to_b[0].value, json!("from a"));
        // One second apart with a 2 s tolerance: a tie, a wins, whichever is later.
        let tie = edit(
            "from a",
            "2026-01-01T10:00:01Z",
            "from b",
            "2026-01-01T10:00:02Z",
        );
        assert_eq!(tie.to_b[0].value, json!("from a"));
        assert!(tie.clashes[0].rule.contains("tie"));
    }

    #[test]
    fn edits_to_different_fields_of_one_record_both_survive() {
        let mut rules = rules();
        rules[0].owner = None;
        rules[0].conflict = Some(ConflictRule::LastWriteWins);
        let a = values(
            json!({"email": "a@x", "plan": "free", "notes": "from a"}),
            T0,
        );
        let b = values(
            json!({"email": "b-edit@x", "plan": "free", "notes": "n0"}),
            T5,
        );
        let merged = merge(&rules, Some(&a), Some(&b), &base(), &base(), SKEW);
        assert_eq!(merged.to_b[0].field, "notes");
        assert_eq!(merged.to_a[0].field, "email");
        assert!(merged.clashes.is_empty());
        assert_eq!(merged.after_a, merged.after_b);
    }

    #[test]
    fn a_value_written_by_the_runner_coming_back_is_not_echoed() {
        // The runner wrote notes "x" to b; b comes back (newer updated_at) with it.
        let mut base_b = base();
        base_b.insert("notes".into(), json!("x"));
        let mut base_a = base();
        base_a.insert("notes".into(), json!("x"));
        let b = values(json!({"email": "a@x", "plan": "free", "notes": "x"}), T5);
        let merged = merge(&rules(), None, Some(&b), &base_a, &base_b, SKEW);
        assert!(!merged.writes());
    }

    #[test]
    fn first_contact_fills_the_side_that_lacks_a_value() {
        let fields =
            |writes: &[Write]| -> Vec<String> { writes.iter().map(|w| w.field.clone()).collect() };
        let empty = Map::new();
        // Whichever record is newer: a missing value never erases one.
        for (at_a, at_b) in [(T0, T5), (T5, T0)] {
            let a = values(json!({"email": "a@x", "plan": null, "notes": "n"}), at_a);
            let b = values(json!({"email": "a@x", "plan": "pro", "notes": null}), at_b);
            let merged = merge(&rules(), Some(&a), Some(&b), &empty, &empty, SKEW);
            assert_eq!(fields(&merged.to_a), ["plan"]);
            assert_eq!(fields(&merged.to_b), ["notes"]);
            assert_eq!(merged.to_b[0].value, json!("n"));
            assert!(
                merged.clashes.is_empty(),
                "filling an empty field is not a conflict"
            );

            let a = values(json!({"email": "a@x", "plan": "pro", "notes": null}), at_a);
            let b = values(json!({"email": "a@x", "plan": "pro", "notes": "m"}), at_b);
            let merged = merge(&rules(), Some(&a), Some(&b), &empty, &empty, SKEW);
            assert!(merged.to_b.is_empty(), "{merged:?}");
            assert_eq!(merged.to_a[0].value, json!("m"));
            assert_eq!(merged.to_a[0].rule, "first sync: only b has a value");
        }
        // An owned field takes the owner's value, even when the owner has none.
        let a = values(json!({"email": null, "plan": null, "notes": null}), T0);
        let b = values(json!({"email": "b@x", "plan": null, "notes": null}), T5);
        let merged = merge(&rules(), Some(&a), Some(&b), &empty, &empty, SKEW);
        assert_eq!(fields(&merged.to_b), ["email"]);
        assert_eq!(merged.to_b[0].value, Value::Null);
    }
}
