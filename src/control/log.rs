//! Structured logging: one line per event on stderr,
//!
//! ```text
//! ts=2026-11-28T05:13:10.123Z level=info msg="config reloaded" generation=2 trunks=3
//! ```
//!
//! usable from any thread (each line is formatted first and written with one `write` call,
//! so lines from several threads never interleave). The level comes from `[log] level`;
//! `log_error!`, `log_warn!`, `log_info!` and `log_debug!` evaluate their arguments only when
//! the level is enabled (one relaxed atomic load otherwise). Nothing is logged per packet at
//! `info`: the data path logs nothing at all; shards log only when they stop.

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};

/// How much is logged: everything at this level and the more severe ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// junction cannot do what it was asked (a shard stopped, a file cannot be written).
    Error,
    /// Something was lost or refused, junction goes on (CDRs dropped, reload refused).
    Warn,
    /// Life-cycle events: startup summary, reloads, shutdown.
    #[default]
    Info,
    /// Details for finding problems (still nothing per packet).
    Debug,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "error" => Some(Level::Error),
            "warn" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    fn as_u8(self) -> u8 {
        self as u8
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Log everything at `level` and the more severe levels from now on.
pub fn set_level(level: Level) {
    LEVEL.store(level.as_u8(), Ordering::Relaxed);
}

/// Whether a line at `level` is written.
pub fn enabled(level: Level) -> bool {
    level.as_u8() <= LEVEL.load(Ordering::Relaxed)
}

/// Write one line (use the macros, which skip the formatting when `level` is off).
pub fn emit(level: Level, msg: &str, fields: &[(&str, &dyn Display)]) {
    if !enabled(level) {
        return;
    }
    let mut line = String::with_capacity(128);
    format_line(&mut line, super::clock::now_epoch_ms(), level, msg, fields);
    // Nowhere to report a failing stderr: the line is lost.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Format one line (with its newline) into `out`.
pub fn format_line(
    out: &mut String,
    epoch_ms: i64,
    level: Level,
    msg: &str,
    fields: &[(&str, &dyn Display)],
) {
    out.push_str("ts=");
    super::clock::write_rfc3339_ms(out, epoch_ms);
    out.push_str(" level=");
    out.push_str(level.as_str());
    out.push_str(" msg=");
    quoted(out, msg);
    let mut value = String::new();
    for (key, display) in fields {
        value.clear();
        let _ = write!(value, "{display}");
        out.push(' ');
        out.push_str(key);
        out.push('=');
        if needs_quotes(&value) {
            quoted(out, &value);
        } else {
            out.push_str(&value);
        }
    }
    out.push('\n');
}

fn needs_quotes(value: &str) -> bool {
    value.is_empty()
        || value
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c == '\\' || c.is_control())
}

/// `"text"` with backslash, double quote and control characters escaped (one line).
fn quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `log_at!(level, "message", key = value, ...)`: values are anything `Display`.
#[macro_export]
macro_rules! log_at {
    ($level:expr, $msg:expr $(, $key:ident = $value:expr)* $(,)?) => {
        if $crate::control::log::enabled($level) {
            $crate::control::log::emit(
                $level,
                &$msg,
                &[$((stringify!($key), &$value as &dyn ::std::fmt::Display)),*],
            );
        }
    };
}

#[macro_export]
macro_rules! log_error {
    ($($arg:tt)+) => { $crate::log_at!($crate::control::log::Level::Error, $($arg)+) };
}

#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)+) => { $crate::log_at!($crate::control::log::Level::Warn, $($arg)+) };
}

#[macro_export]
macro_rules! log_info {
    ($($arg:tt)+) => { $crate::log_at!($crate::control::log::Level::Info, $($arg)+) };
}

#[macro_export]
macro_rules! log_debug {
    ($($arg:tt)+) => { $crate::log_at!($crate::control::log::Level::Debug, $($arg)+) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_key_value_with_quoting() {
        let mut out = String::new();
        let shards = 2;
        let path = "/var/log/a b.jsonl";
        format_line(
            &mut out,
            1_795_842_790_123,
            Level::Warn,
            "cdr \"dropped\"",
            &[
                ("shards", &shards),
                ("path", &path),
                ("empty", &""),
                ("eq", &"a=b"),
                ("nl", &"x\ny"),
            ],
        );
        assert_eq!(
            out,
            "ts=2026-11-28T05:13:10.123Z level=warn msg=\"cdr \\\"dropped\\\"\" shards=2 \
             path=\"/var/log/a b.jsonl\" empty=\"\" eq=\"a=b\" nl=\"x\\ny\"\n"
        );
    }

    #[test]
    fn levels_parse_and_order() {
        for name in ["error", "warn", "info", "debug"] {
            assert_eq!(Level::parse(name).map(Level::as_str), Some(name));
        }
        assert_eq!(Level::parse("INFO"), None);
        assert_eq!(Level::parse("trace"), None);
        assert!(Level::Error < Level::Warn && Level::Info < Level::Debug);
        assert_eq!(Level::default(), Level::Info);
    }

    #[test]
    fn the_level_filters() {
        // The only test that changes the process-wide level; it restores it.
        let before = LEVEL.load(Ordering::Relaxed);
        set_level(Level::Warn);
        assert!(enabled(Level::Error) && enabled(Level::Warn));
        assert!(!enabled(Level::Info) && !enabled(Level::Debug));
        let mut evaluated = false;
        let mut touch = || {
            evaluated = true;
            1
        };
        crate::log_debug!("not written", value = touch());
        assert!(
            !evaluated,
            "arguments of a disabled level are not evaluated"
        );
        set_level(Level::Debug);
        assert!(enabled(Level::Debug));
        LEVEL.store(before, Ordering::Relaxed);
    }
}
