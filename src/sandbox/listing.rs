//! What a listing reads from: the stored records, or synthetic ones computed from their
//! index (benchmark mode). Paging asks only two questions of either — "the matching
//! records after this key" and "the matching records at these positions" — so every
//! paging style works on both.

use serde_json::Value;

use super::clock::Millis;
use super::config::FilterMode;
use super::fake::{fake_field_names, fake_fields, RecordKind};
use super::store::{compose, id_for, Record, SortKey, Store};

/// `updated_at` of synthetic record 0 (2026-01-01T00:00:00.000Z); record i is i ms later.
pub const SYNTHETIC_BASE_MS: Millis = 1_767_225_600_000;
const NS_PER_MS: i128 = 1_000_000;

/// The record filters of one listing request.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `updated_since` in ns since the epoch, with how to apply it.
    pub since: Option<(i128, FilterMode)>,
    /// Equality filters on record fields (`?email=a@b.c`).
    pub fields: Vec<(String, String)>,
}

impl Filter {
    fn matches(&self, key: &SortKey, record: &Record) -> bool {
        self.since_matches(key.ms) && self.fields_match(record)
    }

    fn since_matches(&self, ms: Millis) -> bool {
        let updated = i128::from(ms) * NS_PER_MS;
        match self.since {
            Some((since, FilterMode::Inclusive)) => updated >= since,
            Some((since, FilterMode::Exclusive)) => updated > since,
            Some((_, FilterMode::Ignored)) | None => true,
        }
    }

    fn fields_match(&self, record: &Record) -> bool {
        self.fields
            .iter()
            .all(|(name, wanted)| record.get(name).is_some_and(|v| equals(v, wanted)))
    }
}

/// A query value equals a field when it is the string itself, the same number, or the
/// same bool.
fn equals(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Number(n) => wanted.parse::<f64>().is_ok_and(|w| n.as_f64() == Some(w)),
        Value::Bool(b) => wanted.parse::<bool>() == Ok(*b),
        _ => false,
    }
}

/// One page's worth of a positional listing.
pub struct Window {
    pub records: Vec<Record>,
    /// How many records match in all.
    pub total: usize,
}

pub enum Source<'a> {
    Stored(&'a Store),
    Synthetic(&'a Synthetic),
}

/// Benchmark mode: `count` records generated from their index, nothing stored.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub count: u64,
    pub kind: RecordKind,
    pub seed: u64,
    pub id_prefix: &'static str,
}

impl Synthetic {
    fn key(&self, index: u64) -> SortKey {
        SortKey {
            ms: SYNTHETIC_BASE_MS + index,
            id: id_for(self.id_prefix, index + 1),
        }
    }

    fn record(&self, index: u64) -> (SortKey, Record) {
        let key = self.key(index);
        let fields = fake_fields(self.kind, self.seed, index + 1);
        let record = compose(&key.id, fields, key.ms);
        (key, record)
    }

    /// The record with this id, if the id is one of the synthetic ones.
    pub fn get(&self, id: &str) -> Option<Record> {
        let number: u64 = id.strip_prefix(self.id_prefix)?.parse().ok()?;
        let index = number.checked_sub(1).filter(|i| *i < self.count)?;
        let (key, record) = self.record(index);
        (key.id == id).then_some(record)
    }

    /// The first index not excluded by `updated_since` (records are in index order).
    fn first_index(&self, filter: &Filter) -> u64 {
        let base = i128::from(SYNTHETIC_BASE_MS) * NS_PER_MS;
        let first = match filter.since {
            Some((since, FilterMode::Inclusive)) => {
                (since - base + NS_PER_MS - 1).div_euclid(NS_PER_MS)
            }
            Some((since, FilterMode::Exclusive)) => (since - base).div_euclid(NS_PER_MS) + 1,
            Some((_, FilterMode::Ignored)) | None => 0,
        };
        u64::try_from(first.clamp(0, i128::from(self.count))).unwrap_or(self.count)
    }

    /// The first index strictly after `key`.
    fn index_after(&self, key: &SortKey) -> u64 {
        let Some(index) = key.ms.checked_sub(SYNTHETIC_BASE_MS) else {
            return 0;
        };
        if self.key(index).id > key.id {
            index
        } else {
            index + 1
        }
    }
}

impl Source<'_> {
    /// Up to `take` matching records strictly after `key`, with their keys.
    pub fn after(
        &self,
        key: Option<&SortKey>,
        filter: &Filter,
        take: usize,
    ) -> Vec<(SortKey, Record)> {
        match self {
            Source::Stored(store) => store
                .after(key)
                .filter(|(k, r)| filter.matches(k, r))
                .take(take)
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect(),
            Source::Synthetic(syn) => {
                let from = key
                    .map_or(0, |k| syn.index_after(k))
                    .max(syn.first_index(filter));
                (from..syn.count)
                    .map(|i| syn.record(i))
                    .filter(|(_, r)| filter.fields_match(r))
                    .take(take)
                    .collect()
            }
        }
    }

    /// The matching records at positions `offset..offset + take`, and how many match.
    pub fn window(&self, filter: &Filter, offset: usize, take: usize) -> Window {
        match self {
            Source::Stored(store) => {
                let mut total = 0;
                let mut records = Vec::new();
                for (_, record) in store.after(None).filter(|(k, r)| filter.matches(k, r)) {
                    if total >= offset && records.len() < take {
                        records.push(record.clone());
                    }
                    total += 1;
                }
                Window { records, total }
            }
            Source::Synthetic(syn) if filter.fields.is_empty() => {
                syn.fast_window(filter, offset, take)
            }
            Source::Synthetic(syn) => {
                let from = syn.first_index(filter);
                let matching = (from..syn.count)
                    .map(|i| syn.record(i).1)
                    .filter(|r| filter.fields_match(r));
                let mut total = 0;
                let mut records = Vec::new();
                for record in matching {
                    if total >= offset && records.len() < take {
                        records.push(record);
                    }
                    total += 1;
                }
                Window { records, total }
            }
        }
    }

    /// Whether `name` is a record field, so that `?name=value` filters by it.
    pub fn is_known_field(&self, name: &str) -> bool {
        match self {
            Source::Stored(store) => store.is_known_field(name),
            Source::Synthetic(syn) => {
                name == "id" || name == "updated_at" || fake_field_names(syn.kind).contains(&name)
            }
        }
    }
}

impl Synthetic {
    /// A window computed from indexes alone: constant work per record served.
    fn fast_window(&self, filter: &Filter, offset: usize, take: usize) -> Window {
        let first = self.first_index(filter);
        let total = self.count - first;
        let start = first.saturating_add(offset as u64).min(self.count);
        let end = start.saturating_add(take as u64).min(self.count);
        Window {
            records: (start..end).map(|i| self.record(i).1).collect(),
            total: usize::try_from(total).unwrap_or(usize::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(count: u64) -> Synthetic {
        Synthetic {
            count,
            kind: RecordKind::Contact,
            seed: 1,
            id_prefix: "c_",
        }
    }

    #[test]
    fn synthetic_cursor_continues_after_the_key() {
        let syn = synthetic(10);
        let source = Source::Synthetic(&syn);
        let first = source.after(None, &Filter::default(), 3);
        let last_key = first.last().map(|(k, _)| k.clone());
        let next = source.after(last_key.as_ref(), &Filter::default(), 3);
        assert_eq!(next[0].0.id, "c_000004");
    }

    #[test]
    fn synthetic_since_is_inclusive_or_exclusive() {
        let syn = synthetic(10);
        let at_3 = i128::from(SYNTHETIC_BASE_MS + 3) * NS_PER_MS;
        let inclusive = Filter {
            since: Some((at_3, FilterMode::Inclusive)),
            ..Filter::default()
        };
        let exclusive = Filter {
            since: Some((at_3, FilterMode::Exclusive)),
            ..Filter::default()
        };
        assert_eq!(Source::Synthetic(&syn).window(&inclusive, 0, 100).total, 7);
        assert_eq!(Source::Synthetic(&syn).window(&exclusive, 0, 100).total, 6);
        assert_eq!(
            syn.get("c_000010").map(|r| r["id"].clone()),
            Some("c_000010".into())
        );
        assert_eq!(syn.get("c_000011"), None);
    }
}
