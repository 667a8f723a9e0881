//! Data the metadata layer stores and returns.

use serde::{Deserialize, Serialize};
use silt_types::{Offset, PartitionId, TopicId, TopicName};

/// Per-topic settings, changeable after creation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// Records older than this many milliseconds may be removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<i64>,
    /// A partition's log may be trimmed to about this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<i64>,
}

/// A topic as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Stable id, fresh on every creation.
    pub id: TopicId,
    /// Current name.
    pub name: TopicName,
    /// Number of partitions, numbered `0..partitions`.
    pub partitions: u32,
    /// Settings.
    pub config: TopicConfig,
    /// Creation time, milliseconds since the epoch.
    pub created_ms: i64,
}

/// One chunk of an uploaded segment, to be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkCommit {
    /// Topic the chunk belongs to.
    pub topic: TopicId,
    /// Partition the chunk belongs to.
    pub partition: PartitionId,
    /// Number of records (offsets) in the chunk; at least 1.
    pub record_count: u32,
    /// Byte offset of the chunk within the segment object.
    pub byte_offset: u64,
    /// Byte length of the chunk within the segment object.
    pub byte_len: u64,
    /// Largest record timestamp in the chunk.
    pub max_timestamp_ms: i64,
}

/// A whole uploaded segment, committed atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentCommit {
    /// Object key the segment was uploaded under.
    pub object_key: String,
    /// Total size of the object in bytes.
    pub object_size: u64,
    /// The chunks, at most one per (topic, partition).
    pub chunks: Vec<ChunkCommit>,
}

/// What happened to one chunk at commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Committed; its records have offsets `base_offset..base_offset + record_count`.
    Committed {
        /// Offset of the chunk's first record.
        base_offset: Offset,
    },
    /// The topic or partition no longer exists; nothing was written for it.
    TopicGone,
}

/// Where the records of one committed chunk live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkLocation {
    /// Topic.
    pub topic: TopicId,
    /// Partition.
    pub partition: PartitionId,
    /// First offset in the chunk.
    pub base_offset: Offset,
    /// Last offset in the chunk (inclusive).
    pub last_offset: Offset,
    /// Object holding the chunk.
    pub object_key: String,
    /// Total size of that object.
    pub object_size: u64,
    /// Byte offset of the chunk in the object.
    pub byte_offset: u64,
    /// Byte length of the chunk.
    pub byte_len: u64,
    /// Largest timestamp in the chunk.
    pub max_timestamp_ms: i64,
}

/// Bounds of a partition's readable log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// Partition number.
    pub partition: PartitionId,
    /// First offset still readable.
    pub log_start_offset: Offset,
    /// Offset the next committed record will get; reads stop before it.
    pub high_watermark: Offset,
}

/// A consumer group's committed position in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    /// Topic name.
    pub topic: TopicName,
    /// Partition.
    pub partition: PartitionId,
    /// Next offset the group will read.
    pub offset: Offset,
}
