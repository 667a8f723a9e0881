//! Errors of the metadata layer.

use silt_types::{Offset, PartitionId, TopicName};

/// Everything that can go wrong in a metadata operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    /// The named topic does not exist.
    #[error("unknown topic name={0}")]
    UnknownTopic(String),
    /// A topic of that name already exists.
    #[error("topic already exists name={0}")]
    TopicExists(TopicName),
    /// The topic has no such partition.
    #[error("unknown partition topic={topic} partition={partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: PartitionId,
    },
    /// The offset was removed by retention.
    #[error("offset below log start offset={offset} log_start_offset={log_start}")]
    OffsetBelowStart {
        /// The offset asked for.
        offset: Offset,
        /// The current log start.
        log_start: Offset,
    },
    /// The request is malformed in a way the caller can fix.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The backend is unreachable or failed; retrying may succeed.
    #[error("metadata backend unavailable: {0}")]
    Unavailable(String),
    /// The operation may or may not have been applied.
    #[error("metadata outcome unknown: {0}")]
    Indeterminate(String),
    /// Stored metadata is inconsistent; a bug or corruption.
    #[error("metadata corrupt: {0}")]
    Corrupt(String),
    /// A group offset commit named a generation that is not the group's current one.
    #[error("stale group generation group={group} current={current} given={given}")]
    StaleGeneration {
        /// The group.
        group: String,
        /// The group's current generation.
        current: i32,
        /// The generation the commit named.
        given: i32,
    },
    /// A group offset commit would move an offset backwards without `reset`.
    #[error("group offset regression topic={topic} partition={partition} committed={committed} given={given}")]
    OffsetRegression {
        /// The topic.
        topic: String,
        /// The partition.
        partition: PartitionId,
        /// The offset stored now.
        committed: Offset,
        /// The lower offset given.
        given: Offset,
    },
    /// No producer with this id exists.
    #[error("unknown producer producer_id={0}")]
    UnknownProducer(i64),
}
