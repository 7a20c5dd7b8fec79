//! Number patterns: regular expressions on the called number, always anchored, with error
//! messages for the constructs people port from .NET (Skype for Business) that Rust's `regex`
//! crate does not have.

use regex::bytes::{Regex, RegexSet};

/// The pattern as it is matched: the whole called number must match.
pub fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// Compile one pattern (anchored), or say in one line what is wrong with it.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    // Compile it as written first: a pattern like `a)|(b` is invalid alone but would become
    // valid (and unanchored) once wrapped.
    if let Err(e) = Regex::new(pattern) {
        return Err(explain(&e));
    }
    Regex::new(&anchored(pattern)).map_err(|e| explain(&e))
}

/// All patterns in one set, to learn with a single pass whether any matches at all.
pub fn compile_set<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<RegexSet, String> {
    RegexSet::new(patterns.into_iter().map(anchored)).map_err(|e| explain(&e))
}

fn explain(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => {
            // The crate's message is several lines: the pattern, a caret line, "error: ...".
            let what = text
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error:"))
                .map(str::trim)
                .unwrap_or_else(|| text.lines().last().unwrap_or("syntax error").trim());
            let mut msg = format!("invalid regular expression: {what}");
            if what.contains("look-around") || what.contains("backreference") {
                msg.push_str(
                    " (junction uses Rust's regex syntax, which has no look-around and no \
                     back-references, so matching always takes linear time; rewrite the \
                     pattern without them, or split it into several routes)",
                );
            }
            msg
        }
        regex::Error::CompiledTooBig(limit) => format!(
            "regular expression too large once compiled (over {limit} bytes); \
             use a prefix route or split the pattern"
        ),
        other => format!("invalid regular expression: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_the_whole_number() {
        let re = compile(r"\+1\d{3}").map_err(|e| e.to_string());
        let Ok(re) = re else { panic!("{re:?}") };
        assert!(re.is_match(b"+1212"));
        assert!(!re.is_match(b"+12125"));
        assert!(!re.is_match(b"x+1212"));
        let alt = compile(r"1|2").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !alt.is_match(b"12"),
            "alternation must stay inside the anchors"
        );
    }

    #[test]
    fn unbalanced_patterns_cannot_escape_the_anchors() {
        assert!(compile(r"1)|(2").is_err());
    }

    #[test]
    fn errors_are_one_line_and_say_why() {
        for (bad, word) in [
            (r"^(?!1900)\d+$", "look-around"),
            (r"^(\d)\1$", "back-references"),
            (r"^(\d+$", "unclosed"),
        ] {
            let msg = compile(bad).err().unwrap_or_default();
            assert!(msg.contains(word), "{bad}: {msg}");
            assert!(!msg.contains('\n'), "{bad}: {msg}");
        }
    }
}
