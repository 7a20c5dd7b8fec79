//! RFC 7339 overload control, client side, loss-based algorithm: what the server asked for in
//! the top Via of its responses (`oc`, `oc-validity`, `oc-seq`, `oc-algo`), and the decision,
//! for each new call, to send it or to withhold it.
//!
//! The decision is deterministic, not random: each new call adds `100 - oc` to a credit, and a
//! call goes out when the credit reaches 100 (which is then taken off). Over any run of calls
//! under one value, exactly `oc` percent of them are withheld.
//!
//! Everything here reads network input: a malformed or out-of-range value is ignored (the
//! update is dropped as a whole), nothing panics.

use crate::time::{Micros, MS};

/// `oc-validity` when the server gives none (500 ms).
const VALIDITY_DEFAULT_MS: u64 = 500;
/// Fractional digits of `oc-seq` compared (padded with zeros on the right, extra ones cut).
const SEQ_FRAC_DIGITS: usize = 9;

/// `oc-seq` as a comparable number: (integer part, fractional part scaled to 9 digits).
type Seq = (u64, u64);

/// What one response's top Via asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OcUpdate {
    /// Percentage of new calls to withhold, 0..=100.
    pub reduction: u8,
    /// How long it holds, in ms (0: overload control ends now).
    pub validity_ms: u64,
    pub seq: Seq,
}

/// The client's overload-control state for one server (the UAC's one target).
#[derive(Clone, Debug, Default)]
pub struct Oc {
    /// The reduction in force, percent.
    reduction: u8,
    /// It holds while `now < until`.
    until: Micros,
    /// The highest `oc-seq` accepted so far.
    seq: Option<Seq>,
    /// Loss algorithm credit, always below 100 between calls.
    credit: u32,
}

impl Oc {
    pub fn new() -> Oc {
        Oc::default()
    }

    /// A response arrived at `now` with `via` as the first via-parm of its top Via (as in
    /// `Msg::top_via`). Returns whether it changed the state (an `oc` value, well formed and
    /// not stale).
    pub fn on_via(&mut self, now: Micros, via: &[u8]) -> bool {
        let Some(u) = parse_via(via) else {
            return false;
        };
        if self.seq.is_some_and(|last| u.seq < last) {
            return false; // stale: an older value overtaken by a newer one
        }
        self.seq = Some(u.seq);
        if u.validity_ms == 0 || u.reduction == 0 {
            self.reduction = 0;
            self.until = now;
        } else {
            self.reduction = u.reduction;
            self.until = now.saturating_add(u.validity_ms.saturating_mul(MS));
        }
        true
    }

    /// The reduction in force at `now`, percent (0 once the validity has passed).
    pub fn reduction(&self, now: Micros) -> u8 {
        if now < self.until {
            self.reduction
        } else {
            0
        }
    }

    /// A new call is about to start at `now`: send it (true) or withhold it (false).
    pub fn should_send(&mut self, now: Micros) -> bool {
        let r = self.reduction(now);
        if r == 0 {
            // Each episode of overload control starts from the same point.
            self.credit = 0;
            return true;
        }
        self.credit += u32::from(100 - r.min(100));
        if self.credit >= 100 {
            self.credit -= 100;
            true
        } else {
            false
        }
    }
}

/// The overload-control parameters of one via-parm (`SIP/2.0/UDP host:port;p1;p2=v;...`), or
/// `None` when it carries no `oc` value (a bare `oc`, or none: nothing to apply) or when any of
/// them is malformed, out of range, or for another algorithm.
pub fn parse_via(via: &[u8]) -> Option<OcUpdate> {
    let mut oc: Option<&[u8]> = None;
    let mut validity: Option<&[u8]> = None;
    let mut seq: Option<&[u8]> = None;
    let mut algo: Option<&[u8]> = None;
    // The first piece is the sent-protocol and sent-by.
    for p in split_params(via).skip(1) {
        let (name, value) = match p.iter().position(|&c| c == b'=') {
            Some(i) => (
                trim(p.get(..i).unwrap_or(&[])),
                Some(trim(p.get(i + 1..).unwrap_or(&[]))),
            ),
            None => (trim(p), None),
        };
        let slot = if name.eq_ignore_ascii_case(b"oc") {
            &mut oc
        } else if name.eq_ignore_ascii_case(b"oc-validity") {
            &mut validity
        } else if name.eq_ignore_ascii_case(b"oc-seq") {
            &mut seq
        } else if name.eq_ignore_ascii_case(b"oc-algo") {
            &mut algo
        } else {
            continue;
        };
        // The first occurrence counts; a bare `oc` (our own, echoed) has no value.
        if slot.is_none() {
            *slot = value;
        }
    }
    let reduction = parse_u64(oc?)?;
    if reduction > 100 {
        return None;
    }
    let validity_ms = match validity {
        Some(v) => parse_u64(v)?,
        None => VALIDITY_DEFAULT_MS,
    };
    let seq = parse_seq(seq?)?;
    if let Some(a) = algo {
        if !unquote(a).eq_ignore_ascii_case(b"loss") {
            return None;
        }
    }
    Some(OcUpdate {
        reduction: reduction as u8,
        validity_ms,
        seq,
    })
}

/// The `;`-separated pieces of a via-parm, a `;` inside a quoted string not counting.
fn split_params(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(b);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, &c) in s.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                quoted = !quoted;
            } else if c == b';' && !quoted {
                rest = s.get(i + 1..);
                return s.get(..i);
            }
        }
        rest = None;
        Some(s)
    })
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    b.get(start..end).unwrap_or(&[])
}

fn unquote(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\"")
        .and_then(|s| s.strip_suffix(b"\""))
        .unwrap_or(b)
}

/// Decimal digits only (no sign, no space), not empty, within u64.
fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

/// `digits.digits` (RFC 7339: seconds and a fraction), or plain `digits`.
fn parse_seq(b: &[u8]) -> Option<Seq> {
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(i) => (b.get(..i)?, b.get(i + 1..)?),
        None => (b, &b"0"[..]),
    };
    let int = parse_u64(int)?;
    if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut f: u64 = 0;
    for i in 0..SEQ_FRAC_DIGITS {
        let d = frac.get(i).map_or(0, |&c| u64::from(c - b'0'));
        f = f * 10 + d;
    }
    Some((int, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SEC;

    const EXAMPLE: &[u8] = b"SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1.2.3;rport=5061;received=127.0.0.1;oc=20;oc-algo=\"loss\";oc-validity=500;oc-seq=1732780000.123";

    fn via(params: &str) -> Vec<u8> {
        format!("SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1;rport{params}").into_bytes()
    }

    /// Out of `n` new calls from `now` on, how many are withheld.
    fn withheld(oc: &mut Oc, now: Micros, n: usize) -> usize {
        (0..n).filter(|_| !oc.should_send(now)).count()
    }

    #[test]
    fn parses_the_rfc_7339_example() {
        assert_eq!(
            parse_via(EXAMPLE),
            Some(OcUpdate {
                reduction: 20,
                validity_ms: 500,
                seq: (1732780000, 123_000_000),
            })
        );
        let mut oc = Oc::new();
        assert!(oc.on_via(SEC, EXAMPLE));
        assert_eq!(oc.reduction(SEC), 20);
        assert_eq!(oc.reduction(SEC + 499 * MS), 20);
        assert_eq!(oc.reduction(SEC + 500 * MS), 0);
    }

    #[test]
    fn parameters_in_any_order_and_case_with_spaces() {
        let v = b"SIP/2.0/UDP [::1]:5061 ; OC-SEQ=7.5 ;Oc-Validity = 2000; received=::1;OC=35;Branch=z9hG4bK-x;OC-ALGO=\"LOSS\"";
        assert_eq!(
            parse_via(v),
            Some(OcUpdate {
                reduction: 35,
                validity_ms: 2000,
                seq: (7, 500_000_000),
            })
        );
        // No oc-validity: 500 ms. No oc-algo: loss. A quoted ';' is not a separator.
        assert_eq!(
            parse_via(&via(";x=\"a;oc=99\";oc=10;oc-seq=1.0")),
            Some(OcUpdate {
                reduction: 10,
                validity_ms: 500,
                seq: (1, 0),
            })
        );
    }

    #[test]
    fn no_oc_value_changes_nothing() {
        let mut oc = Oc::new();
        assert!(oc.on_via(0, &via(";oc=50;oc-seq=1.0")));
        // Our own bare `oc` echoed back, or no oc parameter at all.
        assert!(!oc.on_via(MS, &via(";oc")));
        assert!(!oc.on_via(MS, &via(";received=127.0.0.1")));
        assert!(!oc.on_via(MS, b""));
        assert_eq!(oc.reduction(2 * MS), 50);
    }

    #[test]
    fn a_stale_oc_seq_is_ignored_an_equal_one_accepted() {
        let mut oc = Oc::new();
        assert!(oc.on_via(0, &via(";oc=40;oc-seq=100.5")));
        assert!(!oc.on_via(MS, &via(";oc=90;oc-seq=100.25")));
        assert!(!oc.on_via(MS, &via(";oc=90;oc-seq=99.9")));
        assert_eq!(oc.reduction(MS), 40);
        // Fractions compare as decimals: 100.50 == 100.5.
        assert!(oc.on_via(2 * MS, &via(";oc=60;oc-seq=100.50")));
        assert_eq!(oc.reduction(2 * MS), 60);
        assert!(oc.on_via(3 * MS, &via(";oc=70;oc-seq=100.51")));
        assert_eq!(oc.reduction(3 * MS), 70);
        assert!(!oc.on_via(4 * MS, &via(";oc=0;oc-seq=100.05")));
        assert_eq!(oc.reduction(4 * MS), 70);
    }

    #[test]
    fn the_reduction_ends_when_its_validity_passes() {
        let mut oc = Oc::new();
        assert!(oc.on_via(10 * SEC, &via(";oc=100;oc-validity=1500;oc-seq=1.0")));
        assert!(!oc.should_send(10 * SEC));
        assert!(!oc.should_send(11 * SEC + 499 * MS));
        assert_eq!(oc.reduction(11 * SEC + 500 * MS), 0);
        assert_eq!(withheld(&mut oc, 11 * SEC + 500 * MS, 50), 0);
        // A refresh extends it from the time it arrives.
        assert!(oc.on_via(12 * SEC, &via(";oc=100;oc-seq=2.0")));
        assert_eq!(withheld(&mut oc, 12 * SEC + 499 * MS, 10), 10);
        assert_eq!(withheld(&mut oc, 12 * SEC + 500 * MS, 10), 0);
    }

    #[test]
    fn validity_zero_ends_overload_control() {
        let mut oc = Oc::new();
        assert!(oc.on_via(0, &via(";oc=80;oc-validity=60000;oc-seq=5.0")));
        assert_eq!(oc.reduction(SEC), 80);
        assert!(oc.on_via(SEC, &via(";oc=80;oc-validity=0;oc-seq=6.0")));
        assert_eq!(oc.reduction(SEC), 0);
        assert_eq!(withheld(&mut oc, SEC, 100), 0);
        // oc=0 ends it as well.
        assert!(oc.on_via(2 * SEC, &via(";oc=80;oc-seq=7.0")));
        assert!(oc.on_via(2 * SEC, &via(";oc=0;oc-validity=9000;oc-seq=8.0")));
        assert_eq!(withheld(&mut oc, 2 * SEC, 100), 0);
    }

    #[test]
    fn oc_100_withholds_every_new_call() {
        let mut oc = Oc::new();
        assert!(oc.on_via(0, &via(";oc=100;oc-validity=10000;oc-seq=1.0")));
        assert_eq!(withheld(&mut oc, SEC, 1000), 1000);
    }

    #[test]
    fn oc_25_withholds_exactly_25_of_100() {
        let mut oc = Oc::new();
        assert!(oc.on_via(0, &via(";oc=25;oc-validity=10000;oc-seq=1.0")));
        assert_eq!(withheld(&mut oc, SEC, 100), 25);
        // And spread out, not in a burst: any 4 consecutive calls, one withheld.
        let pattern: Vec<bool> = (0..8).map(|_| oc.should_send(SEC)).collect();
        assert_eq!(pattern.iter().filter(|&&s| !s).count(), 2);
        assert!(pattern
            .chunks(4)
            .all(|c| c.iter().filter(|&&s| !s).count() == 1));
        // Refreshes of the same value (one per response) keep the proportion.
        let mut n = 0;
        for i in 0..100 {
            assert!(oc.on_via(
                SEC,
                format!("SIP/2.0/UDP a;oc=25;oc-seq=2.{i:03}").as_bytes()
            ));
            n += usize::from(!oc.should_send(SEC));
        }
        assert_eq!(n, 25);
        // Other values: 1% and 99%.
        assert!(oc.on_via(SEC, &via(";oc=1;oc-seq=3.0")));
        assert_eq!(withheld(&mut oc, SEC, 1000), 10);
        assert!(oc.on_via(SEC, &via(";oc=99;oc-seq=4.0")));
        assert_eq!(withheld(&mut oc, SEC, 1000), 990);
    }

    #[test]
    fn malformed_values_are_ignored() {
        let mut oc = Oc::new();
        assert!(oc.on_via(0, &via(";oc=30;oc-validity=60000;oc-seq=10.0")));
        for bad in [
            ";oc=abc;oc-seq=11.0",
            ";oc=101;oc-seq=11.0",
            ";oc=;oc-seq=11.0",
            ";oc=-5;oc-seq=11.0",
            ";oc= 5 0;oc-seq=11.0",
            ";oc=99999999999999999999999999;oc-seq=11.0",
            ";oc=18446744073709551616;oc-seq=11.0",
            ";oc=50",
            ";oc=50;oc-seq=",
            ";oc=50;oc-seq=.5",
            ";oc=50;oc-seq=11.",
            ";oc=50;oc-seq=11.x",
            ";oc=50;oc-seq=1.2.3",
            ";oc=50;oc-seq=99999999999999999999999.0",
            ";oc=50;oc-seq=11.0;oc-validity=abc",
            ";oc=50;oc-seq=11.0;oc-validity=",
            ";oc=50;oc-seq=11.0;oc-validity=99999999999999999999999",
            ";oc=50;oc-seq=11.0;oc-algo=\"rate\"",
            ";oc=50;oc-seq=11.0;oc-algo=\"",
            ";oc=\"50\";oc-seq=11.0",
        ] {
            assert!(!oc.on_via(SEC, &via(bad)), "{bad}");
            assert_eq!(oc.reduction(SEC), 30, "{bad}");
        }
        // An unterminated quote hides what follows it.
        assert!(!oc.on_via(SEC, &via(";x=\"unterminated;oc=50;oc-seq=11.0")));
        // Non-UTF-8 and control bytes.
        assert!(!oc.on_via(SEC, b"SIP/2.0/UDP a;oc=\xff;oc-seq=11.0"));
        assert!(!oc.on_via(SEC, b";;;==;oc=\x00;oc-seq=\xc3\xa9"));
        // The longest validity does not overflow the clock.
        assert!(oc.on_via(
            Micros::MAX - 1,
            &via(";oc=40;oc-validity=18446744073709551615;oc-seq=12.0")
        ));
        assert_eq!(oc.reduction(Micros::MAX - 1), 40);
        // A long fraction is cut at 9 digits: equal, so accepted.
        assert!(oc.on_via(SEC, &via(";oc=45;oc-seq=12.0000000001")));
        assert_eq!(oc.reduction(SEC), 45);
    }
}
