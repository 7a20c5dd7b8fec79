//! Writing the Prometheus text exposition format 0.0.4: families (`# HELP`, `# TYPE`),
//! samples with escaped labels, and histograms (`_bucket{le=...}`, `_sum`, `_count`) made
//! from `hdrhistogram` histograms.

use hdrhistogram::Histogram;
use std::fmt::Write;

/// The type of a counter or gauge family (histograms have their own methods).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

/// The text being built.
pub(crate) struct Exposition {
    pub(crate) out: String,
}

/// How an hdrhistogram's values map to seconds, and the bucket bounds to show.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Seconds per recorded unit (1e-6 for µs, 1e-3 for ms).
    pub unit_secs: f64,
    /// Upper bounds of the buckets in seconds, increasing (`+Inf` is added).
    pub bounds_secs: &'static [f64],
}

impl Exposition {
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        self.header(name, kind, help);
    }

    pub(crate) fn histogram_family(&mut self, name: &str, help: &str) {
        self.header(name, "histogram", help);
    }

    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn series(&mut self, name: &str, suffix: &str, labels: &[(&str, &str)], le: Option<&str>) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let le = le.map(|le| ("le", le));
        for (i, (key, val)) in labels.iter().copied().chain(le).enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{key}=\"{}\"", escape_label(val));
        }
        self.out.push('}');
    }

    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.series(name, "", labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A sample with a fractional value (ratios: 0 to 1).
    pub(crate) fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.series(name, "", labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// One histogram's samples (its family header written before). Bucket `le` counts the
    /// values whose hdrhistogram bin starts at or below `le` (bins are 0.1% wide);
    /// `_sum` is the count times the histogram's mean.
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        h: &Histogram<u64>,
        scale: Scale,
    ) {
        let (counts, sum_units) = bucket_counts(h, scale);
        let mut cumulative = 0u64;
        for (bound, count) in scale.bounds_secs.iter().zip(&counts) {
            cumulative += count;
            let le = format!("{bound}");
            self.series(name, "_bucket", labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let total = h.len();
        self.series(name, "_bucket", labels, Some("+Inf"));
        let _ = writeln!(self.out, " {total}");
        self.series(name, "_sum", labels, None);
        // To the ns: drops float noise (0.5135629999999998) the histogram cannot carry.
        let sum = (sum_units * scale.unit_secs * 1e9).round() / 1e9;
        let _ = writeln!(self.out, " {sum}");
        self.series(name, "_count", labels, None);
        let _ = writeln!(self.out, " {total}");
    }
}

/// Values per bucket (not cumulative), one entry per bound (values above the last bound
/// are in no entry, only in `+Inf`), and the sum of the values (each bin counted at its
/// middle, as `Histogram::mean` does), in one pass over the histogram.
fn bucket_counts(h: &Histogram<u64>, scale: Scale) -> (Vec<u64>, f64) {
    // Compare in the histogram's integer unit: 0.01 s is exactly 10,000 µs.
    let bounds: Vec<u64> = scale
        .bounds_secs
        .iter()
        .map(|b| (b / scale.unit_secs).round() as u64)
        .collect();
    let mut counts = vec![0u64; bounds.len()];
    let mut sum = 0.0;
    for bin in h.iter_recorded() {
        let value = bin.value_iterated_to();
        let n = bin.count_at_value();
        sum += h.median_equivalent(value) as f64 * n as f64;
        let low = h.lowest_equivalent(value);
        let i = bounds.partition_point(|b| *b < low);
        if let Some(c) = counts.get_mut(i) {
            *c += n;
        }
    }
    (counts, sum)
}

/// `# HELP` text: backslash and newline are escaped.
pub(crate) fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Label values: backslash, double quote and newline are escaped.
pub(crate) fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.01, 0.1, 1.0];

    #[test]
    fn histogram_samples_are_cumulative_and_end_in_inf() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in [5_000, 10_000, 10_000, 99_000, 250_000, 2_000_000] {
            h.record(us).unwrap();
        }
        let mut e = Exposition { out: String::new() };
        let scale = Scale {
            unit_secs: 1e-6,
            bounds_secs: BOUNDS,
        };
        e.histogram_family("x_seconds", "X.");
        e.histogram("x_seconds", &[("trunk", "gw\"a")], &h, scale);
        let lines: Vec<&str> = e.out.lines().collect();
        assert_eq!(
            lines[..6],
            [
                "# HELP x_seconds X.",
                "# TYPE x_seconds histogram",
                "x_seconds_bucket{trunk=\"gw\\\"a\",le=\"0.01\"} 3",
                "x_seconds_bucket{trunk=\"gw\\\"a\",le=\"0.1\"} 4",
                "x_seconds_bucket{trunk=\"gw\\\"a\",le=\"1\"} 5",
                "x_seconds_bucket{trunk=\"gw\\\"a\",le=\"+Inf\"} 6",
            ]
        );
        let sum: f64 = lines[6]
            .strip_prefix("x_seconds_sum{trunk=\"gw\\\"a\"} ")
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 2.374).abs() < 0.01, "{sum}");
        assert_eq!(lines[7], "x_seconds_count{trunk=\"gw\\\"a\"} 6");
    }

    #[test]
    fn an_empty_histogram_has_zero_buckets() {
        let h = Histogram::<u64>::new_with_bounds(1, 1000, 3).unwrap();
        let mut e = Exposition { out: String::new() };
        let scale = Scale {
            unit_secs: 1e-3,
            bounds_secs: BOUNDS,
        };
        e.histogram("d", &[], &h, scale);
        assert_eq!(
            e.out,
            "d_bucket{le=\"0.01\"} 0\nd_bucket{le=\"0.1\"} 0\nd_bucket{le=\"1\"} 0\n\
             d_bucket{le=\"+Inf\"} 0\nd_sum 0\nd_count 0\n"
        );
    }

    #[test]
    fn label_and_help_escaping() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("x\\y\nz\""), "x\\\\y\\nz\"");
    }
}
