//! End-to-end tests: the real `silt` binary, real HTTP, real signals.

mod api;
mod compaction;
mod concurrency;
mod durability;
mod faults;
mod fleet;
mod limits;
mod replay;
mod streaming;
