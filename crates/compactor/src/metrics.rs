//! The compactor's Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Counters of compaction, retention and garbage collection.
#[derive(Debug, Clone, Default)]
pub struct CompactorMetrics {
    runs: Counter,
    chunks: Counter,
    records: Counter,
    bytes_written: Counter,
    conflicts: Counter,
    failures: Counter,
    retention_advances: Counter,
    objects_deleted: Counter,
}

impl CompactorMetrics {
    /// Creates the metrics and registers them under `silt_compaction_`/`silt_gc_`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry;
        r.register(
            "silt_compaction_runs",
            "L1 files swapped into the index",
            m.runs.clone(),
        );
        r.register(
            "silt_compaction_chunks",
            "L0 chunks replaced by L1 files",
            m.chunks.clone(),
        );
        r.register(
            "silt_compaction_records",
            "Records moved to L1 files",
            m.records.clone(),
        );
        r.register(
            "silt_compaction_written_bytes",
            "Bytes of L1 files written",
            m.bytes_written.clone(),
        );
        r.register(
            "silt_compaction_conflicts",
            "Index swaps refused because the range changed",
            m.conflicts.clone(),
        );
        r.register(
            "silt_compaction_failures",
            "Partition maintenance attempts that failed",
            m.failures.clone(),
        );
        r.register(
            "silt_retention_advances",
            "Log start offsets moved by retention",
            m.retention_advances.clone(),
        );
        r.register(
            "silt_gc_deleted_objects",
            "Unreferenced objects deleted by garbage collection",
            m.objects_deleted.clone(),
        );
        m
    }

    pub(crate) fn written(&self, bytes: u64) {
        self.bytes_written.inc_by(bytes);
    }

    pub(crate) fn compacted(&self, chunks: u64, records: u64) {
        self.runs.inc();
        self.chunks.inc_by(chunks);
        self.records.inc_by(records);
    }

    pub(crate) fn conflict(&self) {
        self.conflicts.inc();
    }

    pub(crate) fn failure(&self) {
        self.failures.inc();
    }

    pub(crate) fn retention_advance(&self) {
        self.retention_advances.inc();
    }

    pub(crate) fn deleted(&self) {
        self.objects_deleted.inc();
    }
}
