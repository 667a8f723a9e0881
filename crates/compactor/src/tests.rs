//! Compaction, retention and GC against an in-memory store and SQLite,
//! including a crash between every pair of steps.

use std::collections::BTreeSet;

use silt_meta::{ChunkCommit, ChunkOutcome, SegmentCommit, SqliteMetadata, TopicConfig};
use silt_segment::{Compression, ProducerFields, SegmentWriter, encode_batch};
use silt_storage::{ObjectStoreConfig, build_object_store};
use silt_types::{Header, RandomIds, Record, SegmentId, SystemClock, TopicName};

use super::*;

struct Env {
    meta: Arc<dyn Metadata>,
    store: SegmentStore,
    topic: TopicInfo,
    /// Everything committed, per partition, in offset order.
    produced: Vec<Vec<DecodedRecord>>,
    next_segment: u128,
}

fn config(node: &str) -> CompactorConfig {
    let mut c = CompactorConfig::new(node);
    c.min_chunks = 4;
    c.min_bytes = u64::MAX;
    c.gc_grace = Duration::ZERO;
    c.gc_interval = Duration::ZERO;
    c.l1 = L1Options {
        row_group_rows: 64,
        ..L1Options::default()
    };
    c
}

fn record(i: usize, ts: i64) -> Record {
    Record {
        key: (!i.is_multiple_of(3)).then(|| Bytes::from(format!("k{i}"))),
        value: (!i.is_multiple_of(11)).then(|| Bytes::from(vec![(i % 251) as u8, 0, 0xff, b'\n'])),
        headers: if i.is_multiple_of(2) {
            vec![
                Header {
                    key: "dup".into(),
                    value: Some(Bytes::from_static(b"1")),
                },
                Header {
                    key: "dup".into(),
                    value: None,
                },
            ]
        } else {
            Vec::new()
        },
        timestamp_ms: ts,
    }
}

impl Env {
    async fn new(partitions: u32, config: TopicConfig) -> Self {
        let meta: Arc<dyn Metadata> =
            Arc::new(SqliteMetadata::open_in_memory(Arc::new(SystemClock), Arc::new(RandomIds)).expect("sqlite"));
        let store = SegmentStore::new(build_object_store(&ObjectStoreConfig::new("memory://")).expect("memory store"));
        let topic = meta
            .create_topic(&TopicName::new("t").expect("name"), partitions, config)
            .await
            .expect("create");
        Self {
            meta,
            store,
            topic,
            produced: vec![Vec::new(); partitions as usize],
            next_segment: 1,
        }
    }

    fn compactor(&self, config: CompactorConfig) -> Compactor {
        Compactor::new(
            self.meta.clone(),
            self.store.clone(),
            Arc::new(SystemClock),
            config,
            CompactorMetrics::default(),
        )
    }

    /// Uploads and commits one segment with `n` records for each partition, at timestamp `ts`.
    async fn produce(&mut self, n: usize, ts: i64) {
        let mut writer = SegmentWriter::new();
        let mut batches = Vec::new();
        for p in 0..self.topic.partitions {
            let start = self.produced[p as usize].len();
            let records: Vec<Record> = (start..start + n).map(|i| record(i, ts)).collect();
            let mut out = Vec::new();
            encode_batch(&records, Compression::Zstd, ProducerFields::NONE, &mut out).expect("encode");
            writer
                .add_chunk(self.topic.id, p, &[Bytes::from(out)])
                .expect("add chunk");
            batches.push(records);
        }
        let (bytes, entries) = writer.finish();
        let key = Layout.segment_key(SegmentId(self.next_segment));
        self.next_segment += 1;
        self.store.put_new(&key, bytes.clone()).await.expect("upload");
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
        let outcomes = self.meta.commit_segment(commit).await.expect("commit");
        for ((p, records), outcome) in batches.into_iter().enumerate().zip(outcomes) {
            let ChunkOutcome::Committed { base_offset } = outcome else {
                panic!("not committed: {outcome:?}");
            };
            assert_eq!(base_offset, self.produced[p].len() as u64);
            for (i, r) in records.into_iter().enumerate() {
                self.produced[p].push(DecodedRecord {
                    offset: base_offset + i as u64,
                    timestamp_ms: r.timestamp_ms,
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                });
            }
        }
    }

    /// Every readable record of a partition, through the index alone, as a reader would.
    async fn read_all(&self, partition: PartitionId) -> Vec<DecodedRecord> {
        let state = self
            .meta
            .partition_state(self.topic.id, partition)
            .await
            .expect("state");
        let mut out = Vec::new();
        let mut next = state.log_start_offset;
        while next < state.high_watermark {
            let loc = self
                .meta
                .lookup(self.topic.id, partition, next)
                .await
                .expect("lookup")
                .expect("below hwm");
            let key = Path::from(loc.object_key.as_str());
            let range = loc.byte_offset..loc.byte_offset + loc.byte_len;
            let bytes = self.store.get_range(&key, range).await.expect("dangling reference");
            let records = match loc.format {
                ChunkFormat::Segment => silt_segment::decode_chunk(bytes)
                    .expect("chunk")
                    .records(loc.base_offset)
                    .collect::<Result<Vec<_>, _>>()
                    .expect("records"),
                ChunkFormat::Parquet => {
                    let tail = self
                        .store
                        .get_range(&key, loc.object_size - loc.footer_len..loc.object_size)
                        .await
                        .expect("footer");
                    let footer = l1::decode_footer(&tail).expect("decode footer");
                    l1::decode_row_group(&footer, loc.byte_offset, bytes).expect("row group")
                }
            };
            out.extend(records.into_iter().filter(|r| r.offset >= next));
            next = loc.last_offset + 1;
        }
        out
    }

    async fn check_all(&self) {
        for p in 0..self.topic.partitions {
            let start = self
                .meta
                .partition_state(self.topic.id, p)
                .await
                .expect("state")
                .log_start_offset as usize;
            assert_eq!(
                self.read_all(p).await,
                self.produced[p as usize][start..],
                "partition {p}"
            );
        }
    }

    async fn objects(&self, prefix: &str) -> BTreeSet<String> {
        self.store
            .inner()
            .list(Some(&Path::from(prefix)))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .expect("list")
    }

    async fn formats(&self, partition: PartitionId) -> Vec<ChunkFormat> {
        self.meta
            .list_chunks(self.topic.id, partition, 0, 10_000)
            .await
            .expect("list")
            .iter()
            .map(|c| c.format)
            .collect()
    }
}

#[tokio::test]
async fn compaction_keeps_every_record_and_gc_removes_l0() {
    let mut env = Env::new(2, TopicConfig::default()).await;
    for i in 0..10 {
        env.produce(30 + i, 1_700_000_000_000 + i as i64).await;
    }
    let c = env.compactor(config("a"));
    let stats = c.run_once().await.expect("pass");
    assert_eq!(stats.compacted, 2);
    assert_eq!(stats.records, env.produced.iter().map(|p| p.len() as u64).sum::<u64>());
    assert_eq!(
        stats.deleted, 10,
        "every L0 segment is garbage once both partitions moved"
    );
    assert!(env.formats(0).await.iter().all(|f| *f == ChunkFormat::Parquet));
    assert!(env.objects(Layout::SEGMENTS).await.is_empty());
    let l1 = env.objects(Layout::TOPICS).await;
    assert_eq!(l1.len(), 2);
    assert!(
        l1.contains(
            Layout
                .l1_key(env.topic.id, 0, 0, env.produced[0].len() as u64 - 1)
                .as_ref()
        )
    );
    env.check_all().await;
    // More data: below the threshold nothing happens; above it a second file follows the first.
    env.produce(5, 1_700_000_001_000).await;
    assert_eq!(c.run_once().await.expect("pass").compacted, 0);
    for _ in 0..4 {
        env.produce(5, 1_700_000_002_000).await;
    }
    assert_eq!(c.run_once().await.expect("pass").compacted, 2);
    assert_eq!(env.objects(Layout::TOPICS).await.len(), 4);
    env.check_all().await;
    // Timestamp lookups still find the right place.
    let loc = env
        .meta
        .lookup_timestamp(env.topic.id, 0, 1_700_000_001_000)
        .await
        .expect("ts")
        .expect("some");
    assert!(loc.base_offset <= 345 && loc.last_offset >= 345);
}

#[tokio::test]
async fn crash_after_write_before_swap_leaves_an_orphan_that_is_redone_or_collected() {
    let mut env = Env::new(1, TopicConfig::default()).await;
    for _ in 0..5 {
        env.produce(20, 1).await;
    }
    let c = env.compactor(config("a"));
    // Crash 1: the file is written, the swap never happens.
    let plan = c.plan(env.topic.id, 0).await.expect("plan").expect("enough chunks");
    let orphan = c.write_l1(plan).await.expect("write").key;
    assert!(env.formats(0).await.iter().all(|f| *f == ChunkFormat::Segment));
    env.check_all().await;
    // The next run redoes the same range: same key, same bytes, then the swap.
    let stats = c.run_once().await.expect("pass");
    assert_eq!(stats.compacted, 1);
    assert_eq!(env.objects(Layout::TOPICS).await, BTreeSet::from([orphan.to_string()]));
    env.check_all().await;

    // Crash 2: written, not swapped, and more data arrives before the next run.
    for _ in 0..4 {
        env.produce(20, 2).await;
    }
    let plan = c.plan(env.topic.id, 0).await.expect("plan").expect("enough chunks");
    let orphan = c.write_l1(plan).await.expect("write").key;
    env.produce(20, 3).await;
    let stats = c.run_once().await.expect("pass");
    assert_eq!(stats.compacted, 1);
    let l1 = env.objects(Layout::TOPICS).await;
    assert!(!l1.contains(orphan.as_ref()), "the orphan was collected");
    assert_eq!(l1.len(), 2);
    assert!(env.objects(Layout::SEGMENTS).await.is_empty());
    env.check_all().await;
}

#[tokio::test]
async fn crash_after_swap_before_gc_and_during_gc() {
    let mut env = Env::new(1, TopicConfig::default()).await;
    for _ in 0..6 {
        env.produce(10, 1).await;
    }
    let mut cfg = config("a");
    cfg.gc = false;
    let c = env.compactor(cfg);
    assert_eq!(c.run_once().await.expect("pass").compacted, 1);
    // Swapped, not collected: the old segments linger, unreferenced, readers are unaffected.
    assert_eq!(env.objects(Layout::SEGMENTS).await.len(), 6);
    env.check_all().await;
    // GC inside the grace period deletes nothing.
    let mut patient = config("b");
    patient.gc_grace = Duration::from_secs(3600);
    assert_eq!(env.compactor(patient).collect_garbage().await.expect("gc"), 0);
    assert_eq!(env.objects(Layout::SEGMENTS).await.len(), 6);
    // A GC that crashes half way: some deleted, the rest are found by the next one.
    let garbage: Vec<String> = env.objects(Layout::SEGMENTS).await.into_iter().collect();
    let gc = env.compactor(config("c"));
    assert_eq!(gc.delete_unreferenced(garbage[..3].to_vec()).await.expect("partial"), 3);
    env.check_all().await;
    assert_eq!(gc.collect_garbage().await.expect("gc"), 3);
    assert!(env.objects(Layout::SEGMENTS).await.is_empty());
    assert_eq!(env.objects(Layout::TOPICS).await.len(), 1);
    env.check_all().await;
    // Nothing referenced is ever deleted, however often GC runs.
    assert_eq!(gc.collect_garbage().await.expect("gc"), 0);
    env.check_all().await;
}

#[tokio::test]
async fn a_held_lease_and_a_stale_swap_change_nothing() {
    let mut env = Env::new(1, TopicConfig::default()).await;
    for _ in 0..5 {
        env.produce(10, 1).await;
    }
    let a = env.compactor(config("a"));
    let mut cfg = config("b");
    cfg.gc = false;
    let b = env.compactor(cfg);
    let lease = Compactor::lease_name(env.topic.id, 0);
    assert!(env.meta.try_acquire_lease(&lease, "a", 60_000).await.expect("lease"));
    assert_eq!(
        b.run_once().await.expect("pass").compacted,
        0,
        "b must skip a's partition"
    );
    // a plans and writes, then b (lease freed) compacts first; a's swap is stale.
    let plan = a.plan(env.topic.id, 0).await.expect("plan").expect("plan");
    let written = a.write_l1(plan).await.expect("write");
    env.meta.release_lease(&lease, "a").await.expect("release");
    env.produce(10, 1).await;
    assert_eq!(b.run_once().await.expect("pass").compacted, 1);
    assert!(matches!(
        a.swap(&written).await.expect("swap"),
        ReplaceOutcome::Conflict { .. }
    ));
    env.check_all().await;
    assert_eq!(
        a.collect_garbage().await.expect("gc"),
        7,
        "a's stale file and the 6 segments"
    );
    assert_eq!(env.objects(Layout::TOPICS).await.len(), 1);
    env.check_all().await;
}

#[tokio::test]
async fn retention_by_time_and_size_moves_the_log_start_over_whole_entries() {
    let now = SystemClock.now_ms();
    let config_t = TopicConfig {
        retention_ms: Some(3_600_000),
        retention_bytes: None,
    };
    let mut env = Env::new(1, config_t).await;
    for _ in 0..3 {
        env.produce(10, now - 7_200_000).await;
    }
    for _ in 0..3 {
        env.produce(10, now).await;
    }
    let mut cfg = config("a");
    cfg.min_chunks = 100;
    let c = env.compactor(cfg);
    let stats = c.run_once().await.expect("pass");
    assert_eq!(stats.retention_advances, 1);
    assert_eq!(stats.deleted, 3);
    let state = env.meta.partition_state(env.topic.id, 0).await.expect("state");
    assert_eq!(state.log_start_offset, 30);
    assert!(matches!(
        env.meta.lookup(env.topic.id, 0, 29).await,
        Err(MetaError::OffsetBelowStart { log_start: 30, .. })
    ));
    env.check_all().await;
    // Retention never moves backwards and leaves unexpired data alone.
    assert_eq!(c.run_once().await.expect("pass").retention_advances, 0);

    // By size: keep about 2 entries' worth of bytes.
    let sized = env.compactor(config("b"));
    let entry = env.meta.list_chunks(env.topic.id, 0, 0, 1).await.expect("list")[0].byte_len;
    let mut topic = env.topic.clone();
    topic.config = TopicConfig {
        retention_ms: None,
        retention_bytes: Some(i64::try_from(entry + entry / 2).expect("fits")),
    };
    let moved = sized.apply_retention(&topic, 0).await.expect("retention");
    assert_eq!(moved, Some(40));
    env.check_all().await;
}

#[tokio::test]
async fn retention_after_compaction_expires_row_groups() {
    let now = SystemClock.now_ms();
    let mut env = Env::new(
        1,
        TopicConfig {
            retention_ms: Some(3_600_000),
            retention_bytes: None,
        },
    )
    .await;
    for _ in 0..4 {
        env.produce(100, now - 7_200_000).await;
    }
    for _ in 0..4 {
        env.produce(100, now).await;
    }
    let mut cfg = config("a");
    cfg.l1.row_group_rows = 100;
    let c = env.compactor(cfg);
    let stats = c.run_once().await.expect("pass");
    assert_eq!(stats.compacted, 1);
    assert_eq!(stats.retention_advances, 1);
    let state = env.meta.partition_state(env.topic.id, 0).await.expect("state");
    assert_eq!(state.log_start_offset, 400);
    // The L1 file still holds live row groups, so it stays.
    assert_eq!(env.objects(Layout::TOPICS).await.len(), 1);
    env.check_all().await;
}
