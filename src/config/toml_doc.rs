//! Reading a parsed TOML document with the line and dotted key of everything, collecting every
//! problem instead of stopping at the first.

use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use super::ConfigError;

/// The file being read and the problems found so far.
pub struct Doc<'a> {
    file: &'a str,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
    pub errors: Vec<ConfigError>,
}

impl<'a> Doc<'a> {
    pub fn new(file: &'a str, text: &str) -> Doc<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Doc {
            file,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// 1-based line of a byte span's start.
    pub fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| self.line_starts.partition_point(|&start| start <= s.start))
    }

    pub fn error(&mut self, line: Option<usize>, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// The error for a document that is not valid TOML at all.
    pub fn syntax_error(&mut self, e: &toml_edit::TomlError) {
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let line = self.line(e.span());
        self.error(line, "(syntax)", format!("not valid TOML: {message}"));
    }
}

/// A table of the document (a `[header]` table, an inline table, or the root) with its dotted
/// path and the line it starts on.
pub struct Section<'t> {
    pub path: String,
    pub line: Option<usize>,
    table: &'t dyn TableLike,
}

/// One key's value, with its dotted path and line.
pub struct Field<'t> {
    pub key: String,
    pub line: Option<usize>,
    pub item: &'t Item,
}

impl<'t> Section<'t> {
    pub fn root(table: &'t dyn TableLike) -> Section<'t> {
        Section {
            path: String::new(),
            line: Some(1),
            table,
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value of `key`, if present.
    pub fn field(&self, doc: &Doc<'_>, key: &str) -> Option<Field<'t>> {
        let (k, item) = self.table.get_key_value(key)?;
        if item.is_none() {
            return None;
        }
        Some(Field {
            key: self.key_path(key),
            line: doc
                .line(k.span())
                .or_else(|| doc.line(item.span()))
                .or(self.line),
            item,
        })
    }

    /// Report every key that is not in `known`. Keys in `later` are names of settings a
    /// later version will have (docs/routing.md); they get a message saying so.
    pub fn check_keys(&self, doc: &mut Doc<'_>, known: &[&str], later: &[&str]) {
        for (key, item) in self.table.iter() {
            if item.is_none() || known.contains(&key) {
                continue;
            }
            let line = doc
                .line(self.table.key(key).and_then(|k| k.span()))
                .or(self.line);
            let path = self.key_path(key);
            let message = if later.contains(&key) {
                format!("`{key}` is not supported by this version of junction yet")
            } else {
                let mut m = format!("unknown key `{key}`");
                if let Some(near) = closest(key, known) {
                    m.push_str(&format!("; did you mean `{near}`?"));
                }
                let place = if self.path.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in {}", self.path)
                };
                m.push_str(&format!(" (keys allowed {place}: {})", known.join(", ")));
                m
            };
            doc.error(line, &path, message);
        }
    }

    /// `key` as a single table (`[key]` or `key = { ... }`).
    pub fn table(&self, doc: &mut Doc<'_>, key: &str) -> Option<Section<'t>> {
        let f = self.field(doc, key)?;
        match f.item.as_table_like() {
            Some(table) => Some(Section {
                path: f.key,
                line: f.line,
                table,
            }),
            None => {
                let found = describe(f.item);
                doc.error(
                    f.line,
                    &f.key,
                    format!("must be a table ([{key}] followed by its keys); found {found}"),
                );
                None
            }
        }
    }

    /// `key` as a list of tables (`[[key]]` repeated, or `key = [{ ... }, ...]`).
    pub fn tables(&self, doc: &mut Doc<'_>, key: &str) -> Vec<Section<'t>> {
        let Some(f) = self.field(doc, key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(list) = f.item.as_array_of_tables() {
            for (i, table) in list.iter().enumerate() {
                out.push(Section {
                    path: format!("{}[{i}]", f.key),
                    line: doc.line(table.span()).or(f.line),
                    table,
                });
            }
        } else if let Some(list) = f.item.as_array() {
            for (i, value) in list.iter().enumerate() {
                let path = format!("{}[{i}]", f.key);
                let line = doc.line(value.span()).or(f.line);
                match value.as_inline_table() {
                    Some(table) => out.push(Section { path, line, table }),
                    None => doc.error(
                        line,
                        &path,
                        format!("must be a table {{ ... }}; found {}", describe_value(value)),
                    ),
                }
            }
        } else {
            let found = describe(f.item);
            doc.error(
                f.line,
                &f.key,
                format!("write [[{key}]] (two brackets) before each {key}; found {found}"),
            );
        }
        out
    }
}

impl<'t> Field<'t> {
    fn wrong(&self, doc: &mut Doc<'_>, expected: &str) {
        doc.error(
            self.line,
            &self.key,
            format!("must be {expected}; found {}", describe(self.item)),
        );
    }

    /// A string; otherwise an error saying what was `expected`.
    pub fn string(&self, doc: &mut Doc<'_>, expected: &str) -> Option<&'t str> {
        match self.item.as_str() {
            Some(s) => Some(s),
            None => {
                self.wrong(doc, expected);
                None
            }
        }
    }

    /// An integer; otherwise an error saying what was `expected`.
    pub fn integer(&self, doc: &mut Doc<'_>, expected: &str) -> Option<i64> {
        match self.item.as_integer() {
            Some(n) => Some(n),
            None => {
                self.wrong(doc, expected);
                None
            }
        }
    }

    /// An integer from `min` to `max`; otherwise an error saying what was `expected`.
    pub fn integer_in(&self, doc: &mut Doc<'_>, min: i64, max: i64, expected: &str) -> Option<i64> {
        let n = self.integer(doc, expected)?;
        if n < min || n > max {
            doc.error(
                self.line,
                &self.key,
                format!("{n} is out of range: must be {expected}"),
            );
            return None;
        }
        Some(n)
    }

    /// `true` or `false`; otherwise an error.
    pub fn boolean(&self, doc: &mut Doc<'_>) -> Option<bool> {
        match self.item.as_bool() {
            Some(b) => Some(b),
            None => {
                self.wrong(doc, "true or false (without quotes)");
                None
            }
        }
    }

    /// A list; each element is a field `key[i]` on its own line.
    pub fn array(&self, doc: &mut Doc<'_>, expected: &str) -> Option<Vec<Element<'t>>> {
        match self.item.as_array() {
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(i, value)| Element {
                        key: format!("{}[{i}]", self.key),
                        line: doc.line(value.span()).or(self.line),
                        value,
                    })
                    .collect(),
            ),
            None => {
                self.wrong(doc, expected);
                None
            }
        }
    }

    /// A list of strings; elements that are not strings are reported one by one.
    pub fn strings(&self, doc: &mut Doc<'_>, expected: &str) -> Option<Vec<Element<'t>>> {
        let list = self.array(doc, expected)?;
        let mut out = Vec::with_capacity(list.len());
        for e in list {
            if e.value.as_str().is_some() {
                out.push(e);
            } else {
                let found = describe_value(e.value);
                doc.error(
                    e.line,
                    &e.key,
                    format!("must be text in quotes; found {found}"),
                );
            }
        }
        Some(out)
    }
}

/// One element of a list.
pub struct Element<'t> {
    pub key: String,
    pub line: Option<usize>,
    pub value: &'t Value,
}

impl<'t> Element<'t> {
    pub fn str(&self) -> &'t str {
        self.value.as_str().unwrap_or("")
    }
}

/// What a value is, in words, for "found ..." messages.
pub fn describe(item: &Item) -> String {
    match item {
        Item::None => "nothing".into(),
        Item::Value(v) => describe_value(v),
        Item::Table(_) => "a table".into(),
        Item::ArrayOfTables(_) => "a list of [[tables]]".into(),
    }
}

pub fn describe_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the text {:?}", s.value()),
        Value::Integer(n) => format!("the number {}", n.value()),
        Value::Float(x) => format!("the number {}", x.value()),
        Value::Boolean(b) => format!("{}", b.value()),
        Value::Datetime(_) => "a date/time".into(),
        Value::Array(_) => "a list [...]".into(),
        Value::InlineTable(_) => "a table { ... }".into(),
    }
}

/// The known name nearest to a misspelt one, if it is near enough to be a typo.
pub fn closest<'k>(typo: &str, known: &[&'k str]) -> Option<&'k str> {
    let typo = typo.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&typo, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diag = row.first().copied().unwrap_or(0);
        if let Some(r0) = row.first_mut() {
            *r0 = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let up = row.get(j + 1).copied().unwrap_or(0);
            let left = row.get(j).copied().unwrap_or(0);
            let cost = usize::from(ca != *cb);
            let v = (diag + cost).min(up + 1).min(left + 1);
            diag = up;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = v;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based() {
        let doc = Doc::new("f", "a\nbc\n\nd");
        assert_eq!(doc.line(Some(0..1)), Some(1));
        assert_eq!(doc.line(Some(2..3)), Some(2));
        assert_eq!(doc.line(Some(4..4)), Some(2));
        assert_eq!(doc.line(Some(5..5)), Some(3));
        assert_eq!(doc.line(Some(6..7)), Some(4));
        assert_eq!(doc.line(None), None);
    }

    #[test]
    fn suggests_near_names_only() {
        assert_eq!(edit_distance("sendto", "send_to"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            closest("sendto", &["name", "peers", "send_to"]),
            Some("send_to")
        );
        assert_eq!(
            closest("Peer", &["name", "peers", "send_to"]),
            Some("peers")
        );
        assert_eq!(closest("codecs", &["name", "peers", "send_to"]), None);
    }
}
