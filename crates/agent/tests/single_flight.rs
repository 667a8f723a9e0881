//! Concurrent cache misses on one segment make one GET.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::registry::Registry;
use silt_agent::{Agent, AgentConfig, AgentMetrics, AgentParts, Prices, ProduceRecord, ReadRequest};
use silt_cache::{CacheConfig, SegmentCache};
use silt_meta::{Metadata, SqliteMetadata, TopicConfig};
use silt_storage::{ObjectStoreConfig, SegmentStore, StorageMetrics, build_object_store};
use silt_types::{Clock, IdGen, RandomIds, Record, SystemClock, TopicName};

fn object_gets(registry: &Registry) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
    text.lines()
        .filter(|l| l.starts_with("silt_object_store_requests_total{operation=\"get\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn agent(meta: Arc<dyn Metadata>, store: Arc<dyn object_store::ObjectStore>, registry: &mut Registry) -> Agent {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ids: Arc<dyn IdGen> = Arc::new(RandomIds);
    let metrics = AgentMetrics::new(registry, Prices::default());
    let storage = StorageMetrics::new(registry);
    Agent::start(
        AgentConfig {
            flush_interval: Duration::from_millis(5),
            ..AgentConfig::default()
        },
        AgentParts {
            meta,
            store: SegmentStore::new(store).with_metrics(storage),
            cache: SegmentCache::open(&CacheConfig::memory_only(64 << 20)).await,
            clock,
            ids,
            metrics,
            replay_lane: None,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_on_one_segment_share_one_get() {
    let meta: Arc<dyn Metadata> =
        Arc::new(SqliteMetadata::open_in_memory(Arc::new(SystemClock), Arc::new(RandomIds)).expect("sqlite"));
    let store = build_object_store(&ObjectStoreConfig::new("memory://")).expect("store");
    let topic = TopicName::new("sf").expect("name");
    meta.create_topic(&topic, 8, TopicConfig::default())
        .await
        .expect("topic");

    // One produce request across 8 partitions: one segment, 8 chunks.
    let mut writer_registry = Registry::default();
    let writer = agent(meta.clone(), store.clone(), &mut writer_registry).await;
    let records = (0..8u32)
        .map(|p| ProduceRecord {
            partition: Some(p),
            record: Record {
                key: None,
                value: Some(Bytes::from(format!("value-{p}"))),
                headers: Vec::new(),
                timestamp_ms: 0,
            },
            timestamp_missing: true,
        })
        .collect();
    writer.produce(&topic, records, None).await.expect("produce");
    writer.shutdown().await;

    // A fresh agent with a cold cache: eight readers miss at once.
    let mut registry = Registry::default();
    let reader = agent(meta, store, &mut registry).await;
    let mut reads = Vec::new();
    for p in 0..8u32 {
        let reader = reader.clone();
        let topic = topic.clone();
        reads.push(tokio::spawn(async move {
            let req = ReadRequest {
                partition: p,
                offset: 0,
                max_records: 10,
                max_bytes: 1 << 20,
                wait: Duration::ZERO,
            };
            reader.read(&topic, req).await.expect("read")
        }));
    }
    for (p, read) in reads.into_iter().enumerate() {
        let result = read.await.expect("join");
        assert_eq!(result.records.len(), 1);
        assert_eq!(
            result.records[0].value.as_deref(),
            Some(format!("value-{p}").as_bytes())
        );
    }
    assert_eq!(object_gets(&registry), 1.0, "eight concurrent misses must make one GET");
    reader.shutdown().await;
}
