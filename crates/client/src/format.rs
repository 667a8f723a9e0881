//! Formatting helpers: aligned tables, byte sizes, rates, durations, and
//! the small flag parsers (`k=v` headers).

use std::fmt::Write as _;
use std::time::Duration;

/// Renders rows under a header as left-aligned columns separated by two
/// spaces, trailing spaces trimmed, one row per line.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().take(columns).enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate().take(columns) {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `1536` → `1.5 KiB`; below 1 KiB in plain bytes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Events per second over `elapsed` (0 when no time has passed).
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 { 0.0 } else { count as f64 / secs }
}

/// A duration as `0.42s`, `12.3s`, `4m05s` or `2h03m`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        if whole < 3600 {
            format!("{}m{:02}s", whole / 60, whole % 60)
        } else {
            format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
        }
    }
}

/// The summary line of a transfer: `N records (X) in T: R records/s, B/s`.
pub fn transfer_summary(verb: &str, records: u64, byte_count: u64, elapsed: Duration) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{verb} {records} record{} ({}) in {}: {:.0} records/s, {}/s",
        if records == 1 { "" } else { "s" },
        bytes(byte_count),
        duration(elapsed),
        per_second(records, elapsed),
        bytes(per_second(byte_count, elapsed) as u64),
    );
    s
}

/// Parses a `--header k=v` flag (the value may contain `=`; the key may
/// not be empty).
pub fn parse_header(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {raw:?}")),
    }
}

/// Topic config as `k=v, k=v`, or `(defaults)` when empty.
pub fn config(config: &serde_json::Map<String, serde_json::Value>) -> String {
    if config.is_empty() {
        return "(defaults)".to_owned();
    }
    config
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["NAME", "PARTITIONS"],
            &[vec!["orders".into(), "12".into()], vec!["a".into(), "1".into()]],
        );
        assert_eq!(t, "NAME    PARTITIONS\norders  12\na       1\n");
        assert_eq!(table(&["A", "B"], &[]), "A  B\n");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 20), "5.0 MiB");
        assert_eq!(bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn durations_and_rates() {
        assert_eq!(duration(Duration::from_millis(420)), "0.42s");
        assert_eq!(duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(duration(Duration::from_secs(7380)), "2h03m");
        assert_eq!(per_second(10, Duration::ZERO), 0.0);
        assert_eq!(per_second(10, Duration::from_secs(2)), 5.0);
        assert_eq!(
            transfer_summary("produced", 1, 2048, Duration::from_secs(2)),
            "produced 1 record (2.0 KiB) in 2.00s: 0 records/s, 1.0 KiB/s"
        );
    }

    #[test]
    fn headers_parse() {
        assert_eq!(parse_header("a=b"), Ok(("a".into(), "b".into())));
        assert_eq!(parse_header("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_header("a="), Ok(("a".into(), String::new())));
        assert!(parse_header("=b").is_err());
        assert!(parse_header("ab").is_err());
    }

    #[test]
    fn configs_render() {
        let mut m = serde_json::Map::new();
        assert_eq!(config(&m), "(defaults)");
        m.insert("retention_ms".into(), 5.into());
        m.insert("x".into(), "y".into());
        assert_eq!(config(&m), "retention_ms=5, x=y");
    }
}
