//! A small parser of the Prometheus / OpenMetrics text format, enough to
//! diff counters and histograms between two scrapes of `/metrics`.

use std::collections::BTreeMap;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name as exposed (with `_total`, `_bucket`, ... suffixes).
    pub name: String,
    /// Labels in exposition order.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

/// All samples of one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// The samples, in exposition order.
    pub samples: Vec<Sample>,
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_owned();
        let after = &rest[eq + 1..];
        let Some(after) = after.strip_prefix('"') else { break };
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((key, value));
        rest = &after[end.min(after.len())..];
    }
    labels
}

impl Scrape {
    /// Parses an exposition; lines that are not samples are skipped.
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (head, value) = if let Some(close) = line.rfind('}') {
                (&line[..=close], line[close + 1..].trim())
            } else {
                match line.split_once(' ') {
                    Some((h, v)) => (h, v.trim()),
                    None => continue,
                }
            };
            // A timestamp may follow the value.
            let value = value.split_whitespace().next().unwrap_or("");
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match head.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
                None => (head, Vec::new()),
            };
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
        Self { samples }
    }

    fn matching<'a>(&'a self, name: &'a str, filter: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && filter
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// Sum of every sample named `name` whose labels include `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.matching(name, filter).map(|s| s.value).sum()
    }

    /// Cumulative buckets `(le, count)` of histogram `name` (without the
    /// `_bucket` suffix), summed over every series matching `filter`, sorted by `le`.
    pub fn buckets(&self, name: &str, filter: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let bucket_name = format!("{name}_bucket");
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self.matching(&bucket_name, filter) {
            let Some(le) = s.labels.iter().find(|(k, _)| k == "le").map(|(_, v)| v) else {
                continue;
            };
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::NAN)
            };
            if le.is_nan() {
                continue;
            }
            let entry = by_le.entry(le.to_bits()).or_insert((le, 0.0));
            entry.1 += s.value;
        }
        let mut out: Vec<(f64, f64)> = by_le.into_values().collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }

    /// The histogram `name` as observed between `before` and `self`.
    pub fn histogram_delta(&self, before: &Scrape, name: &str, filter: &[(&str, &str)]) -> HistogramDelta {
        let now = self.buckets(name, filter);
        let then = before.buckets(name, filter);
        let buckets = now
            .iter()
            .map(|(le, c)| {
                let old = then.iter().find(|(l, _)| l == le).map_or(0.0, |(_, c)| *c);
                (*le, (c - old).max(0.0))
            })
            .collect();
        HistogramDelta {
            buckets,
            count: self.sum(&format!("{name}_count"), filter) - before.sum(&format!("{name}_count"), filter),
            sum: self.sum(&format!("{name}_sum"), filter) - before.sum(&format!("{name}_sum"), filter),
        }
    }
}

/// Observations of a histogram between two scrapes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramDelta {
    /// Cumulative `(le, count)` buckets.
    pub buckets: Vec<(f64, f64)>,
    /// Observations.
    pub count: f64,
    /// Sum of observed values.
    pub sum: f64,
}

impl HistogramDelta {
    /// Mean of the observations (0 when none).
    pub fn mean(&self) -> f64 {
        if self.count > 0.0 { self.sum / self.count } else { 0.0 }
    }

    /// Estimated `q` quantile, interpolating linearly inside the bucket as
    /// Prometheus' `histogram_quantile` does (0 when empty; the largest
    /// finite bound when it falls in `+Inf`).
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.buckets.last().map_or(0.0, |b| b.1);
        if total <= 0.0 {
            return 0.0;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let mut prev_le = 0.0;
        let mut prev_count = 0.0;
        for &(le, count) in &self.buckets {
            if count >= rank {
                if le.is_infinite() {
                    return prev_le;
                }
                let in_bucket = count - prev_count;
                if in_bucket <= 0.0 {
                    return le;
                }
                return prev_le + (le - prev_le) * (rank - prev_count) / in_bucket;
            }
            prev_le = le;
            prev_count = count;
        }
        prev_le
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP silt_object_store_requests Object store requests
# TYPE silt_object_store_requests counter
silt_object_store_requests_total{operation="put",outcome="ok"} 10
silt_object_store_requests_total{operation="get_range",outcome="ok"} 4
silt_object_store_requests_total{operation="put",outcome="error"} 1
silt_object_store_bytes_total{direction="written"} 1048576
# TYPE silt_produce_ack_seconds histogram
silt_produce_ack_seconds_sum 1.5
silt_produce_ack_seconds_count 10
silt_produce_ack_seconds_bucket{le="0.1"} 0
silt_produce_ack_seconds_bucket{le="0.2"} 5
silt_produce_ack_seconds_bucket{le="0.4"} 10
silt_produce_ack_seconds_bucket{le="+Inf"} 10
# EOF
"#;

    #[test]
    fn sums_with_label_filters() {
        let s = Scrape::parse(TEXT);
        assert_eq!(s.sum("silt_object_store_requests_total", &[("operation", "put")]), 11.0);
        assert_eq!(
            s.sum(
                "silt_object_store_requests_total",
                &[("operation", "put"), ("outcome", "ok")]
            ),
            10.0
        );
        assert_eq!(s.sum("silt_object_store_requests_total", &[]), 15.0);
        assert_eq!(
            s.sum("silt_object_store_bytes_total", &[("direction", "written")]),
            1048576.0
        );
        assert_eq!(s.sum("absent", &[]), 0.0);
    }

    #[test]
    fn histogram_quantiles_interpolate_and_diff() {
        let after = Scrape::parse(TEXT);
        let before = Scrape::default();
        let h = after.histogram_delta(&before, "silt_produce_ack_seconds", &[]);
        assert_eq!(h.count, 10.0);
        assert!((h.mean() - 0.15).abs() < 1e-9);
        assert!((h.quantile(0.5) - 0.2).abs() < 1e-9, "{}", h.quantile(0.5));
        assert!((h.quantile(0.75) - 0.3).abs() < 1e-9);
        let same = after.histogram_delta(&after, "silt_produce_ack_seconds", &[]);
        assert_eq!(same.count, 0.0);
        assert_eq!(same.quantile(0.99), 0.0);
    }

    #[test]
    fn labels_with_escapes_and_commas() {
        let s = Scrape::parse("m{a=\"x,y\",b=\"q\\\"z\"} 3\n");
        assert_eq!(
            s.samples[0].labels,
            vec![("a".into(), "x,y".into()), ("b".into(), "q\"z".into())]
        );
    }
}
