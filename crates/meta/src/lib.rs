//! Silt's metadata layer: the catalog and sequencer.
//!
//! What this crate holds:
//! - [`Metadata`], the one trait for everything the metadata service
//!   stores: topics (with stable ids), offset assignment at segment commit,
//!   the offset→chunk index, log start offsets and high watermarks, the
//!   timestamp index, consumer groups (offsets and generation fencing),
//!   idempotent-producer state (Kafka's producer id/epoch/sequence rules),
//!   the agent registry and named leases;
//! - the data types it speaks ([`model`](crate::TopicInfo) types and [`MetaError`]);
//! - two backends: [`SqliteMetadata`] (one file, the embedded default) and
//!   [`PostgresMetadata`] (a fleet's shared database, with group commit);
//! - [`conformance`], the suite every backend must pass unchanged (one
//!   line, [`metadata_conformance_tests!`], turns it into tests).
//!
//! May depend on `silt-types`, database drivers and rustls (TLS to
//! PostgreSQL); never on storage, caching or HTTP.

mod error;
mod model;
mod pgtls;
mod postgres;
mod rules;
mod sqlite;

pub mod conformance;

pub use error::MetaError;
pub use model::*;
pub use postgres::PostgresMetadata;
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
    /// [`ChunkOutcome::TopicGone`]; chunks with a producer batch that is not
    /// accepted come back as [`ChunkOutcome::ProducerRejected`] and are not
    /// committed either; all other chunks commit together, and the producer
    /// state of their batches is updated in the same transaction.
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

    /// Stores committed offsets of a consumer group, all or nothing: fails
    /// with `StaleGeneration` if `commit.generation` is set and not current,
    /// and with `OffsetRegression` if an offset moves backwards without `reset`.
    async fn commit_group_offsets(&self, group: &GroupName, commit: &GroupCommit) -> Result<()>;

    /// A consumer group's generation (0 if never joined) and committed offsets, ordered by topic and partition.
    async fn group_offsets(&self, group: &GroupName) -> Result<GroupState>;

    /// Bumps and returns the group's generation (the first join returns 1), fencing older members.
    async fn join_group(&self, group: &GroupName) -> Result<i32>;

    /// `None`: allocates a fresh producer id (`>= 1000`) at epoch 0; `Some(id)`:
    /// bumps that producer's epoch, fencing the old one (`UnknownProducer` if absent).
    async fn init_producer(&self, existing: Option<i64>) -> Result<ProducerIdentity>;

    /// Read-only pre-check of a producer batch against committed producer state, as a commit would judge it now.
    async fn check_producer(
        &self,
        topic: TopicId,
        partition: PartitionId,
        append: &ProducerAppend,
    ) -> Result<ProducerCheck>;

    /// Registers or renews an agent; its registration lapses at now + `lease_ms` unless renewed.
    async fn register_agent(&self, agent: &AgentRegistration) -> Result<()>;

    /// Live agents (registration not yet lapsed), ordered by node id.
    async fn list_agents(&self) -> Result<Vec<AgentInfo>>;

    /// Takes or renews the named lease for `ttl_ms`; true if it was free,
    /// expired, or already held by `holder`, false if someone else holds it.
    async fn try_acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool>;

    /// Gives the lease up if `holder` holds it; otherwise does nothing.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// Index entries of one partition in offset order: the one holding
    /// `from` (or, below the log start, the first readable one) and those
    /// after it, at most `limit`.
    async fn list_chunks(
        &self,
        topic: TopicId,
        partition: PartitionId,
        from: Offset,
        limit: usize,
    ) -> Result<Vec<ChunkLocation>>;

    /// Compaction's atomic swap: if the partition's entries in the old range
    /// are still exactly `replacement.old` (and all at or above the log
    /// start), removes them and inserts `replacement.entries`; otherwise
    /// returns [`ReplaceOutcome::Conflict`] and changes nothing. Offsets, the
    /// high watermark and timestamp lookups are unchanged by a swap.
    async fn replace_chunks(&self, replacement: ChunkReplacement) -> Result<ReplaceOutcome>;

    /// Moves the partition's log start offset forward to `new_start` (never
    /// backwards: a lower value changes nothing) and drops the index entries
    /// that end below it. Fails with `Invalid` past the high watermark.
    /// Returns the log start offset now in force.
    async fn advance_log_start(&self, topic: TopicId, partition: PartitionId, new_start: Offset) -> Result<Offset>;

    /// Those of `keys` that no index entry references, in input order:
    /// what garbage collection may delete (once old enough).
    async fn unreferenced_objects(&self, keys: Vec<String>) -> Result<Vec<String>>;
}
