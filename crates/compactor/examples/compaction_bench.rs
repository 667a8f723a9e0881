//! Benchmark (not a test): storage efficiency and replay decode throughput
//! of L0 segments versus L1 Parquet for a JSON-log workload.
//!
//! ```text
//! cargo run --release -p silt-compactor --example compaction_bench -- [records] [records_per_chunk]
//! ```
//!
//! Writes L0 segments the way an agent does (zstd record batches, one chunk
//! per partition per segment) to a local file store, commits them to SQLite,
//! compacts them with the real compactor, then replays both tiers through
//! the read path's decoders (ranged GETs of chunks / row groups, footers
//! fetched once per file). Prints stored bytes per logical byte (key + value
//! + headers) and replay throughput.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;
use silt_compactor::{Compactor, CompactorConfig, CompactorMetrics, l1};
use silt_meta::{
    ChunkCommit, ChunkFormat, ChunkLocation, ChunkOutcome, Metadata, SegmentCommit, SqliteMetadata, TopicConfig,
};
use silt_segment::{Compression, ProducerFields, SegmentWriter, encode_batch};
use silt_storage::{Layout, ObjectStoreConfig, SegmentStore, build_object_store};
use silt_types::{Header, RandomIds, Record, SegmentId, SystemClock, TopicName};

const PARTITIONS: u32 = 4;

fn json_log(i: u64) -> Record {
    const LEVELS: [&str; 4] = ["INFO", "INFO", "WARN", "ERROR"];
    const SERVICES: [&str; 5] = ["checkout", "payments", "search", "auth", "inventory"];
    const MESSAGES: [&str; 4] = [
        "request completed",
        "upstream timeout, retrying",
        "cache miss for key",
        "user session refreshed",
    ];
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let value = format!(
        r#"{{"ts":"2026-11-25T15:{:02}:{:02}.{:03}Z","level":"{}","service":"{}","host":"ip-10-0-{}-{}","msg":"{}","request_id":"{:016x}","user_id":{},"latency_ms":{},"status":{},"path":"/api/v1/{}/{}"}}"#,
        (i / 60_000) % 60,
        (i / 1000) % 60,
        i % 1000,
        LEVELS[(x % 4) as usize],
        SERVICES[(x >> 8) as usize % 5],
        (x >> 16) % 8,
        (x >> 24) % 256,
        MESSAGES[(x >> 32) as usize % 4],
        x,
        (x >> 20) % 100_000,
        (x >> 40) % 900,
        [200, 200, 200, 404, 500][(x >> 44) as usize % 5],
        SERVICES[(x >> 48) as usize % 5],
        (x >> 52) % 10_000,
    );
    Record {
        key: Some(Bytes::from(format!("user-{}", (x >> 20) % 100_000))),
        value: Some(Bytes::from(value)),
        headers: vec![Header {
            key: "content-type".into(),
            value: Some(Bytes::from_static(b"application/json")),
        }],
        timestamp_ms: 1_764_000_000_000 + i as i64,
    }
}

fn logical_bytes(r: &Record) -> u64 {
    (r.key.as_ref().map_or(0, Bytes::len)
        + r.value.as_ref().map_or(0, Bytes::len)
        + r.headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
            .sum::<usize>()) as u64
}

async fn all_chunks(meta: &Arc<dyn Metadata>, topic: silt_types::TopicId) -> Vec<ChunkLocation> {
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        out.extend(meta.list_chunks(topic, p, 0, usize::MAX >> 1).await.expect("list"));
    }
    out
}

/// Replays every entry through the read path's decoders; returns (records, elapsed).
async fn replay(store: &SegmentStore, chunks: &[ChunkLocation]) -> (u64, Duration) {
    let started = Instant::now();
    let mut footers: HashMap<String, Arc<l1::Footer>> = HashMap::new();
    let mut records = 0u64;
    let mut checksum = 0u64;
    for c in chunks {
        let key = Path::from(c.object_key.as_str());
        let bytes = store
            .get_range(&key, c.byte_offset..c.byte_offset + c.byte_len)
            .await
            .expect("get");
        match c.format {
            ChunkFormat::Segment => {
                let view = silt_segment::decode_chunk(bytes).expect("chunk");
                for r in view.records(c.base_offset) {
                    let r = r.expect("record");
                    checksum = checksum.wrapping_add(r.value.map_or(0, |v| v.len() as u64));
                    records += 1;
                }
            }
            ChunkFormat::Parquet => {
                let footer = match footers.get(&c.object_key) {
                    Some(f) => f.clone(),
                    None => {
                        let tail = store
                            .get_range(&key, c.object_size - c.footer_len..c.object_size)
                            .await
                            .expect("footer");
                        let f = Arc::new(l1::decode_footer(&tail).expect("decode footer"));
                        footers.insert(c.object_key.clone(), f.clone());
                        f
                    }
                };
                for r in l1::decode_row_group(&footer, c.byte_offset, bytes).expect("row group") {
                    checksum = checksum.wrapping_add(r.value.map_or(0, |v| v.len() as u64));
                    records += 1;
                }
            }
        }
    }
    assert!(checksum > 0);
    (records, started.elapsed())
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let total = args.first().copied().unwrap_or(400_000);
    let per_chunk = args.get(1).copied().unwrap_or(250);
    let dir = std::env::temp_dir().join(format!("silt-compaction-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = SegmentStore::new(
        build_object_store(&ObjectStoreConfig::new(format!(
            "file://{}",
            dir.join("objects").display()
        )))
        .expect("store"),
    );
    let meta: Arc<dyn Metadata> = Arc::new(
        SqliteMetadata::open(&dir.join("meta.sqlite"), Arc::new(SystemClock), Arc::new(RandomIds)).expect("sqlite"),
    );
    let topic = meta
        .create_topic(
            &TopicName::new("logs").expect("name"),
            PARTITIONS,
            TopicConfig::default(),
        )
        .await
        .expect("topic");

    // L0: segments holding `per_chunk` records of every partition (about
    // what an agent seals every flush interval at a moderate rate).
    let mut logical = 0u64;
    let mut l0_bytes = 0u64;
    let mut segments = 0u64;
    let mut i = 0u64;
    let write_started = Instant::now();
    while i < total {
        let mut writer = SegmentWriter::new();
        for p in 0..PARTITIONS {
            let records: Vec<Record> = (0..per_chunk)
                .map(|_| {
                    i += 1;
                    json_log(i)
                })
                .collect();
            logical += records.iter().map(logical_bytes).sum::<u64>();
            let mut out = Vec::new();
            encode_batch(&records, Compression::DEFAULT, ProducerFields::NONE, &mut out).expect("encode");
            writer.add_chunk(topic.id, p, &[Bytes::from(out)]).expect("chunk");
        }
        let (bytes, entries) = writer.finish();
        segments += 1;
        let key = Layout.segment_key(SegmentId(u128::from(segments)));
        l0_bytes += bytes.len() as u64;
        store.put_new(&key, bytes.clone()).await.expect("put");
        let commit = SegmentCommit {
            object_key: key.to_string(),
            object_size: bytes.len() as u64,
            chunks: entries
                .iter()
                .map(|e| ChunkCommit {
                    topic: e.topic,
                    partition: e.partition,
                    record_count: e.record_count,
                    byte_offset: e.byte_offset,
                    byte_len: e.byte_len,
                    max_timestamp_ms: e.max_timestamp_ms,
                    producers: Vec::new(),
                })
                .collect(),
        };
        for o in meta.commit_segment(commit).await.expect("commit") {
            assert!(matches!(o, ChunkOutcome::Committed { .. }));
        }
    }
    let write_elapsed = write_started.elapsed();
    let l0_chunks = all_chunks(&meta, topic.id).await;
    let (l0_records, l0_time) = replay(&store, &l0_chunks).await;

    let mut config = CompactorConfig::new("bench");
    config.min_chunks = 1;
    config.gc_grace = Duration::ZERO;
    config.gc_interval = Duration::ZERO;
    config.max_input_bytes = 1 << 40;
    config.max_input_chunks = usize::MAX;
    let compactor = Compactor::new(
        meta.clone(),
        store.clone(),
        Arc::new(SystemClock),
        config,
        CompactorMetrics::default(),
    );
    let compact_started = Instant::now();
    let stats = compactor.run_once().await.expect("compaction");
    let compact_elapsed = compact_started.elapsed();
    let l1_chunks = all_chunks(&meta, topic.id).await;
    assert!(l1_chunks.iter().all(|c| c.format == ChunkFormat::Parquet));
    let mut l1_bytes = 0u64;
    let mut seen = std::collections::HashSet::new();
    for c in &l1_chunks {
        if seen.insert(c.object_key.clone()) {
            l1_bytes += c.object_size;
        }
    }
    let (l1_records, l1_time) = replay(&store, &l1_chunks).await;
    assert_eq!(
        l0_records,
        total.div_ceil(u64::from(PARTITIONS) * per_chunk) * u64::from(PARTITIONS) * per_chunk
    );
    assert_eq!(l1_records, l0_records);

    let mb = |b: u64, t: Duration| b as f64 / 1e6 / t.as_secs_f64();
    println!("workload: {l0_records} JSON log records, {PARTITIONS} partitions, {per_chunk} records per L0 chunk");
    println!(
        "logical bytes (key+value+headers): {logical} ({:.0} B/record)",
        logical as f64 / l0_records as f64
    );
    println!(
        "L0: {segments} segments, {l0_bytes} bytes stored = {:.3} stored/logical (written in {:.2}s)",
        l0_bytes as f64 / logical as f64,
        write_elapsed.as_secs_f64()
    );
    println!(
        "L1: {} files, {} row groups, {l1_bytes} bytes stored = {:.3} stored/logical (compacted in {:.2}s, {:.1} MB/s logical)",
        seen.len(),
        l1_chunks.len(),
        l1_bytes as f64 / logical as f64,
        compact_elapsed.as_secs_f64(),
        mb(logical, compact_elapsed)
    );
    println!("compaction pass: {stats:?}");
    println!(
        "replay L0: {:.0} records/s, {:.1} MB/s logical ({} ranged GETs)",
        l0_records as f64 / l0_time.as_secs_f64(),
        mb(logical, l0_time),
        l0_chunks.len()
    );
    println!(
        "replay L1: {:.0} records/s, {:.1} MB/s logical ({} ranged GETs + {} footers)",
        l1_records as f64 / l1_time.as_secs_f64(),
        mb(logical, l1_time),
        l1_chunks.len(),
        seen.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
