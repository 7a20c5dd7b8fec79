//! An append-only line file that rotates by size and/or time: `cdr.jsonl` is renamed to
//! `cdr.jsonl.<UTC time of the rotation>` (`cdr.jsonl.20261128T051310Z`, then `.1`, `.2`
//! if that name is taken) and a new `cdr.jsonl` is opened.
//!
//! - By size: a line that would take the file past `bytes` goes to a new file (a file is
//!   never larger than `bytes` unless one line is).
//! - By time: at every multiple of `secs` seconds of UTC time (3600: on the hour), a file
//!   that has lines is rotated; an empty one stays.
//!
//! The caller passes the wall-clock time (ms since the epoch) so the rules are testable.
//! After an I/O error the file is closed; the next write or `tick` reopens it.

use super::clock;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Buffer between the writer and the file: one `write` per 64 KiB at most when busy.
const BUFFER_BYTES: usize = 64 << 10;
/// Names tried for one rotation (`name`, `name.1`, ... ) before giving up.
const ROTATED_NAMES_MAX: u32 = 1000;

/// When to rotate (both `None`: never).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    pub bytes: Option<u64>,
    pub secs: Option<u64>,
}

pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    out: Option<BufWriter<File>>,
    /// Bytes in the current file (including buffered ones).
    size: u64,
    /// The time period (`epoch_ms / (secs * 1000)`) the current file's lines belong to.
    period: Option<i64>,
}

impl RotatingFile {
    /// Open (create or append to) `path`. A file left by an earlier run whose last change
    /// is in an earlier period is rotated at the first write or tick.
    pub fn open(path: &Path, rotation: Rotation, now_ms: i64) -> io::Result<RotatingFile> {
        let mut file = RotatingFile {
            path: path.to_path_buf(),
            rotation,
            out: None,
            size: 0,
            period: None,
        };
        file.reopen(now_ms)?;
        if let Some(modified) = std::fs::metadata(path).ok().and_then(|m| m.modified().ok()) {
            if file.size > 0 && modified >= UNIX_EPOCH {
                file.period = file.period_of(clock::epoch_us(modified).div_euclid(1000));
            }
        }
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the current file.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn period_of(&self, now_ms: i64) -> Option<i64> {
        let secs = i64::try_from(self.rotation.secs?).ok()?.max(1);
        Some(now_ms.div_euclid(secs.saturating_mul(1000)))
    }

    fn reopen(&mut self, now_ms: i64) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        self.out = Some(BufWriter::with_capacity(BUFFER_BYTES, file));
        self.period = self.period_of(now_ms);
        Ok(())
    }

    /// Append one line (`line` includes its newline), rotating first when due. Returns the
    /// name the old file got when this rotated.
    pub fn write_line(&mut self, line: &[u8], now_ms: i64) -> io::Result<Option<PathBuf>> {
        let mut rotated = self.rotate_if_due(now_ms, line.len() as u64)?;
        if self.out.is_none() {
            self.reopen(now_ms)?;
            // Reopened after an error: the size rule may already apply to the old file.
            if rotated.is_none() {
                rotated = self.rotate_if_due(now_ms, line.len() as u64)?;
            }
        }
        let Some(out) = self.out.as_mut() else {
            return Err(io::Error::other("the file is closed"));
        };
        if let Err(e) = out.write_all(line) {
            self.out = None;
            return Err(e);
        }
        self.size += line.len() as u64;
        Ok(rotated)
    }

    /// Time rotation with no line to write, and reopening after an error. Call about once
    /// a second.
    pub fn tick(&mut self, now_ms: i64) -> io::Result<Option<PathBuf>> {
        if self.out.is_none() {
            self.reopen(now_ms)?;
        }
        self.rotate_if_due(now_ms, 0)
    }

    /// Write out buffered lines.
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        match out.flush() {
            Ok(()) => Ok(()),
            Err(e) => {
                self.out = None;
                Err(e)
            }
        }
    }

    fn rotate_if_due(&mut self, now_ms: i64, incoming: u64) -> io::Result<Option<PathBuf>> {
        if self.size == 0 {
            // Nothing to rotate; an empty file simply belongs to the current period.
            self.period = self.period_of(now_ms);
            return Ok(None);
        }
        let by_size = self
            .rotation
            .bytes
            .is_some_and(|max| self.size.saturating_add(incoming) > max);
        let by_time = self.period.is_some() && self.period_of(now_ms) != self.period;
        if !(by_size || by_time) {
            return Ok(None);
        }
        self.rotate(now_ms).map(Some)
    }

    /// Close, rename to `<path>.<UTC time>` and open a new file.
    fn rotate(&mut self, now_ms: i64) -> io::Result<PathBuf> {
        if let Some(mut out) = self.out.take() {
            out.flush()?;
            // The rotated file is complete on disk before anyone picks it up.
            out.get_ref().sync_data()?;
        }
        let target = self.free_rotated_name(now_ms)?;
        std::fs::rename(&self.path, &target)?;
        self.reopen(now_ms)?;
        Ok(target)
    }

    fn free_rotated_name(&self, now_ms: i64) -> io::Result<PathBuf> {
        let mut base = self.path.clone().into_os_string();
        base.push(".");
        base.push(clock::compact_utc(now_ms));
        let first = PathBuf::from(&base);
        if !first.exists() {
            return Ok(first);
        }
        for n in 1..ROTATED_NAMES_MAX {
            let mut name = base.clone();
            name.push(format!(".{n}"));
            let candidate = PathBuf::from(name);
            if !candidate.exists() {
                return Ok(candidate);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} rotated files for one second already exist",
                ROTATED_NAMES_MAX
            ),
        ))
    }
}

impl Drop for RotatingFile {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh empty directory under the system temp directory.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "junction-test-{}-{name}-{}",
            std::process::id(),
            clock::now_epoch_ms()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    const T0: i64 = 1_795_842_790_123; // 2026-11-28T05:13:10.123Z

    #[test]
    fn rotates_by_size_before_a_line_would_overflow() {
        let dir = temp_dir("size");
        let path = dir.join("cdr.jsonl");
        let rotation = Rotation {
            bytes: Some(10),
            secs: None,
        };
        let mut f = RotatingFile::open(&path, rotation, T0).unwrap();
        assert_eq!(f.write_line(b"1234\n", T0).unwrap(), None);
        assert_eq!(f.write_line(b"5678\n", T0).unwrap(), None); // exactly 10 bytes
        let rotated = f.write_line(b"9\n", T0).unwrap().unwrap();
        assert_eq!(rotated, dir.join("cdr.jsonl.20261128T051310Z"));
        // A second rotation in the same second gets a numbered name.
        assert_eq!(f.write_line(b"abcdefg\n", T0).unwrap(), None);
        let rotated = f.write_line(b"x\n", T0 + 500).unwrap().unwrap();
        assert_eq!(rotated, dir.join("cdr.jsonl.20261128T051310Z.1"));
        // A line larger than the limit still goes somewhere (alone in its file).
        assert!(f.write_line(&[b'y'; 20], T0).unwrap().is_some());
        f.flush().unwrap();
        drop(f);
        assert_eq!(
            files(&dir),
            [
                "cdr.jsonl",
                "cdr.jsonl.20261128T051310Z",
                "cdr.jsonl.20261128T051310Z.1",
                "cdr.jsonl.20261128T051310Z.2"
            ]
        );
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(read("cdr.jsonl.20261128T051310Z"), "1234\n5678\n");
        assert_eq!(read("cdr.jsonl.20261128T051310Z.1"), "9\nabcdefg\n");
        assert_eq!(read("cdr.jsonl.20261128T051310Z.2"), "x\n");
        assert_eq!(read("cdr.jsonl"), "y".repeat(20));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rotates_on_period_boundaries_and_keeps_empty_files() {
        let dir = temp_dir("time");
        let path = dir.join("cdr.jsonl");
        let rotation = Rotation {
            bytes: None,
            secs: Some(60),
        };
        let minute = 60_000;
        let start = T0 - T0.rem_euclid(minute); // 05:13:00.000
        let mut f = RotatingFile::open(&path, rotation, start + 1).unwrap();
        // Nothing written: a new period leaves the empty file alone.
        assert_eq!(f.tick(start + minute + 5).unwrap(), None);
        assert_eq!(f.write_line(b"a\n", start + minute + 10).unwrap(), None);
        assert_eq!(f.tick(start + 2 * minute - 1).unwrap(), None);
        let rotated = f.tick(start + 2 * minute).unwrap().unwrap();
        assert_eq!(rotated, dir.join("cdr.jsonl.20261128T051500Z"));
        // A write in a later period rotates first.
        assert_eq!(f.write_line(b"b\n", start + 2 * minute + 1).unwrap(), None);
        let rotated = f.write_line(b"c\n", start + 5 * minute).unwrap().unwrap();
        assert_eq!(rotated, dir.join("cdr.jsonl.20261128T051800Z"));
        drop(f);
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&dir.join("cdr.jsonl.20261128T051500Z")), "a\n");
        assert_eq!(read(&dir.join("cdr.jsonl.20261128T051800Z")), "b\n");
        assert_eq!(read(&path), "c\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn appends_to_an_existing_file_and_reopens_after_it_was_moved_away() {
        let dir = temp_dir("append");
        let path = dir.join("cdr.jsonl");
        std::fs::write(&path, "old\n").unwrap();
        let mut f = RotatingFile::open(&path, Rotation::default(), T0).unwrap();
        assert_eq!(f.size(), 4);
        f.write_line(b"new\n", T0).unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\nnew\n");
        // The directory disappears: writes fail (never panic) until it is back.
        std::fs::remove_dir_all(&dir).unwrap();
        drop(f);
        let mut f = RotatingFile {
            path: path.clone(),
            rotation: Rotation::default(),
            out: None,
            size: 0,
            period: None,
        };
        assert!(f.write_line(b"lost\n", T0).is_err());
        assert!(f.tick(T0).is_err());
        std::fs::create_dir_all(&dir).unwrap();
        f.tick(T0).unwrap();
        f.write_line(b"back\n", T0).unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "back\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
