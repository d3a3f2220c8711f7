//! What a JSON-lines target holds, in memory: for every record with a line, the hash
//! of its id → the hash of the fields of its last line.
//!
//! An export of a million records keeps a million entries for the whole run, so the
//! layout is chosen for memory: one sorted array of 16-byte entries, found through a
//! directory of the keys' top bits, plus a small hash map of the entries added since
//! the last merge. A hash map of all entries would take over twice that at rest and
//! three times while it grows (its table doubles, old and new side by side).
//!
//! Keys are mixed (a bijection, so distinct ids stay distinct) before use: ids that
//! differ only in their last characters differ only in the low bits of their FNV
//! hash, and the directory splits by the high ones.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Entries added since the last merge kept in the hash map; then sorted into the array.
const MERGE_AT: usize = 1 << 16;
/// The directory splits the keys by their top `DIRECTORY_BITS` bits.
const DIRECTORY_BITS: u32 = 16;

#[derive(Debug, Default)]
pub struct LineIndex {
    /// (mixed id hash, fields hash), sorted by key, each key once.
    sorted: Vec<(u64, u64)>,
    /// `directory[b]..directory[b + 1]`: where the keys with top bits `b` are in `sorted`.
    directory: Vec<u32>,
    /// Added since the last merge (mixed id hash → fields hash); wins over `sorted`.
    recent: HashMap<u64, u64, BuildHasherDefault<MixedKey>>,
}

impl LineIndex {
    /// An index of `entries` (id hash, fields hash) in the order they were written:
    /// a later entry of an id replaces an earlier one.
    pub fn from_entries(entries: impl Iterator<Item = (u64, u64)>) -> LineIndex {
        let mut sorted: Vec<(u64, u64)> = entries.map(|(id, fields)| (mix(id), fields)).collect();
        // Reversed, a stable sort puts an id's latest entry first; dedup keeps the first.
        sorted.reverse();
        sorted.sort_by_key(|&(key, _)| key);
        sorted.dedup_by_key(|&mut (key, _)| key);
        sorted.shrink_to_fit();
        let mut index = LineIndex {
            sorted,
            ..LineIndex::default()
        };
        index.rebuild_directory();
        index
    }

    /// The fields hash of the last line of the record with this id hash.
    pub fn get(&self, id: u64) -> Option<u64> {
        let key = mix(id);
        match self.recent.get(&key) {
            Some(fields) => Some(*fields),
            None => self.position(key).map(|i| self.sorted[i].1),
        }
    }

    /// Where `key` is in `sorted`: a binary search within its directory bucket (a few
    /// entries, since mixed keys are spread evenly).
    fn position(&self, key: u64) -> Option<usize> {
        let bucket = (key >> (64 - DIRECTORY_BITS)) as usize;
        let start = *self.directory.get(bucket)? as usize;
        let end = *self.directory.get(bucket + 1)? as usize;
        let slice = self.sorted.get(start..end)?;
        slice
            .binary_search_by_key(&key, |&(k, _)| k)
            .ok()
            .map(|i| start + i)
    }

    /// Records that the record with this id hash now ends with a line of these fields.
    pub fn insert(&mut self, id: u64, fields: u64) {
        self.recent.insert(mix(id), fields);
        if self.recent.len() >= MERGE_AT {
            self.merge();
        }
    }

    /// Moves the recent entries into the sorted array.
    fn merge(&mut self) {
        let mut added: Vec<(u64, u64)> = Vec::with_capacity(self.recent.len());
        let recent = std::mem::take(&mut self.recent);
        for (key, fields) in recent {
            match self.position(key) {
                Some(i) => self.sorted[i].1 = fields,
                None => added.push((key, fields)),
            }
        }
        added.sort_unstable_by_key(|&(key, _)| key);
        // Merge from the back into the grown array: each entry moves once.
        let old = self.sorted.len();
        self.sorted.resize(old + added.len(), (0, 0));
        let (mut i, mut j, mut to) = (old, added.len(), self.sorted.len());
        while j > 0 {
            to -= 1;
            if i > 0 && self.sorted[i - 1].0 > added[j - 1].0 {
                i -= 1;
                self.sorted[to] = self.sorted[i];
            } else {
                j -= 1;
                self.sorted[to] = added[j];
            }
        }
        self.rebuild_directory();
    }

    fn rebuild_directory(&mut self) {
        let buckets = 1usize << DIRECTORY_BITS;
        self.directory.clear();
        self.directory.reserve_exact(buckets + 1);
        let mut at = 0usize;
        for bucket in 0..buckets {
            while at < self.sorted.len()
                && ((self.sorted[at].0 >> (64 - DIRECTORY_BITS)) as usize) < bucket
            {
                at += 1;
            }
            self.directory.push(at as u32);
        }
        self.directory.push(self.sorted.len() as u32);
    }
}

/// The hasher of `recent`: its keys are mixed already, so they are their own hash.
#[derive(Default)]
struct MixedKey(u64);

impl Hasher for MixedKey {
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed (`write_u64`); anything else folds in bytewise.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The finaliser of MurmurHash3 (fmix64): a bijection on u64 that spreads every input
/// bit over the whole output.
fn mix(mut key: u64) -> u64 {
    key ^= key >> 33;
    key = key.wrapping_mul(0xff51_afd7_ed55_8ccd);
    key ^= key >> 33;
    key = key.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    key ^= key >> 33;
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(index: &LineIndex) -> usize {
        index.sorted.len() + index.recent.len()
    }

    #[test]
    fn a_later_entry_of_an_id_replaces_an_earlier_one() {
        let index = LineIndex::from_entries([(1, 10), (2, 20), (1, 11)].into_iter());
        assert_eq!(len(&index), 2);
        assert_eq!(index.get(1), Some(11));
        assert_eq!(index.get(2), Some(20));
        assert_eq!(index.get(3), None);
    }

    #[test]
    fn entries_added_over_many_merges_are_all_found_with_their_latest_fields() {
        let loaded = (0..1_000u64).map(|id| (id * 7, id));
        let mut index = LineIndex::from_entries(loaded);
        let total = 3 * MERGE_AT as u64 + 123;
        for id in 0..total {
            index.insert(id, id + 1);
        }
        // Ids loaded and then added again carry the added fields.
        for id in (0..total).step_by(97) {
            assert_eq!(index.get(id), Some(id + 1), "id {id}");
        }
        assert_eq!(index.get(7 * 999), Some(7 * 999 + 1));
        assert_eq!(index.get(total + 5), None);
        let loaded_beyond: u64 = (0..1_000u64).filter(|id| id * 7 >= total).count() as u64;
        assert_eq!(len(&index) as u64, total + loaded_beyond);
        // Every merge left the array sorted, each key once.
        assert!(index.sorted.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn ids_that_differ_in_their_last_character_spread_over_the_directory() {
        let ids = (0..100_000u64).map(|n| (n, 0));
        let index = LineIndex::from_entries(ids);
        let largest = index
            .directory
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        // 100,000 keys over 65,536 buckets: a few per bucket, never a pile.
        assert!(largest < 16, "a bucket holds {largest} keys");
    }
}
