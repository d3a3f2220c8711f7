//! The demo's second part: a two-way stream between CRM contacts and billing
//! customers, with people editing both sides between runs — an owner's change, a
//! change the other side does not own, the same field changed on both sides — and
//! proof that both sides end up agreeing, by the rules, without echoing the runner's
//! own writes back.
//!
//! It runs against a sandbox of its own (the same unhappy paths as the first part),
//! small enough that every decision fits on a screen.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use super::pipeline::systems;
use super::report::{figure, sample};
use crate::sandbox::Sandbox;
use crate::store::Conflict;

/// File name of the two-way pipeline inside the demo folder.
pub const FILE_NAME: &str = "two-way.yaml";

/// Contacts in the CRM before the first two-way run; the first `EXISTING` of them
/// have a billing customer already (same email, with a plan and a note).
const CONTACTS: usize = 60;
pub const EXISTING: usize = 30;
/// Longer than the pipeline's `clock_skew`: the later of two edits wins.
const BETWEEN_EDITS: Duration = Duration::from_millis(1_200);
/// No-echo runs after the edits have been synced.
pub const QUIET_RUNS: usize = 3;

pub const PIPELINE: &str = concat!(
    r#"# Written by `runner demo`: customers kept in sync both ways between the CRM (side a)
# and billing (side b). Every shared field says who wins:
#   email  the CRM owns it: a change made in billing is put back (a rejected change);
#   plan   billing owns it (the CRM calls it `tier`);
#   notes  no owner: changed on both sides, the later edit wins (last_write_wins).
# `runner conflicts` on this file lists every conflict and rejected change.
version: 1
name: demo-customers-two-way
description: CRM contacts and billing customers, edited on both sides.
state: { path: state-two-way }

"#,
    systems!(),
    r#"streams:
  customers:
    sync: two_way
    sides:
      a:
        system: crm
        read:
          path: /contacts
          params: { updated_since: "{{ watermark }}", limit: 250 }
          records: "$.data[*]"
          paginate: { style: cursor, cursor: "$.next_cursor", param: cursor }
        id: "$.id"
        updated_at: "$.updated_at"
        create: { method: POST, path: /contacts, id: "$.id" }
        update: { method: PATCH, path: "/contacts/{{ target_id }}" }
        idempotency_header: Idempotency-Key
      b:
        system: billing
        read:
          path: /customers
          params: { updated_since: "{{ watermark }}" }
          records: "$.items[*]"
          paginate: { style: page, param: page, size_param: per_page, size: 100 }
        id: "$.id"
        updated_at: "$.updated_at"
        incremental: { filter: inclusive }
        create: { method: POST, path: /customers, id: "$.id" }
        update: { method: PATCH, path: "/customers/{{ target_id }}" }
        idempotency_header: Idempotency-Key
    match_on: [email]
    fields:
      email: { a: "$.email", b: "$.email", owner: a }
      plan: { a: "$.tier", b: "$.plan", owner: b }
      notes: { a: "$.notes", b: "$.note", conflict: last_write_wins }
    clock_skew: 1s
"#
);

/// Seeds the sandbox: `CONTACTS` CRM contacts, billing customers for the first
/// `EXISTING` (the sandbox's fake records of one index share their email), and one
/// customer only billing has.
pub fn seed(sandbox: &Sandbox) {
    sandbox.crm().seed(CONTACTS);
    sandbox.billing().seed(EXISTING);
    sandbox.billing().insert(json!({
        "email": "linus.only-in-billing@example.com", "name": "Linus Billing", "plan": "starter",
    }));
}

/// What people changed after the first sync, and what each change must lead to.
#[derive(Debug, Default)]
pub struct Edits {
    /// Emails of pairs whose plan billing changed (billing owns it): the CRM follows.
    pub plans: Vec<String>,
    /// (CRM email, what billing changed it to): billing does not own it, so it is put back.
    pub hijacked: Vec<(String, String)>,
    /// (email, the notes that must win): edited on both sides, the later edit.
    pub notes: Vec<(String, String)>,
    /// A contact new in the CRM and a customer new in billing: created on the other side.
    pub new_in_crm: String,
    pub new_in_billing: String,
}

pub const NEW_PLAN: &str = "enterprise";

/// People at work on both sides: 5 plan changes in billing, 3 email edits in billing,
/// 4 notes edited on both sides (2 where the CRM's edit comes last, 2 where billing's
/// does), and a new record on each side.
pub fn edit(sandbox: &Sandbox) -> Edits {
    let pairs = pairs(sandbox);
    // `pairs[email]` below cannot miss: every email comes from `pairs` itself.
    let mut emails: Vec<&String> = pairs.keys().collect();
    emails.sort();
    let (crm, billing) = (sandbox.crm(), sandbox.billing());
    let mut edits = Edits::default();
    for email in emails.iter().take(5) {
        billing.update(&pairs[*email].1, json!({ "plan": NEW_PLAN }));
        edits.plans.push(email.to_string());
    }
    for (n, email) in emails.iter().skip(5).take(3).enumerate() {
        let typo = format!("typo.{n}@billing.example");
        billing.update(&pairs[*email].1, json!({ "email": typo }));
        edits.hijacked.push((email.to_string(), typo));
    }
    let both: Vec<&String> = emails.iter().skip(8).take(4).copied().collect();
    // First edits, then (later than the clock skew) the edits that must win.
    for (i, email) in both.iter().enumerate() {
        let (contact, customer) = &pairs[*email];
        if i < 2 {
            billing.update(customer, json!({ "note": "billing: call back in May" }));
        } else {
            crm.update(contact, json!({ "notes": "crm: send the contract" }));
        }
    }
    std::thread::sleep(BETWEEN_EDITS);
    for (i, email) in both.iter().enumerate() {
        let (contact, customer) = &pairs[*email];
        let wins = if i < 2 {
            crm.update(contact, json!({ "notes": "crm: renewal signed" }));
            "crm: renewal signed"
        } else {
            billing.update(customer, json!({ "note": "billing: paid, contract sent" }));
            "billing: paid, contract sent"
        };
        edits.notes.push((email.to_string(), wins.to_string()));
    }
    edits.new_in_crm = "grace.new-in-crm@example.com".into();
    crm.insert(json!({
        "first_name": "Grace", "last_name": "New", "email": edits.new_in_crm, "notes": "met at the fair",
    }));
    edits.new_in_billing = "ken.new-in-billing@example.com".into();
    billing.insert(json!({ "email": edits.new_in_billing, "name": "Ken New", "plan": "team" }));
    edits
}

/// Contact id and customer id per email, for the emails both sides have.
fn pairs(sandbox: &Sandbox) -> HashMap<String, (String, String)> {
    let id = |record: &Value| record["id"].as_str().unwrap_or_default().to_string();
    let customers = by_email(sandbox.billing().records());
    by_email(sandbox.crm().records())
        .into_iter()
        .filter_map(|(email, contact)| {
            let customer = customers.get(&email)?;
            Some((email, (id(&contact), id(customer))))
        })
        .collect()
}

/// Records by their email (records without one left out).
fn by_email(records: Vec<Value>) -> HashMap<String, Value> {
    records
        .into_iter()
        .filter_map(|r| Some((r["email"].as_str()?.to_string(), r)))
        .collect()
}

/// Both sides read back after the runs.
#[derive(Debug)]
pub struct TwoWayCheck {
    pub contacts: usize,
    pub customers: usize,
    /// Pairs (same email) whose shared fields are equal on both sides.
    pub in_sync: usize,
    /// Emails of records with no counterpart, or of pairs that differ.
    pub unpaired: Vec<String>,
    pub different: Vec<String>,
    /// Edits whose rule did not hold: what was expected.
    pub broken_rules: Vec<String>,
    /// Plan changes made in billing that the CRM shows.
    pub plans_copied: usize,
    /// Conflicts and rejected changes the runs recorded.
    pub conflicts: u64,
    pub rejected: u64,
    /// Writes the no-echo runs sent (both systems).
    pub echo_writes: u64,
}

impl TwoWayCheck {
    /// `logged`: the conflict log of the runs; `echo_writes`: what the quiet runs sent.
    pub fn of(sandbox: &Sandbox, edits: &Edits, logged: &[Conflict], echo_writes: u64) -> Self {
        let (crm, billing) = (
            by_email(sandbox.crm().records()),
            by_email(sandbox.billing().records()),
        );
        let emails: HashSet<&String> = crm.keys().chain(billing.keys()).collect();
        let mut check = TwoWayCheck {
            contacts: sandbox.crm().len(),
            customers: sandbox.billing().len(),
            in_sync: 0,
            unpaired: Vec::new(),
            different: Vec::new(),
            broken_rules: Vec::new(),
            plans_copied: 0,
            conflicts: logged.iter().filter(|c| !c.clash.rejected).count() as u64,
            rejected: logged.iter().filter(|c| c.clash.rejected).count() as u64,
            echo_writes,
        };
        for email in emails {
            let (Some(contact), Some(customer)) = (crm.get(email), billing.get(email)) else {
                check.unpaired.push(email.clone());
                continue;
            };
            if contact["tier"] == customer["plan"] && contact["notes"] == customer["note"] {
                check.in_sync += 1;
            } else {
                check.different.push(email.clone());
            }
        }
        for email in &edits.plans {
            if check.expect(email, "tier", crm.get(email), NEW_PLAN) {
                check.plans_copied += 1;
            }
        }
        for (email, wins) in &edits.notes {
            check.expect(email, "notes", crm.get(email), wins);
            check.expect(email, "note", billing.get(email), wins);
        }
        for (email, typo) in &edits.hijacked {
            if billing.contains_key(typo) || !billing.contains_key(email) {
                check
                    .broken_rules
                    .push(format!("billing still has {typo} instead of {email}"));
            }
        }
        for email in [&edits.new_in_crm, &edits.new_in_billing] {
            if !(crm.contains_key(email) && billing.contains_key(email)) {
                check
                    .broken_rules
                    .push(format!("{email} was not created on the other side"));
            }
        }
        check.unpaired.sort();
        check.different.sort();
        check
    }

    /// Whether `record`'s `field` is `want`; notes a broken rule if not.
    fn expect(&mut self, email: &str, field: &str, record: Option<&Value>, want: &str) -> bool {
        let got = record.map_or(&Value::Null, |r| &r[field]);
        if got != want {
            self.broken_rules
                .push(format!("{email}: {field} is {got}, want \"{want}\""));
        }
        got == want
    }

    /// What contradicts "both sides agree, by the rules, with no echo".
    pub fn problems(&self, edits: &Edits) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.unpaired.is_empty() {
            problems.push(format!(
                "two-way: {} records have no counterpart: {}",
                self.unpaired.len(),
                sample(&self.unpaired)
            ));
        }
        if !self.different.is_empty() {
            problems.push(format!(
                "two-way: {} pairs differ: {}",
                self.different.len(),
                sample(&self.different)
            ));
        }
        for broken in &self.broken_rules {
            problems.push(format!("two-way: {broken}"));
        }
        if self.conflicts != edits.notes.len() as u64 {
            problems.push(format!(
                "two-way: {} conflicts recorded, {} expected",
                self.conflicts,
                edits.notes.len()
            ));
        }
        if self.rejected != edits.hijacked.len() as u64 {
            problems.push(format!(
                "two-way: {} rejected changes recorded, {} expected",
                self.rejected,
                edits.hijacked.len()
            ));
        }
        if self.echo_writes > 0 {
            problems.push(format!(
                "two-way: {} writes in the runs after the edits were synced (an echo)",
                self.echo_writes
            ));
        }
        problems
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\nWhat both sides hold (every record read back):");
        figure(&mut out, "CRM contacts", self.contacts, "");
        figure(&mut out, "billing customers", self.customers, "");
        figure(
            &mut out,
            "pairs in sync",
            self.in_sync,
            "same email, plan and notes on both sides",
        );
        figure(
            &mut out,
            "owner's changes copied",
            self.plans_copied,
            "billing owns the plan: its changes reached the CRM",
        );
        figure(
            &mut out,
            "changes rejected",
            self.rejected as usize,
            "billing edited an email, which the CRM owns: put back, and logged",
        );
        figure(
            &mut out,
            "conflicts settled",
            self.conflicts as usize,
            "notes changed on both sides: the later edit won (last_write_wins), logged",
        );
        figure(
            &mut out,
            "writes after the sync",
            self.echo_writes as usize,
            &format!(
                "{QUIET_RUNS} more runs read the runner's own writes back and sent nothing (no echo)"
            ),
        );
        out
    }
}

/// Writes either system received (creates, updates, deletes).
pub fn writes(sandbox: &Sandbox) -> u64 {
    let (crm, billing) = (sandbox.crm().stats(), sandbox.billing().stats());
    crm.creates + crm.updates + crm.deletes + billing.creates + billing.updates + billing.deletes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_way_pipeline_validates_without_warnings() {
        let checked = crate::config::check_source("two-way.yaml", PIPELINE);
        let shown: Vec<String> = checked.diagnostics.iter().map(|d| d.render()).collect();
        assert!(shown.is_empty(), "{}", shown.join("\n"));
        assert!(checked.pipeline.is_some());
    }
}
