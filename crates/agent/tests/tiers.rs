//! Reads across tiers: records produced through an agent, compacted into L1
//! Parquet and garbage collected, read back identically, by an agent whose
//! cached locations still point at the deleted L0 segments too.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::registry::Registry;
use silt_agent::{Agent, AgentConfig, AgentMetrics, AgentParts, ProduceRecord, ReadRequest};
use silt_cache::{CacheConfig, SegmentCache};
use silt_compactor::{Compactor, CompactorConfig, CompactorMetrics, L1Options};
use silt_meta::{ChunkFormat, Metadata, SqliteMetadata, TopicConfig};
use silt_segment::DecodedRecord;
use silt_storage::{ObjectStoreConfig, SegmentStore, build_object_store};
use silt_types::{Header, RandomIds, Record, SystemClock, TopicName};

async fn agent(meta: Arc<dyn Metadata>, store: SegmentStore, config: AgentConfig) -> Agent {
    let parts = AgentParts {
        meta,
        store,
        cache: SegmentCache::open(&CacheConfig::memory_only(64 << 20)).await,
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        metrics: AgentMetrics::new(&mut Registry::default(), silt_agent::Prices::default()),
        replay_lane: None,
    };
    Agent::start(config, parts)
}

async fn read_all(agent: &Agent, topic: &TopicName, hwm: u64) -> Vec<DecodedRecord> {
    let mut out = Vec::new();
    while (out.len() as u64) < hwm {
        let req = ReadRequest {
            partition: 0,
            offset: out.len() as u64,
            max_records: 37,
            max_bytes: 1 << 20,
            wait: Duration::ZERO,
        };
        let result = agent.read(topic, req).await.expect("read");
        assert!(!result.records.is_empty());
        out.extend(result.records);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_agree_across_l0_l1_and_gc() {
    let meta: Arc<dyn Metadata> =
        Arc::new(SqliteMetadata::open_in_memory(Arc::new(SystemClock), Arc::new(RandomIds)).expect("sqlite"));
    let store = SegmentStore::new(build_object_store(&ObjectStoreConfig::new("memory://")).expect("store"));
    let config = AgentConfig {
        flush_interval: Duration::from_millis(5),
        ..AgentConfig::default()
    };
    let writer = agent(meta.clone(), store.clone(), config.clone()).await;
    // The reader replays everything (ranged GETs, no tail cache), so a
    // deleted L0 object really is gone for it.
    let reader = agent(
        meta.clone(),
        store.clone(),
        AgentConfig {
            replay_lag_records: 0,
            readahead_chunks: 0,
            ..config.clone()
        },
    )
    .await;
    let topic = TopicName::new("tiers").expect("name");
    writer
        .create_topic(&topic, 1, TopicConfig::default())
        .await
        .expect("create");
    let mut n = 0u64;
    for batch in 0..12 {
        let records = (0..25)
            .map(|i| {
                n += 1;
                ProduceRecord {
                    partition: Some(0),
                    record: Record {
                        key: (i % 4 != 0).then(|| Bytes::from(format!("key-{n}"))),
                        value: Some(Bytes::from(vec![(n % 256) as u8, 0, 0xfe, batch])),
                        headers: vec![
                            Header {
                                key: "h".into(),
                                value: Some(Bytes::from_static(b"x")),
                            },
                            Header {
                                key: "h".into(),
                                value: None,
                            },
                        ],
                        timestamp_ms: 1_700_000_000_000 + n as i64,
                    },
                    timestamp_missing: false,
                }
            })
            .collect();
        writer.produce(&topic, records, None).await.expect("produce");
    }
    let before = read_all(&reader, &topic, n).await;
    assert_eq!(before.len() as u64, n);

    let mut cc = CompactorConfig::new("test");
    cc.min_chunks = 2;
    cc.gc_grace = Duration::ZERO;
    cc.gc_interval = Duration::ZERO;
    cc.l1 = L1Options {
        row_group_rows: 40,
        ..L1Options::default()
    };
    let compactor = Compactor::new(
        meta.clone(),
        store.clone(),
        Arc::new(SystemClock),
        cc,
        CompactorMetrics::default(),
    );
    let stats = compactor.run_once().await.expect("compaction pass");
    assert_eq!(stats.compacted, 1);
    assert_eq!(stats.deleted, 12, "every L0 segment collected");
    let info = meta.topic(&topic).await.expect("topic");
    let chunks = meta.list_chunks(info.id, 0, 0, 1000).await.expect("list");
    assert!(chunks.iter().all(|c| c.format == ChunkFormat::Parquet));
    assert_eq!(chunks.len(), 8, "300 records in row groups of 40");

    // The reader's location cache still points at deleted segments: it looks again.
    let after = read_all(&reader, &topic, n).await;
    assert_eq!(after, before);
    // The writer reads through its tail path; a fresh agent starts from L1 only.
    assert_eq!(read_all(&writer, &topic, n).await, before);
    let fresh = agent(meta.clone(), store.clone(), config).await;
    assert_eq!(read_all(&fresh, &topic, n).await, before);
    // Timestamp lookups land inside row groups.
    let offset = fresh
        .offset_for_timestamp(&topic, 0, 1_700_000_000_000 + 123)
        .await
        .expect("offset for timestamp");
    assert_eq!(offset, 122);
    for a in [writer, reader, fresh] {
        a.shutdown().await;
    }
}
