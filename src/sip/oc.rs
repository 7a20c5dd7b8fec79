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

/// What a trunk asked for in the top Via (ours) of a response to a request junction sent it
/// (RFC 7339 section 5.2, loss-based algorithm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feedback {
    /// Percentage of new calls to withhold, 0..=100.
    pub reduction: u8,
    /// How long it holds, ms (0: overload control ends now), at most
    /// `limits::OC_VALIDITY_HONOURED_MAX_MS`.
    pub validity_ms: u64,
    /// `oc-seq` as a number: its integer part times 100,000 plus its fraction in
    /// hundred-thousandths (the RFC's five digits; more are cut).
    pub seq: u64,
}

/// `oc-validity` when the trunk gives none (RFC 7339 section 5.2: 500 ms).
const VALIDITY_DEFAULT_MS: u64 = 500;
/// Digits of oc-seq's integer part (RFC 7339 section 9: `1*12DIGIT "." 1*5DIGIT`).
const SEQ_INT_DIGITS_MAX: usize = 12;
const SEQ_FRAC_DIGITS: usize = 5;

/// The feedback in `via` (a response's top Via, ours), or `None` when it carries no `oc`
/// value (a bare `oc` is our own offer, echoed), or when any of the values is malformed,
/// out of range, or for another algorithm: the update is ignored as a whole.
pub fn feedback(buf: &[u8], via: &Via) -> Option<Feedback> {
    let reduction = number(param_value(buf, via.oc?)?, 3)?;
    if reduction > 100 {
        return None;
    }
    let [algo, validity, seq] = via.oc_others;
    if let Some(a) = algo {
        let a = param_value(buf, a)?;
        let a = a
            .strip_prefix(b"\"")
            .and_then(|x| x.strip_suffix(b"\""))
            .unwrap_or(a);
        if !a.eq_ignore_ascii_case(b"loss") {
            return None;
        }
    }
    let validity_ms = match validity {
        Some(v) => number(param_value(buf, v)?, 19)?.min(limits::OC_VALIDITY_HONOURED_MAX_MS),
        None => VALIDITY_DEFAULT_MS,
    };
    let seq = param_value(buf, seq?)?;
    let (int, frac) = match seq.iter().position(|&b| b == b'.') {
        Some(dot) => (seq.get(..dot)?, seq.get(dot + 1..)?),
        None => (seq, &b""[..]),
    };
    let mut scaled = number(int, SEQ_INT_DIGITS_MAX)?;
    for k in 0..SEQ_FRAC_DIGITS {
        let d = match frac.get(k) {
            Some(b) if b.is_ascii_digit() => u64::from(b - b'0'),
            Some(_) => return None,
            None => 0,
        };
        scaled = scaled * 10 + d;
    }
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(Feedback {
        reduction: reduction as u8,
        validity_ms,
        seq: scaled,
    })
}

/// Whether the via-param recorded at `span` (from its `;`) has a value: `;oc=20` is feedback,
/// a bare `;oc` is an offer (ours, echoed by a trunk that does not support RFC 7339).
pub fn has_value(buf: &[u8], span: Span) -> bool {
    param_value(buf, span).is_some()
}

/// The value of a via-param recorded from its `;` (`;oc = 20`), without LWS or quotes' check.
fn param_value(buf: &[u8], span: Span) -> Option<&[u8]> {
    let p = span.get(buf);
    let eq = p.iter().position(|&b| b == b'=')?;
    let v = p.get(eq + 1..)?;
    let start = v.iter().position(|b| !b.is_ascii_whitespace())?;
    let end = v.iter().rposition(|b| !b.is_ascii_whitespace())?;
    v.get(start..=end)
}

/// 1 to `max_digits` (at most 19, so nothing saturates) ASCII digits as a number.
fn number(digits: &[u8], max_digits: usize) -> Option<u64> {
    assert!(max_digits <= 19);
    if digits.len() > max_digits {
        return None;
    }
    super::uri::lex::digits(digits)
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

    fn fb(v: &[u8]) -> Option<Feedback> {
        let parsed = via::parse(v, Span::new(0, v.len())).ok()?;
        feedback(v, &parsed)
    }

    #[test]
    fn feedback_from_a_trunk_is_read_whole_or_not_at_all() {
        // The RFC's example, and junction's own form.
        assert_eq!(
            fb(b"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKj1;oc=20;oc-algo=\"loss\";oc-validity=500;oc-seq=1282321615.782"),
            Some(Feedback { reduction: 20, validity_ms: 500, seq: 128_232_161_578_200 })
        );
        // LWS around "=", names in any case, no algo (loss is the default), no validity.
        assert_eq!(
            fb(b"SIP/2.0/UDP h;branch=z9hG4bKj1;OC = 100 ;OC-SEQ=7"),
            Some(Feedback {
                reduction: 100,
                validity_ms: 500,
                seq: 700_000
            })
        );
        // Validity 0 ends overload control; a huge one is capped.
        assert_eq!(
            fb(b"SIP/2.0/UDP h;oc=0;oc-validity=0;oc-seq=1.1").map(|f| f.validity_ms),
            Some(0)
        );
        assert_eq!(
            fb(b"SIP/2.0/UDP h;oc=5;oc-validity=99999999;oc-seq=1.1").map(|f| f.validity_ms),
            Some(limits::OC_VALIDITY_HONOURED_MAX_MS)
        );
        // Fractions compare digit by digit: .5 is .50000, more than five digits are cut.
        assert_eq!(
            fb(b"SIP/2.0/UDP h;oc=1;oc-seq=2.5").map(|f| f.seq),
            Some(250_000)
        );
        assert_eq!(
            fb(b"SIP/2.0/UDP h;oc=1;oc-seq=2.123456789").map(|f| f.seq),
            Some(212_345)
        );
        // Nothing to apply: our own bare offer echoed, no oc at all.
        assert_eq!(fb(b"SIP/2.0/UDP h;branch=z9hG4bKj1;rport=5060;oc"), None);
        assert_eq!(fb(b"SIP/2.0/UDP h;branch=z9hG4bKj1"), None);
        // Malformed or out of range: ignored whole.
        for bad in [
            &b"SIP/2.0/UDP h;oc=101;oc-seq=1.1"[..],
            b"SIP/2.0/UDP h;oc=-1;oc-seq=1.1",
            b"SIP/2.0/UDP h;oc=2x;oc-seq=1.1",
            b"SIP/2.0/UDP h;oc=20",
            b"SIP/2.0/UDP h;oc=20;oc-seq=x.1",
            b"SIP/2.0/UDP h;oc=20;oc-seq=1.1x",
            b"SIP/2.0/UDP h;oc=20;oc-seq=1234567890123.1",
            b"SIP/2.0/UDP h;oc=20;oc-seq=1.1;oc-validity=fast",
            b"SIP/2.0/UDP h;oc=20;oc-seq=1.1;oc-validity=99999999999999999999",
            b"SIP/2.0/UDP h;oc=20;oc-seq=1.1;oc-algo=\"rate\"",
            b"SIP/2.0/UDP h;oc=0000020;oc-seq=1.1",
        ] {
            assert_eq!(fb(bad), None, "{}", String::from_utf8_lossy(bad));
        }
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
