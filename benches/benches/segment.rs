//! Segment codec micro-benchmarks: batch encoding per compression codec,
//! building a whole segment, and decoding a chunk back into records.

#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use silt_bench::body::ValuePool;
use silt_segment::{Compression, ProducerFields, SegmentWriter, decode_chunk, encode_batch};
use silt_types::{Record, TopicId};

const RECORD_BYTES: usize = 1024;

fn records(n: usize, pool: &ValuePool) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            key: None,
            value: Some(Bytes::copy_from_slice(pool.slice(i * RECORD_BYTES, RECORD_BYTES))),
            headers: Vec::new(),
            timestamp_ms: 1_700_000_000_000 + i as i64,
        })
        .collect()
}

fn batch(records: &[Record], compression: Compression) -> Bytes {
    let mut out = Vec::new();
    encode_batch(records, compression, ProducerFields::NONE, &mut out).expect("encode");
    Bytes::from(out)
}

const CODECS: [Compression; 3] = [Compression::None, Compression::Lz4, Compression::Zstd];

fn encode(c: &mut Criterion) {
    let pool = ValuePool::new(1 << 20, 1);
    let recs = records(100, &pool);
    let mut g = c.benchmark_group("encode_batch_100x1KiB");
    g.throughput(Throughput::Bytes((100 * RECORD_BYTES) as u64));
    for codec in CODECS {
        g.bench_with_input(BenchmarkId::from_parameter(codec), &codec, |b, &codec| {
            let mut out = Vec::with_capacity(128 << 10);
            b.iter(|| {
                out.clear();
                encode_batch(black_box(&recs), codec, ProducerFields::NONE, &mut out).expect("encode");
                black_box(out.len())
            });
        });
    }
    g.finish();
}

fn write_segment(c: &mut Criterion) {
    // 100 partitions x one batch of 10 records: a ~1 MiB segment, the shape
    // the OMB-like workload produces at a 100 ms flush interval.
    let pool = ValuePool::new(1 << 20, 2);
    let mut g = c.benchmark_group("segment_writer_100_chunks");
    g.throughput(Throughput::Bytes((100 * 10 * RECORD_BYTES) as u64));
    for codec in CODECS {
        let batches: Vec<Bytes> = (0..100)
            .map(|p| batch(&records(10, &ValuePool::new(64 << 10, p + 3)), codec))
            .collect();
        let topic = TopicId::from_bytes([7; 16]);
        g.bench_with_input(BenchmarkId::from_parameter(codec), &codec, |b, _| {
            b.iter(|| {
                let mut w = SegmentWriter::new();
                for (p, batch) in batches.iter().enumerate() {
                    w.add_chunk(topic, p as u32, std::slice::from_ref(batch))
                        .expect("chunk");
                }
                black_box(w.finish().0.len())
            });
        });
    }
    let _ = pool;
    g.finish();
}

fn decode(c: &mut Criterion) {
    let pool = ValuePool::new(1 << 20, 4);
    let mut g = c.benchmark_group("decode_chunk_records_1000x1KiB");
    g.throughput(Throughput::Bytes((1000 * RECORD_BYTES) as u64));
    for codec in CODECS {
        let batches: Vec<Bytes> = (0..10).map(|_| batch(&records(100, &pool), codec)).collect();
        let mut w = SegmentWriter::new();
        let entry = w.add_chunk(TopicId::from_bytes([9; 16]), 0, &batches).expect("chunk");
        let (object, _) = w.finish();
        let chunk = object.slice(entry.byte_offset as usize..(entry.byte_offset + entry.byte_len) as usize);
        g.bench_with_input(BenchmarkId::from_parameter(codec), &codec, |b, _| {
            b.iter(|| {
                let view = decode_chunk(black_box(chunk.clone())).expect("decode");
                let mut bytes = 0usize;
                for r in view.records(1000) {
                    let r = r.expect("record");
                    bytes += r.into_record().value.map_or(0, |v| v.len());
                }
                black_box(bytes)
            });
        });
    }
    g.finish();
}

criterion_group!(benches, encode, write_segment, decode);
criterion_main!(benches);
