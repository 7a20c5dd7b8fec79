//! The byte-keyed indexes of a shard's tables (transaction keys, Call-IDs).
//!
//! Each entry keeps its key's hash, so growing a table moves entries without hashing any key
//! again. With the hash recomputed (std HashMap), every growth step re-ran SipHash over every
//! key it held: growing the transaction index past ~500,000 entries cost the shard ~280 ms of
//! CPU within two seconds (64 segments crossing their load limit together), measured at
//! 11,000 calls/s under a 40% CPU quota, and overload control took it for overload.
//!
//! The entries are split into segments, so one growth step moves 1/64 of them: a single
//! table of a million entries stalled the shard ~100-200 ms when it doubled. The hash is
//! SipHash with a random key per index (chosen keys cannot force collisions); its top bits
//! pick the segment.

use super::slab::Id;
use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};

const SEGMENTS: usize = 64;

struct Entry {
    hash: u64,
    key: Box<[u8]>,
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

impl Index {
    fn locate(&self, key: &[u8]) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        // The top bits: hashbrown uses the low ones for buckets and the top 7 as tags, so
        // the segment is chosen by bits the bucket does not depend on.
        (hash, (hash >> 58) as usize % SEGMENTS)
    }

    pub fn get(&self, key: &[u8]) -> Option<&Id> {
        let (hash, segment) = self.locate(key);
        self.segments
            .get(segment)?
            .find(hash, |e| e.hash == hash && *e.key == *key)
            .map(|e| &e.id)
    }

    pub fn insert(&mut self, key: Box<[u8]>, id: Id) -> Option<Id> {
        let (hash, segment) = self.locate(&key);
        let table = self.segments.get_mut(segment)?;
        if let Some(e) = table.find_mut(hash, |e| e.hash == hash && e.key == key) {
            return Some(std::mem::replace(&mut e.id, id));
        }
        table.insert_unique(hash, Entry { hash, key, id }, |e| e.hash);
        None
    }

    /// Remove `key` if it maps to `id` (a newer entry under the same key stays): one hash
    /// and one probe for what would otherwise be a lookup and then a removal. The key's
    /// bytes are not compared: an id is entered under one key only, so hash and id identify
    /// the entry, and not reading the key's separate allocation saves a cache miss per
    /// removal (removals were 6% of a shard's samples at a steady 10,000 calls/s).
    pub fn remove(&mut self, key: &[u8], id: Id) -> bool {
        let (hash, segment) = self.locate(key);
        let Some(table) = self.segments.get_mut(segment) else {
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

    #[test]
    fn keys_map_to_their_ids_across_segments() {
        let mut ix = Index::default();
        for i in 0..10_000u32 {
            let key = format!("call-{i}@host").into_bytes().into_boxed_slice();
            assert_eq!(ix.insert(key, Id { idx: i, gen: 1 }), None);
        }
        assert_eq!(ix.len(), 10_000);
        assert_eq!(ix.get(b"call-77@host"), Some(&Id { idx: 77, gen: 1 }));
        assert_eq!(
            ix.insert(Box::from(&b"call-77@host"[..]), Id { idx: 77, gen: 2 }),
            Some(Id { idx: 77, gen: 1 })
        );
        assert_eq!(ix.len(), 10_000);
        // The key now maps to the newer id: removing it for the older one keeps it.
        assert!(!ix.remove(b"call-77@host", Id { idx: 77, gen: 1 }));
        assert_eq!(ix.get(b"call-77@host"), Some(&Id { idx: 77, gen: 2 }));
        assert!(ix.remove(b"call-77@host", Id { idx: 77, gen: 2 }));
        assert_eq!(ix.get(b"call-77@host"), None);
        assert!(!ix.remove(b"call-77@host", Id { idx: 77, gen: 2 }));
        assert_eq!(ix.len(), 9_999);
        // Every other key is still found after the tables grew many times.
        for i in (0..10_000u32).filter(|&i| i != 77) {
            let key = format!("call-{i}@host");
            assert_eq!(
                ix.get(key.as_bytes()),
                Some(&Id { idx: i, gen: 1 }),
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
        let mut ix = Index::default();
        ix.insert(Box::from(&b"abc"[..]), Id { idx: 1, gen: 0 });
        ix.insert(Box::from(&b"abcd"[..]), Id { idx: 2, gen: 0 });
        assert_eq!(ix.get(b"abc"), Some(&Id { idx: 1, gen: 0 }));
        assert_eq!(ix.get(b"abcd"), Some(&Id { idx: 2, gen: 0 }));
        assert_eq!(ix.get(b"ab"), None);
    }
}
