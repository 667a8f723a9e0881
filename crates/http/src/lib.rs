//! Silt's public HTTP API (design §7): routes, request and response types,
//! the one error→status mapping, and a hardened server.
//!
//! May depend on `silt-agent` (and the types it exposes); holds no state of
//! its own beyond request limits and metrics.

mod api;
mod error;
mod metrics;
mod server;
mod stream;
pub mod wire;

pub use api::{ApiLimits, AppState, router};
pub use error::ApiError;
pub use metrics::HttpMetrics;
pub use server::{ServerConfig, serve};
