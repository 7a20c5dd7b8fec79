//! A generation-checked slab stored in fixed-size chunks, and the `Id`s it hands out.
//!
//! Ids go stale when their slot is freed, so a late timer or a forged branch never reaches
//! a reused slot. Storage grows a chunk at a time and never moves what it holds: a single
//! growing Vec would copy every transaction (hundreds of MB at carrier rates) each time it
//! doubled, stalling the shard for ~100 ms. A chunk's slots are written as they are first
//! used, never all at once, so the first-touch page faults of a new chunk (1.4 MB for 4096
//! transactions) are spread over its first uses instead of falling on one datagram.

/// Slots per chunk.
const CHUNK: usize = 4096;

/// A slot index plus the generation it was allocated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Id {
    pub idx: u32,
    pub gen: u32,
}

type Slot<T> = (u32, Option<T>);

pub struct Slab<T> {
    /// Each chunk is allocated with room for CHUNK slots and never grows past it (so it never
    /// moves); slots are pushed as they are first used.
    chunks: Vec<Vec<Slot<T>>>,
    /// Slots ever used (the next fresh index).
    used: usize,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            used: 0,
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, idx: u32) -> Option<&Slot<T>> {
        let idx = idx as usize;
        self.chunks.get(idx / CHUNK)?.get(idx % CHUNK)
    }

    fn slot_mut(&mut self, idx: u32) -> Option<&mut Slot<T>> {
        let idx = idx as usize;
        self.chunks.get_mut(idx / CHUNK)?.get_mut(idx % CHUNK)
    }

    pub fn insert(&mut self, value: T) -> Id {
        self.len += 1;
        if let Some(idx) = self.free.pop() {
            if let Some(slot) = self.slot_mut(idx) {
                slot.0 = slot.0.wrapping_add(1);
                slot.1 = Some(value);
                return Id { idx, gen: slot.0 };
            }
        }
        let idx = self.used;
        if idx / CHUNK == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.used += 1;
        // Ids are u32: the tables' bounds (limits.rs) keep them far below.
        assert!(idx <= u32::MAX as usize, "slab index overflow");
        let chunk = self.chunks.last_mut();
        assert!(
            chunk
                .as_ref()
                .is_some_and(|c| c.len() == idx % CHUNK && c.len() < CHUNK),
            "slab chunks fill in order"
        );
        if let Some(chunk) = chunk {
            chunk.push((0, Some(value)));
        }
        Id {
            idx: idx as u32,
            gen: 0,
        }
    }

    pub fn get(&self, id: Id) -> Option<&T> {
        match self.slot(id.idx) {
            Some((gen, Some(v))) if *gen == id.gen => Some(v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, id: Id) -> Option<&mut T> {
        match self.slot_mut(id.idx) {
            Some((gen, Some(v))) if *gen == id.gen => Some(v),
            _ => None,
        }
    }

    pub fn remove(&mut self, id: Id) -> Option<T> {
        let slot = self.slot_mut(id.idx)?;
        if slot.0 != id.gen || slot.1.is_none() {
            return None;
        }
        let value = slot.1.take();
        self.len -= 1;
        self.free.push(id.idx);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_go_stale_and_slots_are_reused_across_chunks() {
        let mut s = Slab::default();
        let ids: Vec<Id> = (0..3 * CHUNK + 5).map(|i| s.insert(i)).collect();
        assert_eq!(s.len(), 3 * CHUNK + 5);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(s.get(*id), Some(&i));
        }
        let last = ids[3 * CHUNK + 4];
        assert_eq!(s.remove(last), Some(3 * CHUNK + 4));
        assert_eq!(s.remove(last), None, "removed twice");
        assert_eq!(s.get(last), None);
        let again = s.insert(7);
        assert_eq!(again.idx, last.idx, "the freed slot is reused");
        assert_ne!(again.gen, last.gen);
        assert_eq!(s.get(last), None, "the old id stays stale");
        assert_eq!(s.get_mut(again).copied(), Some(7));
        assert_eq!(
            s.get(Id {
                idx: 10 * CHUNK as u32,
                gen: 0
            }),
            None
        );
        assert_eq!(s.len(), 3 * CHUNK + 5);
    }
}
