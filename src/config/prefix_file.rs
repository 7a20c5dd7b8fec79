//! A route's prefixes read from a file (`prefix_file = "us.csv"`), the way carriers ship
//! route tables: one prefix per line, the prefix in the first CSV column (other columns are
//! ignored), `#` comment lines and blank lines allowed, and an optional header line whose
//! first column is `prefix`. Bad lines are reported with the file's own name and line.
//!
//! The prefixes are kept in one byte buffer with an end offset and a line number each, so a
//! million of them cost about 9 bytes plus their length (no allocation per prefix).

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::ConfigError;
use crate::routing::prefix::PREFIX_BYTES_MAX;

/// Bad lines reported per file; the rest are counted in one last message.
pub const PREFIX_FILE_ERRORS_MAX: usize = 20;

/// The prefixes of one file, in file order.
#[derive(Debug, Default)]
pub struct PrefixFile {
    /// The file as named in messages (the configured path, resolved against the
    /// configuration file's directory).
    pub path: String,
    bytes: Vec<u8>,
    /// End of prefix `i` in `bytes` (it starts where `i - 1` ends).
    ends: Vec<u32>,
    /// 1-based line of prefix `i`.
    lines: Vec<u32>,
}

impl PrefixFile {
    /// Parse the file's contents. `key` names the configuration key in messages
    /// (`route[3].prefix_file`). Every bad line is an error (the first
    /// `PREFIX_FILE_ERRORS_MAX` are listed), and so is a file with no prefix at all.
    pub fn parse(path: &str, key: &str, text: &[u8]) -> Result<PrefixFile, Vec<ConfigError>> {
        let error = |line: usize, message: String| ConfigError {
            file: path.to_string(),
            line: Some(line),
            key: key.to_string(),
            message,
        };
        let mut file = PrefixFile {
            path: path.to_string(),
            bytes: Vec::with_capacity(text.len() / 2),
            ends: Vec::with_capacity(text.len() / 10),
            lines: Vec::with_capacity(text.len() / 10),
        };
        // Bad lines: the first few in full, the others counted.
        let mut bad: Vec<(usize, String)> = Vec::new();
        let mut bad_count = 0usize;
        let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
        let mut seen_data = false;
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line_no = i + 1;
            let line = trim(raw);
            if line.is_empty() || line.first() == Some(&b'#') {
                continue;
            }
            let first_data = !seen_data;
            seen_data = true;
            let result = first_column(line).and_then(|p| {
                if first_data && p.prefix.eq_ignore_ascii_case(b"prefix") && !p.quoted {
                    return Ok(None);
                }
                check_prefix(p.prefix, p.quoted).map(Some)
            });
            match result {
                Ok(None) => {}
                Ok(Some(prefix)) => {
                    file.bytes.extend_from_slice(prefix);
                    let (Ok(end), Ok(at)) =
                        (u32::try_from(file.bytes.len()), u32::try_from(line_no))
                    else {
                        return Err(vec![error(
                            line_no,
                            "the file is too large (at most 4 GB of prefixes)".into(),
                        )]);
                    };
                    file.ends.push(end);
                    file.lines.push(at);
                }
                Err(message) => {
                    bad_count += 1;
                    if bad.len() < PREFIX_FILE_ERRORS_MAX {
                        bad.push((line_no, message));
                    }
                }
            }
        }

        // The same prefix twice in one file is a mistake in the data (two rows for one
        // prefix, maybe with different columns): say which lines.
        let mut first_line: HashMap<&[u8], u32> = HashMap::with_capacity(file.len());
        for i in 0..file.len() {
            let (Some(prefix), Some(&line)) = (file.get(i), file.lines.get(i)) else {
                continue;
            };
            let first = match first_line.entry(prefix) {
                Entry::Occupied(o) => *o.get(),
                Entry::Vacant(v) => {
                    v.insert(line);
                    continue;
                }
            };
            bad_count += 1;
            if bad.len() < 2 * PREFIX_FILE_ERRORS_MAX {
                bad.push((
                    line as usize,
                    format!(
                        "prefix {:?} is listed twice (also line {first})",
                        String::from_utf8_lossy(prefix)
                    ),
                ));
            }
        }
        drop(first_line);

        if bad_count == 0 && file.is_empty() {
            return Err(vec![ConfigError {
                file: path.to_string(),
                line: None,
                key: key.to_string(),
                message: "lists no prefixes (one per line, in the first column)".into(),
            }]);
        }
        if bad_count > 0 {
            bad.sort_by_key(|(line, _)| *line);
            bad.truncate(PREFIX_FILE_ERRORS_MAX);
            let shown = bad.len();
            let last_line = bad.last().map_or(1, |(l, _)| *l);
            let mut errors: Vec<ConfigError> = bad.into_iter().map(|(l, m)| error(l, m)).collect();
            if bad_count > shown {
                errors.push(error(
                    last_line,
                    format!(
                        "{} more bad lines not listed ({bad_count} in all)",
                        bad_count - shown
                    ),
                ));
            }
            return Err(errors);
        }
        file.bytes.shrink_to_fit();
        file.ends.shrink_to_fit();
        file.lines.shrink_to_fit();
        Ok(file)
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Prefix `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = match i.checked_sub(1) {
            Some(prev) => *self.ends.get(prev)? as usize,
            None => 0,
        };
        self.bytes.get(start..end)
    }

    /// Every prefix, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The line `prefix` is on (a linear search: for explanations, not for routing).
    pub fn line_of(&self, prefix: &[u8]) -> Option<usize> {
        (0..self.len())
            .find(|&i| self.get(i) == Some(prefix))
            .and_then(|i| self.lines.get(i))
            .map(|&l| l as usize)
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + 4 * self.ends.capacity() + 4 * self.lines.capacity()
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

struct Column<'a> {
    prefix: &'a [u8],
    quoted: bool,
}

/// The first CSV column of a (trimmed, non-empty) line, unquoted.
fn first_column(line: &[u8]) -> Result<Column<'_>, String> {
    if let Some(rest) = line.strip_prefix(b"\"") {
        let Some(close) = rest.iter().position(|&b| b == b'"') else {
            return Err("the quoted prefix has no closing quote".into());
        };
        let prefix = rest.get(..close).unwrap_or(&[]);
        let after = trim(rest.get(close + 1..).unwrap_or(&[]));
        if !(after.is_empty() || after.first() == Some(&b',')) {
            return Err(
                "a prefix cannot contain a quote; after the closing quote comes a comma or the \
                 end of the line"
                    .into(),
            );
        }
        return Ok(Column {
            prefix,
            quoted: true,
        });
    }
    let end = line.iter().position(|&b| b == b',').unwrap_or(line.len());
    let prefix = trim(line.get(..end).unwrap_or(&[]));
    if prefix.is_empty() {
        return Err(
            "no prefix in the first column (write \"\" in quotes for the catch-all prefix)".into(),
        );
    }
    Ok(Column {
        prefix,
        quoted: false,
    })
}

fn check_prefix(prefix: &[u8], quoted: bool) -> Result<&[u8], String> {
    let shown = String::from_utf8_lossy(prefix);
    if prefix.len() > PREFIX_BYTES_MAX {
        return Err(format!(
            "{shown:?} is {} bytes long; a prefix has at most {PREFIX_BYTES_MAX}",
            prefix.len()
        ));
    }
    if prefix
        .iter()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!(
            "{shown:?} contains a space or control character, which a called number never has"
        ));
    }
    if !quoted && prefix.contains(&b'"') {
        return Err(format!("{shown:?} contains a quote"));
    }
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, usize)>, Vec<String>> {
        match PrefixFile::parse("p.csv", "route[0].prefix_file", text.as_bytes()) {
            Ok(f) => Ok((0..f.len())
                .map(|i| {
                    (
                        String::from_utf8_lossy(f.get(i).unwrap_or(b"?")).into_owned(),
                        f.lines.get(i).map_or(0, |&l| l as usize),
                    )
                })
                .collect()),
            Err(e) => Err(e.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn columns_comments_header_quotes() {
        let got = parse(
            "\u{feff}prefix,carrier,rate\n# NANP\n\n+1212,gw-a,0.01\r\n  +1646 , gw-b\n\"#31#\"\n\"\",catch-all\n+1917",
        );
        assert_eq!(
            got,
            Ok(vec![
                ("+1212".into(), 4),
                ("+1646".into(), 5),
                ("#31#".into(), 6),
                ("".into(), 7),
                ("+1917".into(), 8),
            ])
        );
        // "prefix" later in the file is data, not a header.
        assert_eq!(
            parse("+1\nprefix\n"),
            Ok(vec![("+1".into(), 1), ("prefix".into(), 2)])
        );
    }

    #[test]
    fn bad_lines_have_their_line() {
        let errs = parse("+1\n,x\n+1 2\n\"+44\n+33\n+1\n")
            .err()
            .unwrap_or_default();
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(
            errs[0].starts_with("p.csv:2: route[0].prefix_file: no prefix"),
            "{errs:#?}"
        );
        assert!(
            errs[1].starts_with("p.csv:3: ") && errs[1].contains("space"),
            "{errs:#?}"
        );
        assert!(errs[2].starts_with("p.csv:4: ") && errs[2].contains("closing quote"));
        assert!(errs[3].starts_with("p.csv:6: ") && errs[3].contains("also line 1"));
        let long = format!("+{}\n", "1".repeat(PREFIX_BYTES_MAX));
        let errs = parse(&long).err().unwrap_or_default();
        assert!(errs[0].contains("at most 32"), "{errs:?}");
    }

    #[test]
    fn many_bad_lines_are_summarized() {
        let text = "x y\n".repeat(1000);
        let errs = parse(&text).err().unwrap_or_default();
        assert_eq!(errs.len(), PREFIX_FILE_ERRORS_MAX + 1);
        assert!(
            errs[PREFIX_FILE_ERRORS_MAX].contains("980 more bad lines"),
            "{errs:?}"
        );
    }

    #[test]
    fn an_empty_file_is_an_error() {
        let errs = parse("prefix\n# nothing yet\n").err().unwrap_or_default();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("lists no prefixes"), "{errs:?}");
    }
}
