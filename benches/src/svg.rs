//! Hand-written SVG bar charts (no plotting dependency): one group of bars
//! per category, one colour per series, values printed above the bars.

use std::fmt::Write;

const COLORS: [&str; 6] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1"];

/// A grouped bar chart.
#[derive(Debug, Clone, Default)]
pub struct BarChart {
    /// Title at the top.
    pub title: String,
    /// Unit of the y axis, e.g. "MiB/s" or "ms".
    pub unit: String,
    /// Names of the groups along the x axis.
    pub categories: Vec<String>,
    /// `(series name, one value per category)`.
    pub series: Vec<(String, Vec<f64>)>,
    /// A horizontal reference line `(label, value)`, e.g. a target.
    pub reference: Option<(String, f64)>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A "nice" axis maximum at or above `v`.
fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl BarChart {
    /// Renders the chart as a standalone SVG document.
    pub fn render(&self) -> String {
        let (w, h) = (760.0, 420.0);
        let (left, right, top, bottom) = (70.0, 20.0, 50.0, 80.0);
        let plot_w = w - left - right;
        let plot_h = h - top - bottom;
        let data_max = self
            .series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .chain(self.reference.iter().map(|r| r.1))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let y_max = nice_max(data_max * 1.08);
        let y = |v: f64| top + plot_h - (v.max(0.0) / y_max) * plot_h;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
            w / 2.0,
            escape(&self.title)
        );
        for i in 0..=5 {
            let v = y_max * f64::from(i) / 5.0;
            let yy = y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                w - right,
                left - 6.0,
                yy + 4.0,
                fmt_value(v)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
            top + plot_h / 2.0,
            top + plot_h / 2.0,
            escape(&self.unit)
        );
        let groups = self.categories.len().max(1) as f64;
        let group_w = plot_w / groups;
        let n_series = self.series.len().max(1) as f64;
        let bar_w = (group_w * 0.8 / n_series).min(80.0);
        for (gi, cat) in self.categories.iter().enumerate() {
            let gx = left + group_w * gi as f64;
            let start = gx + (group_w - bar_w * n_series) / 2.0;
            for (si, (_, values)) in self.series.iter().enumerate() {
                let v = values.get(gi).copied().unwrap_or(0.0);
                if !v.is_finite() {
                    continue;
                }
                let x = start + bar_w * si as f64;
                let yy = y(v);
                let _ = writeln!(
                    s,
                    r#"<rect x="{x:.1}" y="{yy:.1}" width="{:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                    bar_w - 2.0,
                    top + plot_h - yy,
                    COLORS[si % COLORS.len()],
                    x + bar_w / 2.0 - 1.0,
                    yy - 3.0,
                    fmt_value(v)
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                gx + group_w / 2.0,
                top + plot_h + 16.0,
                escape(cat)
            );
        }
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#333"/>"##,
            w - right,
            top + plot_h,
            top + plot_h
        );
        if let Some((label, v)) = &self.reference {
            let yy = y(*v);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#c00" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="end" fill="#c00">{}</text>"##,
                w - right,
                w - right - 4.0,
                yy - 4.0,
                escape(label)
            );
        }
        let mut lx = left;
        let ly = h - 24.0;
        for (si, (name, _)) in self.series.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
                ly - 10.0,
                COLORS[si % COLORS.len()],
                lx + 16.0,
                escape(name)
            );
            lx += 24.0 + 7.0 * name.len() as f64;
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bars_labels_and_reference() {
        let chart = BarChart {
            title: "a < b".into(),
            unit: "ms".into(),
            categories: vec!["p50".into(), "p99".into()],
            series: vec![("x".into(), vec![1.0, 2.0]), ("y".into(), vec![3.0, f64::NAN])],
            reference: Some(("target".into(), 2.5)),
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt; b"));
        assert_eq!(svg.matches("<rect").count(), 1 + 3 + 2);
        assert!(svg.contains("target"));
    }

    #[test]
    fn nice_axis() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.3), 10.0);
        assert_eq!(nice_max(151.0), 200.0);
        assert_eq!(nice_max(2.2), 2.5);
    }
}
