//! The Silt agent: the write path and the read path, without HTTP.
//!
//! An [`Agent`] accepts produce requests into one open segment shared by all
//! partitions, seals it by size or time, stages it in the local cache,
//! uploads it, commits it to the metadata service and only then
//! acknowledges the producers (design §3). Reads look chunks up (cached),
//! read them from the cache or the object store, verify their CRC and
//! long-poll at the high watermark (design §4).
//!
//! Reads span both tiers: L0 segment chunks and L1 Parquet row groups
//! (decoded with `silt-compactor`'s L1 codec, footers cached, row groups
//! fetched with ranged GETs).
//!
//! May depend on `silt-types`, `silt-segment`, `silt-storage`, `silt-cache`,
//! `silt-meta` and `silt-compactor` (for the L1 format only); never on HTTP.

mod config;
mod error;
mod hwm;
pub mod lane;
mod locations;
mod metrics;
pub mod partitioner;
mod read;
mod replay;
mod topics;
mod write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use config::AgentConfig;
pub use error::AgentError;
pub use hwm::HwmWatch;
pub use lane::BackgroundLane;
pub use metrics::{AgentMetrics, Prices};
pub use read::{ReadRequest, ReadResult};

use silt_cache::SegmentCache;
use silt_meta::{
    AgentInfo, GroupCommit, GroupState, Metadata, PartitionState, ProducerAppend, ProducerCheck, ProducerIdentity,
    TopicConfig, TopicInfo,
};
use silt_segment::{ProducerFields, encode_batch};
use silt_storage::{Layout, SegmentStore};
use silt_types::{Clock, GroupName, IdGen, Offset, PartitionId, Record, TopicName};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// One record of a produce request, with its optional explicit partition.
#[derive(Debug, Clone)]
pub struct ProduceRecord {
    /// Explicit partition; `None` partitions by key (murmur2) or round-robin.
    pub partition: Option<PartitionId>,
    /// The record; a `timestamp_ms` of `None` means "now".
    pub record: Record,
    /// Whether the client gave no timestamp.
    pub timestamp_missing: bool,
}

/// Idempotent-producer fields of a produce request (Kafka's model: the
/// sequence numbers records per partition, so such a request targets one
/// partition and `sequence` is the number of its first record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerHeader {
    /// Producer id from `POST /v1/producers`.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence number of the request's first record.
    pub sequence: i32,
}

/// Where one produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducedOffset {
    /// Partition the record went to.
    pub partition: PartitionId,
    /// Its offset there.
    pub offset: Offset,
}

/// The components an agent is built from; all injected.
#[derive(Debug, Clone)]
pub struct AgentParts {
    /// Catalog and sequencer.
    pub meta: Arc<dyn Metadata>,
    /// Object store holding every byte.
    pub store: SegmentStore,
    /// Local cache of segments.
    pub cache: SegmentCache,
    /// Wall clock.
    pub clock: Arc<dyn Clock>,
    /// Id source.
    pub ids: Arc<dyn IdGen>,
    /// Metrics sink.
    pub metrics: AgentMetrics,
    /// Where replay reads run; `None` runs them on the caller's runtime
    /// through `store` (tests, tools).
    pub replay_lane: Option<ReplayLane>,
}

/// Where replay reads run: a [`BackgroundLane`]'s runtime, and a store with
/// connections of its own — a pooled connection's I/O is driven by the
/// runtime that opened it, so the tail must not share the lane's.
#[derive(Debug, Clone)]
pub struct ReplayLane {
    /// The lane's runtime.
    pub runtime: tokio::runtime::Handle,
    /// The same object store as [`AgentParts::store`], on its own connections.
    pub store: SegmentStore,
}

/// State shared by the agent's handle and its background tasks.
pub(crate) struct Shared {
    config: AgentConfig,
    meta: Arc<dyn Metadata>,
    store: SegmentStore,
    replay_store: SegmentStore,
    replay_runtime: Option<tokio::runtime::Handle>,
    cache: SegmentCache,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGen>,
    metrics: AgentMetrics,
    layout: Layout,
    admission: Arc<Semaphore>,
    open: Mutex<write::OpenSegment>,
    pipeline_tx: write::PipelineSender,
    flush_wakeup: Notify,
    stopping: CancellationToken,
    hwm: HwmWatch,
    topics: topics::TopicCache,
    locations: locations::LocationCache,
    inflight: read::InFlight,
    topic_names: metrics::TopicLabels,
    footers: read::FooterCache,
    replay: replay::ReplayBudget,
    readahead: replay::ReadAhead,
    round_robin: AtomicU64,
}

/// A running agent: produce, read, and the catalog operations the API exposes.
#[derive(Clone)]
pub struct Agent {
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts an agent and its background tasks on the current runtime.
    pub fn start(config: AgentConfig, parts: AgentParts) -> Self {
        let max_permits = config.max_unacked_bytes.clamp(1, Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            admission: Arc::new(Semaphore::new(max_permits)),
            locations: locations::LocationCache::new(config.location_cache_entries),
            replay: replay::ReplayBudget::new(config.replay_concurrency, config.replay_bytes_per_sec),
            readahead: replay::ReadAhead::new(config.readahead_bytes),
            topics: topics::TopicCache::new(config.topic_cache_ttl),
            config,
            meta: parts.meta,
            replay_store: parts
                .replay_lane
                .as_ref()
                .map_or_else(|| parts.store.clone(), |l| l.store.clone()),
            replay_runtime: parts.replay_lane.map(|l| l.runtime),
            store: parts.store,
            cache: parts.cache,
            clock: parts.clock,
            ids: parts.ids,
            metrics: parts.metrics,
            layout: Layout,
            open: Mutex::default(),
            pipeline_tx: Mutex::new(None),
            flush_wakeup: Notify::new(),
            stopping: CancellationToken::new(),
            hwm: HwmWatch::default(),
            inflight: read::InFlight::default(),
            topic_names: metrics::TopicLabels::default(),
            footers: read::FooterCache::default(),
            round_robin: AtomicU64::new(0),
        });
        let pipeline = write::start_pipeline(&shared);
        *shared.pipeline_tx.lock().expect("pipeline lock poisoned") = Some(pipeline.sealed_tx);
        let mut tasks = pipeline.tasks;
        tasks.push(tokio::spawn(write::flush_timer(shared.clone())));
        Self {
            shared,
            tasks: Arc::new(Mutex::new(tasks)),
        }
    }

    /// The agent's settings.
    pub fn config(&self) -> &AgentConfig {
        &self.shared.config
    }

    /// High-watermark notifications; a fleet's metadata feed pushes into it.
    pub fn hwm_watch(&self) -> &HwmWatch {
        &self.shared.hwm
    }

    /// Cancelled when shutdown begins; long-polls end early on it.
    pub fn stopping(&self) -> &CancellationToken {
        &self.shared.stopping
    }

    /// Produces records to a topic and returns their offsets in request order,
    /// once they are durable in the object store and committed.
    ///
    /// Traced as one `produce` span (topic, records, and the segment that
    /// carried them); that segment's `upload` and `commit` spans name the same id.
    #[tracing::instrument(
        name = "produce",
        skip_all,
        fields(topic = %topic, records = records.len(), segment = tracing::field::Empty)
    )]
    pub async fn produce(
        &self,
        topic: &TopicName,
        records: Vec<ProduceRecord>,
        producer: Option<ProducerHeader>,
    ) -> Result<Vec<ProducedOffset>, AgentError> {
        let shared = &self.shared;
        if shared.stopping.is_cancelled() {
            return Err(AgentError::ShuttingDown);
        }
        if records.is_empty() {
            return Err(AgentError::Invalid("records must not be empty".into()));
        }
        let info = shared.topics.get(shared.meta.as_ref(), topic).await?;
        shared.topic_names.learn(info.id, topic.as_str());
        let now = shared.clock.now_ms();

        // Assign partitions, then group records per partition in request order.
        let mut assigned = Vec::with_capacity(records.len());
        let mut groups: Vec<(PartitionId, Vec<Record>)> = Vec::new();
        let mut weight = 0usize;
        for mut pr in records {
            let partition = match pr.partition {
                Some(p) if p >= info.partitions => {
                    return Err(AgentError::UnknownPartition {
                        topic: topic.to_string(),
                        partition: p,
                    });
                }
                Some(p) => p,
                None => match &pr.record.key {
                    Some(key) => partitioner::partition_for_key(key, info.partitions),
                    None => (shared.round_robin.fetch_add(1, Ordering::Relaxed) % u64::from(info.partitions)) as u32,
                },
            };
            if pr.timestamp_missing {
                pr.record.timestamp_ms = now;
            }
            weight += pr.record.weight();
            let group = match groups.iter().position(|(p, _)| *p == partition) {
                Some(i) => i,
                None => {
                    groups.push((partition, Vec::new()));
                    groups.len() - 1
                }
            };
            assigned.push((group, groups[group].1.len() as u64));
            groups[group].1.push(pr.record);
        }

        // Idempotent producers: Kafka's per-partition sequences, checked before buffering.
        if let Some(p) = producer {
            let [(partition, recs)] = groups.as_slice() else {
                return Err(AgentError::Invalid(
                    "an idempotent produce request must target exactly one partition: give \"partition\" on every record"
                        .into(),
                ));
            };
            let append = ProducerAppend {
                producer_id: p.producer_id,
                producer_epoch: p.producer_epoch,
                base_sequence: p.sequence,
                record_count: recs.len() as u32,
                offset_in_chunk: 0,
            };
            match shared.meta.check_producer(info.id, *partition, &append).await? {
                ProducerCheck::Accept => {}
                ProducerCheck::Duplicate { base_offset } => {
                    // A retry of a committed request: its original offsets, nothing written.
                    return Ok((0..recs.len() as u64)
                        .map(|i| ProducedOffset {
                            partition: *partition,
                            offset: base_offset + i,
                        })
                        .collect());
                }
                other => return Err(write::producer_error(other, p.producer_id)),
            }
        }

        // Admission: bytes not yet acknowledged are bounded.
        let permits = u32::try_from(weight.min(shared.config.max_unacked_bytes)).unwrap_or(u32::MAX);
        let permit = match tokio::time::timeout(
            shared.config.admission_wait,
            shared.admission.clone().acquire_many_owned(permits),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(AgentError::ShuttingDown),
            Err(_) => {
                shared.metrics.rejected();
                return Err(AgentError::Overloaded {
                    retry_after: Duration::from_secs(1),
                });
            }
        };
        let admitted = Instant::now();

        // Encode each partition's records as one Kafka v2 batch.
        let mut batches = Vec::with_capacity(groups.len());
        let record_count = assigned.len() as u64;
        for (partition, recs) in &groups {
            let mut buf = Vec::new();
            let fields = producer.map_or(ProducerFields::NONE, |p| ProducerFields {
                producer_id: p.producer_id,
                producer_epoch: p.producer_epoch,
                base_sequence: p.sequence,
            });
            let batch = encode_batch(recs, shared.config.compression, fields, &mut buf)
                .map_err(|e| AgentError::Invalid(format!("cannot encode records: {e}")))?;
            batches.push(write::PendingBatch {
                topic: info.id,
                partition: *partition,
                bytes: buf.into(),
                records: batch.record_count,
                max_timestamp_ms: batch.max_timestamp_ms,
                producer: producer.map(|p| (p.producer_id, p.producer_epoch, p.sequence)),
            });
        }
        let admitted_bytes = shared.metrics.admitted(weight);
        let rx = write::append(shared, batches, (permit, admitted_bytes))?;
        let bases = match rx.await {
            Ok(Ok((bases, segment))) => {
                tracing::Span::current().record("segment", tracing::field::display(segment));
                bases
            }
            Ok(Err(e)) => return Err(AgentError::Shared(e)),
            Err(_) => return Err(AgentError::Internal("write pipeline dropped the request".into())),
        };
        shared.metrics.produced(
            &shared.topic_names.label(info.id),
            record_count,
            weight as u64,
            admitted.elapsed(),
        );
        Ok(assigned
            .into_iter()
            .map(|(group, index)| ProducedOffset {
                partition: groups[group].0,
                offset: bases[group] + index,
            })
            .collect())
    }

    /// Reads records of one partition, long-polling at the high watermark.
    pub async fn read(&self, topic: &TopicName, req: ReadRequest) -> Result<ReadResult, AgentError> {
        self.read_map(topic, req, |result| result).await
    }

    /// Reads like [`Agent::read`] and turns the result into `T` with
    /// `finish` (the HTTP layer's encoding). A replay — a read further than
    /// `replay_lag_records` behind the high watermark — does both on the
    /// replay lane, so its decoding and encoding yield the CPU to the tail.
    #[tracing::instrument(name = "read", skip_all, fields(topic = %topic, partition = req.partition, offset = req.offset))]
    pub async fn read_map<T, F>(&self, topic: &TopicName, req: ReadRequest, finish: F) -> Result<T, AgentError>
    where
        T: Send + 'static,
        F: FnOnce(ReadResult) -> T + Send + 'static,
    {
        let shared = &self.shared;
        let info = shared.topics.get(shared.meta.as_ref(), topic).await?;
        shared.topic_names.learn(info.id, topic.as_str());
        if req.partition >= info.partitions {
            return Err(AgentError::UnknownPartition {
                topic: topic.to_string(),
                partition: req.partition,
            });
        }
        let wait = req.wait.min(shared.config.max_wait);
        let deadline = Instant::now() + wait;
        let mut hwm_rx = shared.hwm.subscribe(info.id, req.partition);
        loop {
            // Mark the current value seen before reading the state, so a commit
            // landing after the read below still wakes the wait.
            hwm_rx.borrow_and_update();
            let state = shared.meta.partition_state(info.id, req.partition).await?;
            if req.offset < state.log_start_offset {
                return Err(AgentError::BelowLogStart {
                    offset: req.offset,
                    log_start: state.log_start_offset,
                });
            }
            if req.offset > state.high_watermark {
                return Err(AgentError::PastHighWatermark {
                    offset: req.offset,
                    high_watermark: state.high_watermark,
                });
            }
            if req.offset == state.high_watermark {
                let _waiting = shared.metrics.read_waiting();
                let woke = tokio::select! {
                    changed = hwm_rx.changed() => changed.is_ok(),
                    () = tokio::time::sleep_until(deadline) => false,
                    () = shared.stopping.cancelled() => false,
                };
                if woke && Instant::now() < deadline {
                    continue;
                }
                let state = shared.meta.partition_state(info.id, req.partition).await?;
                if req.offset < state.high_watermark {
                    return self.finish_read(info, req, state, finish).await;
                }
                return Ok(finish(ReadResult {
                    records: Vec::new(),
                    next_offset: req.offset,
                    high_watermark: state.high_watermark,
                    log_start_offset: state.log_start_offset,
                }));
            }
            return self.finish_read(info, req, state, finish).await;
        }
    }

    async fn finish_read<T, F>(
        &self,
        info: Arc<TopicInfo>,
        req: ReadRequest,
        state: PartitionState,
        finish: F,
    ) -> Result<T, AgentError>
    where
        T: Send + 'static,
        F: FnOnce(ReadResult) -> T + Send + 'static,
    {
        let shared = self.shared.clone();
        let replay = read::is_replay(&shared.config, state.high_watermark, req.offset);
        let work = async move {
            let (records, next_offset) = read::collect(&shared, info.id, &req, state.high_watermark).await?;
            let bytes: usize = records.iter().map(read::record_size).sum();
            shared
                .metrics
                .consumed(&shared.topic_names.label(info.id), records.len() as u64, bytes as u64);
            Ok(finish(ReadResult {
                records,
                next_offset,
                high_watermark: state.high_watermark,
                log_start_offset: state.log_start_offset,
            }))
        };
        match &self.shared.replay_runtime {
            Some(lane) if replay => lane::LaneTask::spawn_on(lane, tracing::Instrument::in_current_span(work))
                .join()
                .await
                .map_err(|e| AgentError::Internal(format!("replay read task failed: {e}")))?,
            _ => work.await,
        }
    }

    /// The first offset whose timestamp is `>= timestamp_ms`, or the high
    /// watermark if no record is that late yet.
    pub async fn offset_for_timestamp(
        &self,
        topic: &TopicName,
        partition: PartitionId,
        timestamp_ms: i64,
    ) -> Result<Offset, AgentError> {
        let shared = &self.shared;
        let info = shared.topics.get(shared.meta.as_ref(), topic).await?;
        if partition >= info.partitions {
            return Err(AgentError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            });
        }
        let state = shared.meta.partition_state(info.id, partition).await?;
        let Some(loc) = shared.meta.lookup_timestamp(info.id, partition, timestamp_ms).await? else {
            return Ok(state.high_watermark);
        };
        let view = read::read_chunk(shared, &loc, read::ReadPath::Tail).await?;
        for record in view.into_records(loc.base_offset) {
            let record = record.map_err(|e| AgentError::Corrupt(format!("key={} {e}", loc.object_key)))?;
            if record.offset >= state.log_start_offset && record.timestamp_ms >= timestamp_ms {
                return Ok(record.offset);
            }
        }
        Err(AgentError::Internal(format!(
            "timestamp index points at chunk key={} base_offset={} without a record at ts>={timestamp_ms}",
            loc.object_key, loc.base_offset
        )))
    }

    /// Creates a topic.
    pub async fn create_topic(
        &self,
        name: &TopicName,
        partitions: u32,
        config: TopicConfig,
    ) -> Result<TopicInfo, AgentError> {
        let info = self.shared.meta.create_topic(name, partitions, config).await?;
        self.shared.topics.invalidate(name);
        info!(topic = %name, id = %info.id, partitions, "topic created");
        Ok(info)
    }

    /// Deletes a topic; its records become unreachable at once.
    pub async fn delete_topic(&self, name: &TopicName) -> Result<(), AgentError> {
        let info = self.shared.meta.topic(name).await?;
        self.shared.meta.delete_topic(name).await?;
        self.shared.topics.invalidate(name);
        self.shared.locations.forget_topic(info.id);
        self.shared.hwm.forget(info.id);
        info!(topic = %name, id = %info.id, "topic deleted");
        Ok(())
    }

    /// Changes a topic's settings: fields set in `patch` replace the stored
    /// ones, absent fields stay (`-1` removes a retention limit).
    pub async fn update_topic_config(&self, name: &TopicName, patch: TopicConfig) -> Result<TopicInfo, AgentError> {
        let current = self.shared.meta.topic(name).await?;
        let config = TopicConfig {
            retention_ms: patch.retention_ms.or(current.config.retention_ms),
            retention_bytes: patch.retention_bytes.or(current.config.retention_bytes),
        };
        let info = self.shared.meta.update_topic_config(name, config).await?;
        self.shared.topics.invalidate(name);
        info!(topic = %name, config = ?info.config, "topic config changed");
        Ok(info)
    }

    /// A topic and the state of its partitions.
    pub async fn describe_topic(&self, name: &TopicName) -> Result<(TopicInfo, Vec<PartitionState>), AgentError> {
        let info = self.shared.meta.topic(name).await?;
        let states = self.shared.meta.partition_states(info.id).await?;
        Ok((info, states))
    }

    /// All topics.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, AgentError> {
        Ok(self.shared.meta.list_topics().await?)
    }

    /// Stores a consumer group's offsets (fenced by generation, never backwards without reset).
    pub async fn commit_group_offsets(&self, group: &GroupName, commit: &GroupCommit) -> Result<(), AgentError> {
        self.shared.meta.commit_group_offsets(group, commit).await?;
        // Lag at commit time, per topic: high watermark minus committed offset.
        let mut topics: Vec<&TopicName> = commit.offsets.iter().map(|o| &o.topic).collect();
        topics.sort();
        topics.dedup();
        for topic in topics {
            let Ok(info) = self.shared.topics.get(self.shared.meta.as_ref(), topic).await else {
                continue;
            };
            let Ok(states) = self.shared.meta.partition_states(info.id).await else {
                continue;
            };
            let lag: u64 = commit
                .offsets
                .iter()
                .filter(|o| &o.topic == topic)
                .filter_map(|o| {
                    let hwm = states.iter().find(|s| s.partition == o.partition)?.high_watermark;
                    Some(hwm.saturating_sub(o.offset))
                })
                .sum();
            self.shared.metrics.group_lag(group.as_str(), topic.as_str(), lag);
        }
        Ok(())
    }

    /// A consumer group's generation and offsets.
    pub async fn group_offsets(&self, group: &GroupName) -> Result<GroupState, AgentError> {
        Ok(self.shared.meta.group_offsets(group).await?)
    }

    /// Starts a new generation of a group, fencing commits of older ones.
    pub async fn join_group(&self, group: &GroupName) -> Result<i32, AgentError> {
        Ok(self.shared.meta.join_group(group).await?)
    }

    /// Allocates a producer id, or bumps an existing one's epoch.
    pub async fn init_producer(&self, existing: Option<i64>) -> Result<ProducerIdentity, AgentError> {
        Ok(self.shared.meta.init_producer(existing).await?)
    }

    /// The live agents of the fleet.
    pub async fn list_agents(&self) -> Result<Vec<AgentInfo>, AgentError> {
        Ok(self.shared.meta.list_agents().await?)
    }

    /// Whether the metadata service and the object store answer.
    pub async fn ready(&self) -> Result<(), AgentError> {
        if self.shared.stopping.is_cancelled() {
            return Err(AgentError::ShuttingDown);
        }
        // Readiness must answer fast: a metadata service that does not answer
        // within the probe timeout counts as unreachable (the remote client
        // would otherwise keep retrying).
        const PROBE: Duration = Duration::from_secs(2);
        match tokio::time::timeout(PROBE, self.shared.meta.list_agents()).await {
            Ok(result) => {
                result?;
            }
            Err(_) => return Err(AgentError::MetaUnavailable(format!("no answer within {PROBE:?}"))),
        }
        self.shared.store.probe().await?;
        Ok(())
    }

    /// Begins shutdown: refuses new records, seals the open segment so
    /// in-flight produces get their answer, and ends long-polls.
    pub fn begin_shutdown(&self) {
        self.shared.stopping.cancel();
        write::close_and_seal(&self.shared);
    }

    /// Flushes the open segment, finishes in-flight uploads and commits
    /// (acknowledging their producers), then stops the background tasks.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        self.shared.pipeline_tx.lock().expect("pipeline lock poisoned").take();
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("task list lock poisoned"));
        for task in tasks {
            if let Err(e) = task.await {
                warn!(error = %e, "agent task ended abnormally");
            }
        }
        self.shared.cache.close().await;
        info!("agent stopped");
    }
}
