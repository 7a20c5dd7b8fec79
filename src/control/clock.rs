//! Wall-clock time for what leaves the process (CDRs, logs, rotated file names).
//!
//! The core and the shards only know `Instant`s. `WallClock` turns them into wall-clock time
//! with one (`Instant`, `SystemTime`) pair taken at startup, so every time in a CDR is on one
//! monotonic scale (a clock step while running shifts nothing between two records). Times
//! are shown in UTC, RFC 3339 with milliseconds (`2026-11-28T05:13:10.123Z`).

use std::fmt::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One reference pair: `instant` and `system` were read at the same moment.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    instant: Instant,
    /// Milliseconds since the Unix epoch at `instant` (as µs, to keep sub-ms offsets).
    epoch_us: i64,
}

impl WallClock {
    /// Read both clocks now.
    pub fn now() -> WallClock {
        WallClock::from_pair(Instant::now(), SystemTime::now())
    }

    pub fn from_pair(instant: Instant, system: SystemTime) -> WallClock {
        WallClock {
            instant,
            epoch_us: epoch_us(system),
        }
    }

    /// Microseconds since the Unix epoch at `t`.
    pub fn epoch_us(&self, t: Instant) -> i64 {
        let offset = if t >= self.instant {
            signed_us(t.duration_since(self.instant))
        } else {
            -signed_us(self.instant.duration_since(t))
        };
        self.epoch_us.saturating_add(offset)
    }

    /// Milliseconds since the Unix epoch at `t`.
    pub fn epoch_ms(&self, t: Instant) -> i64 {
        self.epoch_us(t).div_euclid(1000)
    }
}

fn signed_us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Microseconds since the Unix epoch (negative before 1970).
pub fn epoch_us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => signed_us(d),
        Err(e) => -signed_us(e.duration()),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_epoch_ms() -> i64 {
    epoch_us(SystemTime::now()).div_euclid(1000)
}

/// (year, month 1-12, day 1-31) of a day counted from 1970-01-01 (proleptic Gregorian).
fn civil_date(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days end each 4/100/400-year cycle.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // 0..=146096
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The UTC calendar fields of an epoch time in ms.
struct Fields {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
}

fn fields(epoch_ms: i64) -> Fields {
    let days = epoch_ms.div_euclid(86_400_000);
    let ms_of_day = epoch_ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_date(days);
    Fields {
        year,
        month,
        day,
        hour: ms_of_day / 3_600_000,
        minute: ms_of_day / 60_000 % 60,
        second: ms_of_day / 1000 % 60,
        millis: ms_of_day % 1000,
    }
}

/// Append `2026-11-28T05:13:10.123Z` for `epoch_ms`.
pub fn write_rfc3339_ms(out: &mut String, epoch_ms: i64) {
    let f = fields(epoch_ms);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        f.year, f.month, f.day, f.hour, f.minute, f.second, f.millis
    );
}

pub fn rfc3339_ms(epoch_ms: i64) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339_ms(&mut out, epoch_ms);
    out
}

/// `20261128T051310Z`: a UTC time for file names (sorts in time order, no colons).
pub fn compact_utc(epoch_ms: i64) -> String {
    let f = fields(epoch_ms);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        f.year, f.month, f.day, f.hour, f.minute, f.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        // 2000-02-29 (a leap day of a 400-year leap year) and the day after.
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_868_800_000), "2000-03-01T00:00:00.000Z");
        // 2100-03-01: 2100 is not a leap year.
        assert_eq!(rfc3339_ms(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_842_790_123), "2026-11-28T05:13:10.123Z");
        assert_eq!(compact_utc(1_795_842_790_123), "20261128T051310Z");
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        // 1900..2200: the date of each day is the next calendar date after the previous.
        let mut previous = civil_date(-25_567 - 1);
        for days in -25_567..84_000 {
            let (y, m, d) = civil_date(days);
            let (py, pm, pd) = previous;
            let next_day = y == py && m == pm && d == pd + 1;
            let next_month = y == py && m == pm + 1 && d == 1;
            let next_year = y == py + 1 && m == 1 && d == 1 && pm == 12 && pd == 31;
            assert!(
                next_day || next_month || next_year,
                "{previous:?} -> {y}-{m}-{d}"
            );
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_days = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            assert!(d >= 1 && d <= month_days[(m - 1) as usize]);
            previous = (y, m, d);
        }
    }

    #[test]
    fn instants_map_through_the_reference_pair() {
        let base = Instant::now();
        let clock = WallClock::from_pair(base, UNIX_EPOCH + Duration::from_millis(1_000_000));
        assert_eq!(clock.epoch_ms(base), 1_000_000);
        assert_eq!(
            clock.epoch_ms(base + Duration::from_micros(2_500)),
            1_000_002
        );
        assert_eq!(
            clock.epoch_us(base + Duration::from_micros(2_500)),
            1_000_002_500
        );
        if let Some(earlier) = base.checked_sub(Duration::from_millis(250)) {
            assert_eq!(clock.epoch_ms(earlier), 999_750);
        }
    }
}
