//! `runner plan`: the decisions `apply` would make — creates, updates with each field's
//! before and after, links, deletes, dead letters — collected instead of carried out.

use serde::Serialize;
use serde_json::Value;

use super::decide::Decision;
use crate::store::{Base, Conflict, Intent, Operation, Outcome};
use crate::words::count;

/// A field a write changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
    /// Two-way: the rule that decided the value ("owner a", "last_write_wins (b
    /// newer)", ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// A write `apply` would send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedWrite {
    pub source_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    pub path: String,
    pub changes: Vec<FieldChange>,
    /// Two-way: which way the write goes, "a → b" or "b → a".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
}

/// What `apply` would do to one stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamPlan {
    pub stream: String,
    pub creates: Vec<PlannedWrite>,
    pub updates: Vec<PlannedWrite>,
    pub deletes: Vec<PlannedWrite>,
    /// Source id → target id linked on first contact without a write.
    pub links: Vec<(String, String)>,
    /// Source id → why it would be dead-lettered.
    pub dead_letters: Vec<(String, String)>,
    pub unchanged: u64,
    /// Records waiting for a reference.
    pub waiting: u64,
    /// Writes an earlier run left in the outbox; `apply` resolves them first.
    pub pending: u64,
    /// Two-way: fields changed on both sides (or on the side that does not own them)
    /// and how `apply` would settle them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StreamPlan {
    /// Notes what a decision would do; `base` is the record's last synced state.
    pub fn note(&mut self, decision: Decision, base: Option<&Base>) {
        match decision {
            Decision::Unchanged => self.unchanged += 1,
            Decision::Skip | Decision::Match { .. } => {}
            Decision::Wait { .. } => self.waiting += 1,
            Decision::Settle(done) => match done.outcome {
                Outcome::Synced { target_id, .. } => self.links.push((done.source_id, target_id)),
                Outcome::Paired { b_id, .. } => self.links.push((done.source_id, b_id)),
                Outcome::DeadLettered(letter) => {
                    self.dead_letters.push((done.source_id, letter.reason))
                }
                Outcome::Unmapped => {}
            },
            Decision::Write(intent) => self.write(&intent, base),
            Decision::Line {
                source_id,
                mapped,
                known,
            } => {
                let planned = PlannedWrite {
                    source_id,
                    target_id: None,
                    path: String::new(),
                    changes: changes(None, &mapped.fields),
                    direction: None,
                };
                if known {
                    self.updates.push(planned);
                } else {
                    self.creates.push(planned);
                }
            }
        }
    }

    /// Notes a write.
    pub fn write(&mut self, intent: &Intent, base: Option<&Base>) {
        let planned = PlannedWrite {
            source_id: intent.source_id.clone(),
            target_id: intent.target_id.clone(),
            path: intent.path.clone(),
            changes: match intent.op {
                Operation::Delete => Vec::new(),
                _ => changes(base.map(|b| &b.fields), &intent.fields),
            },
            direction: None,
        };
        match intent.op {
            Operation::Create => self.creates.push(planned),
            Operation::Update => self.updates.push(planned),
            Operation::Delete | Operation::SoftDelete => self.deletes.push(planned),
        }
    }

    /// The plan for people.
    pub fn render(&self) -> String {
        let mut out = format!("stream {}\n", self.stream);
        if self.pending > 0 {
            out.push_str(&format!(
                "  ! {} writes of an earlier run are pending; apply resolves them first\n",
                self.pending
            ));
        }
        for write in &self.creates {
            out.push_str(&format!(
                "  + create {}{}\n",
                write.source_id,
                direction(write)
            ));
            for change in &write.changes {
                out.push_str(&format!(
                    "      {}: {}{}\n",
                    change.field,
                    change.after,
                    rule(change)
                ));
            }
        }
        for write in &self.updates {
            out.push_str(&format!(
                "  ~ update {} → {}{}\n",
                write.source_id,
                write.target_id.as_deref().unwrap_or("?"),
                direction(write)
            ));
            for change in &write.changes {
                out.push_str(&format!(
                    "      {}: {} → {}{}\n",
                    change.field,
                    change.before,
                    change.after,
                    rule(change)
                ));
            }
        }
        for conflict in &self.conflicts {
            let what = if conflict.clash.rejected {
                "rejected change"
            } else {
                "conflict"
            };
            out.push_str(&format!(
                "  ! {what} {}: a {} / b {} {}: a={} b={} (was a={} b={}) → {} wins by {}\n",
                conflict.clash.field,
                conflict.a_id,
                conflict.b_id,
                if conflict.clash.rejected {
                    "(edited on the side that does not own it)"
                } else {
                    "(changed on both sides)"
                },
                conflict.clash.a,
                conflict.clash.b,
                conflict.clash.base_a,
                conflict.clash.base_b,
                conflict.clash.winner.as_str(),
                conflict.clash.rule
            ));
        }
        for (source_id, target_id) in &self.links {
            out.push_str(&format!(
                "  = link {source_id} → {target_id} (already equal)\n"
            ));
        }
        for write in &self.deletes {
            out.push_str(&format!(
                "  - delete {} → {}\n",
                write.source_id,
                write.target_id.as_deref().unwrap_or("?")
            ));
        }
        for (source_id, reason) in &self.dead_letters {
            out.push_str(&format!("  ✗ dead letter {source_id}: {reason}\n"));
        }
        out.push_str(&format!(
            "  {} to create, {} to update, {} to delete, {} unchanged{}{}\n",
            self.creates.len(),
            self.updates.len(),
            self.deletes.len(),
            self.unchanged,
            if self.waiting > 0 {
                format!(", {} waiting for a reference", self.waiting)
            } else {
                String::new()
            },
            self.settled()
        ));
        if let Some(error) = &self.error {
            out.push_str(&format!("  ! {error}\n"));
        }
        out
    }
}

impl StreamPlan {
    /// ", 4 conflicts settled, 3 changes rejected" (the parts that are not zero).
    fn settled(&self) -> String {
        let rejected = self.conflicts.iter().filter(|c| c.clash.rejected).count() as u64;
        let conflicts = self.conflicts.len() as u64 - rejected;
        let mut text = String::new();
        if conflicts > 0 {
            text.push_str(&format!(
                ", {} settled",
                count(conflicts, "conflict", "conflicts")
            ));
        }
        if rejected > 0 {
            text.push_str(&format!(
                ", {} rejected",
                count(rejected, "change", "changes")
            ));
        }
        text
    }
}

fn direction(write: &PlannedWrite) -> String {
    write
        .direction
        .as_ref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

fn rule(change: &FieldChange) -> String {
    change
        .rule
        .as_ref()
        .map(|r| format!("   [{r}]"))
        .unwrap_or_default()
}

/// The fields whose value differs from `before` (every field for a create).
fn changes(before: Option<&Value>, after: &Value) -> Vec<FieldChange> {
    let Some(after) = after.as_object() else {
        return Vec::new();
    };
    after
        .iter()
        .filter_map(|(field, value)| {
            let old = before
                .and_then(|b| b.get(field))
                .cloned()
                .unwrap_or(Value::Null);
            (before.is_none() || &old != value).then(|| FieldChange {
                field: field.clone(),
                before: old,
                after: value.clone(),
                rule: None,
            })
        })
        .collect()
}
