//! Checksum and partitioner micro-benchmarks: CRC-32C over chunk-sized
//! buffers and Kafka's murmur2 partitioning of typical keys.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use silt_agent::partitioner::partition_for_key;
use silt_bench::body::ValuePool;

fn crc(c: &mut Criterion) {
    let pool = ValuePool::new(8 << 20, 5);
    let mut g = c.benchmark_group("crc32c");
    for size in [1usize << 10, 64 << 10, 1 << 20, 8 << 20] {
        let data = pool.slice(0, size).to_vec();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| {
            b.iter(|| black_box(crc32c::crc32c(black_box(data))));
        });
    }
    g.finish();
}

fn murmur(c: &mut Criterion) {
    let mut g = c.benchmark_group("murmur2_partition_for_key");
    for len in [8usize, 36, 256] {
        let keys: Vec<Vec<u8>> = (0..1024).map(|i| format!("{i:0>len$}").into_bytes()).collect();
        g.throughput(Throughput::Elements(keys.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &keys, |b, keys| {
            b.iter(|| {
                let mut acc = 0u32;
                for k in keys {
                    acc = acc.wrapping_add(partition_for_key(black_box(k), 100));
                }
                black_box(acc)
            });
        });
    }
    g.finish();
}

criterion_group!(benches, crc, murmur);
criterion_main!(benches);
