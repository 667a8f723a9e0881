//! Object-store request and byte counters.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

/// Requests by operation and outcome, bytes by direction: the inputs of
/// requests-per-GiB and cost estimates.
#[derive(Debug, Clone, Default)]
pub struct StorageMetrics {
    requests: Family<RequestLabels, Counter>,
    bytes: Family<DirectionLabel, Counter>,
}

impl StorageMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "silt_object_store_requests",
            "Object store requests by operation and outcome",
            m.requests.clone(),
        );
        registry.register(
            "silt_object_store_bytes",
            "Object store payload bytes by direction",
            m.bytes.clone(),
        );
        m
    }

    pub(crate) fn request(&self, operation: &'static str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.requests.get_or_create(&RequestLabels { operation, outcome }).inc();
    }

    pub(crate) fn bytes_written(&self, n: u64) {
        self.bytes
            .get_or_create(&DirectionLabel { direction: "written" })
            .inc_by(n);
    }

    pub(crate) fn bytes_read(&self, n: u64) {
        self.bytes
            .get_or_create(&DirectionLabel { direction: "read" })
            .inc_by(n);
    }
}
