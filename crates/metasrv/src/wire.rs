//! The internal API, version 1: one call endpoint taking a tagged request,
//! and one long-poll endpoint for high-watermark changes.

use serde::{Deserialize, Serialize};
use silt_meta::{
    AgentRegistration, ChunkReplacement, GroupCommit, MetaError, ProducerAppend, SegmentCommit, TopicConfig,
};
use silt_types::{GroupName, Offset, PartitionId, TopicId, TopicName};

/// Path of the call endpoint.
pub const CALL_PATH: &str = "/internal/v1/meta";
/// Path of the high-watermark long-poll endpoint.
pub const WATCH_PATH: &str = "/internal/v1/watch";

/// One metadata operation, mirroring [`silt_meta::Metadata`] method for method.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[allow(missing_docs)]
pub enum MetaCall {
    CreateTopic {
        name: TopicName,
        partitions: u32,
        config: TopicConfig,
    },
    DeleteTopic {
        name: TopicName,
    },
    Topic {
        name: TopicName,
    },
    ListTopics,
    UpdateTopicConfig {
        name: TopicName,
        config: TopicConfig,
    },
    CommitSegment {
        segment: SegmentCommit,
    },
    Lookup {
        topic: TopicId,
        partition: PartitionId,
        offset: Offset,
    },
    PartitionState {
        topic: TopicId,
        partition: PartitionId,
    },
    PartitionStates {
        topic: TopicId,
    },
    LookupTimestamp {
        topic: TopicId,
        partition: PartitionId,
        timestamp_ms: i64,
    },
    CommitGroupOffsets {
        group: GroupName,
        commit: GroupCommit,
    },
    GroupOffsets {
        group: GroupName,
    },
    JoinGroup {
        group: GroupName,
    },
    InitProducer {
        existing: Option<i64>,
    },
    CheckProducer {
        topic: TopicId,
        partition: PartitionId,
        append: ProducerAppend,
    },
    RegisterAgent {
        agent: AgentRegistration,
    },
    ListAgents,
    TryAcquireLease {
        name: String,
        holder: String,
        ttl_ms: i64,
    },
    ReleaseLease {
        name: String,
        holder: String,
    },
    ListChunks {
        topic: TopicId,
        partition: PartitionId,
        from: Offset,
        limit: usize,
    },
    ReplaceChunks {
        replacement: ChunkReplacement,
    },
    AdvanceLogStart {
        topic: TopicId,
        partition: PartitionId,
        new_start: Offset,
    },
    UnreferencedObjects {
        keys: Vec<String>,
    },
}

impl MetaCall {
    /// Whether repeating the call after an unknown outcome is harmless.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Self::Topic { .. }
                | Self::ListTopics
                | Self::Lookup { .. }
                | Self::PartitionState { .. }
                | Self::PartitionStates { .. }
                | Self::LookupTimestamp { .. }
                | Self::GroupOffsets { .. }
                | Self::CheckProducer { .. }
                | Self::ListAgents
                | Self::RegisterAgent { .. }
                | Self::ListChunks { .. }
                | Self::UnreferencedObjects { .. }
                | Self::AdvanceLogStart { .. }
        )
    }

    /// Short name for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreateTopic { .. } => "create_topic",
            Self::DeleteTopic { .. } => "delete_topic",
            Self::Topic { .. } => "topic",
            Self::ListTopics => "list_topics",
            Self::UpdateTopicConfig { .. } => "update_topic_config",
            Self::CommitSegment { .. } => "commit_segment",
            Self::Lookup { .. } => "lookup",
            Self::PartitionState { .. } => "partition_state",
            Self::PartitionStates { .. } => "partition_states",
            Self::LookupTimestamp { .. } => "lookup_timestamp",
            Self::CommitGroupOffsets { .. } => "commit_group_offsets",
            Self::GroupOffsets { .. } => "group_offsets",
            Self::JoinGroup { .. } => "join_group",
            Self::InitProducer { .. } => "init_producer",
            Self::CheckProducer { .. } => "check_producer",
            Self::RegisterAgent { .. } => "register_agent",
            Self::ListAgents => "list_agents",
            Self::TryAcquireLease { .. } => "try_acquire_lease",
            Self::ReleaseLease { .. } => "release_lease",
            Self::ListChunks { .. } => "list_chunks",
            Self::ReplaceChunks { .. } => "replace_chunks",
            Self::AdvanceLogStart { .. } => "advance_log_start",
            Self::UnreferencedObjects { .. } => "unreferenced_objects",
        }
    }
}

/// A failed call's body: the backend's error, kind for kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum WireError {
    UnknownTopic {
        name: String,
    },
    TopicExists {
        name: String,
    },
    UnknownPartition {
        topic: String,
        partition: PartitionId,
    },
    OffsetBelowStart {
        offset: Offset,
        log_start: Offset,
    },
    Invalid {
        message: String,
    },
    Unavailable {
        message: String,
    },
    Indeterminate {
        message: String,
    },
    Corrupt {
        message: String,
    },
    StaleGeneration {
        group: String,
        current: i32,
        given: i32,
    },
    OffsetRegression {
        topic: String,
        partition: PartitionId,
        committed: Offset,
        given: Offset,
    },
    UnknownProducer {
        producer_id: i64,
    },
}

impl From<&MetaError> for WireError {
    fn from(e: &MetaError) -> Self {
        match e {
            MetaError::UnknownTopic(name) => Self::UnknownTopic { name: name.clone() },
            MetaError::TopicExists(name) => Self::TopicExists { name: name.to_string() },
            MetaError::UnknownPartition { topic, partition } => Self::UnknownPartition {
                topic: topic.clone(),
                partition: *partition,
            },
            MetaError::OffsetBelowStart { offset, log_start } => Self::OffsetBelowStart {
                offset: *offset,
                log_start: *log_start,
            },
            MetaError::Invalid(m) => Self::Invalid { message: m.clone() },
            MetaError::Unavailable(m) => Self::Unavailable { message: m.clone() },
            MetaError::Indeterminate(m) => Self::Indeterminate { message: m.clone() },
            MetaError::Corrupt(m) => Self::Corrupt { message: m.clone() },
            MetaError::StaleGeneration { group, current, given } => Self::StaleGeneration {
                group: group.clone(),
                current: *current,
                given: *given,
            },
            MetaError::OffsetRegression {
                topic,
                partition,
                committed,
                given,
            } => Self::OffsetRegression {
                topic: topic.clone(),
                partition: *partition,
                committed: *committed,
                given: *given,
            },
            MetaError::UnknownProducer(id) => Self::UnknownProducer { producer_id: *id },
        }
    }
}

impl From<WireError> for MetaError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::UnknownTopic { name } => Self::UnknownTopic(name),
            WireError::TopicExists { name } => match TopicName::new(&name) {
                Ok(name) => Self::TopicExists(name),
                Err(_) => Self::Corrupt(format!("service named an invalid topic name={name}")),
            },
            WireError::UnknownPartition { topic, partition } => Self::UnknownPartition { topic, partition },
            WireError::OffsetBelowStart { offset, log_start } => Self::OffsetBelowStart { offset, log_start },
            WireError::Invalid { message } => Self::Invalid(message),
            WireError::Unavailable { message } => Self::Unavailable(message),
            WireError::Indeterminate { message } => Self::Indeterminate(message),
            WireError::Corrupt { message } => Self::Corrupt(message),
            WireError::StaleGeneration { group, current, given } => Self::StaleGeneration { group, current, given },
            WireError::OffsetRegression {
                topic,
                partition,
                committed,
                given,
            } => Self::OffsetRegression {
                topic,
                partition,
                committed,
                given,
            },
            WireError::UnknownProducer { producer_id } => Self::UnknownProducer(producer_id),
        }
    }
}

/// Error body of the call endpoint.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: WireError,
}

/// One partition's new high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HwmChange {
    /// Topic id.
    pub topic: TopicId,
    /// Partition.
    pub partition: PartitionId,
    /// New high watermark.
    pub high_watermark: Offset,
}

/// Answer of the watch endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchReply {
    /// Identity of this service process; a new one means "start over".
    pub instance: u64,
    /// Version to pass as `since` next time.
    pub version: u64,
    /// Partitions whose high watermark moved after `since`.
    pub changes: Vec<HwmChange>,
}
