//! Settings of the write and read paths.

use std::time::Duration;

use silt_segment::Compression;

/// Settings of one agent; defaults follow the design brief.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Seal the open segment once it holds this many bytes.
    pub segment_max_bytes: usize,
    /// Seal the open segment once its oldest record waited this long.
    pub flush_interval: Duration,
    /// Bound on bytes accepted but not yet acknowledged (admission).
    pub max_unacked_bytes: usize,
    /// How long a produce waits for admission before answering 503.
    pub admission_wait: Duration,
    /// Segments uploading at once.
    pub max_uploads_in_flight: usize,
    /// Compression codec of record batches.
    pub compression: Compression,
    /// Cap on a read's long-poll wait.
    pub max_wait: Duration,
    /// How long a topic lookup is trusted before asking the catalog again.
    pub topic_cache_ttl: Duration,
    /// Entries of the offset→chunk lookup cache.
    pub location_cache_entries: usize,
    /// A read starting more than this many records behind the high watermark
    /// is a replay: it bypasses the tail cache and uses the replay budget.
    pub replay_lag_records: u64,
    /// Ranged GETs replays may have in flight at once (all replays of the agent).
    pub replay_concurrency: usize,
    /// Bandwidth replays may take from the object store, bytes/s (0 = unlimited).
    pub replay_bytes_per_sec: u64,
    /// Chunks a replay fetches ahead of its reader.
    pub readahead_chunks: usize,
    /// Bytes of chunks fetched ahead, for all replays together.
    pub readahead_bytes: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            segment_max_bytes: 8 << 20,
            flush_interval: Duration::from_millis(100),
            max_unacked_bytes: 256 << 20,
            admission_wait: Duration::from_secs(5),
            max_uploads_in_flight: 4,
            compression: Compression::DEFAULT,
            max_wait: Duration::from_secs(60),
            topic_cache_ttl: Duration::from_secs(5),
            location_cache_entries: 100_000,
            replay_lag_records: 10_000,
            replay_concurrency: 8,
            replay_bytes_per_sec: 0,
            readahead_chunks: 4,
            readahead_bytes: 64 << 20,
        }
    }
}
