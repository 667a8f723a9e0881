//! Object storage for Silt: the only place that builds object stores from a
//! URL, the one object-key layout, and the segment-level put/get helpers
//! (conditional create, ranged reads) the write and read paths use.
//!
//! Every operation goes through one [`RetryPolicy`] (backoff with jitter,
//! per-attempt timeouts, no retries of what cannot succeed) and is counted in
//! [`StorageMetrics`]; [`faults::FaultyStore`] injects S3's failure modes for
//! tests.
//!
//! May depend on `silt-types` and `object_store`; knows nothing about
//! segments' contents, metadata or HTTP.

mod error;
pub mod faults;
mod layout;
mod metrics;
mod retry;
mod store;

pub use error::StorageError;
pub use layout::Layout;
pub use metrics::StorageMetrics;
pub use retry::RetryPolicy;
pub use store::{ObjectStoreConfig, SegmentStore, build_object_store};

/// Result of storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
