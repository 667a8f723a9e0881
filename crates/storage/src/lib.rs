//! Object storage for Silt: the only place that builds object stores from a
//! URL, the one object-key layout, and the segment-level put/get helpers
//! (conditional create, ranged reads) the write and read paths use.
//!
//! May depend on `silt-types` and `object_store`; knows nothing about
//! segments' contents, metadata or HTTP.

mod error;
mod layout;
mod store;

pub use error::StorageError;
pub use layout::Layout;
pub use store::{ObjectStoreConfig, SegmentStore, build_object_store};

/// Result of storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
