//! Silt's metadata layer: the catalog and sequencer.
//!
//! It owns topics (with stable ids), offset assignment at segment commit, the
//! offset→chunk index, log start offsets and high watermarks, the
//! timestamp index and consumer-group offsets. One trait, [`Metadata`], has
//! several backends; every backend must pass [`conformance`] unchanged
//! (one line, [`metadata_conformance_tests!`], turns it into tests).
//! [`SqliteMetadata`] is the single-file backend the agent uses today.
//!
//! May depend on `silt-types` and database drivers; never on storage,
//! caching or HTTP.

mod error;
mod model;
mod sqlite;

pub mod conformance;

pub use error::MetaError;
pub use model::*;
pub use sqlite::SqliteMetadata;

use silt_types::{GroupName, Offset, PartitionId, TopicId, TopicName};

/// Result of metadata operations.
pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// The metadata operations every backend provides.
///
/// All methods are atomic: on error nothing changed, except where
/// [`MetaError::Indeterminate`] says the outcome is unknown.
#[async_trait::async_trait]
pub trait Metadata: Send + Sync + std::fmt::Debug + 'static {
    /// Creates a topic with a fresh id. Fails with `TopicExists` if the name is taken.
    async fn create_topic(&self, name: &TopicName, partitions: u32, config: TopicConfig) -> Result<TopicInfo>;

    /// Deletes a topic and its index entries; its id is never reused.
    async fn delete_topic(&self, name: &TopicName) -> Result<()>;

    /// Looks a topic up by name. Fails with `UnknownTopic`.
    async fn topic(&self, name: &TopicName) -> Result<TopicInfo>;

    /// All topics, ordered by name.
    async fn list_topics(&self) -> Result<Vec<TopicInfo>>;

    /// Changes a topic's configuration.
    async fn update_topic_config(&self, name: &TopicName, config: TopicConfig) -> Result<TopicInfo>;

    /// Commits all chunks of one uploaded segment atomically, assigning each
    /// chunk its base offset from its partition's next offset.
    ///
    /// Chunks of topics that no longer exist (or no longer have that
    /// partition) are not committed and come back as
    /// [`ChunkOutcome::TopicGone`]; all other chunks commit together.
    /// Returns one outcome per input chunk, in input order.
    async fn commit_segment(&self, segment: SegmentCommit) -> Result<Vec<ChunkOutcome>>;

    /// The chunk that holds `offset`, or `None` if `offset` is at or past the
    /// high watermark. Fails with `OffsetBelowStart` below the log start.
    async fn lookup(&self, topic: TopicId, partition: PartitionId, offset: Offset) -> Result<Option<ChunkLocation>>;

    /// Log start offset and high watermark of one partition.
    async fn partition_state(&self, topic: TopicId, partition: PartitionId) -> Result<PartitionState>;

    /// Log start offsets and high watermarks of all partitions of a topic, by partition.
    async fn partition_states(&self, topic: TopicId) -> Result<Vec<PartitionState>>;

    /// The first chunk (at or above the log start) whose running maximum
    /// timestamp is `>= timestamp_ms`; the first offset with a timestamp
    /// `>= timestamp_ms` lies inside it. `None` if there is no such chunk.
    async fn lookup_timestamp(
        &self,
        topic: TopicId,
        partition: PartitionId,
        timestamp_ms: i64,
    ) -> Result<Option<ChunkLocation>>;

    /// Stores committed offsets of a consumer group; all or nothing.
    async fn commit_group_offsets(&self, group: &GroupName, offsets: &[GroupOffset]) -> Result<()>;

    /// All committed offsets of a consumer group, ordered by topic and partition.
    async fn group_offsets(&self, group: &GroupName) -> Result<Vec<GroupOffset>>;
}
