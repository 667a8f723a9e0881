//! The agent's Prometheus metrics.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::write::SealReason;

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
    records_produced: Counter,
    bytes_produced: Counter,
    records_consumed: Counter,
    bytes_consumed: Counter,
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
    pub fn new(registry: &mut Registry) -> Self {
        let latency = || Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let m = Self {
            records_produced: Counter::default(),
            bytes_produced: Counter::default(),
            records_consumed: Counter::default(),
            bytes_consumed: Counter::default(),
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

    pub(crate) fn produced(&self, records: u64, bytes: u64, ack: Duration) {
        self.records_produced.inc_by(records);
        self.bytes_produced.inc_by(bytes);
        self.ack_seconds.observe(ack.as_secs_f64());
    }

    pub(crate) fn consumed(&self, records: u64, bytes: u64) {
        self.records_consumed.inc_by(records);
        self.bytes_consumed.inc_by(bytes);
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
