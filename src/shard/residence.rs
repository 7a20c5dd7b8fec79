//! Measuring residence time in the shell: which datagram caused which transmit, and when
//! that transmit was sent.
//!
//! Per loop round the core's transmit queue only grows (it is cleared after sending), so
//! after each `handle_datagram` the queue's length marks the end of what that datagram
//! caused. `Recorder` keeps one mark per datagram that caused something (its receive time,
//! the queue length after it); while sending, transmit `i` belongs to the first mark whose
//! end is past `i`. Transmits queued before the round's first datagram or after its last
//! (timers, probes) were caused by no datagram and are not recorded. Each `sendmmsg` batch
//! is timed once and its datagrams recorded by the kind of their first line. Nothing here
//! allocates once the vectors have grown to a round's size.

use crate::control::residence::{kind_of, Residence};
use crate::limits;
use std::time::Instant;

pub(crate) struct Recorder {
    pub histograms: Residence,
    /// Transmits queued when the round began.
    base: usize,
    /// (receive time, transmit queue length after the datagram), in order.
    marks: Vec<(Instant, usize)>,
    /// While sending: the mark of the next transmit.
    cursor: usize,
    /// The datagrams of the batch being sent that a datagram caused: (kind, receive time).
    batch: Vec<(usize, Instant)>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            histograms: Residence::new(),
            base: 0,
            marks: Vec::with_capacity(2 * limits::BATCH_DATAGRAMS_MAX),
            cursor: 0,
            batch: Vec::with_capacity(limits::BATCH_DATAGRAMS_MAX),
        }
    }

    /// A loop round begins with `queued` transmits already waiting.
    pub fn begin_round(&mut self, queued: usize) {
        self.base = queued;
        self.marks.clear();
        self.cursor = 0;
        self.batch.clear();
    }

    /// A datagram received at `received` was handled; `queued` transmits wait now.
    pub fn handled(&mut self, received: Instant, queued: usize) {
        let last = self.marks.last().map_or(self.base, |m| m.1);
        if queued > last {
            self.marks.push((received, queued));
        }
    }

    /// Transmit `index` (in queue order) with payload `data` goes into the current batch.
    pub fn queued(&mut self, index: usize, data: &[u8]) {
        if index < self.base {
            return;
        }
        while self.marks.get(self.cursor).is_some_and(|m| m.1 <= index) {
            self.cursor += 1;
        }
        if let Some((received, _)) = self.marks.get(self.cursor) {
            if self.batch.len() < self.batch.capacity() {
                self.batch.push((kind_of(data), *received));
            }
        }
    }

    /// The current batch was sent at `sent`.
    pub fn sent(&mut self, sent: Instant) {
        for (kind, received) in self.batch.drain(..) {
            self.histograms
                .record(kind, sent.saturating_duration_since(received));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::residence::KINDS;
    use std::time::Duration;

    fn index(kind: &str) -> usize {
        KINDS.iter().position(|k| *k == kind).unwrap()
    }

    #[test]
    fn transmits_are_attributed_to_the_datagram_that_caused_them() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Recorder::new();
        // One probe queued before the round (caused by no datagram).
        r.begin_round(1);
        r.handled(t0, 3); // INVITE -> 100 Trying + INVITE forwarded
        r.handled(t0 + ms(1), 3); // a retransmission absorbed: nothing
        r.handled(t0 + ms(2), 4); // 200 -> 200 forwarded
                                  // A timer then queues a retransmission (index 4): no datagram caused it.
        let queue: [&[u8]; 5] = [
            b"OPTIONS sip:gw SIP/2.0",
            b"SIP/2.0 100 Trying",
            b"INVITE sip:1@gw SIP/2.0",
            b"SIP/2.0 200 OK",
            b"INVITE sip:1@gw SIP/2.0",
        ];
        for (i, data) in queue.iter().enumerate().take(3) {
            r.queued(i, data);
        }
        r.sent(t0 + ms(10));
        for (i, data) in queue.iter().enumerate().skip(3) {
            r.queued(i, data);
        }
        r.sent(t0 + ms(20));
        fn h(r: &Recorder, kind: &str) -> Option<(u64, u64)> {
            r.histograms
                .get(index(kind))
                .map(|h| (h.len(), h.lowest_equivalent(h.max())))
        }
        assert_eq!(h(&r, "1xx"), Some((1, 10_000)));
        assert_eq!(h(&r, "INVITE"), Some((1, 10_000)));
        let ok = r.histograms.get(index("2xx")).unwrap();
        assert_eq!(ok.len(), 1);
        assert!(ok.equivalent(18_000, ok.max()));
        assert_eq!(h(&r, "OPTIONS"), None);

        // The next round starts afresh.
        r.begin_round(0);
        r.queued(0, b"BYE sip:x SIP/2.0");
        r.sent(t0 + ms(30));
        assert_eq!(h(&r, "BYE"), None);
    }
}
