//! The agent's Prometheus metrics.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use silt_meta::{ChunkOutcome, SegmentCommit};
use silt_types::TopicId;

use crate::write::SealReason;

/// Distinct topic (or group × topic) label values before the rest are
/// folded into `_other`: label cardinality stays bounded with 20k topics.
const MAX_LABELS: usize = 500;

/// Prices of object-store use, for the per-topic cost estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Dollars per 1,000 PUT requests.
    pub put_per_1000: f64,
    /// Dollars per 1,000 GET requests.
    pub get_per_1000: f64,
    /// Dollars per GB stored for a month.
    pub gb_month: f64,
}

impl Default for Prices {
    /// S3 Standard list prices (us-east-1).
    fn default() -> Self {
        Self {
            put_per_1000: 0.005,
            get_per_1000: 0.0004,
            gb_month: 0.023,
        }
    }
}

/// Topic names as metric label values, bounded.
#[derive(Debug, Default)]
pub(crate) struct TopicLabels {
    names: Mutex<HashMap<TopicId, Arc<str>>>,
}

impl TopicLabels {
    /// Remembers a topic's name for labels (first `MAX_LABELS` topics only).
    pub(crate) fn learn(&self, id: TopicId, name: &str) {
        let mut names = self.names.lock().expect("topic labels lock poisoned");
        if names.len() < MAX_LABELS && !names.contains_key(&id) {
            names.insert(id, Arc::from(name));
        }
    }

    /// The label value of a topic.
    pub(crate) fn label(&self, id: TopicId) -> String {
        let names = self.names.lock().expect("topic labels lock poisoned");
        names.get(&id).map_or_else(|| "_other".to_owned(), |n| n.to_string())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CostLabels {
    topic: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    group: String,
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// Counters and histograms of the write and read paths.
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    records_produced: Family<TopicLabel, Counter>,
    bytes_produced: Family<TopicLabel, Counter>,
    records_consumed: Family<TopicLabel, Counter>,
    bytes_consumed: Family<TopicLabel, Counter>,
    cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    stored_bytes: Family<TopicLabel, Gauge>,
    storage_cost: Family<TopicLabel, Gauge<f64, AtomicU64>>,
    group_lag: Family<LagLabels, Gauge>,
    lag_series: Arc<std::sync::atomic::AtomicUsize>,
    prices: Prices,
    admission_rejections: Counter,
    segments_sealed: Family<ReasonLabel, Counter>,
    segment_bytes: Histogram,
    uploads: Family<OutcomeLabel, Counter>,
    upload_seconds: Histogram,
    commits: Family<OutcomeLabel, Counter>,
    commit_seconds: Histogram,
    ack_seconds: Histogram,
    corrupt_chunks: Counter,
    reads_waiting: Gauge,
    unacked_bytes: Gauge,
    chunk_reads: Family<SourceLabel, Counter>,
    replay_bytes: Counter,
}

/// Counts admitted bytes as unacknowledged while it lives.
pub(crate) struct AdmittedBytes(Gauge, i64);

impl Drop for AdmittedBytes {
    fn drop(&mut self) {
        self.0.dec_by(self.1);
    }
}

/// Counts a read as waiting at the high watermark while it lives.
pub(crate) struct WaitingRead(Gauge);

impl Drop for WaitingRead {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl AgentMetrics {
    /// Creates the metrics and registers them under `silt_`.
    pub fn new(registry: &mut Registry, prices: Prices) -> Self {
        let latency = || Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let m = Self {
            records_produced: Family::default(),
            bytes_produced: Family::default(),
            records_consumed: Family::default(),
            bytes_consumed: Family::default(),
            cost: Family::default(),
            stored_bytes: Family::default(),
            storage_cost: Family::default(),
            group_lag: Family::default(),
            lag_series: Arc::default(),
            prices,
            admission_rejections: Counter::default(),
            segments_sealed: Family::default(),
            segment_bytes: Histogram::new(exponential_buckets(1024.0, 4.0, 10)),
            uploads: Family::default(),
            upload_seconds: latency(),
            commits: Family::default(),
            commit_seconds: latency(),
            ack_seconds: latency(),
            corrupt_chunks: Counter::default(),
            reads_waiting: Gauge::default(),
            unacked_bytes: Gauge::default(),
            chunk_reads: Family::default(),
            replay_bytes: Counter::default(),
        };
        let r = registry;
        r.register(
            "silt_object_store_cost_dollars",
            "Estimated object-store request cost by topic and kind (put, get), at the configured prices",
            m.cost.clone(),
        );
        r.register(
            "silt_topic_stored_bytes",
            "Segment bytes this agent committed, by topic (before compaction and retention)",
            m.stored_bytes.clone(),
        );
        r.register(
            "silt_topic_storage_cost_dollars_per_month",
            "Estimated monthly storage cost of the bytes in silt_topic_stored_bytes",
            m.storage_cost.clone(),
        );
        r.register(
            "silt_consumer_group_lag_records",
            "High watermark minus committed offset, summed over a topic's partitions, at the group's last commit",
            m.group_lag.clone(),
        );
        r.register(
            "silt_produced_records",
            "Records acknowledged to producers",
            m.records_produced.clone(),
        );
        r.register(
            "silt_produced_bytes",
            "Record bytes acknowledged to producers",
            m.bytes_produced.clone(),
        );
        r.register(
            "silt_consumed_records",
            "Records returned to consumers",
            m.records_consumed.clone(),
        );
        r.register(
            "silt_consumed_bytes",
            "Record bytes returned to consumers",
            m.bytes_consumed.clone(),
        );
        r.register(
            "silt_admission_rejections",
            "Produce requests refused because the unacknowledged-bytes bound was hit",
            m.admission_rejections.clone(),
        );
        r.register(
            "silt_segments_sealed",
            "Segments sealed, by reason",
            m.segments_sealed.clone(),
        );
        r.register(
            "silt_segment_size_bytes",
            "Size of sealed segments",
            m.segment_bytes.clone(),
        );
        r.register("silt_segment_uploads", "Segment uploads, by outcome", m.uploads.clone());
        r.register(
            "silt_segment_upload_seconds",
            "Segment upload latency",
            m.upload_seconds.clone(),
        );
        r.register("silt_segment_commits", "Segment commits, by outcome", m.commits.clone());
        r.register(
            "silt_segment_commit_seconds",
            "Segment commit latency",
            m.commit_seconds.clone(),
        );
        r.register(
            "silt_produce_ack_seconds",
            "Time from admission to acknowledgement",
            m.ack_seconds.clone(),
        );
        r.register(
            "silt_corrupt_chunks",
            "Chunks that failed their checksum on read",
            m.corrupt_chunks.clone(),
        );
        r.register(
            "silt_chunk_reads",
            "Chunks read, by source: cache, tail_fetch (whole segment fetched and cached), replay (ranged GET), readahead",
            m.chunk_reads.clone(),
        );
        r.register(
            "silt_replay_bytes",
            "Bytes fetched by replay reads and their read-ahead",
            m.replay_bytes.clone(),
        );
        r.register(
            "silt_unacked_bytes",
            "Bytes admitted but not yet acknowledged",
            m.unacked_bytes.clone(),
        );
        r.register(
            "silt_reads_waiting",
            "Reads long-polling at the high watermark",
            m.reads_waiting.clone(),
        );
        m
    }

    pub(crate) fn produced(&self, topic: &str, records: u64, bytes: u64, ack: Duration) {
        let label = TopicLabel {
            topic: topic.to_owned(),
        };
        self.records_produced.get_or_create(&label).inc_by(records);
        self.bytes_produced.get_or_create(&label).inc_by(bytes);
        self.ack_seconds.observe(ack.as_secs_f64());
    }

    pub(crate) fn consumed(&self, topic: &str, records: u64, bytes: u64) {
        let label = TopicLabel {
            topic: topic.to_owned(),
        };
        self.records_consumed.get_or_create(&label).inc_by(records);
        self.bytes_consumed.get_or_create(&label).inc_by(bytes);
    }

    /// Attributes a committed segment's PUT to its topics by byte share and
    /// counts their stored bytes.
    pub(crate) fn segment_committed(&self, labels: &TopicLabels, commit: &SegmentCommit, outcomes: &[ChunkOutcome]) {
        let put = self.prices.put_per_1000 / 1000.0;
        // The whole PUT is shared out by chunk bytes (framing overhead included pro rata).
        let total: u64 = commit.chunks.iter().map(|c| c.byte_len).sum();
        for (chunk, outcome) in commit.chunks.iter().zip(outcomes) {
            if !matches!(outcome, ChunkOutcome::Committed { .. }) {
                continue;
            }
            let topic = labels.label(chunk.topic);
            let share = chunk.byte_len as f64 / total.max(1) as f64;
            self.cost
                .get_or_create(&CostLabels {
                    topic: topic.clone(),
                    kind: "put",
                })
                .inc_by(put * share);
            let label = TopicLabel { topic };
            let stored = self.stored_bytes.get_or_create(&label);
            stored.inc_by(i64::try_from(chunk.byte_len).unwrap_or(i64::MAX));
            self.storage_cost
                .get_or_create(&label)
                .set(stored.get() as f64 / 1e9 * self.prices.gb_month);
        }
    }

    /// Attributes one object-store GET to a topic.
    pub(crate) fn object_get(&self, topic: &str) {
        self.cost
            .get_or_create(&CostLabels {
                topic: topic.to_owned(),
                kind: "get",
            })
            .inc_by(self.prices.get_per_1000 / 1000.0);
    }

    /// Records a group's lag on one topic.
    pub(crate) fn group_lag(&self, group: &str, topic: &str, lag: u64) {
        let labels = LagLabels {
            group: group.to_owned(),
            topic: topic.to_owned(),
        };
        // Bounded: group × topic pairs beyond the cap are not tracked.
        let known = self.group_lag.get(&labels).is_some();
        if known || self.lag_series.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < MAX_LABELS {
            self.group_lag
                .get_or_create(&labels)
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
    }

    pub(crate) fn rejected(&self) {
        self.admission_rejections.inc();
    }

    pub(crate) fn segment_sealed(&self, reason: SealReason, bytes: usize) {
        self.segments_sealed
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
        self.segment_bytes.observe(bytes as f64);
    }

    pub(crate) fn uploaded(&self, _bytes: u64, took: Duration) {
        self.uploads.get_or_create(&OutcomeLabel { outcome: "ok" }).inc();
        self.upload_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn upload_failed(&self) {
        self.uploads.get_or_create(&OutcomeLabel { outcome: "error" }).inc();
    }

    pub(crate) fn committed(&self, took: Duration) {
        self.commits.get_or_create(&OutcomeLabel { outcome: "ok" }).inc();
        self.commit_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn commit_failed(&self) {
        self.commits.get_or_create(&OutcomeLabel { outcome: "error" }).inc();
    }

    pub(crate) fn admitted(&self, bytes: usize) -> AdmittedBytes {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.unacked_bytes.inc_by(bytes);
        AdmittedBytes(self.unacked_bytes.clone(), bytes)
    }

    pub(crate) fn read_waiting(&self) -> WaitingRead {
        self.reads_waiting.inc();
        WaitingRead(self.reads_waiting.clone())
    }

    pub(crate) fn chunk_read(&self, source: &'static str) {
        self.chunk_reads.get_or_create(&SourceLabel { source }).inc();
    }

    pub(crate) fn replay_bytes(&self, bytes: u64) {
        self.replay_bytes.inc_by(bytes);
    }

    pub(crate) fn corrupt_chunk(&self) {
        self.corrupt_chunks.inc();
    }
}
