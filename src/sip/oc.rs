//! RFC 7339 (SIP Overload Control) feedback, loss-based algorithm.
//!
//! A trunk that supports overload control marks the Via it inserts with a valueless `oc`
//! parameter. While a shard sheds new calls, every response junction sends to such a trunk
//! carries, in that Via, the share of new calls the trunk should withhold:
//! `;oc=20;oc-algo="loss";oc-validity=500;oc-seq=1732780000.123`. The trunk then refuses or
//! reroutes that share itself, and junction spends nothing on them: a 503 costs the shard a
//! read, a response and the caller's ACK, so shedding by 503 alone cannot hold goodput
//! under a large overload (RFC 6357 section 3). When overload ends, `oc=0` is sent for one
//! validity period, so trunks resume at once rather than when their value lapses.
//!
//! Sans-IO: the value and its time come in as arguments.

use super::via::Via;
use super::Span;
use crate::limits;
use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The core has no wall clock: an `Instant` paired with the wall-clock time it stood for
/// (read by the shell when it builds the core) turns the core's times into oc-seq values.
#[derive(Clone, Copy, Debug)]
pub struct WallAnchor {
    pub at: Instant,
    pub unix_ms: u64,
}

impl WallAnchor {
    pub fn now() -> WallAnchor {
        WallAnchor {
            at: Instant::now(),
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }

    /// Milliseconds since the Unix epoch at `t`.
    pub fn unix_ms(&self, t: Instant) -> u64 {
        let after = t.saturating_duration_since(self.at).as_millis() as u64;
        let before = self.at.saturating_duration_since(t).as_millis() as u64;
        (self.unix_ms + after).saturating_sub(before)
    }
}

/// The `oc` parameters for a reduction of `percent` (0-100) of new calls, decided at
/// `seq_ms` (milliseconds since the Unix epoch: the RFC's oc-seq, which lets a trunk
/// discard a value older than one it already has, even across our restarts).
pub fn write_params(out: &mut Vec<u8>, percent: u8, seq_ms: u64) {
    let _ = write!(
        out,
        ";oc={};oc-algo=\"loss\";oc-validity={};oc-seq={}.{:03}",
        percent.min(100),
        limits::OC_VALIDITY_MS,
        seq_ms / 1000,
        seq_ms % 1000
    );
}

/// Up to four (span, replacement) edits of one via-parm, sorted by offset.
pub type ViaEdits<'a> = [Option<(Span, &'a [u8])>; 4];

/// The edits that write `params` (from `write_params`) into a client's via-parm: its
/// `;oc` becomes `params`, and any `oc-algo`, `oc-validity` or `oc-seq` it carried are
/// removed (the client lists the algorithms it supports in oc-algo; we answer with the one
/// we use). Sorted by offset; `None` when the Via does not ask for overload control.
pub fn via_edits<'a>(via: &Via, params: &'a [u8]) -> Option<ViaEdits<'a>> {
    let oc = via.oc?;
    let mut edits = [Some((oc, params)), None, None, None];
    for (slot, other) in edits.iter_mut().skip(1).zip(via.oc_others) {
        *slot = other.map(|s| (s, &b""[..]));
    }
    edits.sort_by_key(|e| e.map_or(u32::MAX, |(s, _)| s.start));
    Some(edits)
}

/// Append `buf[line]` to `out` with `edits` (inside the line, sorted) applied.
pub fn write_edited(buf: &[u8], line: Span, edits: &[Option<(Span, &[u8])>], out: &mut Vec<u8>) {
    let mut at = line.start as usize;
    for (span, bytes) in edits.iter().flatten() {
        let (s, e) = (span.start as usize, span.end as usize);
        if s < at || e > line.end as usize {
            continue;
        }
        out.extend_from_slice(buf.get(at..s).unwrap_or(&[]));
        out.extend_from_slice(bytes);
        at = e;
    }
    out.extend_from_slice(buf.get(at..line.end as usize).unwrap_or(&[]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::via;

    fn stamp(percent: u8, seq: u64) -> Vec<u8> {
        let mut p = Vec::new();
        write_params(&mut p, percent, seq);
        p
    }

    fn rewrite(v: &[u8], params: &[u8]) -> Option<String> {
        let parsed = via::parse(v, Span::new(0, v.len())).ok()?;
        let edits = via_edits(&parsed, params)?;
        let mut out = Vec::new();
        write_edited(v, Span::new(0, v.len()), &edits, &mut out);
        String::from_utf8(out).ok()
    }

    #[test]
    fn the_rfc_example() {
        // RFC 7339 section 5.2's example: the client's offer becomes the server's value.
        let v = b"SIP/2.0/TCP p1.example.net;branch=z9hG4bK2d4790.1;received=192.0.2.111;oc;oc-algo=\"loss,A\"";
        assert_eq!(
            rewrite(v, &stamp(20, 1_282_321_615_782)).as_deref(),
            Some("SIP/2.0/TCP p1.example.net;branch=z9hG4bK2d4790.1;received=192.0.2.111;oc=20;oc-algo=\"loss\";oc-validity=500;oc-seq=1282321615.782")
        );
    }

    #[test]
    fn an_offer_in_the_middle_and_stale_values_are_replaced() {
        let v = b"SIP/2.0/UDP h:5061;oc-seq=1.5;oc=7;branch=z9hG4bK1;oc-validity=9;rport=5061";
        assert_eq!(
            rewrite(v, &stamp(0, 2_000_042)).as_deref(),
            Some("SIP/2.0/UDP h:5061;oc=0;oc-algo=\"loss\";oc-validity=500;oc-seq=2000.042;branch=z9hG4bK1;rport=5061")
        );
    }

    #[test]
    fn a_via_without_oc_is_left_alone() {
        assert_eq!(
            rewrite(b"SIP/2.0/UDP h;branch=z9hG4bK1", &stamp(50, 1)),
            None
        );
        // Values are clamped to a percentage.
        assert!(String::from_utf8(stamp(250, 1))
            .unwrap()
            .starts_with(";oc=100;"));
    }
}
