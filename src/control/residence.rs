//! Residence time: how long a message stays in junction, from the moment its datagram was
//! received (the receive batch's time, carried along when handed to another shard) to the
//! moment the `sendmmsg` that sent what it caused returned. One histogram per kind of the
//! *outgoing* message: its request method, or its response class.
//!
//! Each shard records into its own `Residence` (plain hdrhistograms, no atomics), with no
//! allocation per datagram (a kind's histogram is allocated the first time it is used), and
//! publishes a copy with its metrics; the control plane merges the shards' copies.

use hdrhistogram::Histogram;
use std::time::Duration;

use crate::sip::Method;

/// Largest residence recorded: 10 s in µs (a longer one is recorded as 10 s). A shard gives
/// up on a blocked send after `limits::SEND_BLOCKED_MAX` (100 ms), so nothing real stays
/// that long.
const RESIDENCE_US_MAX: u64 = 10_000_000;
const SIGFIG: u8 = 3;

/// Methods first (indexed like `Method`), then the response classes 1xx..6xx.
pub const KINDS: [&str; 21] = [
    "INVITE",
    "ACK",
    "CANCEL",
    "BYE",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "UPDATE",
    "INFO",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
    "other",
    "1xx",
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "6xx",
];

fn method_index(m: Method) -> usize {
    match m {
        Method::Invite => 0,
        Method::Ack => 1,
        Method::Cancel => 2,
        Method::Bye => 3,
        Method::Options => 4,
        Method::Register => 5,
        Method::Prack => 6,
        Method::Update => 7,
        Method::Info => 8,
        Method::Subscribe => 9,
        Method::Notify => 10,
        Method::Refer => 11,
        Method::Message => 12,
        Method::Publish => 13,
        Method::Other => 14,
    }
}

/// The kind (index into `KINDS`) of an outgoing message, from its first line.
pub fn kind_of(message: &[u8]) -> usize {
    if let Some(rest) = message.strip_prefix(b"SIP/2.0 ") {
        return match rest.first() {
            Some(d @ b'1'..=b'6') => 15 + usize::from(d - b'1'),
            _ => 14,
        };
    }
    let end = memchr::memchr(b' ', message).unwrap_or(message.len());
    method_index(Method::from_bytes(message.get(..end).unwrap_or(&[])))
}

/// One histogram (µs) per message kind.
#[derive(Clone, Debug, Default)]
pub struct Residence {
    by_kind: Vec<Option<Box<Histogram<u64>>>>,
}

fn histogram() -> Histogram<u64> {
    // Our own constants: 1 <= low, max >= 2 * low, sigfig <= 5.
    Histogram::new_with_bounds(1, RESIDENCE_US_MAX, SIGFIG)
        .expect("constant histogram bounds are valid")
}

impl Residence {
    pub fn new() -> Residence {
        Residence {
            by_kind: (0..KINDS.len()).map(|_| None).collect(),
        }
    }

    /// Record one message of kind `kind` (from `kind_of`) that stayed `d`.
    pub fn record(&mut self, kind: usize, d: Duration) {
        if self.by_kind.len() < KINDS.len() {
            self.by_kind.resize_with(KINDS.len(), || None);
        }
        let Some(slot) = self.by_kind.get_mut(kind) else {
            return;
        };
        let h = slot.get_or_insert_with(|| Box::new(histogram()));
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        h.saturating_record(us.clamp(1, RESIDENCE_US_MAX));
    }

    /// The histogram of `kind`, if anything of that kind was recorded.
    pub fn get(&self, kind: usize) -> Option<&Histogram<u64>> {
        self.by_kind.get(kind).and_then(|h| h.as_deref())
    }

    /// (kind name, histogram) of every kind recorded.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Histogram<u64>)> + '_ {
        KINDS
            .iter()
            .enumerate()
            .filter_map(|(i, name)| Some((*name, self.get(i)?)))
    }

    /// Make this a copy of `source`, copying only the histograms that changed (a recorded
    /// value always changes a histogram's count), at most `budget` of them. Returns how
    /// many were copied; fewer changed than were left to copy when it is below `budget`.
    pub fn copy_changed_from(&mut self, source: &Residence, budget: usize) -> usize {
        if self.by_kind.len() < source.by_kind.len() {
            self.by_kind.resize_with(source.by_kind.len(), || None);
        }
        let mut copied = 0;
        for (dst, src) in self.by_kind.iter_mut().zip(&source.by_kind) {
            let Some(src) = src else {
                continue;
            };
            if copied == budget {
                break;
            }
            copied += usize::from(copy_if_changed(dst, src));
        }
        copied
    }

    /// Add every histogram of `other` (merging shards).
    pub fn add(&mut self, other: &Residence) {
        if self.by_kind.len() < other.by_kind.len() {
            self.by_kind.resize_with(other.by_kind.len(), || None);
        }
        for (dst, src) in self.by_kind.iter_mut().zip(&other.by_kind) {
            match (dst, src) {
                (Some(dst), Some(src)) => {
                    // Same bounds on both sides: cannot fail.
                    let _ = dst.add(&**src);
                }
                (dst @ None, Some(src)) => *dst = Some(src.clone()),
                (_, None) => {}
            }
        }
    }
}

impl Residence {
    /// Take an earlier copy of these histograms away (see `ShardStats::subtract`).
    pub fn subtract(&mut self, earlier: &Residence) {
        for (dst, src) in self.by_kind.iter_mut().zip(&earlier.by_kind) {
            if let (Some(dst), Some(src)) = (dst, src) {
                let _ = dst.subtract(&**src);
            }
        }
    }
}

/// Overwrite `dst` with `src` when their counts differ; true if it copied.
pub fn copy_if_changed(dst: &mut Option<Box<Histogram<u64>>>, src: &Histogram<u64>) -> bool {
    match dst {
        Some(d) if d.len() == src.len() => false,
        Some(d) => {
            if d.set_to(src).is_err() {
                **d = src.clone();
            }
            true
        }
        None => {
            *dst = Some(Box::new(src.clone()));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_first_line() {
        let kind = |m: &[u8]| KINDS[kind_of(m)];
        assert_eq!(kind(b"INVITE sip:1@x SIP/2.0\r\n"), "INVITE");
        assert_eq!(kind(b"ACK sip:1@x SIP/2.0\r\n"), "ACK");
        assert_eq!(kind(b"BYE sip:1@x SIP/2.0\r\n"), "BYE");
        assert_eq!(kind(b"OPTIONS sip:x SIP/2.0\r\n"), "OPTIONS");
        assert_eq!(kind(b"FOO sip:x SIP/2.0\r\n"), "other");
        assert_eq!(kind(b"invite sip:x SIP/2.0\r\n"), "other");
        assert_eq!(kind(b"SIP/2.0 100 Trying\r\n"), "1xx");
        assert_eq!(kind(b"SIP/2.0 183 Session Progress\r\n"), "1xx");
        assert_eq!(kind(b"SIP/2.0 200 OK\r\n"), "2xx");
        assert_eq!(kind(b"SIP/2.0 487 Request Terminated\r\n"), "4xx");
        assert_eq!(kind(b"SIP/2.0 503 Service Unavailable\r\n"), "5xx");
        assert_eq!(kind(b"SIP/2.0 603 Decline\r\n"), "6xx");
        assert_eq!(kind(b"SIP/2.0 999 Odd\r\n"), "other");
        assert_eq!(kind(b""), "other");
        for m in [
            Method::Invite,
            Method::Register,
            Method::Publish,
            Method::Subscribe,
        ] {
            let name = m.as_str().unwrap();
            assert_eq!(KINDS[method_index(m)], name);
        }
    }

    #[test]
    fn records_copies_only_what_changed_and_merges() {
        let mut shard = Residence::new();
        shard.record(0, Duration::from_micros(40));
        shard.record(0, Duration::from_micros(60));
        shard.record(16, Duration::from_secs(30)); // clamped to the top
        let mut published = Residence::default();
        assert_eq!(
            published.copy_changed_from(&shard, 1),
            1,
            "the budget holds"
        );
        assert_eq!(published.copy_changed_from(&shard, 8), 1);
        assert_eq!(published.copy_changed_from(&shard, 8), 0);
        shard.record(16, Duration::ZERO); // recorded as 1 µs
        assert_eq!(published.copy_changed_from(&shard, 8), 1);
        let invite = published.get(0).unwrap();
        assert_eq!((invite.len(), invite.max()), (2, 60));
        let ok = published.get(16).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok.min(), 1);
        assert!(ok.max() >= RESIDENCE_US_MAX);
        let names: Vec<&str> = published.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["INVITE", "2xx"]);

        let mut merged = Residence::new();
        merged.add(&published);
        merged.add(&published);
        assert_eq!(merged.get(0).unwrap().len(), 4);
        assert!(merged.get(1).is_none());
    }
}
