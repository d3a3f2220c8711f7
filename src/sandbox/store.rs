//! The records of one app, kept in listing order (updated_at, id) so that cursor pages
//! are range scans, with every write stamped by a strictly increasing clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use serde_json::{Map, Value};

use super::clock::{format_ms, Millis, WriteClock};

/// A record's place in listings: by `updated_at`, then by `id`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey {
    pub ms: Millis,
    pub id: String,
}

/// A record as stored: its JSON object, `id` first and `updated_at` last.
pub type Record = Map<String, Value>;

/// An id made of the app's prefix and a zero-padded counter ("c_000042").
pub fn id_for(prefix: &str, counter: u64) -> String {
    format!("{prefix}{counter:06}")
}

#[derive(Debug)]
pub struct Store {
    id_prefix: &'static str,
    by_key: BTreeMap<SortKey, Record>,
    updated_of: HashMap<String, Millis>,
    /// Every field name any record ever had: a query parameter that names one filters
    /// by equality, any other is ignored (as real APIs ignore typos).
    known_fields: BTreeSet<String>,
    clock: WriteClock,
    counter: u64,
}

impl Store {
    pub fn new(id_prefix: &'static str) -> Store {
        Store {
            id_prefix,
            by_key: BTreeMap::new(),
            updated_of: HashMap::new(),
            known_fields: BTreeSet::new(),
            clock: WriteClock::default(),
            counter: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Sets how far this store's write clock is off the wall clock (ms).
    pub fn set_clock_offset(&mut self, offset_ms: i64) {
        self.clock.set_offset(offset_ms);
    }

    pub fn is_known_field(&self, name: &str) -> bool {
        self.known_fields.contains(name)
    }

    pub fn get(&self, id: &str) -> Option<&Record> {
        let ms = *self.updated_of.get(id)?;
        self.by_key.get(&SortKey {
            ms,
            id: id.to_string(),
        })
    }

    /// Records strictly after `key` (all records without one), in listing order.
    pub fn after<'a>(
        &'a self,
        key: Option<&SortKey>,
    ) -> impl Iterator<Item = (&'a SortKey, &'a Record)> + 'a {
        let start = match key {
            Some(key) => Bound::Excluded(key.clone()),
            None => Bound::Unbounded,
        };
        self.by_key.range((start, Bound::Unbounded))
    }

    /// Stores a new record under a fresh server id, or under its own `id` if it has
    /// one (replacing a record with that id). Returns the stored record.
    pub fn create(&mut self, fields: Record) -> Record {
        let id = match fields.get("id") {
            Some(Value::String(id)) => id.clone(),
            Some(Value::Null) | None => return self.create_fresh(fields),
            Some(other) => other.to_string(),
        };
        self.write(&id, fields)
    }

    /// Stores a new record under a fresh server id, whatever `id` it carries (a POST:
    /// the server, not the client, names records).
    pub fn create_fresh(&mut self, fields: Record) -> Record {
        let id = self.fresh_id();
        self.write(&id, fields)
    }

    /// Replaces the record `id` (or creates it). Returns (created, record).
    pub fn replace(&mut self, id: &str, fields: Record) -> (bool, Record) {
        let created = !self.updated_of.contains_key(id);
        (created, self.write(id, fields))
    }

    /// Merges `patch` into the record `id`; `None` if there is no such record.
    pub fn merge(&mut self, id: &str, patch: Record) -> Option<Record> {
        let mut fields = self.get(id)?.clone();
        for (name, value) in patch {
            fields.insert(name, value);
        }
        Some(self.write(id, fields))
    }

    pub fn delete(&mut self, id: &str) -> bool {
        let Some(ms) = self.updated_of.remove(id) else {
            return false;
        };
        self.by_key.remove(&SortKey {
            ms,
            id: id.to_string(),
        });
        true
    }

    /// Stores `fields` as record `id` with a new `updated_at`; `id` and `updated_at`
    /// in `fields` are ignored (the server owns them).
    fn write(&mut self, id: &str, fields: Record) -> Record {
        if let Some(old_ms) = self.updated_of.get(id) {
            self.by_key.remove(&SortKey {
                ms: *old_ms,
                id: id.to_string(),
            });
        }
        let ms = self.clock.next();
        let record = compose(id, fields, ms);
        for name in record.keys() {
            if !self.known_fields.contains(name) {
                self.known_fields.insert(name.clone());
            }
        }
        self.updated_of.insert(id.to_string(), ms);
        self.by_key.insert(
            SortKey {
                ms,
                id: id.to_string(),
            },
            record.clone(),
        );
        record
    }

    fn fresh_id(&mut self) -> String {
        loop {
            self.counter += 1;
            let id = id_for(self.id_prefix, self.counter);
            if !self.updated_of.contains_key(&id) {
                return id;
            }
        }
    }
}

/// Builds a record in the order clients expect to read it: `id`, the fields,
/// `updated_at`.
pub fn compose(id: &str, fields: Record, ms: Millis) -> Record {
    let mut record = Map::with_capacity(fields.len() + 2);
    record.insert("id".to_string(), Value::String(id.to_string()));
    for (name, value) in fields {
        if name != "id" && name != "updated_at" {
            record.insert(name, value);
        }
    }
    record.insert("updated_at".to_string(), Value::String(format_ms(ms)));
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Record {
        match value {
            Value::Object(map) => map,
            _ => Record::new(),
        }
    }

    #[test]
    fn writes_move_records_to_the_end_of_the_listing() {
        let mut store = Store::new("c_");
        let a = store.create(fields(json!({"email": "a@x"})));
        let b = store.create(fields(json!({"email": "b@x"})));
        assert_eq!(a["id"], "c_000001");
        assert_eq!(b["id"], "c_000002");
        store.merge("c_000001", fields(json!({"name": "A"})));
        let ids: Vec<&str> = store.after(None).map(|(k, _)| k.id.as_str()).collect();
        assert_eq!(ids, ["c_000002", "c_000001"]);
        let first = store.get("c_000001").cloned().unwrap_or_default();
        let keys: Vec<&str> = first.keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "email", "name", "updated_at"]);
    }

    #[test]
    fn client_ids_are_kept_and_server_ids_avoid_them() {
        let mut store = Store::new("c_");
        store.create(fields(json!({"id": "c_000001"})));
        let next = store.create(fields(json!({})));
        assert_eq!(next["id"], "c_000002");
        assert!(store.delete("c_000001"));
        assert!(!store.delete("c_000001"));
        assert_eq!(store.len(), 1);
    }
}
