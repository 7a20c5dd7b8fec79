//! Number plans: where each call's called and calling numbers come from.
//!
//! - `--inf FILE`: SIPp's injection file. The first line says how lines are taken
//!   (`SEQUENTIAL`, `RANDOM`, or `USER`, taken here like SEQUENTIAL: there are no SIPp users);
//!   every other line is one call's fields, `;`-separated (`[field0]`, `[field1]`...). Lines
//!   starting with `#` and empty lines are skipped, as SIPp does.
//! - `--number TEXT` / `--calling TEXT`: one number; `[fieldN]` in it is the call's field N.
//! - `--numbers PATTERNS` / `--calling-numbers PATTERNS`: generators. `P1:W1,P2:W2,...`: each
//!   pattern's share of the calls is its weight (default 1), laid out exactly over each cycle
//!   of the weights' sum; in a pattern every `X` is a random digit (`+1212555XXXX`), and
//!   `[fieldN]` works here too.
//! - `--expect FILE`: what `junction route-test CONFIG --file CALLS --format tsv` (or csv)
//!   wrote: one call per line with the numbers to send and where the call must arrive (see
//!   `Expectation`). The calls are placed in the file's order, cycling.
//!
//! A `Plan` is shared by the workers (read only); each call picks its numbers with its own
//! sequence number `n` and the worker's random generator.

use std::sync::Arc;

/// How lines of an injection file are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Sequential,
    Random,
    User,
}

/// An injection file (`-inf`): its order and its lines' fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inf {
    pub order: Order,
    pub rows: Vec<Vec<String>>,
}

/// Largest injection or expectation file read (bytes): 1 GiB would be tens of millions of
/// calls, more than any run places; a bigger file is a mistake.
pub const FILE_MAX: u64 = 1 << 30;

fn read_text(opt: &str, path: &std::path::Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{opt} {}: {e}", path.display()))?;
    if meta.len() > FILE_MAX {
        return Err(format!(
            "{opt} {}: larger than {FILE_MAX} bytes",
            path.display()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{opt} {}: {e}", path.display()))
}

impl Inf {
    pub fn load(path: &std::path::Path) -> Result<Inf, String> {
        let text = read_text("--inf", path)?;
        Inf::parse(&text).map_err(|e| format!("--inf {}:{e}", path.display()))
    }

    /// Parse the text; errors start with the line number (`3: ...`).
    pub fn parse(text: &str) -> Result<Inf, String> {
        let mut lines = text.lines().enumerate();
        let order = loop {
            let Some((i, l)) = lines.next() else {
                return Err("1: empty file (the first line is SEQUENTIAL, RANDOM or USER)".into());
            };
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            // SIPp allows options after a comma (",PRINTF=..."): not supported, so refused.
            break match l.to_ascii_uppercase().as_str() {
                "SEQUENTIAL" => Order::Sequential,
                "RANDOM" => Order::Random,
                "USER" => Order::User,
                _ => {
                    return Err(format!(
                        "{}: the first line must be SEQUENTIAL, RANDOM or USER, found {l:?}",
                        i + 1
                    ))
                }
            };
        };
        let mut rows = Vec::new();
        for (_, l) in lines {
            let l = l.trim_end_matches('\r');
            if l.trim().is_empty() || l.starts_with('#') {
                continue;
            }
            // A trailing ';' ends the last field (SIPp files usually have one).
            let l = l.strip_suffix(';').unwrap_or(l);
            rows.push(l.split(';').map(String::from).collect());
        }
        if rows.is_empty() {
            return Err("2: no data line after the first".into());
        }
        Ok(Inf { order, rows })
    }

    /// The line of call `n` (`rnd`: a random value for RANDOM order).
    pub fn index(&self, n: u64, rnd: u64) -> usize {
        let len = self.rows.len().max(1) as u64;
        (match self.order {
            Order::Sequential | Order::User => n % len,
            Order::Random => rnd % len,
        }) as usize
    }

    /// The fields of call `n`.
    pub fn row(&self, n: u64, rnd: u64) -> &[String] {
        self.rows
            .get(self.index(n, rnd))
            .map_or(&[], |r| r.as_slice())
    }
}

/// A piece of a number template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Lit(String),
    /// `X` in a generator pattern: a random digit.
    Digit,
    /// `[fieldN]`.
    Field(usize),
}

/// One number template (with its weight among the generator's patterns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub segs: Vec<Seg>,
    pub weight: u32,
}

/// Templates for one number: a single `--number`, or a weighted generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub patterns: Vec<Pattern>,
}

/// Highest field index accepted in `[fieldN]` (SIPp has no limit; lines of more than 1000
/// fields are not number plans).
pub const FIELD_MAX: usize = 1000;

/// `[fieldN]` at the start of `s`: (N, bytes taken).
pub fn field_ref(s: &str) -> Option<(usize, usize)> {
    let rest = s.strip_prefix("[field")?;
    let end = rest.find(']')?;
    let n: usize = rest.get(..end)?.parse().ok()?;
    (n <= FIELD_MAX).then_some((n, "[field".len() + end + 1))
}

fn compile(opt: &str, text: &str, random_x: bool) -> Result<Vec<Seg>, String> {
    let mut segs = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            match field_ref(rest) {
                Some((n, len)) => {
                    if !lit.is_empty() {
                        segs.push(Seg::Lit(std::mem::take(&mut lit)));
                    }
                    segs.push(Seg::Field(n));
                    rest = &rest[len..];
                    continue;
                }
                None => return Err(format!("{opt} {text:?}: only [fieldN] may be in brackets")),
            }
        }
        if random_x && c == 'X' {
            if !lit.is_empty() {
                segs.push(Seg::Lit(std::mem::take(&mut lit)));
            }
            segs.push(Seg::Digit);
        } else if c.is_ascii_graphic() && !"<>@;,\"".contains(c) {
            lit.push(c);
        } else {
            return Err(format!(
                "{opt} {text:?}: {c:?} cannot be in a number (the user part of a SIP URI)"
            ));
        }
        rest = &rest[c.len_utf8()..];
    }
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit));
    }
    if segs.is_empty() {
        return Err(format!("{opt}: an empty number"));
    }
    Ok(segs)
}

impl Spec {
    /// `--number TEXT`: one template, `X` is literal.
    pub fn single(opt: &str, text: &str) -> Result<Spec, String> {
        Ok(Spec {
            patterns: vec![Pattern {
                segs: compile(opt, text, false)?,
                weight: 1,
            }],
        })
    }

    /// `--numbers 'P1:W1,P2:W2'`: patterns with `X` a random digit, weights default 1.
    pub fn generator(opt: &str, text: &str) -> Result<Spec, String> {
        let mut patterns = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (pat, weight) = match part.rsplit_once(':') {
                Some((p, w)) => (
                    p,
                    w.parse::<u32>()
                        .map_err(|_| format!("{opt}: weight {w:?} of {p:?} is not a number"))?,
                ),
                None => (part, 1),
            };
            patterns.push(Pattern {
                segs: compile(opt, pat, true)?,
                weight,
            });
        }
        if patterns.iter().all(|p| p.weight == 0) {
            return Err(format!("{opt}: the weights add up to 0"));
        }
        Ok(Spec { patterns })
    }

    /// The highest `[fieldN]` used, if any.
    pub fn max_field(&self) -> Option<usize> {
        self.patterns
            .iter()
            .flat_map(|p| p.segs.iter())
            .filter_map(|s| match s {
                Seg::Field(n) => Some(*n),
                _ => None,
            })
            .max()
    }

    /// Write call `n`'s number into `out` (cleared first).
    pub fn render(&self, n: u64, fields: &[String], rng: &mut Rng, out: &mut Vec<u8>) {
        out.clear();
        let total: u64 = self.patterns.iter().map(|p| u64::from(p.weight)).sum();
        let mut k = n % total.max(1);
        let mut chosen = self.patterns.first();
        for p in &self.patterns {
            let w = u64::from(p.weight);
            if k < w {
                chosen = Some(p);
                break;
            }
            k -= w;
        }
        let Some(p) = chosen else { return };
        for s in &p.segs {
            match s {
                Seg::Lit(t) => out.extend_from_slice(t.as_bytes()),
                Seg::Digit => out.push(b'0' + (rng.next_u64() % 10) as u8),
                Seg::Field(i) => {
                    if let Some(f) = fields.get(*i) {
                        out.extend_from_slice(f.as_bytes());
                    }
                }
            }
        }
    }
}

/// xorshift64*: a worker's random digits and RANDOM lines (not for anything secret).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One attempt of an expected call: the egress trunk and the numbers it must receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub trunk: String,
    pub called: String,
    /// `None`: no calling number is expected (`-`).
    pub calling: Option<String>,
}

/// What must become of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It reaches the first attempt's trunk (or, when that one is busy or down, a later one)
    /// with that attempt's numbers.
    Route(Vec<Attempt>),
    /// junction answers it with this code (404 no route, 503 no usable trunk, 403 unknown
    /// source); 0: dropped without an answer.
    Answer(u16),
}

/// One line of an expectation file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// The ingress (trunk name or address) route-test assumed.
    pub from: String,
    /// The numbers the UAC sends.
    pub called: String,
    pub calling: Option<String>,
    pub outcome: Outcome,
}

/// Parse route-test's machine-readable output (`--format tsv` or `csv`): a header line
/// starting with `#`, then per call
/// `from called calling ingress called_norm calling_norm result [trunk called calling]...`
/// where `result` is `route`, `404`, `503`, `403` or `drop` and `calling` is `-` when none.
pub fn parse_expectations(text: &str) -> Result<Vec<Expectation>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let sep = if line.contains('\t') { '\t' } else { ',' };
        let f: Vec<&str> = line.split(sep).map(str::trim).collect();
        let bad = |why: &str| format!("{}: {why}: {line:?}", i + 1);
        if f.len() < 7 {
            return Err(bad("expected at least 7 fields (route-test --format tsv)"));
        }
        let opt = |s: &str| (s != "-" && !s.is_empty()).then(|| s.to_string());
        let outcome = match f[6] {
            "route" => {
                let rest = &f[7..];
                if rest.is_empty() || rest.len() % 3 != 0 {
                    return Err(bad("a routed call needs trunk,called,calling per attempt"));
                }
                Outcome::Route(
                    rest.chunks(3)
                        .map(|a| Attempt {
                            trunk: a[0].to_string(),
                            called: a[1].to_string(),
                            calling: opt(a[2]),
                        })
                        .collect(),
                )
            }
            "drop" => Outcome::Answer(0),
            code => Outcome::Answer(
                code.parse()
                    .ok()
                    .filter(|c| (300..700).contains(c))
                    .ok_or_else(|| bad("result is route, drop or a final response code"))?,
            ),
        };
        out.push(Expectation {
            from: f[0].to_string(),
            called: f[1].to_string(),
            calling: opt(f[2]),
            outcome,
        });
    }
    if out.is_empty() {
        return Err("no call in the file".into());
    }
    Ok(out)
}

/// The number plan of a run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub inf: Option<Arc<Inf>>,
    pub called: Spec,
    pub calling: Option<Spec>,
    pub expect: Option<Arc<Vec<Expectation>>>,
}

/// One call's numbers.
pub struct Picked {
    /// Index into the expectations (when there are).
    pub expect: Option<u32>,
    /// The line of the injection file (when there is one).
    pub row: Option<usize>,
}

impl Plan {
    pub fn fixed(number: &str) -> Plan {
        Plan {
            inf: None,
            called: Spec {
                patterns: vec![Pattern {
                    segs: vec![Seg::Lit(number.to_string())],
                    weight: 1,
                }],
            },
            calling: None,
            expect: None,
        }
    }

    /// Check that every `[fieldN]` used has an injection file with that many fields.
    pub fn check(&self) -> Result<(), String> {
        let max = [Some(&self.called), self.calling.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(Spec::max_field)
            .max();
        check_fields(max, self.inf.as_deref())
    }

    /// Whether every call gets the same called number and no calling number (the plain
    /// built-in UAC's text can then be written without per-call numbers).
    pub fn is_fixed(&self) -> bool {
        self.expect.is_none()
            && self.calling.is_none()
            && self.called.patterns.len() == 1
            && self
                .called
                .patterns
                .iter()
                .all(|p| p.segs.iter().all(|s| matches!(s, Seg::Lit(_))))
    }

    /// Call `n`'s numbers into `called` and `calling` (empty: no calling number).
    pub fn pick(
        &self,
        n: u64,
        rng: &mut Rng,
        called: &mut Vec<u8>,
        calling: &mut Vec<u8>,
    ) -> Picked {
        calling.clear();
        if let Some(list) = &self.expect {
            let i = (n % list.len().max(1) as u64) as usize;
            if let Some(e) = list.get(i) {
                called.clear();
                called.extend_from_slice(e.called.as_bytes());
                if let Some(c) = &e.calling {
                    calling.extend_from_slice(c.as_bytes());
                }
                return Picked {
                    expect: Some(i as u32),
                    row: None,
                };
            }
        }
        let rnd = rng.next_u64();
        let row = self.inf.as_ref().map(|f| f.index(n, rnd));
        let fields = self.row_fields(row);
        self.called.render(n, fields, rng, called);
        if let Some(c) = &self.calling {
            c.render(n, fields, rng, calling);
        }
        Picked { expect: None, row }
    }

    /// The fields of an injection file line (`[fieldN]`); empty without a file.
    pub fn row_fields(&self, row: Option<usize>) -> &[String] {
        match (&self.inf, row) {
            (Some(f), Some(i)) => f.rows.get(i).map_or(&[], |r| r.as_slice()),
            _ => &[],
        }
    }
}

/// `[fieldN]` with N beyond what the file has is refused before the run (SIPp would send an
/// empty string).
pub fn check_fields(max: Option<usize>, inf: Option<&Inf>) -> Result<(), String> {
    let Some(max) = max else { return Ok(()) };
    let Some(inf) = inf else {
        return Err(format!(
            "[field{max}] is used but no --inf file gives fields"
        ));
    };
    let fewest = inf.rows.iter().map(Vec::len).min().unwrap_or(0);
    if max >= fewest {
        return Err(format!(
            "[field{max}] is used but a line of the --inf file has only {fewest} field(s)"
        ));
    }
    Ok(())
}

/// Read an expectation file.
pub fn load_expectations(path: &std::path::Path) -> Result<Vec<Expectation>, String> {
    let text = read_text("--expect", path)?;
    parse_expectations(&text).map_err(|e| format!("--expect {}:{e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injection_files_like_sipp() {
        let inf =
            Inf::parse("SEQUENTIAL\n# a comment\n2125551000;alice;x;y;\n2125551001;bob;z;w\n\n")
                .unwrap();
        assert_eq!(inf.order, Order::Sequential);
        assert_eq!(inf.rows.len(), 2);
        assert_eq!(inf.row(0, 9), ["2125551000", "alice", "x", "y"]);
        assert_eq!(inf.row(3, 9)[1], "bob");
        assert_eq!(Inf::parse("RANDOM\na\n").unwrap().order, Order::Random);
        assert!(Inf::parse("SEQUENCE\na\n").unwrap_err().starts_with("1: "));
        assert!(Inf::parse("USER\n").is_err());
    }

    #[test]
    fn generators_lay_out_their_weights_and_fill_digits() {
        let g = Spec::generator("--numbers", "+1212555XXXX:3,+44207[field1]:1").unwrap();
        let fields = vec!["a".to_string(), "9".to_string()];
        let mut rng = Rng::new(7);
        let mut out = Vec::new();
        let mut us = 0;
        for n in 0..400 {
            g.render(n, &fields, &mut rng, &mut out);
            let s = String::from_utf8(out.clone()).unwrap();
            if s.starts_with("+1212555") {
                us += 1;
                assert_eq!(s.len(), 12);
                assert!(s[1..].bytes().all(|b| b.is_ascii_digit()), "{s}");
            } else {
                assert_eq!(s, "+442079");
            }
        }
        assert_eq!(us, 300);
        assert!(Spec::generator("--numbers", "1:0").is_err());
        assert!(Spec::generator("--numbers", "12 3").is_err());
        assert!(Spec::generator("--numbers", "12[f]").is_err());
        // --number: X is a letter like any other.
        let one = Spec::single("--number", "X[field0]").unwrap();
        one.render(0, &fields, &mut rng, &mut out);
        assert_eq!(out, b"Xa");
    }

    #[test]
    fn fields_must_exist() {
        let inf = Inf::parse("SEQUENTIAL\na;b\nc\n").unwrap();
        assert!(check_fields(Some(0), Some(&inf)).is_ok());
        assert!(check_fields(Some(1), Some(&inf)).is_err());
        assert!(check_fields(Some(0), None).is_err());
        assert!(check_fields(None, None).is_ok());
    }

    #[test]
    fn expectations_from_route_test() {
        let text = "#from\tcalled\tcalling\tingress\tcalled_in\tcalling_in\tresult\tattempts\n\
                    carrier\t2125551234\t-\tcarrier\t+12125551234\t-\troute\tgw-a\t2125551234\t-\tgw-b\t12125551234\t-\n\
                    carrier,999,5551000,carrier,999,+15551000,404\n";
        let e = parse_expectations(text).unwrap();
        assert_eq!(e.len(), 2);
        match &e[0].outcome {
            Outcome::Route(a) => {
                assert_eq!(a.len(), 2);
                assert_eq!(a[1].called, "12125551234");
                assert_eq!(a[0].calling, None);
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(e[1].outcome, Outcome::Answer(404));
        assert_eq!(e[1].calling.as_deref(), Some("5551000"));
        assert!(parse_expectations("a\tb\tc\n").is_err());
        assert!(parse_expectations("a,b,c,d,e,f,route,gw\n").is_err());
    }
}
