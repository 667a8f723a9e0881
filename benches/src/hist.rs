//! Latency histograms (microsecond resolution) and their summaries.

use hdrhistogram::Histogram;
use serde::Serialize;

/// A histogram of microseconds from 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

/// Records `micros`, clamping into the histogram's range.
pub fn record(h: &mut Histogram<u64>, micros: u64) {
    let v = micros.clamp(h.low(), h.high());
    let _ = h.record(v);
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarises a histogram of microseconds (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    /// `p50/p99/p999/max` as one short line.
    pub fn line(&self) -> String {
        format!(
            "p50 {:.1} ms  p99 {:.1} ms  p999 {:.1} ms  max {:.1} ms  (n={})",
            self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms, self.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            record(&mut h, us * 1000);
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_ms - 990.0).abs() < 2.0, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn empty_and_out_of_range() {
        assert_eq!(LatencySummary::of(&new_histogram()), LatencySummary::default());
        let mut h = new_histogram();
        record(&mut h, 0);
        record(&mut h, u64::MAX);
        assert_eq!(h.len(), 2);
    }
}
