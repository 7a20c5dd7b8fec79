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

/// A call slot whose timers this queue drives: its generation and one current deadline per
/// timer kind (`Micros::MAX`: not armed).
pub trait Timed {
    fn gen(&self) -> u32;
    fn deadlines(&mut self) -> &mut [Micros];
}

/// Per-slot timer bookkeeping shared by the UAC and the UAS.
pub mod slots {
    use super::{Timed, TimerQueue};
    use crate::time::Micros;

    const NEVER: Micros = Micros::MAX;

    /// Arm timer `kind` of `slot` at `at` (current deadline plus a queue entry).
    pub fn arm<T: Timed>(
        calls: &mut [T],
        timers: &mut TimerQueue,
        slot: u32,
        kind: u8,
        at: Micros,
    ) {
        if let Some(c) = calls.get_mut(slot as usize) {
            if let Some(d) = c.deadlines().get_mut(kind as usize) {
                *d = at;
            }
            timers.push(at, slot, c.gen(), kind);
        }
    }

    /// Set a deadline without a queue entry yet: the transaction timeout (Timer B/F/H) is
    /// only queued when the retransmission timer reaches it, so a transaction answered in
    /// time leaves no 32 s entry behind.
    pub fn set_deadline<T: Timed>(calls: &mut [T], slot: u32, kind: u8, at: Micros) {
        if let Some(d) = calls
            .get_mut(slot as usize)
            .and_then(|c| c.deadlines().get_mut(kind as usize))
        {
            *d = at;
        }
    }

    /// The next retransmission (`retrans`) at `at`, or the transaction timeout (`timeout`,
    /// whose deadline was set) if that comes first.
    pub fn rearm_retrans<T: Timed>(
        calls: &mut [T],
        timers: &mut TimerQueue,
        slot: u32,
        (retrans, timeout): (u8, u8),
        at: Micros,
    ) {
        let due = calls
            .get_mut(slot as usize)
            .and_then(|c| c.deadlines().get(timeout as usize).copied())
            .unwrap_or(NEVER);
        if due != NEVER && at >= due {
            arm(calls, timers, slot, timeout, due);
        } else {
            arm(calls, timers, slot, retrans, at);
        }
    }

    /// Cancel timers `kinds` of `slot` (their queue entries become stale).
    pub fn disarm<T: Timed>(calls: &mut [T], slot: u32, kinds: &[u8]) {
        if let Some(c) = calls.get_mut(slot as usize) {
            for &k in kinds {
                if let Some(d) = c.deadlines().get_mut(k as usize) {
                    *d = NEVER;
                }
            }
        }
    }
}
