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
//!
//! Under systemd's journal (`JOURNAL_STREAM` names stderr's device and inode), or with
//! `[log] priority = "always"`, every line starts with its syslog priority as sd-daemon(3)
//! describes (`<3>` error, `<4>` warn, `<6>` info, `<7>` debug), so `journalctl -p warning`
//! filters them; the journal strips the prefix.
//!
//! Records of the `log` facade (glommio's and the other dependencies') are written as
//! lines of this log too, at their level (`trace` is not written), with their `target`:
//! `install_log_bridge` installs the `log::Log` that does it.

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

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

    fn from_u8(value: u8) -> Level {
        match value {
            0 => Level::Error,
            1 => Level::Warn,
            2 => Level::Info,
            _ => Level::Debug,
        }
    }
}

impl Level {
    /// The syslog priority prefix of sd-daemon(3): LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG.
    pub fn syslog_prefix(self) -> &'static str {
        match self {
            Level::Error => "<3>",
            Level::Warn => "<4>",
            Level::Info => "<6>",
            Level::Debug => "<7>",
        }
    }

    fn filter(self) -> log::LevelFilter {
        match self {
            Level::Error => log::LevelFilter::Error,
            Level::Warn => log::LevelFilter::Warn,
            Level::Info => log::LevelFilter::Info,
            Level::Debug => log::LevelFilter::Debug,
        }
    }
}

/// When lines start with their syslog priority (`[log] priority`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Priority {
    /// When stderr is connected to systemd's journal (`JOURNAL_STREAM`).
    #[default]
    Auto,
    Always,
    Never,
}

impl Priority {
    pub fn parse(text: &str) -> Option<Priority> {
        match text {
            "auto" => Some(Priority::Auto),
            "always" => Some(Priority::Always),
            "never" => Some(Priority::Never),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Auto => "auto",
            Priority::Always => "always",
            Priority::Never => "never",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static PRIORITY_PREFIX: AtomicBool = AtomicBool::new(false);

/// Log everything at `level` and the more severe levels from now on (the `log` facade's
/// records too).
pub fn set_level(level: Level) {
    LEVEL.store(level.as_u8(), Ordering::Relaxed);
    log::set_max_level(level.filter());
}

/// Start lines with their syslog priority, or not, from now on.
pub fn set_priority(priority: Priority) {
    let on = match priority {
        Priority::Always => true,
        Priority::Never => false,
        Priority::Auto => stderr_is_journal(),
    };
    PRIORITY_PREFIX.store(on, Ordering::Relaxed);
}

/// Lines start with their syslog priority.
pub fn priority_prefix() -> bool {
    PRIORITY_PREFIX.load(Ordering::Relaxed)
}

/// stderr is the stream systemd connected to its journal: `JOURNAL_STREAM` (`DEVICE:INODE`,
/// set by systemd for `StandardError=journal`) names stderr's device and inode. (A child
/// whose stderr was redirected inherits the variable, hence the comparison.)
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    // SAFETY: fstat writes into the struct we pass.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(libc::STDERR_FILENO, &mut stat) } != 0 {
        return false;
    }
    journal_stream_is(stream.to_str().unwrap_or(""), stat.st_dev, stat.st_ino)
}

/// `JOURNAL_STREAM`'s value names the device `dev` and inode `ino`.
pub fn journal_stream_is(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>().ok() == Some(dev) && i.parse::<u64>().ok() == Some(ino)
}

/// Routes the `log` facade's records into this log.
struct Bridge;

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        level_of(metadata.level()).is_some_and(enabled)
    }

    fn log(&self, record: &log::Record) {
        let Some(level) = level_of(record.level()) else {
            return;
        };
        if !enabled(level) {
            return;
        }
        let msg = record.args().to_string();
        let target = record.target();
        emit(level, &msg, &[("target", &target)]);
    }

    fn flush(&self) {}
}

/// junction's level of a `log` record (`trace`: none, never written).
fn level_of(level: log::Level) -> Option<Level> {
    match level {
        log::Level::Error => Some(Level::Error),
        log::Level::Warn => Some(Level::Warn),
        log::Level::Info => Some(Level::Info),
        log::Level::Debug => Some(Level::Debug),
        log::Level::Trace => None,
    }
}

static BRIDGE: Bridge = Bridge;

/// Make this log the `log` facade's logger (once per process; later calls only set the
/// level).
pub fn install_log_bridge() {
    let _ = log::set_logger(&BRIDGE);
    log::set_max_level(Level::from_u8(LEVEL.load(Ordering::Relaxed)).filter());
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
    if priority_prefix() {
        line.push_str(level.syslog_prefix());
    }
    format_line(&mut line, super::clock::now_epoch_ms(), level, msg, fields);
    write_line(&line);
}

#[cfg(not(test))]
fn write_line(line: &str) {
    // Nowhere to report a failing stderr: the line is lost.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
thread_local! {
    /// Lines this test thread wrote (when capturing), instead of stderr.
    static CAPTURED: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

#[cfg(test)]
fn write_line(line: &str) {
    let captured = CAPTURED.with(|c| {
        c.borrow_mut()
            .as_mut()
            .map(|lines| lines.push(line.to_string()))
            .is_some()
    });
    if !captured {
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
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

    /// The lines `f` writes on this thread.
    fn capture(f: impl FnOnce()) -> Vec<String> {
        CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
        f();
        CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default()
    }

    #[test]
    fn log_facade_records_become_lines_at_their_level() {
        install_log_bridge();
        // (Other tests may lower the level to warn meanwhile: warn and error are always on.)
        let lines = capture(|| {
            log::warn!(target: "glommio::reactor", "ring {} full", 3);
            log::error!("plain {}", "error");
            log::trace!(target: "glommio::reactor", "never written");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains(" level=warn msg=\"ring 3 full\" target=glommio::reactor\n"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains(" level=error msg=\"plain error\" target="),
            "{lines:?}"
        );
    }

    #[test]
    fn priority_prefixes_follow_sd_daemon() {
        let prefixes: Vec<&str> = [Level::Error, Level::Warn, Level::Info, Level::Debug]
            .iter()
            .map(|l| l.syslog_prefix())
            .collect();
        assert_eq!(prefixes, ["<3>", "<4>", "<6>", "<7>"]);
        for name in ["auto", "always", "never"] {
            assert_eq!(Priority::parse(name).map(Priority::as_str), Some(name));
        }
        assert_eq!(Priority::parse("yes"), None);
        assert!(journal_stream_is("8:12345", 8, 12345));
        assert!(journal_stream_is("8:12345\n", 8, 12345));
        assert!(!journal_stream_is("8:12346", 8, 12345));
        assert!(!journal_stream_is("9:12345", 8, 12345));
        assert!(!journal_stream_is("", 8, 12345));
        assert!(!journal_stream_is("812345", 8, 12345));
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
