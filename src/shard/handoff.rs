//! Datagrams handed from the shard that received them to the shard that owns their call.
//!
//! One `HandoffBatch` carries every foreign datagram of one receive batch for one owner: one
//! allocation for the bytes, one for the item list, one channel operation and at most one
//! wake-up of the owner. The channel between each ordered pair of shards holds at most
//! `limits::HANDOFF_QUEUE_BATCHES_MAX` batches; when it is full the batch is dropped and
//! counted (the receiving shard never blocks on a slow owner).

use crate::limits;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A counter alone on its cache lines (128 bytes covers adjacent-line prefetching), so two
/// shards bumping neighbouring counters do not slow each other down.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded(AtomicU64);

/// Batches successfully handed from each shard to each other shard, shared by all shards.
///
/// The owner compares `sent(from, to)` with the batches it has taken from that channel: when
/// it is ahead, a batch is certainly in the channel, so the owner can take it without
/// waiting (and without leaving a waker behind in glommio, see run.rs). The sender
/// increments after its push with Release; the owner reads with Acquire, which makes the
/// pushed batch visible to its pop. One atomic add per batch, not per datagram.
#[derive(Debug)]
pub struct HandoffCounters {
    shards: usize,
    sent: Vec<Padded>,
}

impl HandoffCounters {
    pub fn new(shards: usize) -> HandoffCounters {
        HandoffCounters {
            shards,
            sent: (0..shards * shards).map(|_| Padded::default()).collect(),
        }
    }

    /// Record one batch pushed into the channel from `from` to `to`.
    pub fn record_sent(&self, from: usize, to: usize) {
        if let Some(counter) = self.sent.get(from * self.shards + to) {
            counter.0.fetch_add(1, Ordering::Release);
        }
    }

    /// Batches pushed so far from `from` to `to`.
    pub fn sent(&self, from: usize, to: usize) -> u64 {
        self.sent
            .get(from * self.shards + to)
            .map_or(0, |counter| counter.0.load(Ordering::Acquire))
    }
}

#[derive(Clone, Copy, Debug)]
struct Item {
    received: Instant,
    from: SocketAddr,
    len: u32,
}

/// Datagrams for one owner, in arrival order.
#[derive(Debug, Default)]
pub struct HandoffBatch {
    bytes: Vec<u8>,
    items: Vec<Item>,
}

impl HandoffBatch {
    pub fn new() -> HandoffBatch {
        HandoffBatch::default()
    }

    /// Copy one datagram in (the one allocation per handed-off datagram the shell allows,
    /// amortised over the batch).
    pub fn push(&mut self, received: Instant, from: SocketAddr, data: &[u8]) {
        assert!(data.len() <= limits::DATAGRAM_BYTES_MAX);
        assert!(self.items.len() < limits::BATCH_DATAGRAMS_MAX);
        self.bytes.extend_from_slice(data);
        self.items.push(Item {
            received,
            from,
            len: data.len() as u32,
        });
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.items.len() >= limits::BATCH_DATAGRAMS_MAX
    }

    /// The datagrams with their receive time and source address.
    pub fn iter(&self) -> impl Iterator<Item = (Instant, SocketAddr, &[u8])> + '_ {
        let mut offset = 0usize;
        self.items.iter().map(move |item| {
            let end = offset + item.len as usize;
            let data = self.bytes.get(offset..end).unwrap_or(&[]);
            offset = end;
            (item.received, item.from, data)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_per_ordered_pair() {
        let counters = HandoffCounters::new(3);
        counters.record_sent(0, 2);
        counters.record_sent(0, 2);
        counters.record_sent(2, 0);
        assert_eq!(counters.sent(0, 2), 2);
        assert_eq!(counters.sent(2, 0), 1);
        assert_eq!(counters.sent(0, 1), 0);
        assert_eq!(counters.sent(7, 7), 0, "out of range reads as nothing sent");
        assert!(std::mem::align_of::<Padded>() >= 128);
    }

    #[test]
    fn batch_keeps_order_times_and_sources() {
        let t0 = Instant::now();
        let a: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let b: SocketAddr = "[2001:db8::2]:5070".parse().unwrap();
        let mut batch = HandoffBatch::new();
        assert!(batch.is_empty());
        batch.push(t0, a, b"first");
        batch.push(t0, b, b"");
        batch.push(t0, a, b"third datagram");
        assert_eq!(batch.len(), 3);
        let got: Vec<_> = batch.iter().map(|(t, f, d)| (t, f, d.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (t0, a, b"first".to_vec()),
                (t0, b, Vec::new()),
                (t0, a, b"third datagram".to_vec())
            ]
        );
    }

    #[test]
    fn batch_is_full_at_the_receive_batch_size() {
        let mut batch = HandoffBatch::new();
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..limits::BATCH_DATAGRAMS_MAX {
            assert!(!batch.is_full());
            batch.push(Instant::now(), from, b"x");
        }
        assert!(batch.is_full());
    }
}
