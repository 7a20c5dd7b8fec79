//! The `[cdr]` and `[log]` sections: where call detail records go and how they rotate, and
//! how much junction logs.

use std::path::{Path, PathBuf};

use super::toml_doc::{Doc, Section};
use crate::control::log::{Level, Priority};

/// Call detail records (`[cdr]`; no section: no CDRs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CdrSettings {
    /// The file records are appended to (relative paths are resolved against the
    /// configuration file's directory).
    pub path: PathBuf,
    /// Rotate once the file holds at least this many bytes.
    pub rotate_bytes: Option<u64>,
    /// Rotate at every multiple of this many seconds of UTC wall-clock time.
    pub rotate_secs: Option<u64>,
}

/// Logging (`[log]`; every key has a default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogSettings {
    pub level: Level,
    /// When lines start with their syslog priority (`<3>`..`<7>`).
    pub priority: Priority,
}

/// Smallest `rotate_bytes`: below this a busy server would rotate several times a second.
pub const ROTATE_BYTES_MIN: i64 = 4096;
/// Largest `rotate_secs`: 31 days.
pub const ROTATE_SECS_MAX: i64 = 31 * 24 * 3600;

const CDR_KEYS: &[&str] = &["path", "rotate_bytes", "rotate_secs"];
const LOG_KEYS: &[&str] = &["level", "priority"];

/// Read `[cdr]` (optional). `config` is the configuration file's path.
pub fn read_cdr(doc: &mut Doc<'_>, root: &Section<'_>, config: &Path) -> Option<CdrSettings> {
    let section = root.table(doc, "cdr")?;
    section.check_keys(doc, CDR_KEYS, &[]);
    let path = match section.field(doc, "path") {
        None => {
            doc.error(
                section.line,
                &format!("{}.path", section.path),
                "missing: the file CDRs are written to, like path = \"/var/log/junction/cdr.jsonl\" \
                 (remove [cdr] for no CDRs)",
            );
            None
        }
        Some(f) => {
            let written = f.string(
                doc,
                "a file name in quotes, like \"/var/log/junction/cdr.jsonl\"",
            );
            match written {
                Some(w) if w.trim().is_empty() || w.ends_with('/') => {
                    doc.error(
                        f.line,
                        &f.key,
                        format!("{w:?} is not a file name; write one like \"cdr.jsonl\""),
                    );
                    None
                }
                Some(w) => Some(match config.parent() {
                    Some(dir) if Path::new(w).is_relative() => dir.join(w),
                    _ => PathBuf::from(w),
                }),
                None => None,
            }
        }
    };
    let rotate_bytes = section.field(doc, "rotate_bytes").and_then(|f| {
        let expected =
            format!("a whole number of bytes from {ROTATE_BYTES_MIN}, like 104857600 (100 MiB)");
        f.integer_in(doc, ROTATE_BYTES_MIN, i64::MAX, &expected)
            .and_then(|n| u64::try_from(n).ok())
    });
    let rotate_secs = section.field(doc, "rotate_secs").and_then(|f| {
        let expected =
            format!("a whole number of seconds from 1 to {ROTATE_SECS_MAX}, like 3600 (hourly)");
        f.integer_in(doc, 1, ROTATE_SECS_MAX, &expected)
            .and_then(|n| u64::try_from(n).ok())
    });
    Some(CdrSettings {
        path: path?,
        rotate_bytes,
        rotate_secs,
    })
}

/// Read `[log]` (optional; every key has a default).
pub fn read_log(doc: &mut Doc<'_>, root: &Section<'_>) -> LogSettings {
    let mut settings = LogSettings::default();
    let Some(section) = root.table(doc, "log") else {
        return settings;
    };
    section.check_keys(doc, LOG_KEYS, &[]);
    if let Some(f) = section.field(doc, "level") {
        const EXPECTED: &str = "one of \"error\", \"warn\", \"info\", \"debug\"";
        if let Some(text) = f.string(doc, EXPECTED) {
            match Level::parse(text) {
                Some(level) => settings.level = level,
                None => doc.error(f.line, &f.key, format!("{text:?}: must be {EXPECTED}")),
            }
        }
    }
    if let Some(f) = section.field(doc, "priority") {
        const EXPECTED: &str = "one of \"auto\", \"always\", \"never\"";
        if let Some(text) = f.string(doc, EXPECTED) {
            match Priority::parse(text) {
                Some(priority) => settings.priority = priority,
                None => doc.error(f.line, &f.key, format!("{text:?}: must be {EXPECTED}")),
            }
        }
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, ConfigError};

    const SERVER: &str = "[server]\ncores = 1\nlisten = \"udp:127.0.0.1:5060\"\n";

    fn parse_with(extra: &str) -> Result<crate::config::Config, Vec<ConfigError>> {
        parse(&format!("{SERVER}{extra}"), "/etc/junction/j.toml")
    }

    /// The single error of `extra`, as `line: key: message`.
    fn error(extra: &str) -> String {
        let errors = parse_with(extra).expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        format!("{}: {}: {}", e.line.unwrap_or(0), e.key, e.message)
    }

    #[test]
    fn absent_sections_mean_no_cdrs_and_info() {
        let config = parse_with("").unwrap();
        assert_eq!(config.cdr, None);
        assert_eq!(config.log.level, Level::Info);
        assert_eq!(config.log.priority, Priority::Auto);
    }

    #[test]
    fn cdr_and_log_are_read() {
        let config = parse_with(
            "[cdr]\npath = \"cdr/calls.jsonl\"\nrotate_bytes = 104857600\nrotate_secs = 3600\n\
             [log]\nlevel = \"debug\"\npriority = \"always\"\n",
        )
        .unwrap();
        assert_eq!(
            config.cdr,
            Some(CdrSettings {
                path: PathBuf::from("/etc/junction/cdr/calls.jsonl"),
                rotate_bytes: Some(104_857_600),
                rotate_secs: Some(3600),
            })
        );
        assert_eq!(config.log.level, Level::Debug);
        assert_eq!(config.log.priority, Priority::Always);
        let absolute = parse_with("[cdr]\npath = \"/var/log/j/cdr.jsonl\"\n").unwrap();
        let cdr = absolute.cdr.unwrap();
        assert_eq!(cdr.path, PathBuf::from("/var/log/j/cdr.jsonl"));
        assert_eq!((cdr.rotate_bytes, cdr.rotate_secs), (None, None));
    }

    #[test]
    fn problems_name_line_and_key() {
        assert!(error("[cdr]\nrotate_secs = 60\n").starts_with("4: cdr.path: missing"));
        assert!(error("[cdr]\npath = \"\"\n").starts_with("5: cdr.path: \"\" is not a file name"));
        assert!(error("[cdr]\npath = \"/var/log/\"\n").contains("is not a file name"));
        assert!(error("[cdr]\npath = 3\n").starts_with("5: cdr.path: must be a file name"));
        assert!(error("[cdr]\npath = \"c\"\nrotate_bytes = 100\n")
            .starts_with("6: cdr.rotate_bytes: 100 is out of range"));
        assert!(error("[cdr]\npath = \"c\"\nrotate_secs = 0\n")
            .starts_with("6: cdr.rotate_secs: 0 is out of range"));
        assert!(error("[cdr]\npath = \"c\"\nrotate_secs = \"1h\"\n")
            .starts_with("6: cdr.rotate_secs: must be a whole number of seconds"));
        assert!(error("[cdr]\npath = \"c\"\nrotate = 1\n")
            .starts_with("6: cdr.rotate: unknown key `rotate`"));
        assert!(error("[log]\nlevel = \"verbose\"\n")
            .starts_with("5: log.level: \"verbose\": must be one of"));
        assert!(error("[log]\nlevell = \"info\"\n").contains("did you mean `level`?"));
        assert!(error("[log]\npriority = \"yes\"\n").starts_with(
            "5: log.priority: \"yes\": must be one of \"auto\", \"always\", \"never\""
        ));
        let errors = parse(&format!("cdr = \"x\"\n{SERVER}"), "j.toml")
            .err()
            .unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].key.as_str()), (Some(1), "cdr"));
        assert!(errors[0].message.starts_with("must be a table"));
        assert!(error("[server.cdr]\npath = \"x\"\n").contains("unknown key `cdr`"));
    }
}
