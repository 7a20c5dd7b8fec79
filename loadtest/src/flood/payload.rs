//! The flood's datagrams, built once into pools before the run so that sending costs no
//! formatting: well-formed INVITEs, random junk, mutated INVITEs and svmap-style OPTIONS.
//!
//! Every pool entry may carry *stamps*: offsets of 16-hex-digit fields (Call-ID, branch,
//! From tag) that the sender overwrites with a sequence number just before the datagram goes
//! out, so that no two INVITEs share a Call-ID however long the run.

/// xorshift64*: small, fast, deterministic for a given seed (not cryptographic).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // A zero state stays zero; mix the seed so that nearby seeds diverge at once.
        let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
        s = (s ^ (s >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        s = (s ^ (s >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((s ^ (s >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0; 0 gives 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }
}

/// The kinds of datagram in the mix, in `--mix` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Invite,
    Junk,
    Mutated,
    Options,
}

pub const KINDS: [Kind; 4] = [Kind::Invite, Kind::Junk, Kind::Mutated, Kind::Options];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Invite => "invite",
            Kind::Junk => "junk",
            Kind::Mutated => "mutated",
            Kind::Options => "options",
        }
    }

    pub fn from_name(s: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.name() == s)
    }
}

/// Width of a stamped field: 16 hex digits of the sequence number.
pub const STAMP_LEN: usize = 16;
/// What a stamped field holds until it is stamped.
const PLACEHOLDER: &[u8; STAMP_LEN] = b"@@@@@@@@@@@@@@@@";
/// Longest junk datagram.
pub const JUNK_MAX: usize = 1400;
/// The largest datagram built (a mutated INVITE with its huge header stays under it).
pub const PAYLOAD_MAX: usize = 8000;

/// One datagram of a pool and the offsets of its stamped fields.
#[derive(Clone, Debug)]
pub struct Payload {
    pub bytes: Vec<u8>,
    pub stamps: Vec<usize>,
}

impl Payload {
    fn from_text(text: Vec<u8>) -> Payload {
        let stamps = find_all(&text, PLACEHOLDER);
        Payload {
            bytes: text,
            stamps,
        }
    }

    /// Write `seq` into every stamped field (16 lowercase hex digits).
    pub fn stamp(&mut self, seq: u64) {
        let mut hex = [0u8; STAMP_LEN];
        for (i, h) in hex.iter_mut().enumerate() {
            let nib = (seq >> (60 - 4 * i)) & 0xf;
            *h = b"0123456789abcdef"[nib as usize];
        }
        for &at in &self.stamps {
            if let Some(field) = self.bytes.get_mut(at..at + STAMP_LEN) {
                field.copy_from_slice(&hex);
            }
        }
    }
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = memchr::memmem::find(hay.get(at..).unwrap_or(&[]), needle) {
        out.push(at + i);
        at += i + needle.len();
    }
    out
}

/// What the payloads say about the target and the caller.
#[derive(Clone, Debug)]
pub struct Template {
    /// Host (and port) of the Request-URI: the target.
    pub target: String,
    /// Called number of the INVITEs.
    pub number: String,
    /// Host written in Via, From and Contact (the sources differ; replies follow `received`
    /// and `rport`, so this need not be the real source).
    pub via_host: String,
    /// Distinguishes runs (and workers) in Call-IDs.
    pub run: u64,
}

const SDP: &str = "v=0\r\n\
o=flood 1 1 IN IP4 127.1.0.1\r\n\
s=-\r\n\
c=IN IP4 127.1.0.1\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// A well-formed INVITE with stamped Call-ID, branch and From tag. `n` varies the caller.
pub fn invite(t: &Template, n: u64) -> Payload {
    let p = std::str::from_utf8(PLACEHOLDER).unwrap_or("@");
    let text = format!(
        "INVITE sip:{num}@{target} SIP/2.0\r\n\
Via: SIP/2.0/UDP {via}:5060;branch=z9hG4bK{p};rport\r\n\
Max-Forwards: 70\r\n\
From: \"Flood {n}\" <sip:+1646555{caller:04}@{via}>;tag={p}\r\n\
To: <sip:{num}@{target}>\r\n\
Call-ID: {p}-{run:x}@{via}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:+1646555{caller:04}@{via}:5060>\r\n\
User-Agent: junction-load-flood\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {len}\r\n\r\n{SDP}",
        num = t.number,
        target = t.target,
        via = t.via_host,
        caller = n % 10000,
        run = t.run,
        len = SDP.len(),
    );
    Payload::from_text(text.into_bytes())
}

/// OPTIONS as sipvicious' svmap sends it (friendly-scanner), stamped.
pub fn options(t: &Template, n: u64) -> Payload {
    let p = std::str::from_utf8(PLACEHOLDER).unwrap_or("@");
    let ext = 100 + n % 900;
    let text = format!(
        "OPTIONS sip:{ext}@{target} SIP/2.0\r\n\
Via: SIP/2.0/UDP {via}:5060;branch=z9hG4bK-{p};rport\r\n\
Max-Forwards: 70\r\n\
To: \"sipvicious\"<sip:{ext}@{target}>\r\n\
From: \"sipvicious\"<sip:{ext}@{target}>;tag={p}\r\n\
User-Agent: friendly-scanner\r\n\
Call-ID: {p}\r\n\
Contact: <sip:{ext}@{via}:5060>\r\n\
CSeq: 1 OPTIONS\r\n\
Accept: application/sdp\r\n\
Content-Length: 0\r\n\r\n",
        target = t.target,
        via = t.via_host,
    );
    Payload::from_text(text.into_bytes())
}

/// Random bytes of random length 1..=JUNK_MAX, NULs included.
pub fn junk(rng: &mut Rng) -> Payload {
    let len = rng.range(1, JUNK_MAX);
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        let word = rng.next_u64().to_le_bytes();
        let take = (len - bytes.len()).min(8);
        bytes.extend_from_slice(&word[..take]);
    }
    Payload {
        bytes,
        stamps: Vec::new(),
    }
}

/// The ways an INVITE is damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// A few bytes XORed with a non-zero value.
    ByteFlips,
    /// Cut at a random point.
    Truncate,
    /// A header of a few KB, twice.
    HugeHeader,
    /// Content-Length too large, too small, negative or not a number.
    BadContentLength,
    /// Max-Forwards 0, negative, huge or not a number.
    BadMaxForwards,
    /// NUL bytes inserted.
    Nuls,
}

pub const MUTATIONS: [Mutation; 6] = [
    Mutation::ByteFlips,
    Mutation::Truncate,
    Mutation::HugeHeader,
    Mutation::BadContentLength,
    Mutation::BadMaxForwards,
    Mutation::Nuls,
];

/// Replace the value of header `name` (the text between "name: " and CRLF).
fn replace_value(msg: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let mut key = b"\r\n".to_vec();
    key.extend_from_slice(name);
    key.extend_from_slice(b": ");
    let Some(at) = memchr::memmem::find(msg, &key) else {
        return;
    };
    let start = at + key.len();
    let end = memchr::memmem::find(msg.get(start..).unwrap_or(&[]), b"\r\n")
        .map_or(msg.len(), |e| start + e);
    msg.splice(start..end, value.iter().copied());
}

/// Apply one mutation to `msg`. The result always differs from the input.
pub fn mutate(msg: &mut Vec<u8>, m: Mutation, rng: &mut Rng) {
    let before = msg.clone();
    match m {
        Mutation::ByteFlips => {
            for _ in 0..rng.range(1, 8) {
                let i = rng.below(msg.len());
                let x = (rng.below(255) + 1) as u8;
                if let Some(b) = msg.get_mut(i) {
                    *b ^= x;
                }
            }
        }
        Mutation::Truncate => {
            // At least a byte: an empty datagram is not a message cut short.
            let keep = rng.range(1, msg.len().saturating_sub(1).max(1));
            msg.truncate(keep);
        }
        Mutation::HugeHeader => {
            let len = rng.range(1500, 3000);
            let names: [&[u8]; 4] = [b"Subject", b"Via", b"X-Pad", b"Contact"];
            let name = names[rng.below(names.len())];
            let mut line = b"\r\n".to_vec();
            line.extend_from_slice(name);
            line.extend_from_slice(b": ");
            line.extend((0..len).map(|i| b'a' + (i % 26) as u8));
            let at = memchr::memmem::find(msg, b"\r\n").unwrap_or(msg.len());
            let mut twice = line.clone();
            twice.extend_from_slice(&line);
            msg.splice(at..at, twice);
        }
        Mutation::BadContentLength => {
            let bad: [&[u8]; 5] = [b"99999", b"1", b"-5", b"abc", b"18446744073709551617"];
            replace_value(msg, b"Content-Length", bad[rng.below(bad.len())]);
        }
        Mutation::BadMaxForwards => {
            let bad: [&[u8]; 5] = [b"0", b"-1", b"4294967296", b"seventy", b""];
            replace_value(msg, b"Max-Forwards", bad[rng.below(bad.len())]);
        }
        Mutation::Nuls => {
            for _ in 0..rng.range(1, 4) {
                let i = rng.below(msg.len() + 1);
                msg.insert(i, 0);
            }
        }
    }
    msg.truncate(PAYLOAD_MAX);
    // Flips that cancelled out, or a header the message no longer had: damage one byte.
    if *msg == before {
        let i = rng.below(msg.len());
        if let Some(b) = msg.get_mut(i) {
            *b ^= 0x20;
        } else {
            msg.push(0);
        }
    }
}

/// A stamped INVITE with one or two mutations; returns them for the tests.
pub fn mutated(t: &Template, n: u64, rng: &mut Rng) -> (Payload, Vec<Mutation>) {
    let mut text = invite(t, n).bytes;
    let mut applied = vec![MUTATIONS[rng.below(MUTATIONS.len())]];
    if rng.below(3) == 0 {
        applied.push(MUTATIONS[rng.below(MUTATIONS.len())]);
    }
    for &m in &applied {
        mutate(&mut text, m, rng);
    }
    // Stamp the fields that survived intact, so that parseable ones still look new.
    (Payload::from_text(text), applied)
}

/// Payloads of each kind; the sender cycles through them.
pub struct Pools {
    pub by_kind: [Vec<Payload>; 4],
    /// The order of kinds, laid out from the weights and shuffled: the sender takes
    /// `deck[seq % deck.len()]`.
    pub deck: Vec<Kind>,
}

/// Entries per pool (junk and mutated repeat after this many; INVITEs and OPTIONS are
/// stamped, so they never repeat).
pub const POOL_SIZE: usize = 512;
/// Length of the deck of kinds.
const DECK_LEN: usize = 1000;

impl Pools {
    /// Build every pool with a weight above zero; `weights` in `KINDS` order.
    pub fn build(t: &Template, weights: [u32; 4], rng: &mut Rng) -> Pools {
        let mut by_kind: [Vec<Payload>; 4] = Default::default();
        for (k, kind) in KINDS.into_iter().enumerate() {
            if weights[k] == 0 {
                continue;
            }
            by_kind[k] = (0..POOL_SIZE as u64)
                .map(|n| match kind {
                    Kind::Invite => invite(t, n),
                    Kind::Junk => junk(rng),
                    Kind::Mutated => mutated(t, n, rng).0,
                    Kind::Options => options(t, n),
                })
                .collect();
        }
        Pools {
            by_kind,
            deck: deck(weights, rng),
        }
    }
}

/// DECK_LEN kinds in proportion to the weights (largest remainder), shuffled.
pub fn deck(weights: [u32; 4], rng: &mut Rng) -> Vec<Kind> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let mut deck = Vec::with_capacity(DECK_LEN);
    if total == 0 {
        return deck;
    }
    for (k, kind) in KINDS.into_iter().enumerate() {
        let n = (u64::from(weights[k]) * DECK_LEN as u64).div_ceil(total);
        deck.extend(std::iter::repeat(kind).take(n as usize));
    }
    // Fisher-Yates.
    for i in (1..deck.len()).rev() {
        let j = rng.below(i + 1);
        deck.swap(i, j);
    }
    deck
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::msg::{Method, Msg};

    fn template() -> Template {
        Template {
            target: "127.0.0.1:5060".into(),
            number: "2125551234".into(),
            via_host: "127.1.0.1".into(),
            run: 7,
        }
    }

    fn header<'a>(m: &Msg<'a>, name: &[u8]) -> &'a [u8] {
        m.lines_named(name)
            .next()
            .map(|l| m.get(l.value))
            .unwrap_or(b"")
    }

    #[test]
    fn stamped_invites_are_valid_sip_with_distinct_ids() {
        let mut p = invite(&template(), 3);
        assert_eq!(p.stamps.len(), 3, "Call-ID, branch, From tag");
        let mut seen = std::collections::HashSet::new();
        for seq in [0u64, 1, 2, 0xdead_beef, u64::MAX] {
            p.stamp(seq);
            let m = Msg::parse(&p.bytes).expect("a stamped INVITE parses");
            assert_eq!(m.method(), Some(Method::Invite));
            assert!(find_all(&p.bytes, PLACEHOLDER).is_empty());
            let call_id = header(&m, b"Call-ID").to_vec();
            let via = header(&m, b"Via").to_vec();
            let from = header(&m, b"From").to_vec();
            assert!(via.starts_with(b"SIP/2.0/UDP 127.1.0.1:5060;branch=z9hG4bK"));
            assert!(seen.insert(call_id), "distinct Call-IDs");
            assert!(seen.insert(via), "distinct branches");
            assert!(seen.insert(from), "distinct From tags");
            let body = m.get(m.body);
            let cl: usize = std::str::from_utf8(header(&m, b"Content-Length"))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(body.len(), cl);
        }
    }

    #[test]
    fn options_look_like_svmap() {
        let mut p = options(&template(), 0);
        p.stamp(42);
        let m = Msg::parse(&p.bytes).unwrap();
        assert_eq!(m.method(), Some(Method::Options));
        assert_eq!(header(&m, b"User-Agent"), b"friendly-scanner");
        assert_eq!(header(&m, b"Call-ID"), b"000000000000002a");
    }

    #[test]
    fn junk_has_random_lengths_and_nuls() {
        let mut rng = Rng::new(1);
        let all: Vec<Payload> = (0..500).map(|_| junk(&mut rng)).collect();
        assert!(all.iter().all(|p| (1..=JUNK_MAX).contains(&p.bytes.len())));
        assert!(all.iter().any(|p| p.bytes.len() < 100));
        assert!(all.iter().any(|p| p.bytes.len() > 1300));
        assert!(all.iter().any(|p| p.bytes.contains(&0)));
    }

    #[test]
    fn every_mutation_changes_the_invite() {
        let t = template();
        let base = invite(&t, 0).bytes;
        let mut rng = Rng::new(9);
        for m in MUTATIONS {
            for _ in 0..50 {
                let mut b = base.clone();
                mutate(&mut b, m, &mut rng);
                assert_ne!(b, base, "{m:?}");
                assert!(b.len() <= PAYLOAD_MAX);
                if m == Mutation::HugeHeader {
                    assert!(b.len() > base.len() + 3000, "a few KB");
                }
            }
        }
        // The mutated pool: all differ from their base INVITE, some still parse.
        let mut parsed = 0;
        for n in 0..200 {
            let (p, applied) = mutated(&t, n, &mut rng);
            assert!(!applied.is_empty());
            let mut stamped = p.clone();
            stamped.stamp(0);
            assert_ne!(p.bytes, invite(&t, n).bytes);
            parsed += usize::from(Msg::parse(&stamped.bytes).is_ok());
        }
        assert!(parsed > 0 && parsed < 200, "{parsed}");
    }

    #[test]
    fn same_seed_same_payloads() {
        let t = template();
        let a = Pools::build(&t, [1, 1, 1, 1], &mut Rng::new(5));
        let b = Pools::build(&t, [1, 1, 1, 1], &mut Rng::new(5));
        let c = Pools::build(&t, [1, 1, 1, 1], &mut Rng::new(6));
        assert_eq!(a.deck, b.deck);
        for k in 0..4 {
            let pa: Vec<&Vec<u8>> = a.by_kind[k].iter().map(|p| &p.bytes).collect();
            let pb: Vec<&Vec<u8>> = b.by_kind[k].iter().map(|p| &p.bytes).collect();
            assert_eq!(pa, pb);
        }
        assert_ne!(a.by_kind[1][0].bytes, c.by_kind[1][0].bytes);
    }

    #[test]
    fn deck_follows_the_weights() {
        let d = deck([50, 30, 15, 5], &mut Rng::new(1));
        let count = |k| d.iter().filter(|&&x| x == k).count();
        assert_eq!(
            (
                count(Kind::Invite),
                count(Kind::Junk),
                count(Kind::Mutated),
                count(Kind::Options)
            ),
            (500, 300, 150, 50)
        );
        let only = deck([0, 1, 0, 0], &mut Rng::new(1));
        assert!(!only.is_empty() && only.iter().all(|&k| k == Kind::Junk));
        assert!(Pools::build(&template(), [0, 1, 0, 0], &mut Rng::new(1)).by_kind[0].is_empty());
    }
}
