//! Measures compression ratio and encode/decode throughput of each codec on
//! a realistic JSON-log workload, to choose `Compression::DEFAULT`.
//!
//! Run: `cargo run --release -p silt-segment --example compression_choice`
#![allow(clippy::print_stdout)] // printing the table is the point

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use silt_segment::{BatchView, Compression, ProducerFields, encode_batch_with_level};
use silt_types::{Header, Record};

/// Deterministic xorshift64* so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(n);
        s
    }
}

const SERVICES: &[&str] = &[
    "checkout",
    "payments",
    "inventory",
    "search",
    "auth",
    "gateway",
    "recommendations",
    "shipping",
];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/orders/{id}",
    "/api/v1/cart",
    "/api/v2/search",
    "/api/v1/users/{id}/profile",
    "/healthz",
    "/api/v1/payments/authorize",
];
const WORDS: &[&str] = &[
    "request",
    "completed",
    "failed",
    "retrying",
    "upstream",
    "timeout",
    "cache",
    "miss",
    "hit",
    "user",
    "order",
    "created",
    "updated",
    "connection",
    "pool",
    "exhausted",
    "latency",
    "slow",
    "query",
    "database",
    "returned",
    "rows",
    "validation",
    "error",
    "token",
    "expired",
];

/// One ~1 KiB JSON log line.
fn log_line(rng: &mut Rng, ts_ms: i64) -> String {
    let service = rng.pick(SERVICES);
    let mut msg = String::new();
    for _ in 0..(8 + rng.below(12)) {
        msg.push_str(rng.pick(WORDS));
        msg.push(' ');
    }
    let mut line = format!(
        concat!(
            "{{\"timestamp\":\"2024-05-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"ts_ms\":{},",
            "\"level\":\"{}\",\"service\":\"{}\",\"host\":\"{}-{}-{}.prod.eu-west-1.internal\",",
            "\"pod\":\"{}-{}\",\"request_id\":\"{}-{}-{}-{}-{}\",\"trace_id\":\"{}\",\"span_id\":\"{}\",",
            "\"user_id\":{},\"http\":{{\"method\":\"{}\",\"path\":\"{}\",\"status\":{},",
            "\"latency_ms\":{}.{:03},\"bytes_out\":{},\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64) ",
            "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\"}},",
            "\"message\":\"{}\",\"attrs\":{{"
        ),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60),
        rng.below(1000),
        ts_ms,
        rng.pick(LEVELS),
        service,
        service,
        rng.below(40),
        rng.hex(5),
        service,
        rng.hex(10),
        rng.hex(8),
        rng.hex(4),
        rng.hex(4),
        rng.hex(4),
        rng.hex(12),
        rng.hex(32),
        rng.hex(16),
        rng.below(5_000_000),
        rng.pick(METHODS),
        rng.pick(PATHS),
        [200, 200, 200, 201, 204, 304, 400, 404, 500][rng.below(9) as usize],
        rng.below(900),
        rng.below(1000),
        rng.below(100_000),
        msg.trim_end(),
    );
    // Random extra fields until ~1 KiB: some numeric, some opaque ids.
    let mut i = 0;
    while line.len() < 1000 {
        let field = format!(
            "\"{}_{}\":{},",
            rng.pick(WORDS),
            i,
            match rng.below(3) {
                0 => format!("{}", rng.below(1_000_000)),
                1 => format!("\"{}\"", rng.hex(16)),
                _ => format!("\"{}\"", rng.pick(WORDS)),
            }
        );
        line.push_str(&field);
        i += 1;
    }
    line.pop();
    line.push_str("}}");
    line
}

fn workload(n: usize) -> Vec<Record> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ts = 1_714_000_000_000i64;
    (0..n)
        .map(|_| {
            ts += rng.below(5) as i64;
            let key = format!("user-{}", rng.below(100_000));
            Record {
                key: Some(Bytes::from(key)),
                value: Some(Bytes::from(log_line(&mut rng, ts))),
                headers: vec![Header {
                    key: "content-type".into(),
                    value: Some(Bytes::from_static(b"application/json")),
                }],
                timestamp_ms: ts,
            }
        })
        .collect()
}

fn mib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn main() {
    let records = workload(20_000);
    let raw: usize = records.iter().map(Record::weight).sum();
    let avg = raw / records.len();
    println!(
        "workload: {} JSON log records, {:.1} MiB, avg {} bytes/record (Record::weight)",
        records.len(),
        raw as f64 / 1048576.0,
        avg
    );
    println!("throughput = Record::weight bytes per second on one core, best of 5 runs");
    println!();
    println!(
        "{:>6} {:>8} {:>10} {:>8} {:>14} {:>14}",
        "batch", "codec", "bytes", "ratio", "encode MiB/s", "decode MiB/s"
    );
    let codecs: [(&str, Compression, i32); 4] = [
        ("none", Compression::None, 0),
        ("lz4", Compression::Lz4, 0),
        ("zstd-1", Compression::Zstd, 1),
        ("zstd-3", Compression::Zstd, 3),
    ];
    for batch_size in [100usize, 1000] {
        let mut baseline = 0usize;
        for (name, codec, level) in codecs {
            let mut best_enc = Duration::MAX;
            let mut best_dec = Duration::MAX;
            let mut total = 0usize;
            for _ in 0..5 {
                let mut batches = Vec::new();
                let start = Instant::now();
                for chunk in records.chunks(batch_size) {
                    let mut out = Vec::with_capacity(batch_size * 1100);
                    encode_batch_with_level(chunk, codec, level, ProducerFields::NONE, &mut out).expect("encodes");
                    batches.push(Bytes::from(out));
                }
                best_enc = best_enc.min(start.elapsed());
                total = batches.iter().map(Bytes::len).sum();

                let start = Instant::now();
                let mut n = 0usize;
                for b in &batches {
                    let view = BatchView::new(b.clone()).expect("parses");
                    view.verify_crc().expect("crc");
                    for r in view.records().expect("records") {
                        let r = r.expect("record");
                        n += r.value.map_or(0, |v| v.len());
                        black_box(&r.headers);
                    }
                }
                black_box(n);
                best_dec = best_dec.min(start.elapsed());
            }
            if codec == Compression::None {
                baseline = total;
            }
            println!(
                "{:>6} {:>8} {:>10} {:>8.2} {:>14.0} {:>14.0}",
                batch_size,
                name,
                total,
                baseline as f64 / total as f64,
                mib_per_s(raw, best_enc),
                mib_per_s(raw, best_dec),
            );
        }
    }
    let sample = workload(1).pop().and_then(|r| r.value).expect("one record");
    println!();
    println!("sample record value ({} bytes):", sample.len());
    println!("{}", String::from_utf8_lossy(&sample));
}
