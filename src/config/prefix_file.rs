//! A route's prefixes read from a file (`prefix_file = "us.csv"`), the way carriers ship
//! route tables: one prefix per line, the prefix in the first CSV column (other columns are
//! ignored), `#` comment lines and blank lines allowed, and an optional header line whose
//! first column is `prefix`. Bad lines are reported with the file's own name and line.
//!
//! The prefixes are kept in byte order in one buffer with an end offset and a line number
//! each, so a million of them cost about 8 bytes plus their length (no allocation per
//! prefix).

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

/// A prefix found in the text: where, and on which line.
#[derive(Clone, Copy)]
struct Found {
    /// Its first 8 bytes, big-endian, zero-padded: comparing these orders most prefixes
    /// without touching the text (prefixes never contain a zero byte).
    key: u64,
    start: u32,
    len: u8,
    line: u32,
}

fn sort_key(prefix: &[u8]) -> u64 {
    let mut k = [0u8; 8];
    for (dst, src) in k.iter_mut().zip(prefix) {
        *dst = *src;
    }
    u64::from_be_bytes(k)
}

impl PrefixFile {
    /// Parse the file's contents. `key` names the configuration key in messages
    /// (`route[3].prefix_file`). Every bad line is an error (the first
    /// `PREFIX_FILE_ERRORS_MAX` are listed), and so is a file with no prefix at all.
    ///
    /// The prefixes are kept in byte order (sorting them finds the duplicates, and hands
    /// the trie builder a sorted run).
    pub fn parse(path: &str, key: &str, text: &[u8]) -> Result<PrefixFile, Vec<ConfigError>> {
        let error = |line: usize, message: String| ConfigError {
            file: path.to_string(),
            line: Some(line),
            key: key.to_string(),
            message,
        };
        if u32::try_from(text.len()).is_err() {
            return Err(vec![ConfigError {
                file: path.to_string(),
                line: None,
                key: key.to_string(),
                message: "the file is too large (at most 4 GB)".into(),
            }]);
        }
        // Bad lines: the first few in full, the others counted.
        let mut bad: Vec<(usize, String)> = Vec::new();
        let mut bad_count = 0usize;
        let mut found: Vec<Found> =
            Vec::with_capacity(memchr::memchr_iter(b'\n', text).count() + 1);
        let base = text.as_ptr() as usize;
        let body = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
        let mut seen_data = false;
        for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
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
                Ok(Some(prefix)) => found.push(Found {
                    key: sort_key(prefix),
                    // A sub-slice of `text`, which is under 4 GB.
                    start: (prefix.as_ptr() as usize - base) as u32,
                    len: prefix.len() as u8,
                    line: line_no as u32,
                }),
                Err(message) => {
                    bad_count += 1;
                    if bad.len() < PREFIX_FILE_ERRORS_MAX {
                        bad.push((line_no, message));
                    }
                }
            }
        }

        let bytes_of = |f: &Found| -> &[u8] {
            let start = f.start as usize;
            text.get(start..start + f.len as usize).unwrap_or(&[])
        };
        found.sort_unstable_by(|a, b| {
            a.key
                .cmp(&b.key)
                .then_with(|| bytes_of(a).cmp(bytes_of(b)))
                .then(a.line.cmp(&b.line))
        });

        let total: usize = found.iter().map(|f| f.len as usize).sum();
        let mut file = PrefixFile {
            path: path.to_string(),
            bytes: Vec::with_capacity(total),
            ends: Vec::with_capacity(found.len()),
            lines: Vec::with_capacity(found.len()),
        };
        // The same prefix twice in one file is a mistake in the data (two rows for one
        // prefix, maybe with different columns): say which lines. In sorted order the
        // repeats follow the first.
        let mut first: Option<(&[u8], u32)> = None;
        for f in &found {
            let prefix = bytes_of(f);
            match first {
                Some((p, line)) if p == prefix => {
                    bad_count += 1;
                    if bad.len() < 2 * PREFIX_FILE_ERRORS_MAX {
                        bad.push((
                            f.line as usize,
                            format!(
                                "prefix {:?} is listed twice (also line {line})",
                                String::from_utf8_lossy(prefix)
                            ),
                        ));
                    }
                    continue;
                }
                _ => first = Some((prefix, f.line)),
            }
            file.bytes.extend_from_slice(prefix);
            file.ends.push(file.bytes.len() as u32);
            file.lines.push(f.line);
        }
        drop(found);

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

    /// Every prefix, in byte order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The line `prefix` is on.
    pub fn line_of(&self, prefix: &[u8]) -> Option<usize> {
        let at = partition_point(self.len(), |i| self.get(i).is_some_and(|p| p < prefix));
        (self.get(at) == Some(prefix))
            .then(|| self.lines.get(at))
            .flatten()
            .map(|&l| l as usize)
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + 4 * self.ends.capacity() + 4 * self.lines.capacity()
    }
}

/// The first index in `0..len` for which `below` is false (`below` must be true for a
/// prefix of the indices and false after).
fn partition_point(len: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
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
        // In byte order, each with its line.
        assert_eq!(
            got,
            Ok(vec![
                ("".into(), 7),
                ("#31#".into(), 6),
                ("+1212".into(), 4),
                ("+1646".into(), 5),
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
    fn line_of_finds_every_prefix() {
        let text = "+44\n+1\n+33\n+1212\n+12\n";
        let f = PrefixFile::parse("p.csv", "k", text.as_bytes()).unwrap_or_default();
        for (prefix, line) in [("+44", 1), ("+1", 2), ("+33", 3), ("+1212", 4), ("+12", 5)] {
            assert_eq!(f.line_of(prefix.as_bytes()), Some(line), "{prefix}");
        }
        for absent in ["", "+", "+121", "+45", "+9"] {
            assert_eq!(f.line_of(absent.as_bytes()), None, "{absent}");
        }
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
