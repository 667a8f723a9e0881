//! Silt's background maintenance (design §5): compaction of L0 segment
//! chunks into per-partition L1 Parquet files, retention, and garbage
//! collection of objects no index entry references.
//!
//! - [`l1`]: the L1 file format (write, and ranged decode of one row group
//!   for the agent's read path);
//! - [`Compactor`]: the job. Per partition it holds a lease
//!   (`compact/<topic id>/<partition>`) so one worker at a time compacts it,
//!   reads the committed L0 chunks at the front of the uncompacted log,
//!   writes ONE Parquet object and swaps the index in one transaction
//!   ([`Metadata::replace_chunks`]); it advances the log start past whole
//!   expired entries ([`Metadata::advance_log_start`]); under the `gc` lease
//!   it deletes unreferenced objects older than a grace period.
//!
//! Crash safety comes from the order of the steps: the L1 object is written
//! before the swap (a crash leaves an orphan that the next run overwrites or
//! GC deletes), the swap is one transaction that checks the old entries are
//! still exactly what was read (a conflict changes nothing), and old objects
//! are only deleted by GC once unreferenced and older than the grace period
//! (readers that still hold an old location look it up again on NotFound).
//!
//! May depend on `silt-types`, `silt-segment`, `silt-storage`, `silt-meta`,
//! `parquet` (no arrow) and async/metrics plumbing; never on the agent or HTTP.

pub mod l1;
mod metrics;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use silt_meta::{ChunkFormat, ChunkLocation, ChunkReplacement, MetaError, Metadata, ReplaceOutcome, TopicInfo};
use silt_segment::DecodedRecord;
use silt_storage::{Layout, SegmentStore, StorageError};
use silt_types::{Clock, Offset, PartitionId, TopicId};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use l1::{L1Error, L1File, L1Options};
pub use metrics::CompactorMetrics;

/// Errors of one compaction, retention or GC step.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// The metadata service failed.
    #[error("metadata: {0}")]
    Meta(#[from] MetaError),
    /// The object store failed.
    #[error("object store: {0}")]
    Storage(#[from] StorageError),
    /// Encoding or decoding failed.
    #[error("{0}")]
    L1(#[from] L1Error),
    /// Stored data is not what the index says.
    #[error("corrupt input: {0}")]
    Corrupt(String),
}

/// Result of compactor operations.
pub type Result<T, E = CompactError> = std::result::Result<T, E>;

/// How the compactor behaves.
#[derive(Debug, Clone)]
pub struct CompactorConfig {
    /// Lease holder name (the node id).
    pub node_id: String,
    /// Pause between passes.
    pub interval: Duration,
    /// Compact once at least this many L0 chunks wait at the front of the uncompacted log...
    pub min_chunks: usize,
    /// ...or at least this many bytes.
    pub min_bytes: u64,
    /// One run reads at most this many L0 bytes (bounds memory and file size).
    pub max_input_bytes: u64,
    /// One run reads at most this many L0 chunks.
    pub max_input_chunks: usize,
    /// Lease time-to-live; a worker that dies frees its partitions after this.
    pub lease_ttl: Duration,
    /// Unreferenced objects are deleted only when older than this; must
    /// outlive any in-flight read and any upload-to-commit window.
    pub gc_grace: Duration,
    /// Whether passes collect garbage.
    pub gc: bool,
    /// Garbage collection lists the bucket at most this often (passes in
    /// between skip it): listing is the expensive part on a large bucket.
    pub gc_interval: Duration,
    /// L1 file shape.
    pub l1: L1Options,
}

impl CompactorConfig {
    /// Defaults: a pass every 30 s, compaction at 16 chunks or 8 MiB, GC grace 15 min.
    pub fn new(node_id: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            interval: Duration::from_secs(30),
            min_chunks: 16,
            min_bytes: 8 << 20,
            max_input_bytes: 128 << 20,
            max_input_chunks: 20_000,
            lease_ttl: Duration::from_secs(300),
            gc_grace: Duration::from_secs(900),
            gc: true,
            gc_interval: Duration::from_secs(300),
            l1: L1Options::default(),
        }
    }
}

/// L0 chunks chosen for one compaction run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Topic.
    pub topic: TopicId,
    /// Partition.
    pub partition: PartitionId,
    /// The chunks, contiguous, in offset order.
    pub chunks: Vec<ChunkLocation>,
}

/// An L1 object written for a plan, not yet swapped in.
#[derive(Debug, Clone)]
pub struct Written {
    /// The plan it was written for.
    pub plan: Plan,
    /// Its key.
    pub key: Path,
    /// Its size.
    pub size: u64,
    /// The encoded file.
    pub file: L1File,
    /// When the run started reading its input.
    pub started: tokio::time::Instant,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    /// L1 files swapped in.
    pub compacted: u64,
    /// Records moved to L1.
    pub records: u64,
    /// Partitions whose log start moved.
    pub retention_advances: u64,
    /// Objects deleted by GC.
    pub deleted: u64,
}

/// The compaction, retention and GC job.
#[derive(Debug, Clone)]
pub struct Compactor {
    meta: Arc<dyn Metadata>,
    store: SegmentStore,
    clock: Arc<dyn Clock>,
    config: CompactorConfig,
    metrics: CompactorMetrics,
    layout: Layout,
    /// Per partition, the offset below which everything is already L1.
    cursors: Arc<Mutex<HashMap<(TopicId, PartitionId), Offset>>>,
    /// When this compactor last collected garbage.
    last_gc: Arc<Mutex<Option<tokio::time::Instant>>>,
}

const LIST_PAGE: usize = 1000;

impl Compactor {
    /// A compactor over these components.
    pub fn new(
        meta: Arc<dyn Metadata>,
        store: SegmentStore,
        clock: Arc<dyn Clock>,
        config: CompactorConfig,
        metrics: CompactorMetrics,
    ) -> Self {
        Self {
            meta,
            store,
            clock,
            config,
            metrics,
            layout: Layout,
            cursors: Arc::default(),
            last_gc: Arc::default(),
        }
    }

    /// Runs passes every `interval` until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        info!(
            interval_ms = self.config.interval.as_millis() as u64,
            "compactor started"
        );
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.config.interval) => {}
                () = stop.cancelled() => break,
            }
            let pass = tokio::select! {
                r = self.run_once() => r,
                () = stop.cancelled() => break,
            };
            match pass {
                Ok(stats) if stats != PassStats::default() => info!(?stats, "compactor pass"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "compactor pass failed; retrying next interval"),
            }
        }
        info!("compactor stopped");
    }

    /// One pass: compaction and retention of every partition, then GC.
    pub async fn run_once(&self) -> Result<PassStats> {
        let mut stats = PassStats::default();
        let topics = self.meta.list_topics().await?;
        for topic in &topics {
            for partition in 0..topic.partitions {
                match self.maintain_partition(topic, partition, &mut stats).await {
                    Ok(()) => {}
                    Err(CompactError::Meta(MetaError::UnknownTopic(_) | MetaError::UnknownPartition { .. })) => {}
                    Err(e) => {
                        self.metrics.failure();
                        warn!(topic = %topic.name, partition, error = %e, "partition maintenance failed");
                    }
                }
            }
        }
        if self.config.gc && self.gc_due() {
            stats.deleted += self.collect_garbage().await?;
        }
        Ok(stats)
    }

    /// Whether `gc_interval` has passed since the last collection (and marks it started).
    fn gc_due(&self) -> bool {
        let mut last = self.last_gc.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = tokio::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < self.config.gc_interval) {
            return false;
        }
        *last = Some(now);
        true
    }

    fn lease_name(topic: TopicId, partition: PartitionId) -> String {
        format!("compact/{topic}/{partition}")
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease_ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// Compaction then retention of one partition, under its lease.
    async fn maintain_partition(&self, topic: &TopicInfo, partition: PartitionId, stats: &mut PassStats) -> Result<()> {
        let lease = Self::lease_name(topic.id, partition);
        if !self
            .meta
            .try_acquire_lease(&lease, &self.config.node_id, self.lease_ms())
            .await?
        {
            debug!(%lease, "partition held by another compactor");
            return Ok(());
        }
        let result = async {
            // Several runs if a backlog exceeds one run's input bound.
            for _ in 0..8 {
                let Some(plan) = self.plan(topic.id, partition).await? else {
                    break;
                };
                let records = plan
                    .chunks
                    .iter()
                    .map(|c| c.last_offset - c.base_offset + 1)
                    .sum::<u64>();
                let written = self.write_l1(plan).await?;
                match self.swap(&written).await? {
                    ReplaceOutcome::Replaced => {
                        stats.compacted += 1;
                        stats.records += records;
                    }
                    ReplaceOutcome::Conflict { reason } => {
                        info!(key = %written.key, %reason, "compaction swap conflicted; the file is left to GC");
                        break;
                    }
                }
                // Keep the lease alive across long backlogs.
                self.meta
                    .try_acquire_lease(&lease, &self.config.node_id, self.lease_ms())
                    .await?;
            }
            if let Some(start) = self.apply_retention(topic, partition).await? {
                debug!(topic = %topic.name, partition, log_start = start, "retention advanced the log start");
                stats.retention_advances += 1;
            }
            Ok(())
        }
        .await;
        if let Err(e) = self.meta.release_lease(&lease, &self.config.node_id).await {
            debug!(%lease, error = %e, "lease release failed; it expires by itself");
        }
        result
    }

    /// Chooses the L0 chunks at the front of the partition's uncompacted log,
    /// if enough are waiting. Call under the partition's lease.
    pub async fn plan(&self, topic: TopicId, partition: PartitionId) -> Result<Option<Plan>> {
        let cursor = self.cursor(topic, partition);
        let mut from = cursor;
        let mut chunks: Vec<ChunkLocation> = Vec::new();
        let mut bytes = 0u64;
        'pages: loop {
            let page = self.meta.list_chunks(topic, partition, from, LIST_PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.last_offset + 1;
            let full = page.len() == LIST_PAGE;
            for c in page {
                if c.format == ChunkFormat::Parquet {
                    if !chunks.is_empty() {
                        break 'pages;
                    }
                    self.set_cursor(topic, partition, c.last_offset + 1);
                    continue;
                }
                if !chunks.is_empty()
                    && (bytes + c.byte_len > self.config.max_input_bytes
                        || chunks.len() >= self.config.max_input_chunks)
                {
                    break 'pages;
                }
                bytes += c.byte_len;
                chunks.push(c);
            }
            if !full {
                break;
            }
        }
        if chunks.len() < self.config.min_chunks.max(1) && bytes < self.config.min_bytes {
            return Ok(None);
        }
        Ok(Some(Plan {
            topic,
            partition,
            chunks,
        }))
    }

    fn cursor(&self, topic: TopicId, partition: PartitionId) -> Offset {
        let cursors = self.cursors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cursors.get(&(topic, partition)).copied().unwrap_or(0)
    }

    fn set_cursor(&self, topic: TopicId, partition: PartitionId, offset: Offset) {
        let mut cursors = self.cursors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let c = cursors.entry((topic, partition)).or_insert(0);
        *c = (*c).max(offset);
    }

    /// Reads the plan's chunks, checks them and returns their records in order.
    pub async fn read_plan(&self, plan: &Plan) -> Result<Vec<DecodedRecord>> {
        let fetched: Vec<(ChunkLocation, Bytes)> = futures::stream::iter(plan.chunks.iter().cloned())
            .map(|c| async move {
                let key = Path::from(c.object_key.as_str());
                let bytes = self
                    .store
                    .get_range(&key, c.byte_offset..c.byte_offset + c.byte_len)
                    .await?;
                Ok::<_, CompactError>((c, bytes))
            })
            .buffered(8)
            .try_collect()
            .await?;
        let mut records = Vec::new();
        for (c, bytes) in fetched {
            let view = silt_segment::decode_chunk(bytes)
                .map_err(|e| CompactError::Corrupt(format!("key={} base={} {e}", c.object_key, c.base_offset)))?;
            if view.topic != c.topic
                || view.partition != c.partition
                || u64::from(view.record_count) != c.last_offset - c.base_offset + 1
            {
                return Err(CompactError::Corrupt(format!(
                    "key={} base={}: chunk header disagrees with the index",
                    c.object_key, c.base_offset
                )));
            }
            for r in view.records(c.base_offset) {
                let r = r.map_err(|e| CompactError::Corrupt(format!("key={} {e}", c.object_key)))?;
                let expected = plan.chunks[0].base_offset + records.len() as u64;
                if r.offset != expected {
                    return Err(CompactError::Corrupt(format!(
                        "key={} offset {} where {expected} was expected",
                        c.object_key, r.offset
                    )));
                }
                records.push(r);
            }
        }
        Ok(records)
    }

    /// Reads the plan's chunks and writes one L1 object for them.
    pub async fn write_l1(&self, plan: Plan) -> Result<Written> {
        let started = tokio::time::Instant::now();
        let records = self.read_plan(&plan).await?;
        let l1 = self.config.l1;
        let file = tokio::task::spawn_blocking(move || l1::encode(&records, l1))
            .await
            .map_err(|e| CompactError::Corrupt(format!("encoder panicked: {e}")))??;
        let (first, last) = match (plan.chunks.first(), plan.chunks.last()) {
            (Some(f), Some(l)) => (f.base_offset, l.last_offset),
            _ => return Err(CompactError::Corrupt("empty plan".into())),
        };
        let key = self.layout.l1_key(plan.topic, plan.partition, first, last);
        let size = file.bytes.len() as u64;
        match self.store.put_new(&key, file.bytes.clone()).await {
            Ok(()) => {}
            Err(StorageError::Conflict(_)) => {
                // A crashed earlier run left a different file under this key.
                // It is only replaced if nothing references it.
                let unreferenced = self.meta.unreferenced_objects(vec![key.to_string()]).await?;
                if unreferenced.is_empty() {
                    return Err(CompactError::Corrupt(format!("{key} exists and is referenced")));
                }
                self.store.delete(&key).await?;
                self.store.put_new(&key, file.bytes.clone()).await?;
            }
            Err(e) => return Err(e.into()),
        }
        self.metrics.written(size);
        Ok(Written {
            plan,
            key,
            size,
            file,
            started,
        })
    }

    /// Swaps the index from the plan's chunks to the written L1 object.
    ///
    /// A run slower than half the GC grace period is abandoned instead: GC
    /// might already have taken its file for an orphan (grace zero, for
    /// tests that drive the steps themselves, disables the check).
    pub async fn swap(&self, written: &Written) -> Result<ReplaceOutcome> {
        let grace = self.config.gc_grace;
        if !grace.is_zero() && written.started.elapsed() >= grace / 2 {
            self.metrics.conflict();
            return Ok(ReplaceOutcome::Conflict {
                reason: format!("run took longer than half the GC grace period ({grace:?})"),
            });
        }
        let replacement = ChunkReplacement {
            topic: written.plan.topic,
            partition: written.plan.partition,
            old: written.plan.chunks.clone(),
            object_key: written.key.to_string(),
            object_size: written.size,
            format: ChunkFormat::Parquet,
            footer_len: written.file.footer_len,
            entries: written.file.entries.clone(),
        };
        let outcome = self.meta.replace_chunks(replacement).await?;
        if outcome == ReplaceOutcome::Replaced {
            let records = written
                .file
                .entries
                .iter()
                .map(|e| e.last_offset - e.base_offset + 1)
                .sum::<u64>();
            self.metrics.compacted(written.plan.chunks.len() as u64, records);
            if let Some(last) = written.file.entries.last() {
                self.set_cursor(written.plan.topic, written.plan.partition, last.last_offset + 1);
            }
            info!(key = %written.key, chunks = written.plan.chunks.len(), records, bytes = written.size, "compacted");
        } else {
            self.metrics.conflict();
        }
        Ok(outcome)
    }

    /// Moves the log start past whole index entries that retention expires:
    /// those entirely older than `retention_ms`, and the oldest ones while the
    /// rest still hold at least `retention_bytes`. Returns the new log start
    /// if it moved.
    pub async fn apply_retention(&self, topic: &TopicInfo, partition: PartitionId) -> Result<Option<Offset>> {
        // Zero or negative (Kafka's -1) means no limit.
        let ms = topic.config.retention_ms.filter(|v| *v > 0);
        let max_bytes = topic.config.retention_bytes.filter(|v| *v > 0);
        if ms.is_none() && max_bytes.is_none() {
            return Ok(None);
        }
        let cutoff = ms.map(|ms| self.clock.now_ms().saturating_sub(ms));
        let mut entries: Vec<(Offset, Offset, i64, u64)> = Vec::new();
        let mut from = 0;
        loop {
            let page = self.meta.list_chunks(topic.id, partition, from, LIST_PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.last_offset + 1;
            let full = page.len() == LIST_PAGE;
            entries.extend(
                page.iter()
                    .map(|c| (c.base_offset, c.last_offset, c.max_timestamp_ms, c.byte_len)),
            );
            if !full {
                break;
            }
        }
        let mut total: u64 = entries.iter().map(|e| e.3).sum();
        let mut new_start = None;
        for (_, last, max_ts, len) in &entries {
            let by_time = cutoff.is_some_and(|c| *max_ts < c);
            let by_size = max_bytes.is_some_and(|b| total.saturating_sub(*len) >= u64::try_from(b).unwrap_or(0));
            if !(by_time || by_size) {
                break;
            }
            total -= len;
            new_start = Some(last + 1);
        }
        let Some(new_start) = new_start else {
            return Ok(None);
        };
        let start = self.meta.advance_log_start(topic.id, partition, new_start).await?;
        self.metrics.retention_advance();
        info!(topic = %topic.name, partition, log_start = start, "retention moved the log start");
        Ok(Some(start))
    }

    /// Deletes objects under `segments/` and `topics/` that no index entry
    /// references and that are older than the grace period; returns how
    /// many. Runs under the `gc` lease (skips if someone else holds it).
    pub async fn collect_garbage(&self) -> Result<u64> {
        const LEASE: &str = "gc";
        if !self
            .meta
            .try_acquire_lease(LEASE, &self.config.node_id, self.lease_ms())
            .await?
        {
            return Ok(0);
        }
        let result = self.collect_garbage_now().await;
        if let Err(e) = self.meta.release_lease(LEASE, &self.config.node_id).await {
            debug!(error = %e, "gc lease release failed; it expires by itself");
        }
        result
    }

    /// Lists candidates older than the grace period (listing first, so an
    /// object referenced before the check is never missed) and deletes the
    /// unreferenced ones.
    async fn collect_garbage_now(&self) -> Result<u64> {
        let grace = i64::try_from(self.config.gc_grace.as_millis()).unwrap_or(i64::MAX);
        let horizon = self.clock.now_ms().saturating_sub(grace);
        let mut deleted = 0;
        for prefix in [Layout::SEGMENTS, Layout::TOPICS] {
            let prefix = Path::from(prefix);
            let mut listing = self.store.inner().list(Some(&prefix));
            let mut batch = Vec::new();
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|e| StorageError::from_store("list", prefix.as_ref(), e))?;
                if meta.last_modified.timestamp_millis() <= horizon {
                    batch.push(meta.location.to_string());
                }
                if batch.len() >= 500 {
                    deleted += self.delete_unreferenced(std::mem::take(&mut batch)).await?;
                }
            }
            deleted += self.delete_unreferenced(batch).await?;
        }
        Ok(deleted)
    }

    pub(crate) async fn delete_unreferenced(&self, keys: Vec<String>) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let garbage = self.meta.unreferenced_objects(keys).await?;
        let mut n = 0;
        for key in garbage {
            self.store.delete(&Path::from(key.as_str())).await?;
            debug!(%key, "deleted unreferenced object");
            self.metrics.deleted();
            n += 1;
        }
        Ok(n)
    }
}
