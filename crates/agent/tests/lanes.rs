//! Replay reads run on the replay lane (its threads, its store connections);
//! tail reads stay on the caller's runtime.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::registry::Registry;
use silt_agent::lane::{self, BackgroundLane};
use silt_agent::{Agent, AgentConfig, AgentMetrics, AgentParts, Prices, ProduceRecord, ReadRequest, ReplayLane};
use silt_cache::{CacheConfig, SegmentCache};
use silt_meta::{Metadata, SqliteMetadata, TopicConfig};
use silt_storage::{ObjectStoreConfig, SegmentStore, StorageMetrics, build_object_store};
use silt_types::{RandomIds, Record, SystemClock, TopicName};

fn gets(registry: &Registry) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
    text.lines()
        .filter(|l| l.starts_with("silt_object_store_requests_total{operation=\"get"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn record(i: u32) -> ProduceRecord {
    ProduceRecord {
        partition: Some(0),
        record: Record {
            key: None,
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: Vec::new(),
            timestamp_ms: 0,
        },
        timestamp_missing: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_run_on_the_lane_and_tail_reads_do_not() {
    let meta: Arc<dyn Metadata> =
        Arc::new(SqliteMetadata::open_in_memory(Arc::new(SystemClock), Arc::new(RandomIds)).expect("sqlite"));
    let store = build_object_store(&ObjectStoreConfig::new("memory://")).expect("store");
    let topic = TopicName::new("lanes").expect("name");
    meta.create_topic(&topic, 1, TopicConfig::default())
        .await
        .expect("topic");

    // Five segments of 20 records (offsets 0..100), written by another agent
    // so the reader's cache is cold.
    let writer = Agent::start(
        AgentConfig {
            flush_interval: Duration::from_millis(5),
            ..AgentConfig::default()
        },
        AgentParts {
            meta: meta.clone(),
            store: SegmentStore::new(store.clone()),
            cache: SegmentCache::open(&CacheConfig::memory_only(64 << 20)).await,
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
            metrics: AgentMetrics::new(&mut Registry::default(), Prices::default()),
            replay_lane: None,
        },
    );
    for batch in 0..5u32 {
        let records = (0..20).map(|i| record(batch * 20 + i)).collect();
        writer.produce(&topic, records, None).await.expect("produce");
    }
    writer.shutdown().await;

    let lane = BackgroundLane::start(1, 5).expect("lane");
    let (mut tail_registry, mut lane_registry) = (Registry::default(), Registry::default());
    let metrics = AgentMetrics::new(&mut tail_registry, Prices::default());
    let tail_store = SegmentStore::new(store.clone()).with_metrics(StorageMetrics::new(&mut tail_registry));
    let lane_store = SegmentStore::new(store).with_metrics(StorageMetrics::new(&mut lane_registry));
    let agent = Agent::start(
        AgentConfig {
            replay_lag_records: 10,
            ..AgentConfig::default()
        },
        AgentParts {
            meta,
            store: tail_store,
            cache: SegmentCache::open(&CacheConfig::memory_only(64 << 20)).await,
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
            metrics,
            replay_lane: Some(ReplayLane {
                runtime: lane.handle().clone(),
                store: lane_store,
            }),
        },
    );

    let read = |offset| ReadRequest {
        partition: 0,
        offset,
        max_records: 5,
        max_bytes: 1 << 20,
        wait: Duration::ZERO,
    };
    let on_thread = |result: silt_agent::ReadResult| {
        (
            result.records.first().map(|r| r.offset),
            std::thread::current().name().map(str::to_owned),
        )
    };

    // 100 behind the high watermark: a replay.
    let lane_gets_before = gets(&lane_registry);
    let (first, thread) = agent.read_map(&topic, read(0), on_thread).await.expect("replay read");
    assert_eq!(first, Some(0));
    assert_eq!(
        thread.as_deref(),
        Some(lane::THREAD_NAME),
        "a replay is encoded on the lane"
    );
    assert!(
        gets(&lane_registry) > lane_gets_before,
        "a replay reads through the lane's store"
    );

    // 5 behind: a tail read, on the caller's runtime and store.
    let tail_gets_before = gets(&tail_registry);
    let (first, thread) = agent.read_map(&topic, read(95), on_thread).await.expect("tail read");
    assert_eq!(first, Some(95));
    assert_ne!(
        thread.as_deref(),
        Some(lane::THREAD_NAME),
        "a tail read stays off the lane"
    );
    assert!(
        gets(&tail_registry) > tail_gets_before,
        "a tail read reads through the tail's store"
    );

    agent.shutdown().await;
}
