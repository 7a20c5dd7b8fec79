//! The byte-keyed indexes of a shard's tables (transaction keys, Call-IDs).
//!
//! An entry is a key's hash and the id of the record entered under it: the key itself stays
//! in the record, and a lookup compares against it there (`key_of`). Keeping a copy per entry
//! cost an allocation per transaction and per call, and a cache miss to reach it; the record
//! is read anyway once found. The record keeps the hash too, so a removal (every transaction
//! and call, 32 s after it ends, when nothing of it is in cache) neither hashes the key
//! again nor reads it: at a steady 7,000 calls/s, removals were the index's second-largest
//! cost (10 ms of CPU per second) once the tables were full.
//!
//! Growing a table moves entries by their stored hash. The entries are split into segments,
//! so one growth step moves 1/64 of them: a single table of a million entries stalled the
//! shard ~100-200 ms when it doubled. The hash is SipHash with a random key per index
//! (chosen keys cannot force collisions); its top bits pick the segment.

use super::slab::Id;
use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};

const SEGMENTS: usize = 64;

struct Entry {
    hash: u64,
    id: Id,
}

pub struct Index {
    hasher: RandomState,
    segments: Vec<HashTable<Entry>>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            hasher: RandomState::new(),
            segments: (0..SEGMENTS).map(|_| HashTable::new()).collect(),
        }
    }
}

/// The segment of a hash: its top bits (hashbrown uses the low ones for buckets and the top
/// 7 as tags, so the segment is chosen by bits the bucket does not depend on).
fn segment(hash: u64) -> usize {
    (hash >> 58) as usize % SEGMENTS
}

impl Index {
    /// The hash `key` is entered and found under; its record keeps it for `remove`.
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The id entered under `key` (whose hash is `hash`). `key_of` gives the key an id's
    /// record holds (None for a record that is gone).
    pub fn get<'a>(
        &self,
        hash: u64,
        key: &[u8],
        key_of: impl Fn(Id) -> Option<&'a [u8]>,
    ) -> Option<Id> {
        self.segments
            .get(segment(hash))?
            .find(hash, |e| e.hash == hash && key_of(e.id) == Some(key))
            .map(|e| e.id)
    }

    /// Enter `id` under `key` (whose hash is `hash`); an id already entered under the same
    /// key is replaced, and returned.
    pub fn insert<'a>(
        &mut self,
        hash: u64,
        key: &[u8],
        id: Id,
        key_of: impl Fn(Id) -> Option<&'a [u8]>,
    ) -> Option<Id> {
        let table = self.segments.get_mut(segment(hash))?;
        if let Some(e) = table.find_mut(hash, |e| e.hash == hash && key_of(e.id) == Some(key)) {
            return Some(std::mem::replace(&mut e.id, id));
        }
        table.insert_unique(hash, Entry { hash, id }, |e| e.hash);
        None
    }

    /// Remove `id`, entered under a key whose hash is `hash` (a newer id under the same key
    /// stays). An id is entered under one key only, so hash and id identify the entry.
    pub fn remove(&mut self, hash: u64, id: Id) -> bool {
        let Some(table) = self.segments.get_mut(segment(hash)) else {
            return false;
        };
        match table.find_entry(hash, |e| e.hash == hash && e.id == id) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }

    pub fn len(&self) -> usize {
        self.segments.iter().map(HashTable::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(HashTable::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records as a test's slab: the key each id was entered under, by id.idx.
    fn key_in<'a>(keys: &'a [Vec<u8>]) -> impl Fn(Id) -> Option<&'a [u8]> + 'a {
        |id| keys.get(id.idx as usize).map(Vec::as_slice)
    }

    #[test]
    fn keys_map_to_their_ids_across_segments() {
        let mut ix = Index::default();
        let keys: Vec<Vec<u8>> = (0..10_000u32)
            .map(|i| format!("call-{i}@host").into_bytes())
            .collect();
        for (i, key) in keys.iter().enumerate() {
            let id = Id {
                idx: i as u32,
                gen: 1,
            };
            assert_eq!(ix.insert(ix.hash(key), key, id, key_in(&keys)), None);
        }
        assert_eq!(ix.len(), 10_000);
        let find = |ix: &Index, key: &[u8]| ix.get(ix.hash(key), key, key_in(&keys));
        assert_eq!(find(&ix, b"call-77@host"), Some(Id { idx: 77, gen: 1 }));
        let h77 = ix.hash(b"call-77@host");
        assert_eq!(
            ix.insert(h77, b"call-77@host", Id { idx: 77, gen: 2 }, key_in(&keys)),
            Some(Id { idx: 77, gen: 1 })
        );
        assert_eq!(ix.len(), 10_000);
        // The key now maps to the newer id: removing it for the older one keeps it.
        assert!(!ix.remove(h77, Id { idx: 77, gen: 1 }));
        assert_eq!(find(&ix, b"call-77@host"), Some(Id { idx: 77, gen: 2 }));
        assert!(ix.remove(h77, Id { idx: 77, gen: 2 }));
        assert_eq!(find(&ix, b"call-77@host"), None);
        assert!(!ix.remove(h77, Id { idx: 77, gen: 2 }));
        assert_eq!(ix.len(), 9_999);
        // Every other key is still found after the tables grew many times.
        for i in (0..10_000u32).filter(|&i| i != 77) {
            let key = format!("call-{i}@host");
            assert_eq!(
                find(&ix, key.as_bytes()),
                Some(Id { idx: i, gen: 1 }),
                "{key}"
            );
        }
        // The keys spread: no segment holds more than twice its share.
        let most = ix.segments.iter().map(HashTable::len).max().unwrap_or(0);
        assert!(most < 2 * 10_000 / SEGMENTS, "{most}");
        assert!(!ix.is_empty());
    }

    #[test]
    fn a_key_that_is_a_prefix_of_another_is_a_different_key() {
        let keys = vec![b"abc".to_vec(), b"abcd".to_vec()];
        let mut ix = Index::default();
        for (i, key) in keys.iter().enumerate() {
            let id = Id {
                idx: i as u32,
                gen: 0,
            };
            ix.insert(ix.hash(key), key, id, key_in(&keys));
        }
        let find = |key: &[u8]| ix.get(ix.hash(key), key, key_in(&keys));
        assert_eq!(find(b"abc"), Some(Id { idx: 0, gen: 0 }));
        assert_eq!(find(b"abcd"), Some(Id { idx: 1, gen: 0 }));
        assert_eq!(find(b"ab"), None);
    }

    #[test]
    fn an_entry_whose_record_is_gone_or_rekeyed_is_not_found() {
        let mut keys = vec![b"branch-1".to_vec()];
        let mut ix = Index::default();
        let h = ix.hash(b"branch-1");
        ix.insert(h, b"branch-1", Id { idx: 0, gen: 3 }, key_in(&keys));
        // Same hash, but the record now holds another key: no match on the hash alone.
        keys[0] = b"branch-2".to_vec();
        assert_eq!(ix.get(h, b"branch-1", key_in(&keys)), None);
        keys.clear();
        assert_eq!(ix.get(h, b"branch-1", key_in(&keys)), None);
    }
}
