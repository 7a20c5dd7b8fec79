//! The deadlines of one worker: a min-heap of (deadline, call slot, generation, kind). Entries
//! are never removed when a timer is cancelled or re-armed: the owner keeps the current deadline
//! of each timer in the call and ignores popped entries that no longer match it. Cancelling is
//! therefore free, and a stale entry costs one pop when its time comes.

use crate::time::Micros;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub at: Micros,
    pub slot: u32,
    pub gen: u32,
    pub kind: u8,
}

#[derive(Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl TimerQueue {
    pub fn push(&mut self, at: Micros, slot: u32, gen: u32, kind: u8) {
        self.heap.push(Reverse(Entry {
            at,
            slot,
            gen,
            kind,
        }));
    }

    /// The earliest entry due at `now`, removed.
    pub fn pop_due(&mut self, now: Micros) -> Option<Entry> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn next_deadline(&self) -> Option<Micros> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let mut q = TimerQueue::default();
        q.push(30, 1, 0, 0);
        q.push(10, 2, 0, 0);
        q.push(20, 3, 0, 1);
        assert_eq!(q.next_deadline(), Some(10));
        assert_eq!(q.pop_due(9), None);
        assert_eq!(q.pop_due(25).map(|e| e.slot), Some(2));
        assert_eq!(q.pop_due(25).map(|e| e.slot), Some(3));
        assert_eq!(q.pop_due(25), None);
        assert_eq!(q.len(), 1);
    }
}
