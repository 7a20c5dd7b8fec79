//! Names of trunks and routes: required, short, and safe to print in logs, metrics labels
//! and CDRs.

use super::toml_doc::{Doc, Section};

/// Longest name accepted (it appears in every CDR and metrics label).
pub const NAME_BYTES_MAX: usize = 64;

/// Whether `name` is a valid trunk or route name: `[A-Za-z0-9_.-]+`, at most
/// `NAME_BYTES_MAX` bytes.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Read the required `name` of a trunk or route section (`what` is "trunk" or "route").
pub fn read(doc: &mut Doc<'_>, section: &Section<'_>, what: &str) -> Option<String> {
    let Some(f) = section.field(doc, "name") else {
        doc.error(
            section.line,
            &format!("{}.name", section.path),
            format!("missing: every {what} needs a name, like name = \"gw-east\""),
        );
        return None;
    };
    let name = f.string(doc, "a name in quotes, like \"gw-east\"")?;
    if !is_valid(name) {
        doc.error(
            f.line,
            &f.key,
            format!(
                "{name:?} is not a valid name: use 1 to {NAME_BYTES_MAX} letters, digits, \
                 '_', '.' or '-'"
            ),
        );
        return None;
    }
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert!(super::is_valid("gw-a.nyc_2"));
        assert!(!super::is_valid(""));
        assert!(!super::is_valid("gw a"));
        assert!(!super::is_valid("gw/a"));
        assert!(!super::is_valid(&"x".repeat(65)));
    }
}
