//! A checker of the Prometheus text exposition format 0.0.4, written from the format's
//! rules, for tests: it refuses what a Prometheus server would refuse (bad names, bad
//! label syntax or escapes, unparsable values, duplicate series, samples before or outside
//! their family's HELP/TYPE) and checks histograms the way PromQL relies on them (per
//! series: `le` buckets increasing and cumulative, the last `+Inf` and equal to `_count`,
//! `_sum` present). It returns the samples for the test's own assertions.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

/// One sample: metric name, labels (sorted by name), value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name -> type.
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    /// The value of the series `name{labels}` (labels given in any order, all of them).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// Every sample of `name` whose labels include `labels`.
    pub fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }
}

fn metric_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn label_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("value {text:?} is not a float")),
    }
}

/// `{a="x",b="y"}` (the braces included) starting at `text`; returns the labels and the
/// rest after the closing brace.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text
        .strip_prefix('{')
        .ok_or_else(|| "labels must start with {".to_string())?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("label without '=' in {text:?}"))?;
        let name = &rest[..eq];
        if !label_name_ok(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or_else(|| format!("label {name} value is not quoted"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated value of label {name}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in label {name}")),
                },
                Some((_, '\n')) => return Err(format!("raw newline in label {name}")),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} given twice"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected ',' or '}}' after label {name}"));
        }
    }
}

/// The family a sample name belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| t == "histogram") {
                return base;
            }
        }
    }
    name
}

/// Check `text`; every rule broken is an error naming its line.
pub fn check(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    let mut out = Exposition::default();
    let mut helped = BTreeSet::new();
    let mut finished_families = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            let keyword = words.next().unwrap_or("");
            if keyword != "HELP" && keyword != "TYPE" {
                continue; // a plain comment
            }
            let name = words.next().unwrap_or("");
            let rest = words.next().unwrap_or("");
            if !metric_name_ok(name) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            if finished_families.contains(name) {
                return Err(at(format!("{name} continues after another family")));
            }
            if current.as_deref() != Some(name) {
                if let Some(previous) = current.take() {
                    finished_families.insert(previous);
                }
                current = Some(name.to_string());
            }
            if keyword == "HELP" {
                if !helped.insert(name.to_string()) {
                    return Err(at(format!("second HELP for {name}")));
                }
                if out.types.contains_key(name) {
                    return Err(at(format!("HELP after TYPE for {name}")));
                }
            } else {
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest) {
                    return Err(at(format!("unknown type {rest:?}")));
                }
                if out
                    .types
                    .insert(name.to_string(), rest.to_string())
                    .is_some()
                {
                    return Err(at(format!("second TYPE for {name}")));
                }
                if rest == "counter" && !name.ends_with("_total") {
                    return Err(at(format!("counter {name} does not end in _total")));
                }
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !metric_name_ok(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?
            .split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| at(format!("bad timestamp {ts:?}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let family = family_of(name, &out.types);
        if current.as_deref() != Some(family) || !out.types.contains_key(family) {
            return Err(at(format!(
                "sample of {family} outside its HELP/TYPE block"
            )));
        }
        if !helped.contains(family) {
            return Err(at(format!("{family} has no HELP")));
        }
        let key = format!("{name}{labels:?}");
        if !series.insert(key) {
            return Err(at("duplicate series".into()));
        }
        out.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    check_histograms(&out)?;
    Ok(out)
}

fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (family, kind) in &e.types {
        if kind != "histogram" {
            continue;
        }
        // Series of the family by labels without `le`.
        let mut buckets: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in e
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let le = s
                .labels
                .get("le")
                .ok_or_else(|| format!("{family}_bucket without le"))?;
            let bound = parse_value(le)?;
            let mut rest = s.labels.clone();
            rest.remove("le");
            buckets.entry(rest).or_default().push((bound, s.value));
        }
        for s in e
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_count"))
        {
            if !buckets.contains_key(&s.labels) {
                return Err(format!("{family}_count{:?} has no buckets", s.labels));
            }
        }
        for (labels, list) in &buckets {
            let what = format!("{family}{labels:?}");
            for pair in list.windows(2) {
                if pair[1].0 <= pair[0].0 {
                    return Err(format!("{what}: le not increasing"));
                }
                if pair[1].1 < pair[0].1 {
                    return Err(format!("{what}: buckets not cumulative"));
                }
            }
            let Some(&(last_le, inf)) = list.last() else {
                continue;
            };
            if last_le != f64::INFINITY {
                return Err(format!("{what}: the last bucket is not +Inf"));
            }
            let count = e
                .get_with(&format!("{family}_count"), labels)
                .ok_or_else(|| format!("{what}: no _count"))?;
            if count != inf {
                return Err(format!("{what}: +Inf bucket {inf} != _count {count}"));
            }
            let sum = e
                .get_with(&format!("{family}_sum"), labels)
                .ok_or_else(|| format!("{what}: no _sum"))?;
            if count == 0.0 && sum != 0.0 {
                return Err(format!("{what}: empty histogram with a sum"));
            }
        }
    }
    Ok(())
}

impl Exposition {
    fn get_with(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && &s.labels == labels)
            .map(|s| s.value)
    }
}

/// The checker refuses what it must (a checker that accepts everything proves nothing).
pub fn self_test() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n\
                # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n\
                h_sum 1.5\nh_count 2\n";
    let e = check(good).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(e.get("a_total", &[("x", "1")]), Some(3.0));
    let bad = [
        ("no newline", "# HELP a_total A.\n# TYPE a_total counter\na_total 1"),
        ("bad name", "# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n"),
        ("no TYPE", "a 1\n"),
        ("bad label", "# HELP a A.\n# TYPE a gauge\na{1x=\"y\"} 1\n"),
        ("unquoted", "# HELP a A.\n# TYPE a gauge\na{x=y} 1\n"),
        ("bad escape", "# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n"),
        ("bad value", "# HELP a A.\n# TYPE a gauge\na 1x\n"),
        ("duplicate", "# HELP a A.\n# TYPE a gauge\na 1\na 2\n"),
        ("counter name", "# HELP a A.\n# TYPE a counter\na 1\n"),
        (
            "interleaved",
            "# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\nb 1\na 1\n",
        ),
        (
            "not cumulative",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        ),
        (
            "no +Inf",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",
        ),
        (
            "+Inf != count",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        ),
        (
            "le decreasing",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        ),
    ];
    for (what, text) in bad {
        assert!(
            check(text).is_err(),
            "the checker accepted {what}: {text:?}"
        );
    }
}
