//! Produce-request JSON parsing: serde_json of exactly the bodies the load
//! generator sends, into structs shaped like the HTTP crate's
//! `ProduceRequest` (owned `String`s, `deny_unknown_fields`), plus the
//! conversion of values into `Bytes` the handler does next.

#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde::Deserialize;
use silt_bench::body::{ValuePool, produce_body};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct JsonHeader {
    key: String,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ProduceRecordJson {
    #[serde(default)]
    key: Option<String>,
    value: Option<String>,
    #[serde(default)]
    headers: Vec<JsonHeader>,
    #[serde(default)]
    partition: Option<u32>,
    #[serde(default)]
    timestamp_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ProduceRequest {
    records: Vec<ProduceRecordJson>,
    #[serde(default)]
    encoding: Option<String>,
}

fn parse(c: &mut Criterion) {
    let pool = ValuePool::new(1 << 20, 6);
    let mut g = c.benchmark_group("produce_json_parse");
    for (records, size) in [(100usize, 1024usize), (1000, 1024), (100, 100), (10, 16 << 10)] {
        let body = produce_body(&pool, records, size, Some((0, 100)), 1_700_000_000_000_000, 3);
        g.throughput(Throughput::Bytes(body.len() as u64));
        let id = format!("{records}x{size}B");
        g.bench_with_input(BenchmarkId::new("to_structs_and_bytes", &id), &body, |b, body| {
            b.iter(|| {
                let req: ProduceRequest = serde_json::from_slice(black_box(body)).expect("parse");
                let values: Vec<Bytes> = req
                    .records
                    .into_iter()
                    .filter_map(|r| r.value.map(Bytes::from))
                    .collect();
                black_box(values.len())
            });
        });
    }
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
