//! Errors of the agent's write and read paths.

use std::time::Duration;

use silt_meta::MetaError;
use silt_storage::StorageError;
use silt_types::{Offset, PartitionId};

/// Everything a produce or read can fail with, in the words a client needs.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The request is malformed; the client must fix it.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No topic of that name.
    #[error("unknown topic name={0}")]
    UnknownTopic(String),
    /// The topic has no such partition.
    #[error("unknown partition topic={topic} partition={partition}")]
    UnknownPartition {
        /// Topic name.
        topic: String,
        /// Partition asked for.
        partition: PartitionId,
    },
    /// A topic of that name exists already.
    #[error("topic already exists name={0}")]
    TopicExists(String),
    /// The offset was removed by retention.
    #[error("offset below log start offset={offset} log_start_offset={log_start}")]
    BelowLogStart {
        /// Offset asked for.
        offset: Offset,
        /// Current log start.
        log_start: Offset,
    },
    /// The offset is past the high watermark.
    #[error("offset past high watermark offset={offset} high_watermark={high_watermark}")]
    PastHighWatermark {
        /// Offset asked for.
        offset: Offset,
        /// Current high watermark.
        high_watermark: Offset,
    },
    /// The unacknowledged-bytes bound is reached; retry after the given time.
    #[error("too many bytes awaiting acknowledgement, retry later")]
    Overloaded {
        /// Suggested wait before retrying.
        retry_after: Duration,
    },
    /// The agent is draining for shutdown.
    #[error("agent is shutting down")]
    ShuttingDown,
    /// Upload failed; nothing was committed, the records are not visible.
    #[error("segment upload failed, records not written: {0}")]
    UploadFailed(String),
    /// The commit failed definitely; the records are not visible.
    #[error("segment commit failed, records not written: {0}")]
    CommitFailed(String),
    /// The commit's outcome is unknown; the records may or may not be visible.
    #[error("segment commit outcome unknown: {0}")]
    CommitIndeterminate(String),
    /// A group commit came from an older generation of the group.
    #[error("stale group generation group={group} current={current} given={given}")]
    StaleGeneration {
        /// Group.
        group: String,
        /// The group's generation.
        current: i32,
        /// The generation the commit carried.
        given: i32,
    },
    /// A group commit would move an offset backwards without `reset`.
    #[error(
        "committed offset would move backwards topic={topic} partition={partition} committed={committed} given={given}"
    )]
    OffsetRegression {
        /// Topic.
        topic: String,
        /// Partition.
        partition: PartitionId,
        /// Stored offset.
        committed: Offset,
        /// Offset given.
        given: Offset,
    },
    /// No producer with that id.
    #[error("unknown producer id={0}")]
    UnknownProducer(i64),
    /// A newer epoch of this producer exists.
    #[error("producer fenced by a newer epoch current_epoch={current_epoch}")]
    ProducerFenced {
        /// The producer's current epoch.
        current_epoch: i16,
    },
    /// The request's sequence is not the next expected one.
    #[error("out of order sequence expected_sequence={expected}")]
    OutOfOrderSequence {
        /// The sequence the next request must carry.
        expected: i32,
    },
    /// A concurrent duplicate of an idempotent batch shared this request's
    /// chunk; nothing of this request was written, retry it.
    #[error("commit conflicted with a concurrent duplicate batch, records not written; retry")]
    CommitConflict,
    /// Stored bytes failed their checksum on every copy.
    #[error("stored data corrupt: {0}")]
    Corrupt(String),
    /// The object store failed on a read.
    #[error(transparent)]
    Storage(StorageError),
    /// The metadata service failed.
    #[error("metadata unavailable: {0}")]
    MetaUnavailable(String),
    /// One failure of a whole segment, shared by every request it carried.
    #[error(transparent)]
    Shared(std::sync::Arc<AgentError>),
    /// A bug or broken invariant.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<MetaError> for AgentError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::UnknownTopic(name) => Self::UnknownTopic(name),
            MetaError::TopicExists(name) => Self::TopicExists(name.to_string()),
            MetaError::UnknownPartition { topic, partition } => Self::UnknownPartition { topic, partition },
            MetaError::OffsetBelowStart { offset, log_start } => Self::BelowLogStart { offset, log_start },
            MetaError::Invalid(msg) => Self::Invalid(msg),
            MetaError::Unavailable(msg) => Self::MetaUnavailable(msg),
            MetaError::Indeterminate(msg) => Self::MetaUnavailable(msg),
            MetaError::Corrupt(msg) => Self::Internal(format!("metadata corrupt: {msg}")),
            MetaError::StaleGeneration { group, current, given } => Self::StaleGeneration { group, current, given },
            MetaError::OffsetRegression {
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
            MetaError::UnknownProducer(id) => Self::UnknownProducer(id),
        }
    }
}

impl From<StorageError> for AgentError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}
