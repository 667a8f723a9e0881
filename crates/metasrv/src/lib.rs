//! Silt's metadata service as a network service: `silt meta` serves any
//! [`silt_meta::Metadata`] backend (SQLite, PostgreSQL) to agents over a
//! versioned internal HTTP API, and [`RemoteMetadata`] is the client agents
//! use — itself a `Metadata`, so the agent cannot tell local from remote.
//!
//! The service also publishes high-watermark changes: agents long-poll
//! [`wire::WATCH_PATH`] so a consumer waiting on agent B wakes as soon as
//! agent A commits, without tight polling.
//!
//! May depend on `silt-meta`, `silt-types` and `silt-http` (for the hardened
//! server); never on the agent or storage.

mod client;
mod feed;
mod server;
pub mod wire;

pub use client::{RemoteMetadata, watch_high_watermarks};
pub use feed::HwmFeed;
pub use server::{MetaServiceState, router};
