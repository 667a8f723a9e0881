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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Batches of idempotent producers inside the chunk (usually none); the
    /// chunk commits only if every one of them is accepted.
    pub producers: Vec<ProducerAppend>,
}

/// A whole uploaded segment, committed atomically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentCommit {
    /// Object key the segment was uploaded under.
    pub object_key: String,
    /// Total size of the object in bytes.
    pub object_size: u64,
    /// The chunks, at most one per (topic, partition).
    pub chunks: Vec<ChunkCommit>,
}

/// What happened to one chunk at commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkOutcome {
    /// Committed; its records have offsets `base_offset..base_offset + record_count`.
    Committed {
        /// Offset of the chunk's first record.
        base_offset: Offset,
    },
    /// The topic or partition no longer exists; nothing was written for it.
    TopicGone,
    /// A producer batch in the chunk was not accepted (the first such
    /// verdict); nothing was written for this chunk.
    ProducerRejected(ProducerCheck),
}

/// Where the records of one committed chunk live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// How the object stores the chunk: an L0 segment chunk, or one row
    /// group of an L1 Parquet file (then `byte_offset..+byte_len` is the row
    /// group's column chunks).
    #[serde(default)]
    pub format: ChunkFormat,
    /// Parquet only: length of the file's footer (metadata plus its 8-byte
    /// tail), which ends the object; 0 for segments.
    #[serde(default)]
    pub footer_len: u64,
}

/// The encoding of an indexed chunk's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkFormat {
    /// A chunk of an L0 segment (`silt-segment`'s format).
    #[default]
    Segment,
    /// A row group of a per-partition L1 Parquet file.
    Parquet,
}

impl ChunkFormat {
    /// The number stored in the index.
    pub fn code(self) -> i64 {
        match self {
            Self::Segment => 0,
            Self::Parquet => 1,
        }
    }

    /// The format a stored number names, if any.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Segment),
            1 => Some(Self::Parquet),
            _ => None,
        }
    }
}

/// One new index entry of a compacted object: a contiguous offset range
/// and the bytes that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// First offset.
    pub base_offset: Offset,
    /// Last offset (inclusive).
    pub last_offset: Offset,
    /// Byte offset of the entry's bytes in the object.
    pub byte_offset: u64,
    /// Byte length of the entry's bytes.
    pub byte_len: u64,
    /// Largest record timestamp in the entry.
    pub max_timestamp_ms: i64,
}

/// Compaction's index swap: the chunks `old` (contiguous, exactly as the
/// compactor listed them) are replaced by `entries`, all in one new object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkReplacement {
    /// Topic.
    pub topic: TopicId,
    /// Partition.
    pub partition: PartitionId,
    /// The index entries being replaced, in offset order, without gaps.
    pub old: Vec<ChunkLocation>,
    /// Object holding the new entries.
    pub object_key: String,
    /// Size of that object.
    pub object_size: u64,
    /// Format of the new object.
    pub format: ChunkFormat,
    /// Parquet footer length (see [`ChunkLocation::footer_len`]).
    pub footer_len: u64,
    /// The new entries, in offset order, covering exactly the old range.
    pub entries: Vec<IndexEntry>,
}

/// What a [`ChunkReplacement`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplaceOutcome {
    /// The index now points at the new object; the old entries are gone.
    Replaced,
    /// The index no longer holds exactly the old entries (another
    /// compaction, retention or a deleted topic got there first); nothing changed.
    Conflict {
        /// What differed.
        reason: String,
    },
}

/// Bounds of a partition's readable log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Partition number.
    pub partition: PartitionId,
    /// First offset still readable.
    pub log_start_offset: Offset,
    /// Offset the next committed record will get; reads stop before it.
    pub high_watermark: Offset,
}

/// A consumer group's committed position in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffset {
    /// Topic name.
    pub topic: TopicName,
    /// Partition.
    pub partition: PartitionId,
    /// Next offset the group will read.
    pub offset: Offset,
}

/// A consumer group's committed positions and current generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// Current generation; 0 if the group never joined.
    pub generation: i32,
    /// Committed offsets, ordered by topic and partition.
    pub offsets: Vec<GroupOffset>,
}

/// A consumer group offset commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCommit {
    /// If set, the commit is refused unless it equals the group's generation.
    pub generation: Option<i32>,
    /// Allow moving offsets backwards (an explicit seek/reset).
    pub reset: bool,
    /// The offsets to store.
    pub offsets: Vec<GroupOffset>,
}

/// An idempotent producer's identity: Kafka's producer id and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProducerIdentity {
    /// Producer id, `>= 1000`, shared by every listener.
    pub producer_id: i64,
    /// Epoch; a higher epoch fences the older ones.
    pub producer_epoch: i16,
}

/// One batch of an idempotent producer inside a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProducerAppend {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch the batch was written with.
    pub producer_epoch: i16,
    /// Sequence number of the batch's first record (`>= 0`).
    pub base_sequence: i32,
    /// Number of records in the batch (`>= 1`).
    pub record_count: u32,
    /// Position of the batch's first record within its chunk.
    pub offset_in_chunk: u32,
}

/// Verdict on a producer batch under Kafka's idempotence rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProducerCheck {
    /// The batch is the next one expected: commit it.
    Accept,
    /// The batch was already committed; its records start at `base_offset`.
    Duplicate {
        /// Offset of the original batch's first record.
        base_offset: Offset,
    },
    /// The epoch is not the producer's current one.
    Fenced {
        /// The producer's current epoch.
        current_epoch: i16,
    },
    /// The sequence is not the next expected one (a gap or an old, forgotten batch).
    OutOfOrder {
        /// The sequence the next batch must start with.
        expected_sequence: i32,
    },
    /// No producer with that id exists.
    UnknownProducer,
}

/// An agent announcing itself to the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRegistration {
    /// Stable node id of the agent.
    pub node_id: String,
    /// Address clients reach it at (host:port or URL).
    pub address: String,
    /// Availability zone, if known.
    pub zone: Option<String>,
    /// The registration expires this many milliseconds from now unless renewed.
    pub lease_ms: i64,
}

/// A live agent as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Stable node id.
    pub node_id: String,
    /// Address clients reach it at.
    pub address: String,
    /// Availability zone, if known.
    pub zone: Option<String>,
    /// When the current registration began (renewals keep it).
    pub registered_ms: i64,
    /// When the registration lapses unless renewed.
    pub expires_ms: i64,
}
