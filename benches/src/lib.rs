//! Silt's benchmark tools: the `silt-bench` load generator (see `main.rs`) and
//! the criterion micro-benchmarks under `benches/`.
//!
//! The library holds what the binary, the micro-benchmarks and the unit tests
//! share: the produce-body builder (so the JSON micro-benchmark parses exactly
//! what the load generator sends), latency summaries, a Prometheus text
//! parser for before/after scrapes, and a dependency-free SVG bar chart writer.

pub mod body;
pub mod hist;
pub mod prom;
pub mod svg;
