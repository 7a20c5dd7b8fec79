//! Number rules (inbound normalization, outbound translation): an anchored regular expression
//! and a replacement with `${1}` / `${name}` groups, compiled once and applied without
//! allocating (the match positions go into an array on the stack; only the caller's output
//! buffer is written).
//!
//! Replacement syntax (a strict subset of the `regex` crate's, so a rule means what it looks
//! like):
//!
//! - `${1}`, `${name}`: the text of a group (empty when the group did not take part);
//! - `$1`, `$name`: the same, when the next character cannot continue the name;
//! - `$$`: a literal `$`.
//!
//! Refused at load: `$1a` (the `regex` crate would read the group named `1a`, which is never
//! what a rule ported from .NET means), a `$` not followed by a group, `${` without `}`,
//! groups the pattern does not have.

use regex_automata::meta;
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternID};

use super::pattern;

/// Capture groups a rule pattern may have, the whole match (group 0) included: the match
/// positions live in a fixed array on the stack.
pub const GROUPS_MAX: usize = 16;
const SLOTS_MAX: usize = 2 * GROUPS_MAX;

/// One piece of a compiled replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    /// `literal[start..end]`.
    Literal(u32, u32),
    /// The text of this group.
    Group(u32),
}

/// A compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    re: meta::Regex,
    /// Match slots used: 2 per group.
    slots: usize,
    pieces: Vec<Piece>,
    literal: Vec<u8>,
}

impl Rule {
    /// Compile `pattern` (anchored: the whole number must match) and `replace`, or say in
    /// one line what is wrong and which of the two it is about.
    pub fn compile(pattern: &str, replace: &str) -> Result<Rule, RuleError> {
        // The regex crate's own message (and our advice on look-around / back-references).
        pattern::compile(pattern).map_err(RuleError::Pattern)?;
        let re = build(&pattern::anchored(pattern)).map_err(RuleError::Pattern)?;
        let groups = re.group_info().group_len(PatternID::ZERO);
        if groups > GROUPS_MAX {
            return Err(RuleError::Pattern(format!(
                "{} capturing groups; a rule may have at most {} (write (?:...) for groups \
                 that are not used in the replacement)",
                groups - 1,
                GROUPS_MAX - 1
            )));
        }
        let (pieces, literal) = parse_replacement(
            replace,
            |name| re.group_info().to_index(PatternID::ZERO, name),
            groups,
        )
        .map_err(RuleError::Replace)?;
        Ok(Rule {
            re,
            slots: 2 * groups,
            pieces,
            literal,
        })
    }

    /// If the whole `number` matches, write the replacement to `out` (cleared first) and
    /// return true; otherwise leave `out` alone and return false.
    pub fn apply(&self, number: &[u8], out: &mut Vec<u8>) -> bool {
        let mut slots = [None::<NonMaxUsize>; SLOTS_MAX];
        let slots = match slots.get_mut(..self.slots) {
            Some(s) => s,
            None => return false,
        };
        if self.re.search_slots(&Input::new(number), slots).is_none() {
            return false;
        }
        out.clear();
        for piece in &self.pieces {
            match *piece {
                Piece::Literal(start, end) => {
                    if let Some(text) = self.literal.get(start as usize..end as usize) {
                        out.extend_from_slice(text);
                    }
                }
                Piece::Group(g) => {
                    let g = g as usize;
                    let start = slots.get(2 * g).copied().flatten();
                    let end = slots.get(2 * g + 1).copied().flatten();
                    if let (Some(s), Some(e)) = (start, end) {
                        if let Some(text) = number.get(s.get()..e.get()) {
                            out.extend_from_slice(text);
                        }
                    }
                }
            }
        }
        true
    }
}

/// What is wrong with a rule: its pattern or its replacement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleError {
    Pattern(String),
    Replace(String),
}

/// Build the matcher the way `regex::bytes::Regex` does (same syntax, same limits), but as a
/// `meta::Regex`, whose `search_slots` takes the match positions in a caller's array.
fn build(anchored: &str) -> Result<meta::Regex, String> {
    let config = meta::Config::new()
        .match_kind(MatchKind::LeftmostFirst)
        .utf8_empty(false)
        .nfa_size_limit(Some(10 * (1 << 20)))
        .hybrid_cache_capacity(2 * (1 << 20));
    meta::Builder::new()
        .configure(config)
        .syntax(syntax::Config::new().utf8(false))
        .build(anchored)
        .map_err(|e| format!("invalid regular expression: {e}"))
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parse a replacement into pieces. `index_of` maps a group name to its index; `groups` is
/// the number of groups (group 0, the whole match, included).
fn parse_replacement(
    replace: &str,
    index_of: impl Fn(&str) -> Option<usize>,
    groups: usize,
) -> Result<(Vec<Piece>, Vec<u8>), String> {
    let bytes = replace.as_bytes();
    let mut pieces = Vec::new();
    let mut literal: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut lit_start = 0usize;
    let group = |name: &str, written: &str| -> Result<Piece, String> {
        let index = if name.bytes().all(|b| b.is_ascii_digit()) {
            match name.parse::<usize>() {
                Ok(i) if i < groups => i,
                _ => {
                    return Err(format!(
                        "{written}: the pattern has no group {name} (it has {} capturing \
                         group{}; ${{0}} is the whole number)",
                        groups - 1,
                        if groups == 2 { "" } else { "s" }
                    ))
                }
            }
        } else {
            match index_of(name) {
                Some(i) => i,
                None => {
                    return Err(format!(
                        "{written}: the pattern has no group named {name:?} (name a group \
                         with (?P<{name}>...))"
                    ))
                }
            }
        };
        Ok(Piece::Group(index as u32))
    };

    let mut i = 0;
    while i < bytes.len() {
        if bytes.get(i) != Some(&b'$') {
            i += 1;
            continue;
        }
        push_literal(
            &mut literal,
            &mut pieces,
            bytes.get(lit_start..i).unwrap_or(&[]),
        );
        let rest = bytes.get(i + 1..).unwrap_or(&[]);
        match rest.first() {
            Some(b'$') => {
                push_literal(&mut literal, &mut pieces, b"$");
                i += 2;
            }
            Some(b'{') => {
                let Some(close) = rest.iter().position(|&b| b == b'}') else {
                    return Err(format!(
                        "{:?}: `${{` without a closing `}}`; write ${{1}} or ${{name}}",
                        tail(replace, i)
                    ));
                };
                let name = rest.get(1..close).unwrap_or(&[]);
                let name = std::str::from_utf8(name).unwrap_or("");
                if name.is_empty() || !name.bytes().all(is_name_byte) {
                    return Err(format!(
                        "`${{{name}}}` is not a group: write ${{1}} (a number) or ${{name}} \
                         (letters, digits, '_')"
                    ));
                }
                pieces.push(group(name, &format!("${{{name}}}"))?);
                i += 1 + close + 1;
            }
            Some(&b) if is_name_byte(b) => {
                let len = rest.iter().take_while(|&&b| is_name_byte(b)).count();
                let name = std::str::from_utf8(rest.get(..len).unwrap_or(&[])).unwrap_or("");
                let digits = name.bytes().take_while(u8::is_ascii_digit).count();
                if digits > 0 && digits < name.len() {
                    let (num, after) = name.split_at(digits);
                    return Err(format!(
                        "`${name}` would be read as the group named {name:?}, not group {num} \
                         followed by {after:?}: write ${{{num}}}{after}"
                    ));
                }
                pieces.push(group(name, &format!("${name}"))?);
                i += 1 + len;
            }
            _ => {
                return Err(format!(
                    "a `$` not followed by a group at {:?}: write ${{1}} or ${{name}} for a \
                     group, $$ for a dollar sign",
                    tail(replace, i)
                ));
            }
        }
        lit_start = i;
    }
    push_literal(
        &mut literal,
        &mut pieces,
        bytes.get(lit_start..).unwrap_or(&[]),
    );
    Ok((pieces, literal))
}

fn push_literal(literal: &mut Vec<u8>, pieces: &mut Vec<Piece>, text: &[u8]) {
    if text.is_empty() {
        return;
    }
    let start = literal.len() as u32;
    literal.extend_from_slice(text);
    let end = literal.len() as u32;
    // Adjacent literals merge.
    if let Some(Piece::Literal(_, last_end)) = pieces.last_mut() {
        if *last_end == start {
            *last_end = end;
            return;
        }
    }
    pieces.push(Piece::Literal(start, end));
}

/// `text` from byte `at` (for messages).
fn tail(text: &str, at: usize) -> &str {
    text.get(at..).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(pattern: &str, replace: &str, number: &str) -> Option<String> {
        let rule = Rule::compile(pattern, replace).unwrap_or_else(|e| panic!("{e:?}"));
        let mut out = b"junk".to_vec();
        rule.apply(number.as_bytes(), &mut out)
            .then(|| String::from_utf8_lossy(&out).into_owned())
    }

    fn replace_error(pattern: &str, replace: &str) -> String {
        match Rule::compile(pattern, replace) {
            Err(RuleError::Replace(m)) => m,
            other => panic!("{replace}: {other:?}"),
        }
    }

    #[test]
    fn groups_and_literals() {
        assert_eq!(
            apply(r"(\d{4})", "+1212555${1}", "1234").as_deref(),
            Some("+12125551234")
        );
        assert_eq!(
            apply(r"\+1(\d{10})", "$1", "+12125551234").as_deref(),
            Some("2125551234")
        );
        assert_eq!(
            apply(
                r"(?P<area>\d{3})(?<line>\d{7})",
                "+1${area}-${line}",
                "2125551234"
            )
            .as_deref(),
            Some("+1212-5551234")
        );
        assert_eq!(apply(r"(\d+)", "$$${1}$$", "12").as_deref(), Some("$12$"));
        assert_eq!(apply(r"\d+", "${0}0", "12").as_deref(), Some("120"));
        // A group that did not take part is empty.
        assert_eq!(apply(r"(1)?(2)", "[$1][$2]", "2").as_deref(), Some("[][2]"));
        // Anchored: a partial match is no match.
        assert_eq!(apply(r"(\d{4})", "x", "12345"), None);
        assert_eq!(apply(r"1|2", "x", "12"), None);
    }

    #[test]
    fn ambiguous_and_unknown_groups_are_refused() {
        let m = replace_error(r"(\d+)", "$1a");
        assert!(m.contains("${1}a"), "{m}");
        let m = replace_error(r"(\d+)", "0$1_x");
        assert!(m.contains("${1}_x"), "{m}");
        assert!(replace_error(r"(\d+)", "$2").contains("no group 2"));
        assert!(replace_error(r"(\d+)", "${x}").contains("no group named"));
        assert!(replace_error(r"(\d+)", "${1").contains("closing"));
        assert!(replace_error(r"(\d+)", "1$").contains("$$"));
        assert!(replace_error(r"(\d+)", "${}").contains("not a group"));
        assert!(Rule::compile(r"(\d+)", "$10").is_err());
        let many = "(1)".repeat(GROUPS_MAX);
        assert!(matches!(
            Rule::compile(&many, ""),
            Err(RuleError::Pattern(_))
        ));
    }

    #[test]
    fn unsupported_syntax_is_the_pattern_s_fault() {
        match Rule::compile(r"(?!1900)\d+", "") {
            Err(RuleError::Pattern(m)) => assert!(m.contains("look-around"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
