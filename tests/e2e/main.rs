//! End-to-end tests: the real `silt` binary, real HTTP, real signals.

mod api;
mod cache_faults;
mod compaction;
mod concurrency;
mod durability;
mod faults;
mod fleet;
mod limits;
mod metrics;
mod ops;
mod replay;
mod streaming;
