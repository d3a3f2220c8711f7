//! Deterministic fake records: the same (seed, index) always gives the same person, so
//! seeded data and synthetic listings are reproducible, and generation is a few hashes
//! (the benchmark pulls a million synthetic records).

use serde_json::{json, Map, Value};

const FIRST_NAMES: [&str; 16] = [
    "ada",
    "alan",
    "grace",
    "edsger",
    "barbara",
    "donald",
    "margaret",
    "ken",
    "frances",
    "dennis",
    "radia",
    "john",
    "hedy",
    "tim",
    "katherine",
    "linus",
];
const LAST_NAMES: [&str; 16] = [
    "lovelace",
    "turing",
    "hopper",
    "dijkstra",
    "liskov",
    "knuth",
    "hamilton",
    "thompson",
    "allen",
    "ritchie",
    "perlman",
    "backus",
    "lamarr",
    "berners-lee",
    "johnson",
    "torvalds",
];
const COMPANIES: [&str; 8] = [
    "Analytical Engines Ltd",
    "Bletchley Works",
    "Cobol & Co",
    "Shortest Path GmbH",
    "Substitution Labs",
    "TeX Press",
    "Apollo Guidance",
    "Unix Brothers",
];
const PLANS: [&str; 3] = ["free", "pro", "team"];
const NOTES: [&str; 4] = [
    "",
    "pays by invoice",
    "asked for a discount",
    "migrated from the old system",
];

/// Which kind of record an app holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// CRM contacts: first_name, last_name, email, company, phone.
    Contact,
    /// Billing customers: email, name, plan, note.
    Customer,
}

/// The fields (without `id` and `updated_at`) of fake record number `index`.
pub fn fake_fields(kind: RecordKind, seed: u64, index: u64) -> Map<String, Value> {
    let mut hash = Hasher::new(seed, index);
    let first = pick(&FIRST_NAMES, hash.next());
    let last = pick(&LAST_NAMES, hash.next());
    let email = format!("{first}.{last}.{index}@example.com");
    let value = match kind {
        RecordKind::Contact => json!({
            "first_name": capitalize(first),
            "last_name": capitalize(last),
            "email": email,
            "company": pick(&COMPANIES, hash.next()),
            "phone": format!("+1-555-{:04}", hash.next() % 10_000),
        }),
        RecordKind::Customer => json!({
            "email": email,
            "name": format!("{} {}", capitalize(first), capitalize(last)),
            "plan": pick(&PLANS, hash.next()),
            "note": pick(&NOTES, hash.next()),
        }),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(), // json!({..}) is always an object
    }
}

/// The field names `fake_fields` produces, for filters on synthetic listings.
pub fn fake_field_names(kind: RecordKind) -> &'static [&'static str] {
    match kind {
        RecordKind::Contact => &["first_name", "last_name", "email", "company", "phone"],
        RecordKind::Customer => &["email", "name", "plan", "note"],
    }
}

fn pick<'a>(items: &[&'a str], hash: u64) -> &'a str {
    let len = items.len() as u64; // small constant arrays: no truncation
    items[(hash % len) as usize]
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// splitmix64: a tiny, well-mixed sequence from (seed, index), far cheaper than seeding
/// a full RNG per record.
struct Hasher(u64);

impl Hasher {
    fn new(seed: u64, index: u64) -> Hasher {
        Hasher(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_index_same_record() {
        let a = fake_fields(RecordKind::Contact, 7, 3);
        assert_eq!(a, fake_fields(RecordKind::Contact, 7, 3));
        assert_ne!(a, fake_fields(RecordKind::Contact, 8, 3));
        assert!(a["email"]
            .as_str()
            .is_some_and(|e| e.ends_with(".3@example.com")));
    }

    #[test]
    fn customers_have_a_plan() {
        let c = fake_fields(RecordKind::Customer, 1, 1);
        let plan = c["plan"].as_str().unwrap_or_default();
        assert!(PLANS.contains(&plan));
    }
}
