//! Time-of-day routing: a route with `when = ["Mon-Fri 08:00-18:00", ...]` in
//! `time_zone` (an IANA name; default UTC) is walked only while one of its windows is
//! open, judged in that zone's civil time (daylight saving included, from jiff's bundled
//! tz database). Outside its windows the route is skipped as if it did not match.
//!
//! A window is `[DAYS] HH:MM-HH:MM`: DAYS is a day (`Mon`), a range (`Mon-Fri`, `Fri-Mon`
//! wraps), or a comma list of those (`Sat,Sun`); without DAYS, every day. The end may be
//! `24:00`. An end at or before the start spans midnight (`Mon-Fri 22:00-06:00`: from 22:00
//! on those days to 06:00 the next morning).
//!
//! The core never reads the clock: the time comes in as seconds since the Unix epoch,
//! derived from the `now` it is given.

use jiff::tz::TimeZone;

/// One window: the days it opens on (bit 0 = Monday), from and to (minutes of the day).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    days: u8,
    start: u16,
    end: u16,
}

/// A route's windows in its time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    zone: TimeZone,
    zone_name: String,
    windows: Vec<Window>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(text: &str) -> Result<u8, String> {
    let t = text.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|d| t == *d || (t.len() > 3 && d.starts_with(&t[..3]) && day_full(&t)))
        .map(|i| i as u8)
        .ok_or_else(|| format!("{text:?} is not a day: write Mon, Tue, Wed, Thu, Fri, Sat or Sun"))
}

fn day_full(t: &str) -> bool {
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
    .contains(&t)
}

fn days(text: &str) -> Result<u8, String> {
    let mut mask = 0u8;
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    mask |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => mask |= 1 << day(part)?,
        }
    }
    Ok(mask)
}

fn minutes(text: &str) -> Result<u16, String> {
    let bad = || format!("{text:?} is not a time of day: write HH:MM, from 00:00 to 24:00");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn window(text: &str) -> Result<Window, String> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let (mask, times) = match parts.as_slice() {
        [times] => (0x7f, *times),
        [d, times] => (days(d)?, *times),
        _ => {
            return Err(format!(
            "{text:?} is not a window: write \"[DAYS] HH:MM-HH:MM\", like \"Mon-Fri 08:00-18:00\""
        ))
        }
    };
    let (a, b) = times
        .split_once('-')
        .ok_or_else(|| format!("{times:?} is not a time range: write HH:MM-HH:MM"))?;
    let (start, end) = (minutes(a)?, minutes(b)?);
    if start == end || start == 24 * 60 {
        return Err(format!(
            "{times:?} is empty or ambiguous; for a whole day write 00:00-24:00"
        ));
    }
    Ok(Window {
        days: mask,
        start,
        end,
    })
}

/// The time zone named `name` (an IANA name such as "Europe/Paris", or "UTC").
pub fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("{name:?} is not a time zone junction knows: use an IANA name like \"Europe/Paris\" or \"America/New_York\", or \"UTC\"")
    })
}

/// Check one window as written (for configuration errors).
pub fn check_window(text: &str) -> Result<(), String> {
    window(text).map(|_| ())
}

impl Schedule {
    /// Windows as written, in the zone named `zone_name`.
    pub fn new<S: AsRef<str>>(zone_name: &str, windows: &[S]) -> Result<Schedule, String> {
        Ok(Schedule {
            zone: zone(zone_name)?,
            zone_name: zone_name.to_string(),
            windows: windows
                .iter()
                .map(|w| window(w.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The zone's name as written.
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// Whether one of the windows is open at `unix_secs` (seconds since the Unix epoch).
    pub fn active(&self, unix_secs: i64) -> bool {
        let Ok(ts) = jiff::Timestamp::from_second(unix_secs) else {
            return false;
        };
        let civil = self.zone.to_datetime(ts);
        let weekday = civil.weekday().to_monday_zero_offset() as u8;
        let yesterday = (weekday + 6) % 7;
        let minute = civil.hour() as u16 * 60 + civil.minute() as u16;
        self.windows.iter().any(|w| {
            let on = |d: u8| w.days & (1 << d) != 0;
            if w.start < w.end {
                on(weekday) && w.start <= minute && minute < w.end
            } else {
                (on(weekday) && minute >= w.start) || (on(yesterday) && minute < w.end)
            }
        })
    }

    /// Civil time at `unix_secs` in the route's zone, for explanations.
    pub fn civil(&self, unix_secs: i64) -> String {
        match jiff::Timestamp::from_second(unix_secs) {
            Ok(ts) => {
                let c = self.zone.to_datetime(ts);
                format!(
                    "{} {:04}-{:02}-{:02} {:02}:{:02} {}",
                    DAYS.get(c.weekday().to_monday_zero_offset() as usize)
                        .unwrap_or(&"?"),
                    c.year(),
                    c.month(),
                    c.day(),
                    c.hour(),
                    c.minute(),
                    self.zone_name
                )
            }
            Err(_) => "?".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<jiff::Zoned>()
            .expect("time")
            .timestamp()
            .as_second()
    }

    #[test]
    fn office_hours_in_paris_follow_daylight_saving() {
        let s = Schedule::new("Europe/Paris", &["Mon-Fri 08:00-18:00"]).expect("valid");
        assert!(
            s.active(at("2026-12-23T08:00[Europe/Paris]")),
            "Wednesday 08:00"
        );
        assert!(
            !s.active(at("2026-12-23T18:00[Europe/Paris]")),
            "the end is excluded"
        );
        assert!(
            !s.active(at("2026-12-24T20:00[Europe/Paris]")),
            "Thursday evening"
        );
        assert!(!s.active(at("2026-12-26T10:00[Europe/Paris]")), "Saturday");
        // 07:30 UTC is 08:30 in winter (UTC+1) and 09:30 in summer (UTC+2): open both.
        assert!(s.active(at("2026-01-07T07:30[UTC]")));
        assert!(s.active(at("2026-07-07T07:30[UTC]")));
        // 16:30 UTC: 17:30 in winter (open), 18:30 in summer (closed).
        assert!(s.active(at("2026-01-07T16:30[UTC]")));
        assert!(!s.active(at("2026-07-07T16:30[UTC]")));
    }

    #[test]
    fn night_windows_span_midnight_and_days_wrap() {
        let s =
            Schedule::new("UTC", &["Mon-Fri 20:00-08:00", "Sat,Sun 00:00-24:00"]).expect("valid");
        assert!(s.active(at("2026-12-24T20:00[UTC]")), "Thursday 20:00");
        assert!(
            s.active(at("2026-12-25T07:59[UTC]")),
            "Friday morning, from Thursday"
        );
        assert!(!s.active(at("2026-12-25T08:00[UTC]")));
        assert!(s.active(at("2026-12-26T12:00[UTC]")), "Saturday");
        // Monday 07:00: Sunday night is not a weekday night, and Sunday's window ended.
        assert!(!s.active(at("2026-12-28T07:00[UTC]")));
        // The weekday nights include Friday's, into Saturday.
        assert!(s.active(at("2026-12-26T07:00[UTC]")));
    }

    #[test]
    fn bad_windows_and_zones_are_refused() {
        assert!(zone("Europe/Nowhere").is_err());
        assert!(zone("Europe/Paris").is_ok());
        for bad in [
            "Mon-Fri",
            "Mon-Fri 8:00-18:00",
            "Mon-Xyz 08:00-18:00",
            "Mon 08:00-08:00",
            "Mon 25:00-26:00",
            "Mon 08:60-09:00",
            "Mon 08:00 18:00",
            "",
        ] {
            assert!(check_window(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_window("Fri-Mon 00:00-24:00").is_ok());
        assert!(check_window("22:00-06:00").is_ok());
        assert!(check_window("saturday 10:00-12:00").is_ok());
    }
}
