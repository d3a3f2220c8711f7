//! Two-way sync through the real binary against both sandbox APIs: CRM contacts (side
//! a) ↔ billing customers (side b). Field ownership, last-write-wins both ways, edits
//! to different fields of one record, creates on either side, clock skew, no echo,
//! deletes, `plan` and `conflicts`, and crash safety with edits on both sides.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use runner::sandbox::{FaultKind, Sandbox, SandboxConfig, Scripted};
use serde_json::{json, Value};

use crate::apply::World;
use crate::support::{code, stderr, stdout};

/// email is the CRM's, plan is billing's (CRM calls it `tier`), notes and phone are
/// anyone's: the later edit wins.
const PIPELINE: &str = concat!(
    r#"
version: 1
name: two-way
state: { path: state }
"#,
    sandbox_systems!(),
    r#"streams:
  customers:
    sync: two_way
    sides:
      a:
        system: crm
        read:
          path: /contacts
          params: { updated_since: "{{ watermark }}", limit: 50 }
          records: "$.data[*]"
          paginate: { style: cursor, cursor: "$.next_cursor", param: cursor }
        id: "$.id"
        updated_at: "$.updated_at"
        tombstone: "$.archived"
        create: { method: POST, path: /contacts, id: "$.id" }
        update: { method: PATCH, path: "/contacts/{{ target_id }}" }
        delete: { method: DELETE, path: "/contacts/{{ target_id }}" }
        soft_delete: { archived: true }
        idempotency_header: Idempotency-Key
      b:
        system: billing
        read:
          path: /customers
          params: { updated_since: "{{ watermark }}" }
          records: "$.items[*]"
          paginate: { style: page, param: page, size_param: per_page, size: 50 }
        id: "$.id"
        updated_at: "$.updated_at"
        tombstone: "$.archived"
        create: { method: POST, path: /customers, id: "$.id" }
        update: { method: PATCH, path: "/customers/{{ target_id }}" }
        delete: { method: DELETE, path: "/customers/{{ target_id }}" }
        soft_delete: { archived: true }
        idempotency_header: Idempotency-Key
    match_on: [email]
    fields:
      email: { a: "$.email", b: "$.email", owner: a }
      plan: { a: "$.tier", b: "$.plan", owner: b }
      notes: { a: "$.notes", b: "$.note", conflict: last_write_wins }
      phone: { a: "$.phone", b: "$.phone", conflict: last_write_wins }
    clock_skew: 100ms
    deletes: soft
    max_delete_fraction: 50%
"#
);

fn world() -> World {
    World::new(SandboxConfig::default(), PIPELINE)
}

/// Runs `apply` and insists it succeeded.
fn apply(world: &World) -> String {
    let out = world.apply();
    assert_eq!(
        code(&out),
        0,
        "apply failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The record of `app` whose `email` is this.
fn by_email(records: Vec<Value>, email: &str) -> Value {
    let found: Vec<Value> = records
        .into_iter()
        .filter(|r| r["email"] == email)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "want exactly one record with {email}: {found:?}"
    );
    found.into_iter().next().unwrap_or_default()
}

fn id(record: &Value) -> String {
    record["id"].as_str().unwrap_or_default().to_string()
}

/// Writes either app received over HTTP (creates, updates, deletes).
fn writes(sandbox: &Sandbox) -> u64 {
    let (crm, billing) = (sandbox.crm().stats(), sandbox.billing().stats());
    crm.creates + crm.updates + crm.deletes + billing.creates + billing.updates + billing.deletes
}

/// Seeds one contact and its customer, already in sync after a first run.
fn one_synced_pair(world: &World) -> (String, String) {
    world.sandbox.crm().insert(json!({
        "email": "ada@example.com", "first_name": "Ada", "notes": "n0", "phone": "p0"
    }));
    world.sandbox.billing().insert(json!({
        "email": "ada@example.com", "name": "Ada L", "plan": "free", "note": "n0", "phone": "p0"
    }));
    apply(world);
    let contact = by_email(world.sandbox.crm().records(), "ada@example.com");
    let customer = by_email(world.sandbox.billing().records(), "ada@example.com");
    assert_eq!(contact["tier"], "free", "billing's plan reached the CRM");
    (id(&contact), id(&customer))
}

fn conflicts(world: &World) -> Vec<Value> {
    let out = world.run(&["conflicts", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("conflicts as JSON")
}

#[test]
fn a_first_sync_links_matches_and_creates_what_each_side_lacks() {
    let world = world();
    world
        .sandbox
        .crm()
        .insert(json!({"email": "both@example.com", "notes": "from crm"}));
    world
        .sandbox
        .crm()
        .insert(json!({"email": "crm-only@example.com", "tier": "trial", "phone": "+1"}));
    world
        .sandbox
        .billing()
        .insert(json!({"email": "both@example.com", "plan": "pro"}));
    world
        .sandbox
        .billing()
        .insert(json!({"email": "billing-only@example.com", "plan": "team", "note": "hello"}));
    // A note only billing has survives the link, though the CRM's record is newer: a
    // value missing on first contact was never cleared, so it does not win.
    world
        .sandbox
        .billing()
        .insert(json!({"email": "late@example.com", "note": "keep me"}));
    world.sandbox.crm().set_clock_offset(5_000);
    world
        .sandbox
        .crm()
        .insert(json!({"email": "late@example.com"}));
    world.sandbox.crm().set_clock_offset(0);
    apply(&world);

    let crm = world.sandbox.crm().records();
    let billing = world.sandbox.billing().records();
    assert_eq!(crm.len(), 4, "{crm:?}");
    assert_eq!(billing.len(), 4, "{billing:?}");
    assert_eq!(
        by_email(crm.clone(), "late@example.com")["notes"],
        "keep me"
    );
    assert_eq!(
        by_email(billing.clone(), "late@example.com")["note"],
        "keep me"
    );
    // Matched on email: each side filled the field the other lacked.
    let both_a = by_email(crm.clone(), "both@example.com");
    let both_b = by_email(billing.clone(), "both@example.com");
    assert_eq!(both_a["tier"], "pro");
    assert_eq!(both_b["note"], "from crm");
    // Created on the other side, with every shared field at that side's path.
    let created_b = by_email(billing, "crm-only@example.com");
    assert_eq!(
        (&created_b["plan"], &created_b["phone"]),
        (&json!("trial"), &json!("+1"))
    );
    let created_a = by_email(crm, "billing-only@example.com");
    assert_eq!(
        (&created_a["tier"], &created_a["notes"]),
        (&json!("team"), &json!("hello"))
    );

    let out = world.run(&["mappings"]);
    assert_eq!(
        stdout(&out).lines().filter(|l| l.contains(" → ")).count(),
        4,
        "{}",
        stdout(&out)
    );
    // Nothing left to do.
    let before = writes(&world.sandbox);
    apply(&world);
    assert_eq!(writes(&world.sandbox), before);
}

#[test]
fn the_owners_edit_wins_and_an_edit_on_the_other_side_is_reverted() {
    let world = world();
    let (contact, customer) = one_synced_pair(&world);
    // email belongs to the CRM: billing's edit is put back, the CRM's is copied.
    world
        .sandbox
        .billing()
        .update(&customer, json!({"email": "hijack@example.com"}));
    // plan belongs to billing: its edit reaches the CRM.
    world
        .sandbox
        .billing()
        .update(&customer, json!({"plan": "pro"}));
    let summary = apply(&world);
    assert!(summary.contains("1 change rejected"), "{summary}");
    let b = world.sandbox.billing().get(&customer).unwrap_or_default();
    let a = world.sandbox.crm().get(&contact).unwrap_or_default();
    assert_eq!(
        b["email"], "ada@example.com",
        "billing's edit of a CRM-owned field was reverted"
    );
    assert_eq!(a["tier"], "pro");

    world.sandbox.crm().update(
        &contact,
        json!({"email": "ada@new.example.com", "tier": "free"}),
    );
    apply(&world);
    let b = world.sandbox.billing().get(&customer).unwrap_or_default();
    let a = world.sandbox.crm().get(&contact).unwrap_or_default();
    assert_eq!(
        b["email"], "ada@new.example.com",
        "the owner's edit was copied"
    );
    assert_eq!(b["plan"], "pro");
    assert_eq!(
        a["tier"], "pro",
        "the CRM's edit of billing's plan was reverted"
    );

    let log = conflicts(&world);
    let rejected: Vec<(&str, &str)> = log
        .iter()
        .filter(|c| c["rejected"] == true)
        .map(|c| {
            (
                c["field"].as_str().unwrap_or(""),
                c["winner"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(rejected.len(), 2, "{log:?}");
    assert!(
        rejected.contains(&("email", "a")) && rejected.contains(&("plan", "b")),
        "{rejected:?}"
    );
    let text = stdout(&world.run(&["conflicts"]));
    assert!(
        text.contains("rejected change on b") && text.contains("a owns it"),
        "{text}"
    );
    let history = stdout(&world.run(&["history"]));
    assert!(
        history.contains("rejected changes 1") && history.contains("email: rejected change"),
        "{history}"
    );
}

#[test]
fn last_write_wins_both_ways() {
    let world = world();
    let (contact, customer) = one_synced_pair(&world);
    // Billing first, the CRM later (by more than clock_skew): the CRM wins.
    world
        .sandbox
        .billing()
        .update(&customer, json!({"note": "billing says"}));
    std::thread::sleep(Duration::from_millis(300));
    world
        .sandbox
        .crm()
        .update(&contact, json!({"notes": "crm says"}));
    apply(&world);
    assert_eq!(
        world.sandbox.billing().get(&customer).unwrap_or_default()["note"],
        "crm says"
    );
    assert_eq!(
        world.sandbox.crm().get(&contact).unwrap_or_default()["notes"],
        "crm says"
    );

    // The other way round: billing wins.
    world
        .sandbox
        .crm()
        .update(&contact, json!({"notes": "crm again"}));
    std::thread::sleep(Duration::from_millis(300));
    world
        .sandbox
        .billing()
        .update(&customer, json!({"note": "billing again"}));
    apply(&world);
    assert_eq!(
        world.sandbox.crm().get(&contact).unwrap_or_default()["notes"],
        "billing again"
    );
    assert_eq!(
        world.sandbox.billing().get(&customer).unwrap_or_default()["note"],
        "billing again"
    );

    let log = conflicts(&world);
    let decided: Vec<(&str, &str)> = log
        .iter()
        .map(|c| {
            (
                c["winner"].as_str().unwrap_or(""),
                c["rule"].as_str().unwrap_or(""),
            )
        })
        .collect();
    // Newest first.
    assert_eq!(
        decided,
        vec![
            ("b", "last_write_wins (b newer)"),
            ("a", "last_write_wins (a newer)")
        ]
    );
    assert_eq!(log[1]["a"], "crm says");
    assert_eq!(log[1]["b"], "billing says");
    assert_eq!(log[1]["base_a"], "n0");
    // The times last-write-wins compared are kept, and shown.
    let (a_at, b_at) = (
        log[1]["a_updated_at"].as_str().unwrap_or_default(),
        log[1]["b_updated_at"].as_str().unwrap_or_default(),
    );
    assert!(!b_at.is_empty() && a_at > b_at, "a {a_at} vs b {b_at}");
    let text = stdout(&world.run(&["conflicts"]));
    assert!(
        text.contains(&format!("a updated {a_at}, b updated {b_at}")),
        "{text}"
    );
}

#[test]
fn edits_to_different_fields_of_one_record_both_survive() {
    let world = world();
    let (contact, customer) = one_synced_pair(&world);
    world
        .sandbox
        .crm()
        .update(&contact, json!({"notes": "crm edit"}));
    world
        .sandbox
        .billing()
        .update(&customer, json!({"phone": "billing edit"}));
    apply(&world);
    for record in [
        world.sandbox.crm().get(&contact).unwrap_or_default(),
        world.sandbox.billing().get(&customer).unwrap_or_default(),
    ] {
        assert_eq!(record["phone"], "billing edit", "{record}");
    }
    assert_eq!(
        world.sandbox.crm().get(&contact).unwrap_or_default()["notes"],
        "crm edit"
    );
    assert_eq!(
        world.sandbox.billing().get(&customer).unwrap_or_default()["note"],
        "crm edit"
    );
    assert!(
        conflicts(&world).is_empty(),
        "different fields are no conflict"
    );
}

#[test]
fn clocks_apart_by_less_than_clock_skew_tie_and_side_a_wins() {
    let world = World::new(
        SandboxConfig::default(),
        &PIPELINE.replace("clock_skew: 100ms", "clock_skew: 2s"),
    );
    let (contact, customer) = one_synced_pair(&world);
    // Billing's clock runs 1.5 s fast: its edit, made first, carries the later time.
    // Within the 2 s tolerance the clocks cannot be trusted to order the edits: a tie,
    // which side a wins — the same answer on every run.
    world.sandbox.billing().set_clock_offset(1_500);
    world
        .sandbox
        .billing()
        .update(&customer, json!({"note": "billing, earlier"}));
    world
        .sandbox
        .crm()
        .update(&contact, json!({"notes": "crm, later"}));
    apply(&world);
    assert_eq!(
        world.sandbox.billing().get(&customer).unwrap_or_default()["note"],
        "crm, later"
    );
    let log = conflicts(&world);
    assert_eq!(log[0]["winner"], "a");
    assert!(
        log[0]["rule"]
            .as_str()
            .unwrap_or("")
            .contains("tie within clock_skew"),
        "{log:?}"
    );

    // Beyond the tolerance the clocks are trusted: 5 s ahead, billing's time wins.
    world.sandbox.billing().set_clock_offset(5_000);
    world
        .sandbox
        .billing()
        .update(&customer, json!({"note": "billing, 5 s ahead"}));
    world
        .sandbox
        .crm()
        .update(&contact, json!({"notes": "crm, now"}));
    apply(&world);
    assert_eq!(
        world.sandbox.crm().get(&contact).unwrap_or_default()["notes"],
        "billing, 5 s ahead"
    );
    assert_eq!(conflicts(&world)[0]["rule"], "last_write_wins (b newer)");
}

#[test]
fn writes_coming_back_are_not_echoed_over_ten_rounds() {
    let world = world();
    world.sandbox.crm().seed(20);
    world.sandbox.billing().seed(20);
    apply(&world);
    let (contact, customer) = (
        id(&world.sandbox.crm().records()[0]),
        id(&world.sandbox.billing().records()[0]),
    );
    world
        .sandbox
        .crm()
        .update(&contact, json!({"notes": "changed in crm"}));
    world
        .sandbox
        .billing()
        .update(&customer, json!({"plan": "enterprise"}));
    let before = writes(&world.sandbox);
    apply(&world);
    assert_eq!(
        writes(&world.sandbox) - before,
        2,
        "round 1 copies each change once"
    );
    let after_first = writes(&world.sandbox);
    for round in 2..=10 {
        let summary = apply(&world);
        assert_eq!(
            writes(&world.sandbox),
            after_first,
            "round {round} wrote again:\n{summary}"
        );
    }
    assert!(conflicts(&world).is_empty());
}

#[test]
fn plan_shows_each_write_with_its_direction_and_rule_and_every_conflict() {
    let world = world();
    let (contact, customer) = one_synced_pair(&world);
    world.sandbox.billing().update(
        &customer,
        json!({"note": "billing says", "email": "x@example.com"}),
    );
    std::thread::sleep(Duration::from_millis(300));
    world
        .sandbox
        .crm()
        .update(&contact, json!({"notes": "crm says", "phone": "p1"}));
    let before = writes(&world.sandbox);
    let out = world.run(&["plan"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("~ update a:{contact} → {customer} (a → b)")),
        "{text}"
    );
    assert!(
        text.contains(
            "notes: \"billing says\" → \"crm says\"   [conflict: last_write_wins (a newer)]"
        ),
        "{text}"
    );
    assert!(
        text.contains("phone: \"p0\" → \"p1\"   [changed on a]"),
        "{text}"
    );
    assert!(
        text.contains("email: \"x@example.com\" → \"ada@example.com\"   [reverted: owner a]"),
        "{text}"
    );
    assert!(text.contains("! conflict notes"), "{text}");
    assert!(text.contains("! rejected change email"), "{text}");
    let json: Value = serde_json::from_str(&stdout(&world.run(&["plan", "--format", "json"])))
        .expect("plan as JSON");
    let plan = &json[0];
    assert_eq!(plan["updates"][0]["direction"], "a → b");
    assert_eq!(
        plan["conflicts"].as_array().map(Vec::len),
        Some(2),
        "{plan}"
    );
    assert_eq!(writes(&world.sandbox), before, "plan wrote something");
    assert!(conflicts(&world).is_empty(), "plan logged a conflict");
}

#[test]
fn a_record_archived_on_one_side_is_soft_deleted_on_the_other() {
    let world = world();
    world.sandbox.crm().seed(3);
    world.sandbox.billing().seed(3);
    let (contact, customer) = one_synced_pair(&world);
    world
        .sandbox
        .crm()
        .update(&contact, json!({"archived": true}));
    apply(&world);
    assert_eq!(
        world.sandbox.billing().get(&customer).unwrap_or_default()["archived"],
        true
    );
    // Archived on both sides now: later edits are not synced any more.
    world
        .sandbox
        .billing()
        .update(&customer, json!({"note": "after archive"}));
    let before = writes(&world.sandbox);
    apply(&world);
    assert_eq!(writes(&world.sandbox), before);
}

#[test]
fn a_record_deleted_on_one_side_is_deleted_on_the_other_under_the_mass_delete_guard() {
    let world = World::new(
        SandboxConfig::default(),
        &PIPELINE.replace("deletes: soft", "deletes: hard"),
    );
    world.sandbox.crm().seed(3);
    world.sandbox.billing().seed(3);
    let (contact, customer) = one_synced_pair(&world);
    world.sandbox.billing().delete(&customer);
    apply(&world);
    assert!(
        world.sandbox.crm().get(&contact).is_some(),
        "an incremental run cannot see a delete"
    );
    let out = world.run(&["apply", "--full"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        world.sandbox.crm().get(&contact).is_none(),
        "deleted on billing, deleted on the CRM"
    );
    assert!(!stdout(&world.run(&["mappings"])).contains(&contact));

    // Two of the three left, deleted on the CRM: more than max_delete_fraction.
    for contact in world.sandbox.crm().records().iter().take(2) {
        world.sandbox.crm().delete(&id(contact));
    }
    let out = world.run(&["apply", "--full"]);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("would delete 2 of its 3 records"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        world.sandbox.billing().records().len(),
        3,
        "nothing was deleted"
    );
    let out = world.run(&["apply", "--full", "--allow-mass-delete"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(world.sandbox.billing().records().len(), 1);
}

/// Every contact has exactly one customer with the same email and shared fields, and
/// the other way round.
fn assert_in_sync(sandbox: &Sandbox) {
    let crm = sandbox.crm().records();
    let billing = sandbox.billing().records();
    let index = |records: &[Value]| {
        let mut by: HashMap<String, Vec<Value>> = HashMap::new();
        for r in records {
            by.entry(r["email"].as_str().unwrap_or("").to_string())
                .or_default()
                .push(r.clone());
        }
        by
    };
    let (a, b) = (index(&crm), index(&billing));
    assert_eq!(crm.len(), billing.len(), "as many contacts as customers");
    for (email, contacts) in &a {
        assert_eq!(contacts.len(), 1, "duplicate contacts for {email}");
        let customers = b.get(email).cloned().unwrap_or_default();
        assert_eq!(
            customers.len(),
            1,
            "want one customer for {email}: {customers:?}"
        );
        let (contact, customer) = (&contacts[0], &customers[0]);
        for (field_a, field_b) in [("tier", "plan"), ("notes", "note"), ("phone", "phone")] {
            assert_eq!(
                contact.get(field_a).unwrap_or(&Value::Null),
                customer.get(field_b).unwrap_or(&Value::Null),
                "{field_a}/{field_b} differ for {email}:\n{contact}\n{customer}"
            );
        }
    }
}

#[test]
fn killed_at_random_moments_with_edits_on_both_sides_the_sides_end_in_sync() {
    let world = world();
    // Slow replies widen the window between sending a write and recording it.
    world.sandbox.crm().set_latency(Duration::from_millis(15));
    world
        .sandbox
        .billing()
        .set_latency(Duration::from_millis(15));
    world.sandbox.crm().seed(120);
    world.sandbox.billing().seed(120);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut killed = 0;
    let mut round = 0;
    let replays = |sandbox: &Sandbox| {
        sandbox.crm().stats().idempotent_replays + sandbox.billing().stats().idempotent_replays
    };
    // At least 15 kills, and more (up to 60) until one has landed between sending a
    // write and recording its answer — what the outbox is for.
    while killed < 15 || (replays(&world.sandbox) == 0 && killed < 60) {
        round += 1;
        // Edits on both sides between runs: notes anywhere, the CRM's email, billing's
        // plan, and sometimes a new record on either side.
        for _ in 0..rng.random_range(5..30) {
            let contacts = world.sandbox.crm().records();
            let contact = &contacts[rng.random_range(0..contacts.len())];
            world
                .sandbox
                .crm()
                .update(&id(contact), json!({"notes": format!("crm {round}")}));
            let customers = world.sandbox.billing().records();
            let customer = &customers[rng.random_range(0..customers.len())];
            world.sandbox.billing().update(
                &id(customer),
                json!({"plan": format!("plan {round}"), "phone": format!("b{round}")}),
            );
        }
        if rng.random_bool(0.3) {
            world
                .sandbox
                .crm()
                .insert(json!({"email": format!("crm-new{round}@example.com"), "notes": "new"}));
        }
        if rng.random_bool(0.3) {
            world
                .sandbox
                .billing()
                .insert(json!({"email": format!("billing-new{round}@example.com"), "plan": "new"}));
        }
        let mut child = world
            .command(&["apply"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("runner starts");
        std::thread::sleep(Duration::from_millis(rng.random_range(50..700)));
        if child.try_wait().expect("child status").is_none() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            killed += 1;
        }
    }
    eprintln!(
        "{killed} kills in {round} rounds, {} writes replayed by idempotency key",
        replays(&world.sandbox)
    );
    let mut clean = false;
    for _ in 0..5 {
        if code(&world.apply()) == 0 {
            clean = true;
            break;
        }
    }
    assert!(clean, "no clean run after the kills");
    // One more run settles what the last one wrote (its own writes coming back).
    apply(&world);
    assert_in_sync(&world.sandbox);
    // Some kills landed between sending a write and recording its answer: the next run
    // sent it again with the same idempotency key, and the app replayed its answer.
    assert!(
        replays(&world.sandbox) > 0,
        "no kill landed between sending a write and recording it"
    );
    let before = writes(&world.sandbox);
    apply(&world);
    assert_eq!(writes(&world.sandbox), before, "in sync, yet a run wrote");
}

#[test]
fn the_example_pipeline_syncs_both_ways_against_the_sandbox() {
    let text =
        std::fs::read_to_string(crate::support::repo().join("pipelines/two-way-customers.yaml"))
            .expect("the example exists");
    let world = World::new(SandboxConfig::default(), &text);
    // The same seed gives both apps the same people: five on both sides, three more
    // only in billing.
    world.sandbox.crm().seed(5);
    world.sandbox.billing().seed(8);
    apply(&world);
    let crm = world.sandbox.crm().records();
    assert_eq!(crm.len(), 8, "billing's three were created in the CRM");
    for customer in world.sandbox.billing().records() {
        let contact = by_email(crm.clone(), customer["email"].as_str().unwrap_or(""));
        assert_eq!(contact["tier"], customer["plan"], "{contact}\n{customer}");
        assert_eq!(contact["notes"], customer["note"]);
    }
    let before = writes(&world.sandbox);
    apply(&world);
    assert_eq!(writes(&world.sandbox), before);
}

#[test]
fn a_refused_write_is_dead_lettered_the_rest_syncs_and_a_fix_clears_it() {
    let world = world();
    let (contact, customer) = one_synced_pair(&world);
    // Billing requires an email: this contact cannot be created there.
    let nameless = world.sandbox.crm().insert(json!({"notes": "no email yet"}));
    world
        .sandbox
        .crm()
        .update(&contact, json!({"notes": "goes through"}));
    let out = world.apply();
    assert_eq!(code(&out), 4, "dead letters exit 4:\n{}", stdout(&out));
    let listed = stdout(&world.run_on_file("dead-letters", &["list"]));
    assert!(
        listed.contains(&format!("customers/a:{nameless}")),
        "{listed}"
    );
    assert!(listed.contains("refused the create with 422"), "{listed}");
    // The rest of the run went on.
    assert_eq!(
        world.sandbox.billing().get(&customer).unwrap_or_default()["note"],
        "goes through"
    );
    assert_eq!(world.sandbox.billing().len(), 1);

    // Sent again as it was, it is refused again: still one letter, two attempts.
    let out = world.run_on_file("dead-letters", &["retry"]);
    assert_eq!(code(&out), 4, "{}\n{}", stdout(&out), stderr(&out));
    let letters: Value = serde_json::from_str(&stdout(
        &world.run_on_file("dead-letters", &["list", "--format", "json"]),
    ))
    .expect("dead letters as JSON");
    assert_eq!(letters.as_array().map(Vec::len), Some(1), "{letters}");
    assert_eq!(letters[0]["attempts"], 2);
    assert_eq!(letters[0]["record"]["a"]["notes"], "no email yet");

    // Fixed at the source, the next run creates it and the letter is gone.
    world
        .sandbox
        .crm()
        .update(&nameless, json!({"email": "grace@example.com"}));
    apply(&world);
    assert_eq!(
        by_email(world.sandbox.billing().records(), "grace@example.com")["note"],
        "no email yet"
    );
    let listed = stdout(&world.run_on_file("dead-letters", &["list"]));
    assert!(!listed.contains(&nameless), "{listed}");
}

#[test]
fn each_side_reads_only_what_changed_since_its_own_watermark() {
    // Without the overlap a re-read would hide whether the filter is sent at all.
    let pipeline = PIPELINE.replace(
        "        updated_at: \"$.updated_at\"\n",
        "        updated_at: \"$.updated_at\"\n        incremental: { overlap: 0s }\n",
    );
    assert_eq!(pipeline.matches("overlap: 0s").count(), 2);
    let world = World::new(SandboxConfig::default(), &pipeline);
    world.sandbox.crm().seed(30);
    world.sandbox.billing().seed(5);
    apply(&world);
    let contacts = world.sandbox.crm().records();
    let pairs = contacts.len();
    assert!(pairs >= 30, "{pairs}");
    assert_eq!(world.sandbox.billing().len(), pairs);
    // The runner's own writes come back once (recognised, not written back); a
    // watermark never moves past what its listing returned, or an edit made while the
    // runner wrote could be skipped.
    let before = writes(&world.sandbox);
    apply(&world);
    assert_eq!(writes(&world.sandbox), before);

    // Each side's watermark is its own newest updated_at.
    let newest = |records: Vec<Value>| -> String {
        records
            .iter()
            .filter_map(|r| r["updated_at"].as_str())
            .max()
            .unwrap_or_default()
            .to_string()
    };
    let (newest_a, newest_b) = (
        newest(world.sandbox.crm().records()),
        newest(world.sandbox.billing().records()),
    );
    let status: Value = serde_json::from_str(&stdout(&world.run(&["status", "--format", "json"])))
        .expect("status as JSON");
    assert_eq!(
        status["streams"][0]["watermark"],
        format!("a {newest_a}, b {newest_b}"),
    );

    let (contact, customer) = (
        id(&contacts[0]),
        id(&world.sandbox.billing().records()[pairs - 1]),
    );
    world
        .sandbox
        .crm()
        .update(&contact, json!({"phone": "+1-555-0001"}));
    world
        .sandbox
        .billing()
        .update(&customer, json!({"note": "changed in billing"}));
    world.sandbox.clear_journal();
    apply(&world);

    // Both listings asked for changes since their side's watermark only.
    let listings: Vec<(String, String)> = world
        .sandbox
        .journal()
        .into_iter()
        .filter(|e| e.method == "GET")
        .map(|e| (e.app, e.query.unwrap_or_default()))
        .collect();
    for (app, newest) in [("crm", &newest_a), ("billing", &newest_b)] {
        let query = listings
            .iter()
            .find(|(a, _)| a == app)
            .map(|(_, q)| q.clone())
            .unwrap_or_default();
        let sent = query
            .split('&')
            .find_map(|p| p.strip_prefix("updated_since="))
            .map(|v| v.replace("%3A", ":"))
            .unwrap_or_default();
        assert_eq!(&sent, newest, "{app} listing: {query}");
    }
    let history: Value = serde_json::from_str(&stdout(
        &world.run(&["history", "--limit", "1", "--format", "json"]),
    ))
    .expect("history as JSON");
    let read = history[0]["streams"][0]["read"]
        .as_u64()
        .unwrap_or(u64::MAX);
    // The two edits, and at most the record at each watermark again (inclusive filters).
    assert!(read <= 4, "read {read} of {} records", 2 * pairs);
    assert_eq!(history[0]["streams"][0]["updated"], 2, "{history}");
    assert_eq!(
        by_email(
            world.sandbox.billing().records(),
            contacts[0]["email"].as_str().unwrap_or_default()
        )["phone"],
        "+1-555-0001"
    );
}

#[test]
fn a_create_lost_in_flight_is_found_by_match_on_not_sent_twice() {
    // Billing without idempotency keys: an in-doubt create cannot simply be resent.
    let pipeline = PIPELINE.replacen(
        "        soft_delete: { archived: true }\n        idempotency_header: Idempotency-Key\n      b:",
        "        soft_delete: { archived: true }\n        idempotency_header: Idempotency-Key\n      b:\n        # no idempotency keys",
        1,
    );
    let pipeline = pipeline.replacen(
        "        soft_delete: { archived: true }\n        idempotency_header: Idempotency-Key\n    match_on",
        "        soft_delete: { archived: true }\n    match_on",
        1,
    );
    assert_eq!(pipeline.matches("idempotency_header").count(), 1);
    let world = World::new(SandboxConfig::default(), &pipeline);
    one_synced_pair(&world);
    let contact = world
        .sandbox
        .crm()
        .insert(json!({"email": "lost@example.com", "notes": "in flight"}));

    // `plan` makes the reads `apply` makes before its first write: the create to
    // billing is the request after those. Billing applies it, then drops the connection.
    let before = world.sandbox.billing().stats().requests;
    assert_eq!(code(&world.run(&["plan"])), 0);
    let reads = world.sandbox.billing().stats().requests - before;
    let mut script = vec![Scripted::Pass; reads as usize];
    script.push(Scripted::FaultAfterWrite(FaultKind::Reset));
    world.sandbox.billing().script(script);
    let out = world.apply();
    assert!(
        [0, 4].contains(&code(&out)),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let cut: Vec<_> = world
        .sandbox
        .journal()
        .into_iter()
        .filter(|e| e.app == "billing" && e.fault.is_some())
        .map(|e| (e.method, e.path))
        .collect();
    assert_eq!(
        cut,
        [("POST".to_string(), "/billing/customers".to_string())]
    );
    let posts = |sandbox: &Sandbox| sandbox.billing().stats().creates;
    let created = posts(&world.sandbox);

    // Whether this run or the next resolved it: one customer, linked, never re-sent.
    apply(&world);
    apply(&world);
    assert_eq!(posts(&world.sandbox), created, "a create was sent twice");
    let customer = by_email(world.sandbox.billing().records(), "lost@example.com");
    assert_eq!(customer["note"], "in flight");
    let mappings = stdout(&world.run(&["mappings"]));
    assert!(
        mappings.contains(&format!("{contact} → {}", id(&customer))),
        "{mappings}"
    );
    let letters = stdout(&world.run_on_file("dead-letters", &["list"]));
    assert!(!letters.contains("lost"), "{letters}");
}
