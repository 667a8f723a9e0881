//! The SQLite backend: one database file, WAL journal, `synchronous=FULL`.
//!
//! rusqlite is blocking, so every operation runs on tokio's blocking pool
//! with the one connection behind a `std::sync::Mutex`; the mutex is taken
//! and released inside the blocking closure and never held across an await.
//! A single connection serialises all operations of this process, and every
//! write runs in a `BEGIN IMMEDIATE` transaction, so another process opening
//! the same file waits on SQLite's lock (bounded by the busy timeout) instead
//! of corrupting the sequencer.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use silt_types::{Clock, GroupName, IdGen, MAX_PARTITIONS, Offset, PartitionId, TopicId, TopicName};

use crate::rules::{
    FIRST_PRODUCER_ID, PartitionProducer, bumped, check_replaced, evaluate_chunk, expiry, running_maxima, to_i16,
    to_i32, to_i64, to_u32, to_u64, validate_append, validate_lease, validate_registration, validate_replacement,
    validate_segment,
};
use crate::{
    AgentInfo, AgentRegistration, ChunkCommit, ChunkFormat, ChunkLocation, ChunkOutcome, ChunkReplacement, GroupCommit,
    GroupOffset, GroupState, MetaError, Metadata, PartitionState, ProducerAppend, ProducerCheck, ProducerIdentity,
    ReplaceOutcome, Result, SegmentCommit, TopicConfig, TopicInfo,
};

/// How long a statement waits for another process's lock before failing
/// with [`MetaError::Unavailable`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations; step `i` takes the database from version `i` to
/// `i + 1`. Append only: never edit a step that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r"
    CREATE TABLE topics (
        id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
        name        TEXT    NOT NULL UNIQUE,
        partitions  INTEGER NOT NULL CHECK (partitions >= 1),
        config_json TEXT    NOT NULL,
        created_ms  INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE partitions (
        topic_id         BLOB    NOT NULL REFERENCES topics (id),
        partition_id     INTEGER NOT NULL CHECK (partition_id >= 0),
        next_offset      INTEGER NOT NULL CHECK (next_offset >= 0),
        log_start_offset INTEGER NOT NULL CHECK (log_start_offset >= 0),
        -- Running maximum of all committed chunk timestamps; NULL while empty.
        max_timestamp_ms INTEGER,
        PRIMARY KEY (topic_id, partition_id)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE chunks (
        topic_id                 BLOB    NOT NULL,
        partition_id             INTEGER NOT NULL,
        base_offset              INTEGER NOT NULL CHECK (base_offset >= 0),
        last_offset              INTEGER NOT NULL CHECK (last_offset >= base_offset),
        object_key               TEXT    NOT NULL CHECK (object_key <> ''),
        object_size              INTEGER NOT NULL CHECK (object_size >= 0),
        byte_offset              INTEGER NOT NULL CHECK (byte_offset >= 0),
        byte_len                 INTEGER NOT NULL CHECK (byte_len >= 0),
        max_timestamp_ms         INTEGER NOT NULL,
        running_max_timestamp_ms INTEGER NOT NULL CHECK (running_max_timestamp_ms >= max_timestamp_ms),
        PRIMARY KEY (topic_id, partition_id, base_offset),
        FOREIGN KEY (topic_id, partition_id) REFERENCES partitions (topic_id, partition_id)
    ) STRICT, WITHOUT ROWID;

    -- running_max_timestamp_ms never decreases with base_offset, so the
    -- first entry of this index at or above T is the first chunk by offset.
    CREATE INDEX chunks_by_running_max
        ON chunks (topic_id, partition_id, running_max_timestamp_ms, base_offset);

    CREATE TABLE group_offsets (
        group_name       TEXT    NOT NULL,
        topic_id         BLOB    NOT NULL,
        partition_id     INTEGER NOT NULL,
        committed_offset INTEGER NOT NULL CHECK (committed_offset >= 0),
        PRIMARY KEY (group_name, topic_id, partition_id),
        FOREIGN KEY (topic_id, partition_id) REFERENCES partitions (topic_id, partition_id)
    ) STRICT, WITHOUT ROWID;

    CREATE INDEX group_offsets_by_topic ON group_offsets (topic_id);
    ",
    // 2: consumer group generations, idempotent producers, agents, leases.
    r"
    CREATE TABLE consumer_groups (
        group_name TEXT    NOT NULL PRIMARY KEY,
        generation INTEGER NOT NULL CHECK (generation >= 0)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE counters (
        name  TEXT    NOT NULL PRIMARY KEY,
        value INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    INSERT INTO counters (name, value) VALUES ('next_producer_id', 1000);

    CREATE TABLE producers (
        producer_id INTEGER NOT NULL PRIMARY KEY,
        epoch       INTEGER NOT NULL CHECK (epoch >= 0)
    ) STRICT;

    CREATE TABLE producer_state (
        producer_id   INTEGER NOT NULL REFERENCES producers (producer_id),
        topic_id      BLOB    NOT NULL,
        partition_id  INTEGER NOT NULL,
        epoch         INTEGER NOT NULL CHECK (epoch >= 0),
        last_sequence INTEGER NOT NULL CHECK (last_sequence >= 0),
        window_json   TEXT    NOT NULL,
        PRIMARY KEY (producer_id, topic_id, partition_id),
        FOREIGN KEY (topic_id, partition_id) REFERENCES partitions (topic_id, partition_id)
    ) STRICT, WITHOUT ROWID;

    CREATE INDEX producer_state_by_topic ON producer_state (topic_id);

    CREATE TABLE agents (
        node_id       TEXT    NOT NULL PRIMARY KEY,
        address       TEXT    NOT NULL,
        zone          TEXT,
        registered_ms INTEGER NOT NULL,
        expires_ms    INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE leases (
        name       TEXT    NOT NULL PRIMARY KEY,
        holder     TEXT    NOT NULL,
        expires_ms INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    ",
    // 3: compaction: chunk formats (L0 segment chunk or L1 Parquet row
    // group) and lookups by object for garbage collection.
    r"
    ALTER TABLE chunks ADD COLUMN format INTEGER NOT NULL DEFAULT 0 CHECK (format IN (0, 1));
    ALTER TABLE chunks ADD COLUMN footer_len INTEGER NOT NULL DEFAULT 0 CHECK (footer_len >= 0);
    CREATE INDEX chunks_by_object ON chunks (object_key);
    ",
];

/// [`Metadata`] stored in a single SQLite database.
#[derive(Clone)]
pub struct SqliteMetadata {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGen>,
    location: String,
}

impl std::fmt::Debug for SqliteMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteMetadata")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

impl SqliteMetadata {
    /// Schema version this build writes; databases of a newer version are refused.
    pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

    /// Opens (creating if missing) the database file at `path` and migrates it
    /// to [`Self::SCHEMA_VERSION`]. The parent directory must exist.
    ///
    /// Fails with [`MetaError::Invalid`] if the file was written by a newer
    /// schema version, and with [`MetaError::Unavailable`] if it cannot be
    /// opened or put into WAL mode.
    pub fn open(path: &Path, clock: Arc<dyn Clock>, ids: Arc<dyn IdGen>) -> Result<Self> {
        let conn = Connection::open(path).map_err(|e| unavailable(&format!("open {}", path.display()), &e))?;
        Self::init(conn, true, path.display().to_string(), clock, ids)
    }

    /// A private in-memory database, for tests; gone when dropped.
    pub fn open_in_memory(clock: Arc<dyn Clock>, ids: Arc<dyn IdGen>) -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(|e| unavailable("open in-memory database", &e))?;
        Self::init(conn, false, ":memory:".to_owned(), clock, ids)
    }

    fn init(
        mut conn: Connection,
        file: bool,
        location: String,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGen>,
    ) -> Result<Self> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
        if file {
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .map_err(map_err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(MetaError::Unavailable(format!(
                    "could not enable WAL journal on {location} (journal_mode={mode})"
                )));
            }
        }
        // FULL: a commit is fsynced before it is acknowledged, so an
        // acknowledged produce survives SIGKILL and power loss.
        conn.pragma_update(None, "synchronous", "FULL").map_err(map_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(map_err)?;
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .map_err(map_err)?;
        if sync != 2 {
            return Err(MetaError::Unavailable(format!(
                "could not set synchronous=FULL on {location} (synchronous={sync})"
            )));
        }
        migrate(&mut conn)?;
        tracing::info!(location = %location, schema_version = Self::SCHEMA_VERSION, "metadata database open");
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                clock,
                ids,
                location,
            }),
        })
    }

    /// Runs `op` with the connection on the blocking pool.
    async fn run<T, F>(&self, what: &'static str, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let joined = tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half-applied
            // write: transactions roll back when dropped during unwinding.
            let mut conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            if !conn.is_autocommit() {
                // Defensive: never run on top of a stale open transaction.
                conn.execute_batch("ROLLBACK").map_err(map_err)?;
            }
            op(&mut conn)
        })
        .await;
        match joined {
            Ok(result) => {
                if let Err(e) = &result {
                    tracing::debug!(op = what, error = %e, "metadata operation failed");
                }
                result
            }
            Err(e) if e.is_panic() => Err(MetaError::Indeterminate(format!("{what}: metadata worker panicked"))),
            Err(e) => Err(MetaError::Unavailable(format!(
                "{what}: metadata worker cancelled: {e}"
            ))),
        }
    }
}

/// Brings the schema up to [`SqliteMetadata::SCHEMA_VERSION`], one step per
/// transaction; safe against another process migrating at the same time.
fn migrate(conn: &mut Connection) -> Result<()> {
    let latest = SqliteMetadata::SCHEMA_VERSION;
    loop {
        let tx = immediate(conn)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(map_err)?;
        let version =
            u32::try_from(version).map_err(|_| MetaError::Corrupt(format!("negative schema version {version}")))?;
        if version > latest {
            return Err(MetaError::Invalid(format!(
                "metadata database has schema version {version}, newer than the {latest} this build supports; \
                 refusing to open it (upgrade silt, or point it at another data directory)"
            )));
        }
        let Some(step) = MIGRATIONS.get(version as usize) else {
            return Ok(());
        };
        tx.execute_batch(step).map_err(map_err)?;
        tx.pragma_update(None, "user_version", version + 1).map_err(map_err)?;
        commit(tx)?;
        tracing::info!(from = version, to = version + 1, "migrated metadata schema");
    }
}

// ---------------------------------------------------------------------------
// Error mapping and conversions.

/// Maps a rusqlite error: contention and I/O are retryable, bad stored data is corruption.
fn map_err(e: rusqlite::Error) -> MetaError {
    use rusqlite::Error as E;
    match &e {
        E::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                MetaError::Unavailable(format!("database busy: {e}"))
            }
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => MetaError::Corrupt(e.to_string()),
            ErrorCode::ConstraintViolation => MetaError::Corrupt(format!("constraint violated: {e}")),
            ErrorCode::TooBig => MetaError::Invalid(e.to_string()),
            _ => MetaError::Unavailable(e.to_string()),
        },
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::Utf8Error(..)
        | E::InvalidColumnIndex(..)
        | E::InvalidColumnName(..) => MetaError::Corrupt(format!("undecodable row: {e}")),
        E::ToSqlConversionFailure(_) => MetaError::Invalid(e.to_string()),
        _ => MetaError::Unavailable(e.to_string()),
    }
}

fn unavailable(what: &str, e: &rusqlite::Error) -> MetaError {
    MetaError::Unavailable(format!("{what}: {e}"))
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)
}

fn deferred(conn: &mut Connection) -> Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(map_err)
}

/// Commits; a failure other than lock contention may have reached the disk.
fn commit(tx: Transaction<'_>) -> Result<()> {
    tx.commit().map_err(|e| {
        let busy = matches!(
            e.sqlite_error_code(),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        );
        if busy {
            // SQLite rolled the transaction back; nothing was written.
            map_err(e)
        } else {
            MetaError::Indeterminate(format!("commit failed: {e}"))
        }
    })
}

fn decode_id(bytes: &[u8]) -> Result<TopicId> {
    let arr: [u8; 16] = bytes
        .try_into()
        .map_err(|_| MetaError::Corrupt(format!("stored topic id has {} bytes, not 16", bytes.len())))?;
    Ok(TopicId::from_bytes(arr))
}

// ---------------------------------------------------------------------------
// Rows.

const TOPIC_COLUMNS: &str = "id, name, partitions, config_json, created_ms";

struct RawTopic {
    id: Vec<u8>,
    name: String,
    partitions: i64,
    config_json: String,
    created_ms: i64,
}

impl RawTopic {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            name: row.get(1)?,
            partitions: row.get(2)?,
            config_json: row.get(3)?,
            created_ms: row.get(4)?,
        })
    }

    fn decode(self) -> Result<TopicInfo> {
        let name = TopicName::new(&self.name)
            .map_err(|e| MetaError::Corrupt(format!("stored topic name {:?}: {e}", self.name)))?;
        let config: TopicConfig = serde_json::from_str(&self.config_json)
            .map_err(|e| MetaError::Corrupt(format!("stored config of topic {name}: {e}")))?;
        Ok(TopicInfo {
            id: decode_id(&self.id)?,
            partitions: to_u32(self.partitions, "partition count")?,
            name,
            config,
            created_ms: self.created_ms,
        })
    }
}

const CHUNK_COLUMNS: &str =
    "base_offset, last_offset, object_key, object_size, byte_offset, byte_len, max_timestamp_ms, format, footer_len";

struct RawChunk {
    base_offset: i64,
    last_offset: i64,
    object_key: String,
    object_size: i64,
    byte_offset: i64,
    byte_len: i64,
    max_timestamp_ms: i64,
    format: i64,
    footer_len: i64,
}

impl RawChunk {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            base_offset: row.get(0)?,
            last_offset: row.get(1)?,
            object_key: row.get(2)?,
            object_size: row.get(3)?,
            byte_offset: row.get(4)?,
            byte_len: row.get(5)?,
            max_timestamp_ms: row.get(6)?,
            format: row.get(7)?,
            footer_len: row.get(8)?,
        })
    }

    fn decode(self, topic: TopicId, partition: PartitionId) -> Result<ChunkLocation> {
        Ok(ChunkLocation {
            topic,
            partition,
            base_offset: to_u64(self.base_offset, "base offset")?,
            last_offset: to_u64(self.last_offset, "last offset")?,
            object_key: self.object_key,
            object_size: to_u64(self.object_size, "object size")?,
            byte_offset: to_u64(self.byte_offset, "byte offset")?,
            byte_len: to_u64(self.byte_len, "byte length")?,
            max_timestamp_ms: self.max_timestamp_ms,
            format: ChunkFormat::from_code(self.format)
                .ok_or_else(|| MetaError::Corrupt(format!("unknown chunk format {}", self.format)))?,
            footer_len: to_u64(self.footer_len, "footer length")?,
        })
    }
}

/// A partition's bounds as stored.
struct Bounds {
    log_start: Offset,
    next: Offset,
}

fn topic_by_name(tx: &Transaction<'_>, name: &TopicName) -> Result<Option<TopicInfo>> {
    let raw = tx
        .prepare_cached(&format!("SELECT {TOPIC_COLUMNS} FROM topics WHERE name = ?1"))
        .and_then(|mut s| s.query_row(params![name.as_str()], RawTopic::read).optional())
        .map_err(map_err)?;
    raw.map(RawTopic::decode).transpose()
}

fn require_topic(tx: &Transaction<'_>, name: &TopicName) -> Result<TopicInfo> {
    topic_by_name(tx, name)?.ok_or_else(|| MetaError::UnknownTopic(name.to_string()))
}

/// Partition count of the topic with this id, if it exists.
fn partition_count(tx: &Transaction<'_>, topic: TopicId) -> Result<Option<u32>> {
    let count: Option<i64> = tx
        .prepare_cached("SELECT partitions FROM topics WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row(params![topic.to_bytes().as_slice()], |r| r.get(0))
                .optional()
        })
        .map_err(map_err)?;
    count.map(|c| to_u32(c, "partition count")).transpose()
}

/// Checks that the topic and partition exist; `UnknownTopic` / `UnknownPartition` otherwise.
fn require_partition(tx: &Transaction<'_>, topic: TopicId, partition: PartitionId) -> Result<()> {
    let count = partition_count(tx, topic)?.ok_or_else(|| MetaError::UnknownTopic(topic.to_string()))?;
    if partition >= count {
        return Err(MetaError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        });
    }
    Ok(())
}

fn bounds(tx: &Transaction<'_>, topic: TopicId, partition: PartitionId) -> Result<Bounds> {
    require_partition(tx, topic, partition)?;
    let row: Option<(i64, i64)> = tx
        .prepare_cached(
            "SELECT log_start_offset, next_offset FROM partitions WHERE topic_id = ?1 AND partition_id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![topic.to_bytes().as_slice(), partition], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
        .map_err(map_err)?;
    let (log_start, next) =
        row.ok_or_else(|| MetaError::Corrupt(format!("topic {topic} has no row for partition {partition}")))?;
    let bounds = Bounds {
        log_start: to_u64(log_start, "log start offset")?,
        next: to_u64(next, "next offset")?,
    };
    if bounds.log_start > bounds.next {
        return Err(MetaError::Corrupt(format!(
            "topic {topic} partition {partition}: log start {} above next offset {}",
            bounds.log_start, bounds.next
        )));
    }
    Ok(bounds)
}

/// The chunk with the greatest base offset `<= offset`.
fn chunk_at_or_before(
    tx: &Transaction<'_>,
    topic: TopicId,
    partition: PartitionId,
    offset: Offset,
) -> Result<Option<ChunkLocation>> {
    let raw = tx
        .prepare_cached(&format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks WHERE topic_id = ?1 AND partition_id = ?2 AND base_offset <= ?3 \
             ORDER BY base_offset DESC LIMIT 1"
        ))
        .and_then(|mut s| {
            s.query_row(
                params![
                    topic.to_bytes().as_slice(),
                    partition,
                    to_i64(offset, "offset").unwrap_or(i64::MAX)
                ],
                RawChunk::read,
            )
            .optional()
        })
        .map_err(map_err)?;
    raw.map(|r| r.decode(topic, partition)).transpose()
}

fn chunk_at_base(
    tx: &Transaction<'_>,
    topic: TopicId,
    partition: PartitionId,
    base: i64,
) -> Result<Option<ChunkLocation>> {
    let raw = tx
        .prepare_cached(&format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks WHERE topic_id = ?1 AND partition_id = ?2 AND base_offset = ?3"
        ))
        .and_then(|mut s| {
            s.query_row(params![topic.to_bytes().as_slice(), partition, base], RawChunk::read)
                .optional()
        })
        .map_err(map_err)?;
    raw.map(|r| r.decode(topic, partition)).transpose()
}

// ---------------------------------------------------------------------------
// Operations (blocking; run inside `SqliteMetadata::run`).

fn create_topic_tx(conn: &mut Connection, topic: TopicInfo) -> Result<TopicInfo> {
    let config_json =
        serde_json::to_string(&topic.config).map_err(|e| MetaError::Invalid(format!("topic config: {e}")))?;
    let tx = immediate(conn)?;
    if topic_by_name(&tx, &topic.name)?.is_some() {
        return Err(MetaError::TopicExists(topic.name));
    }
    let id = topic.id.to_bytes();
    tx.prepare_cached("INSERT INTO topics (id, name, partitions, config_json, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)")
        .and_then(|mut s| {
            s.execute(params![
                id.as_slice(),
                topic.name.as_str(),
                topic.partitions,
                config_json,
                topic.created_ms
            ])
        })
        .map_err(map_err)?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO partitions (topic_id, partition_id, next_offset, log_start_offset, max_timestamp_ms) \
                 VALUES (?1, ?2, 0, 0, NULL)",
            )
            .map_err(map_err)?;
        for p in 0..topic.partitions {
            insert.execute(params![id.as_slice(), p]).map_err(map_err)?;
        }
    }
    commit(tx)?;
    Ok(topic)
}

fn delete_topic_tx(conn: &mut Connection, name: &TopicName) -> Result<TopicId> {
    let tx = immediate(conn)?;
    let topic = require_topic(&tx, name)?;
    let id = topic.id.to_bytes();
    for sql in [
        "DELETE FROM group_offsets WHERE topic_id = ?1",
        "DELETE FROM producer_state WHERE topic_id = ?1",
        "DELETE FROM chunks WHERE topic_id = ?1",
        "DELETE FROM partitions WHERE topic_id = ?1",
        "DELETE FROM topics WHERE id = ?1",
    ] {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute(params![id.as_slice()]))
            .map_err(map_err)?;
    }
    commit(tx)?;
    Ok(topic.id)
}

fn update_config_tx(conn: &mut Connection, name: &TopicName, config: TopicConfig) -> Result<TopicInfo> {
    let config_json = serde_json::to_string(&config).map_err(|e| MetaError::Invalid(format!("topic config: {e}")))?;
    let tx = immediate(conn)?;
    let mut topic = require_topic(&tx, name)?;
    tx.prepare_cached("UPDATE topics SET config_json = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![topic.id.to_bytes().as_slice(), config_json]))
        .map_err(map_err)?;
    commit(tx)?;
    topic.config = config;
    Ok(topic)
}

fn commit_segment_tx(conn: &mut Connection, segment: &SegmentCommit, order: &[usize]) -> Result<Vec<ChunkOutcome>> {
    let tx = immediate(conn)?;
    let mut outcomes = vec![ChunkOutcome::TopicGone; segment.chunks.len()];
    {
        let mut select = tx
            .prepare_cached(
                "SELECT next_offset, max_timestamp_ms FROM partitions WHERE topic_id = ?1 AND partition_id = ?2",
            )
            .map_err(map_err)?;
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO chunks (topic_id, partition_id, base_offset, last_offset, object_key, object_size, \
                 byte_offset, byte_len, max_timestamp_ms, running_max_timestamp_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(map_err)?;
        let mut update = tx
            .prepare_cached(
                "UPDATE partitions SET next_offset = ?3, max_timestamp_ms = ?4 WHERE topic_id = ?1 AND partition_id = ?2",
            )
            .map_err(map_err)?;
        let object_size = to_i64(segment.object_size, "object size")?;
        for &i in order {
            let c: &ChunkCommit = &segment.chunks[i];
            let id = c.topic.to_bytes();
            let row: Option<(i64, Option<i64>)> = select
                .query_row(params![id.as_slice(), c.partition], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(map_err)?;
            let Some((next, running_max)) = row else {
                // Topic deleted (or never had this partition): skip, others commit.
                continue;
            };
            if next < 0 {
                return Err(MetaError::Corrupt(format!(
                    "topic {} partition {}: negative next offset",
                    c.topic, c.partition
                )));
            }
            let new_next = next.checked_add(i64::from(c.record_count)).ok_or_else(|| {
                MetaError::Invalid(format!(
                    "topic {} partition {}: offset space exhausted",
                    c.topic, c.partition
                ))
            })?;
            let base = to_u64(next, "next offset")?;
            let producer_updates = match producer_updates(&tx, c, base)? {
                Ok(updates) => updates,
                Err(check) => {
                    outcomes[i] = ChunkOutcome::ProducerRejected(check);
                    continue;
                }
            };
            for (producer_id, state) in &producer_updates {
                store_producer_state(&tx, *producer_id, c.topic, c.partition, state)?;
            }
            let running = running_max.map_or(c.max_timestamp_ms, |m| m.max(c.max_timestamp_ms));
            insert
                .execute(params![
                    id.as_slice(),
                    c.partition,
                    next,
                    new_next - 1,
                    segment.object_key,
                    object_size,
                    to_i64(c.byte_offset, "byte offset")?,
                    to_i64(c.byte_len, "byte length")?,
                    c.max_timestamp_ms,
                    running,
                ])
                .map_err(map_err)?;
            update
                .execute(params![id.as_slice(), c.partition, new_next, running])
                .map_err(map_err)?;
            outcomes[i] = ChunkOutcome::Committed { base_offset: base };
        }
    }
    commit(tx)?;
    Ok(outcomes)
}

/// Current epochs of the given producers (absent ones are missing from the map).
fn registered_epochs(tx: &Transaction<'_>, ids: impl IntoIterator<Item = i64>) -> Result<HashMap<i64, i16>> {
    let mut out = HashMap::new();
    let mut select = tx
        .prepare_cached("SELECT epoch FROM producers WHERE producer_id = ?1")
        .map_err(map_err)?;
    for id in ids {
        if out.contains_key(&id) {
            continue;
        }
        let epoch: Option<i64> = select
            .query_row(params![id], |r| r.get(0))
            .optional()
            .map_err(map_err)?;
        if let Some(epoch) = epoch {
            out.insert(id, to_i16(epoch, "producer epoch")?);
        }
    }
    Ok(out)
}

/// Stored per-partition state of the given producers.
fn producer_states(
    tx: &Transaction<'_>,
    topic: TopicId,
    partition: PartitionId,
    ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, PartitionProducer>> {
    let mut out = HashMap::new();
    let mut select = tx
        .prepare_cached(
            "SELECT epoch, last_sequence, window_json FROM producer_state \
             WHERE producer_id = ?1 AND topic_id = ?2 AND partition_id = ?3",
        )
        .map_err(map_err)?;
    for id in ids {
        if out.contains_key(&id) {
            continue;
        }
        let row: Option<(i64, i64, String)> = select
            .query_row(params![id, topic.to_bytes().as_slice(), partition], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(map_err)?;
        if let Some((epoch, last, window)) = row {
            out.insert(id, PartitionProducer::decode(epoch, last, &window)?);
        }
    }
    Ok(out)
}

fn store_producer_state(
    tx: &Transaction<'_>,
    producer_id: i64,
    topic: TopicId,
    partition: PartitionId,
    state: &PartitionProducer,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO producer_state (producer_id, topic_id, partition_id, epoch, last_sequence, window_json) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (producer_id, topic_id, partition_id) DO UPDATE SET \
         epoch = excluded.epoch, last_sequence = excluded.last_sequence, window_json = excluded.window_json",
    )
    .and_then(|mut s| {
        s.execute(params![
            producer_id,
            topic.to_bytes().as_slice(),
            partition,
            state.epoch,
            state.last_sequence,
            state.window_json()
        ])
    })
    .map_err(map_err)?;
    Ok(())
}

/// Judges the producer batches of a chunk whose first record gets `base`.
fn producer_updates(
    tx: &Transaction<'_>,
    c: &ChunkCommit,
    base: Offset,
) -> Result<std::result::Result<HashMap<i64, PartitionProducer>, ProducerCheck>> {
    if c.producers.is_empty() {
        return Ok(Ok(HashMap::new()));
    }
    let ids = c.producers.iter().map(|a| a.producer_id);
    let registered = registered_epochs(tx, ids.clone())?;
    let stored = producer_states(tx, c.topic, c.partition, ids)?;
    Ok(evaluate_chunk(c, base, &registered, &stored))
}

fn check_producer_tx(
    conn: &mut Connection,
    topic: TopicId,
    partition: PartitionId,
    append: &ProducerAppend,
) -> Result<ProducerCheck> {
    let tx = deferred(conn)?;
    let b = bounds(&tx, topic, partition)?;
    let probe = ChunkCommit {
        topic,
        partition,
        record_count: append.record_count.saturating_add(append.offset_in_chunk),
        byte_offset: 0,
        byte_len: 0,
        max_timestamp_ms: 0,
        producers: vec![*append],
    };
    Ok(match producer_updates(&tx, &probe, b.next)? {
        Ok(_) => ProducerCheck::Accept,
        Err(check) => check,
    })
}

fn init_producer_tx(conn: &mut Connection, existing: Option<i64>) -> Result<ProducerIdentity> {
    let tx = immediate(conn)?;
    let identity = match existing {
        None => {
            let next: i64 = tx
                .query_row("SELECT value FROM counters WHERE name = 'next_producer_id'", [], |r| {
                    r.get(0)
                })
                .map_err(map_err)?;
            let id = next.max(FIRST_PRODUCER_ID);
            tx.execute(
                "UPDATE counters SET value = ?1 WHERE name = 'next_producer_id'",
                params![id + 1],
            )
            .map_err(map_err)?;
            tx.execute("INSERT INTO producers (producer_id, epoch) VALUES (?1, 0)", params![id])
                .map_err(map_err)?;
            ProducerIdentity {
                producer_id: id,
                producer_epoch: 0,
            }
        }
        Some(id) => {
            let epoch = registered_epochs(&tx, [id])?
                .get(&id)
                .copied()
                .ok_or(MetaError::UnknownProducer(id))?;
            let identity = bumped(id, epoch)?;
            tx.execute(
                "UPDATE producers SET epoch = ?2 WHERE producer_id = ?1",
                params![id, identity.producer_epoch],
            )
            .map_err(map_err)?;
            identity
        }
    };
    commit(tx)?;
    Ok(identity)
}

fn group_generation(tx: &Transaction<'_>, group: &GroupName) -> Result<i32> {
    let g: Option<i64> = tx
        .prepare_cached("SELECT generation FROM consumer_groups WHERE group_name = ?1")
        .and_then(|mut s| s.query_row(params![group.as_str()], |r| r.get(0)).optional())
        .map_err(map_err)?;
    g.map_or(Ok(0), |g| to_i32(g, "group generation"))
}

fn join_group_tx(conn: &mut Connection, group: &GroupName) -> Result<i32> {
    let tx = immediate(conn)?;
    let next = group_generation(&tx, group)?
        .checked_add(1)
        .ok_or_else(|| MetaError::Invalid(format!("group {group}: generation exhausted")))?;
    tx.prepare_cached(
        "INSERT INTO consumer_groups (group_name, generation) VALUES (?1, ?2) \
         ON CONFLICT (group_name) DO UPDATE SET generation = excluded.generation",
    )
    .and_then(|mut s| s.execute(params![group.as_str(), next]))
    .map_err(map_err)?;
    commit(tx)?;
    Ok(next)
}

fn register_agent_tx(conn: &mut Connection, agent: &AgentRegistration, now: i64) -> Result<()> {
    let tx = immediate(conn)?;
    tx.prepare_cached(
        "INSERT INTO agents (node_id, address, zone, registered_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (node_id) DO UPDATE SET address = excluded.address, zone = excluded.zone, \
         registered_ms = CASE WHEN agents.expires_ms > ?4 THEN agents.registered_ms ELSE excluded.registered_ms END, \
         expires_ms = excluded.expires_ms",
    )
    .and_then(|mut s| {
        s.execute(params![
            agent.node_id,
            agent.address,
            agent.zone,
            now,
            expiry(now, agent.lease_ms)
        ])
    })
    .map_err(map_err)?;
    commit(tx)
}

fn list_agents_tx(conn: &mut Connection, now: i64) -> Result<Vec<AgentInfo>> {
    let tx = deferred(conn)?;
    tx.prepare_cached(
        "SELECT node_id, address, zone, registered_ms, expires_ms FROM agents WHERE expires_ms > ?1 ORDER BY node_id",
    )
    .and_then(|mut s| {
        s.query_map(params![now], |r| {
            Ok(AgentInfo {
                node_id: r.get(0)?,
                address: r.get(1)?,
                zone: r.get(2)?,
                registered_ms: r.get(3)?,
                expires_ms: r.get(4)?,
            })
        })?
        .collect()
    })
    .map_err(map_err)
}

fn try_acquire_lease_tx(conn: &mut Connection, name: &str, holder: &str, ttl_ms: i64, now: i64) -> Result<bool> {
    let tx = immediate(conn)?;
    let changed = tx
        .prepare_cached(
            "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms \
             WHERE leases.holder = excluded.holder OR leases.expires_ms <= ?4",
        )
        .and_then(|mut s| s.execute(params![name, holder, expiry(now, ttl_ms), now]))
        .map_err(map_err)?;
    commit(tx)?;
    Ok(changed == 1)
}

fn release_lease_tx(conn: &mut Connection, name: &str, holder: &str) -> Result<()> {
    let tx = immediate(conn)?;
    tx.prepare_cached("DELETE FROM leases WHERE name = ?1 AND holder = ?2")
        .and_then(|mut s| s.execute(params![name, holder]))
        .map_err(map_err)?;
    commit(tx)
}

fn lookup_tx(
    conn: &mut Connection,
    topic: TopicId,
    partition: PartitionId,
    offset: Offset,
) -> Result<Option<ChunkLocation>> {
    let tx = deferred(conn)?;
    let b = bounds(&tx, topic, partition)?;
    if offset < b.log_start {
        return Err(MetaError::OffsetBelowStart {
            offset,
            log_start: b.log_start,
        });
    }
    if offset >= b.next {
        return Ok(None);
    }
    let chunk = chunk_at_or_before(&tx, topic, partition, offset)?.ok_or_else(|| {
        MetaError::Corrupt(format!(
            "topic {topic} partition {partition}: no chunk holds offset {offset}"
        ))
    })?;
    if offset > chunk.last_offset {
        return Err(MetaError::Corrupt(format!(
            "topic {topic} partition {partition}: offset {offset} falls in a gap after chunk {}..={}",
            chunk.base_offset, chunk.last_offset
        )));
    }
    Ok(Some(chunk))
}

fn list_chunks_tx(
    conn: &mut Connection,
    topic: TopicId,
    partition: PartitionId,
    from: Offset,
    limit: usize,
) -> Result<Vec<ChunkLocation>> {
    let tx = deferred(conn)?;
    let b = bounds(&tx, topic, partition)?;
    let from = from.max(b.log_start);
    let start = chunk_at_or_before(&tx, topic, partition, from)?
        .map_or(from, |c| if c.last_offset >= from { c.base_offset } else { from });
    chunks_from(&tx, topic, partition, start, limit)
}

/// Entries with base offsets in `from..`, in order, at most `limit`.
fn chunks_from(
    tx: &Transaction<'_>,
    topic: TopicId,
    partition: PartitionId,
    from: Offset,
    limit: usize,
) -> Result<Vec<ChunkLocation>> {
    let raw: Vec<RawChunk> = tx
        .prepare_cached(&format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks WHERE topic_id = ?1 AND partition_id = ?2 AND base_offset >= ?3 \
             ORDER BY base_offset LIMIT ?4"
        ))
        .and_then(|mut s| {
            s.query_map(
                params![
                    topic.to_bytes().as_slice(),
                    partition,
                    i64::try_from(from).unwrap_or(i64::MAX),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                RawChunk::read,
            )?
            .collect()
        })
        .map_err(map_err)?;
    raw.into_iter().map(|r| r.decode(topic, partition)).collect()
}

fn replace_chunks_tx(conn: &mut Connection, r: &ChunkReplacement) -> Result<ReplaceOutcome> {
    let tx = immediate(conn)?;
    let b = bounds(&tx, r.topic, r.partition)?;
    let (first, last) = match (r.old.first(), r.old.last()) {
        (Some(f), Some(l)) => (f.base_offset, l.last_offset),
        _ => return Err(MetaError::Invalid("chunk replacement without old entries".into())),
    };
    let mut current = chunks_from(&tx, r.topic, r.partition, first, r.old.len() + 1)?;
    current.retain(|c| c.base_offset <= last);
    let outcome = check_replaced(r, b.log_start, &current);
    if outcome != ReplaceOutcome::Replaced {
        return Ok(outcome);
    }
    let id = r.topic.to_bytes();
    let (first, last) = (to_i64(first, "base offset")?, to_i64(last, "last offset")?);
    let before: Option<i64> = tx
        .prepare_cached(
            "SELECT running_max_timestamp_ms FROM chunks WHERE topic_id = ?1 AND partition_id = ?2 \
             AND base_offset < ?3 ORDER BY base_offset DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row(params![id.as_slice(), r.partition, first], |row| row.get(0))
                .optional()
        })
        .map_err(map_err)?;
    tx.prepare_cached(
        "DELETE FROM chunks WHERE topic_id = ?1 AND partition_id = ?2 AND base_offset >= ?3 AND base_offset <= ?4",
    )
    .and_then(|mut s| s.execute(params![id.as_slice(), r.partition, first, last]))
    .map_err(map_err)?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO chunks (topic_id, partition_id, base_offset, last_offset, object_key, object_size, \
                 byte_offset, byte_len, max_timestamp_ms, running_max_timestamp_ms, format, footer_len) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .map_err(map_err)?;
        for (e, running) in r.entries.iter().zip(running_maxima(r, before)) {
            insert
                .execute(params![
                    id.as_slice(),
                    r.partition,
                    to_i64(e.base_offset, "base offset")?,
                    to_i64(e.last_offset, "last offset")?,
                    r.object_key,
                    to_i64(r.object_size, "object size")?,
                    to_i64(e.byte_offset, "byte offset")?,
                    to_i64(e.byte_len, "byte length")?,
                    e.max_timestamp_ms,
                    running,
                    r.format.code(),
                    to_i64(r.footer_len, "footer length")?,
                ])
                .map_err(map_err)?;
        }
    }
    commit(tx)?;
    Ok(ReplaceOutcome::Replaced)
}

fn advance_log_start_tx(
    conn: &mut Connection,
    topic: TopicId,
    partition: PartitionId,
    new_start: Offset,
) -> Result<Offset> {
    let tx = immediate(conn)?;
    let b = bounds(&tx, topic, partition)?;
    if new_start > b.next {
        return Err(MetaError::Invalid(format!(
            "topic {topic} partition {partition}: log start {new_start} past the high watermark {}",
            b.next
        )));
    }
    if new_start <= b.log_start {
        return Ok(b.log_start);
    }
    let id = topic.to_bytes();
    let start = to_i64(new_start, "log start offset")?;
    tx.prepare_cached("UPDATE partitions SET log_start_offset = ?3 WHERE topic_id = ?1 AND partition_id = ?2")
        .and_then(|mut s| s.execute(params![id.as_slice(), partition, start]))
        .map_err(map_err)?;
    tx.prepare_cached("DELETE FROM chunks WHERE topic_id = ?1 AND partition_id = ?2 AND last_offset < ?3")
        .and_then(|mut s| s.execute(params![id.as_slice(), partition, start]))
        .map_err(map_err)?;
    commit(tx)?;
    Ok(new_start)
}

fn unreferenced_objects_tx(conn: &mut Connection, keys: &[String]) -> Result<Vec<String>> {
    let tx = deferred(conn)?;
    let mut probe = tx
        .prepare_cached("SELECT 1 FROM chunks WHERE object_key = ?1 LIMIT 1")
        .map_err(map_err)?;
    let mut out = Vec::new();
    for key in keys {
        if !probe.exists(params![key]).map_err(map_err)? {
            out.push(key.clone());
        }
    }
    Ok(out)
}

fn partition_states_tx(conn: &mut Connection, topic: TopicId) -> Result<Vec<PartitionState>> {
    let tx = deferred(conn)?;
    let count = partition_count(&tx, topic)?.ok_or_else(|| MetaError::UnknownTopic(topic.to_string()))?;
    let rows: Vec<(i64, i64, i64)> = tx
        .prepare_cached(
            "SELECT partition_id, log_start_offset, next_offset FROM partitions WHERE topic_id = ?1 ORDER BY partition_id",
        )
        .and_then(|mut s| {
            s.query_map(params![topic.to_bytes().as_slice()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(map_err)?;
    let states = rows
        .into_iter()
        .map(|(p, start, next)| {
            Ok(PartitionState {
                partition: to_u32(p, "partition")?,
                log_start_offset: to_u64(start, "log start offset")?,
                high_watermark: to_u64(next, "next offset")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let complete = states.len() == count as usize && states.iter().zip(0..count).all(|(s, p)| s.partition == p);
    if !complete {
        return Err(MetaError::Corrupt(format!(
            "topic {topic} has {count} partitions but {} partition rows",
            states.len()
        )));
    }
    Ok(states)
}

fn lookup_timestamp_tx(
    conn: &mut Connection,
    topic: TopicId,
    partition: PartitionId,
    timestamp_ms: i64,
) -> Result<Option<ChunkLocation>> {
    let tx = deferred(conn)?;
    let b = bounds(&tx, topic, partition)?;
    if b.log_start >= b.next {
        return Ok(None);
    }
    let id = topic.to_bytes();
    // The answer is the later of two O(log n) probes, because both the
    // running maximum and the offsets grow with base_offset: the first chunk
    // whose running max reaches T, and the chunk holding the log start.
    let by_time: Option<i64> = tx
        .prepare_cached(
            "SELECT base_offset FROM chunks WHERE topic_id = ?1 AND partition_id = ?2 \
             AND running_max_timestamp_ms >= ?3 ORDER BY running_max_timestamp_ms, base_offset LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row(params![id.as_slice(), partition, timestamp_ms], |r| r.get(0))
                .optional()
        })
        .map_err(map_err)?;
    let Some(by_time) = by_time else {
        return Ok(None);
    };
    let start = chunk_at_or_before(&tx, topic, partition, b.log_start)?.ok_or_else(|| {
        MetaError::Corrupt(format!(
            "topic {topic} partition {partition}: no chunk holds log start {}",
            b.log_start
        ))
    })?;
    let base = by_time.max(to_i64(start.base_offset, "base offset")?);
    let chunk = chunk_at_base(&tx, topic, partition, base)?
        .ok_or_else(|| MetaError::Corrupt(format!("topic {topic} partition {partition}: chunk {base} vanished")))?;
    Ok(Some(chunk))
}

fn commit_group_offsets_tx(conn: &mut Connection, group: &GroupName, commit_req: &GroupCommit) -> Result<()> {
    let tx = immediate(conn)?;
    if let Some(given) = commit_req.generation {
        let current = group_generation(&tx, group)?;
        if given != current {
            return Err(MetaError::StaleGeneration {
                group: group.to_string(),
                current,
                given,
            });
        }
    }
    {
        let mut stored = tx
            .prepare_cached(
                "SELECT committed_offset FROM group_offsets WHERE group_name = ?1 AND topic_id = ?2 AND partition_id = ?3",
            )
            .map_err(map_err)?;
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO group_offsets (group_name, topic_id, partition_id, committed_offset) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (group_name, topic_id, partition_id) DO UPDATE SET committed_offset = excluded.committed_offset",
            )
            .map_err(map_err)?;
        for o in &commit_req.offsets {
            let topic = require_topic(&tx, &o.topic)?;
            if o.partition >= topic.partitions {
                return Err(MetaError::UnknownPartition {
                    topic: o.topic.to_string(),
                    partition: o.partition,
                });
            }
            let id = topic.id.to_bytes();
            let given = to_i64(o.offset, "group offset")?;
            if !commit_req.reset {
                let current: Option<i64> = stored
                    .query_row(params![group.as_str(), id.as_slice(), o.partition], |r| r.get(0))
                    .optional()
                    .map_err(map_err)?;
                if let Some(current) = current
                    && given < current
                {
                    return Err(MetaError::OffsetRegression {
                        topic: o.topic.to_string(),
                        partition: o.partition,
                        committed: to_u64(current, "group offset")?,
                        given: o.offset,
                    });
                }
            }
            upsert
                .execute(params![group.as_str(), id.as_slice(), o.partition, given])
                .map_err(map_err)?;
        }
    }
    commit(tx)
}

fn group_offsets_tx(conn: &mut Connection, group: &GroupName) -> Result<GroupState> {
    let tx = deferred(conn)?;
    let generation = group_generation(&tx, group)?;
    let rows: Vec<(String, i64, i64)> = tx
        .prepare_cached(
            "SELECT t.name, g.partition_id, g.committed_offset FROM group_offsets g JOIN topics t ON t.id = g.topic_id \
             WHERE g.group_name = ?1 ORDER BY t.name, g.partition_id",
        )
        .and_then(|mut s| {
            s.query_map(params![group.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(map_err)?;
    let offsets = rows
        .into_iter()
        .map(|(name, p, off)| {
            Ok(GroupOffset {
                topic: TopicName::new(&name)
                    .map_err(|e| MetaError::Corrupt(format!("stored topic name {name:?}: {e}")))?,
                partition: to_u32(p, "partition")?,
                offset: to_u64(off, "group offset")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(GroupState { generation, offsets })
}

#[async_trait::async_trait]
impl Metadata for SqliteMetadata {
    async fn create_topic(&self, name: &TopicName, partitions: u32, config: TopicConfig) -> Result<TopicInfo> {
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(MetaError::Invalid(format!(
                "topic {name}: partition count {partitions} not in 1..={MAX_PARTITIONS}"
            )));
        }
        let topic = TopicInfo {
            id: self.inner.ids.topic_id(),
            name: name.clone(),
            partitions,
            config,
            created_ms: self.inner.clock.now_ms(),
        };
        let created = self
            .run("create_topic", move |conn| create_topic_tx(conn, topic))
            .await?;
        tracing::info!(topic = %created.name, id = %created.id, partitions, "created topic");
        Ok(created)
    }

    async fn delete_topic(&self, name: &TopicName) -> Result<()> {
        let owned = name.clone();
        let id = self
            .run("delete_topic", move |conn| delete_topic_tx(conn, &owned))
            .await?;
        tracing::info!(topic = %name, id = %id, "deleted topic");
        Ok(())
    }

    async fn topic(&self, name: &TopicName) -> Result<TopicInfo> {
        let name = name.clone();
        self.run("topic", move |conn| {
            let tx = deferred(conn)?;
            require_topic(&tx, &name)
        })
        .await
    }

    async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        self.run("list_topics", |conn| {
            let tx = deferred(conn)?;
            let raws: Vec<RawTopic> = tx
                .prepare_cached(&format!("SELECT {TOPIC_COLUMNS} FROM topics ORDER BY name"))
                .and_then(|mut s| s.query_map([], RawTopic::read)?.collect())
                .map_err(map_err)?;
            raws.into_iter().map(RawTopic::decode).collect()
        })
        .await
    }

    async fn update_topic_config(&self, name: &TopicName, config: TopicConfig) -> Result<TopicInfo> {
        let name = name.clone();
        self.run("update_topic_config", move |conn| update_config_tx(conn, &name, config))
            .await
    }

    async fn commit_segment(&self, segment: SegmentCommit) -> Result<Vec<ChunkOutcome>> {
        let order = validate_segment(&segment)?;
        let key = segment.object_key.clone();
        let outcomes = self
            .run("commit_segment", move |conn| commit_segment_tx(conn, &segment, &order))
            .await?;
        tracing::debug!(object_key = %key, chunks = outcomes.len(), "committed segment");
        Ok(outcomes)
    }

    async fn lookup(&self, topic: TopicId, partition: PartitionId, offset: Offset) -> Result<Option<ChunkLocation>> {
        self.run("lookup", move |conn| lookup_tx(conn, topic, partition, offset))
            .await
    }

    async fn partition_state(&self, topic: TopicId, partition: PartitionId) -> Result<PartitionState> {
        self.run("partition_state", move |conn| {
            let tx = deferred(conn)?;
            let b = bounds(&tx, topic, partition)?;
            Ok(PartitionState {
                partition,
                log_start_offset: b.log_start,
                high_watermark: b.next,
            })
        })
        .await
    }

    async fn partition_states(&self, topic: TopicId) -> Result<Vec<PartitionState>> {
        self.run("partition_states", move |conn| partition_states_tx(conn, topic))
            .await
    }

    async fn lookup_timestamp(
        &self,
        topic: TopicId,
        partition: PartitionId,
        timestamp_ms: i64,
    ) -> Result<Option<ChunkLocation>> {
        self.run("lookup_timestamp", move |conn| {
            lookup_timestamp_tx(conn, topic, partition, timestamp_ms)
        })
        .await
    }

    async fn commit_group_offsets(&self, group: &GroupName, commit: &GroupCommit) -> Result<()> {
        let group = group.clone();
        let commit = commit.clone();
        self.run("commit_group_offsets", move |conn| {
            commit_group_offsets_tx(conn, &group, &commit)
        })
        .await
    }

    async fn group_offsets(&self, group: &GroupName) -> Result<GroupState> {
        let group = group.clone();
        self.run("group_offsets", move |conn| group_offsets_tx(conn, &group))
            .await
    }

    async fn join_group(&self, group: &GroupName) -> Result<i32> {
        let group = group.clone();
        self.run("join_group", move |conn| join_group_tx(conn, &group)).await
    }

    async fn init_producer(&self, existing: Option<i64>) -> Result<ProducerIdentity> {
        let identity = self
            .run("init_producer", move |conn| init_producer_tx(conn, existing))
            .await?;
        tracing::debug!(
            producer_id = identity.producer_id,
            epoch = identity.producer_epoch,
            "initialised producer"
        );
        Ok(identity)
    }

    async fn check_producer(
        &self,
        topic: TopicId,
        partition: PartitionId,
        append: &ProducerAppend,
    ) -> Result<ProducerCheck> {
        validate_append(append)?;
        let append = *append;
        self.run("check_producer", move |conn| {
            check_producer_tx(conn, topic, partition, &append)
        })
        .await
    }

    async fn register_agent(&self, agent: &AgentRegistration) -> Result<()> {
        validate_registration(agent)?;
        let agent = agent.clone();
        let now = self.inner.clock.now_ms();
        self.run("register_agent", move |conn| register_agent_tx(conn, &agent, now))
            .await
    }

    async fn list_agents(&self) -> Result<Vec<AgentInfo>> {
        let now = self.inner.clock.now_ms();
        self.run("list_agents", move |conn| list_agents_tx(conn, now)).await
    }

    async fn try_acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool> {
        validate_lease(name, holder, Some(ttl_ms))?;
        let (name, holder) = (name.to_owned(), holder.to_owned());
        let now = self.inner.clock.now_ms();
        self.run("try_acquire_lease", move |conn| {
            try_acquire_lease_tx(conn, &name, &holder, ttl_ms, now)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        validate_lease(name, holder, None)?;
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.run("release_lease", move |conn| release_lease_tx(conn, &name, &holder))
            .await
    }

    async fn list_chunks(
        &self,
        topic: TopicId,
        partition: PartitionId,
        from: Offset,
        limit: usize,
    ) -> Result<Vec<ChunkLocation>> {
        self.run("list_chunks", move |conn| {
            list_chunks_tx(conn, topic, partition, from, limit)
        })
        .await
    }

    async fn replace_chunks(&self, replacement: ChunkReplacement) -> Result<ReplaceOutcome> {
        validate_replacement(&replacement)?;
        let outcome = self
            .run("replace_chunks", move |conn| replace_chunks_tx(conn, &replacement))
            .await?;
        Ok(outcome)
    }

    async fn advance_log_start(&self, topic: TopicId, partition: PartitionId, new_start: Offset) -> Result<Offset> {
        self.run("advance_log_start", move |conn| {
            advance_log_start_tx(conn, topic, partition, new_start)
        })
        .await
    }

    async fn unreferenced_objects(&self, keys: Vec<String>) -> Result<Vec<String>> {
        self.run("unreferenced_objects", move |conn| unreferenced_objects_tx(conn, &keys))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use silt_types::{ManualClock, RandomIds, SequentialIds};

    use super::*;
    use crate::conformance::{self, Subject};

    /// A scratch directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let path = std::env::temp_dir().join(format!("silt-meta-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).expect("create temp dir");
            Self(path)
        }

        fn db(&self) -> PathBuf {
            self.0.join("meta.sqlite")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn memory() -> Arc<SqliteMetadata> {
        Arc::new(
            SqliteMetadata::open_in_memory(Arc::new(ManualClock::new(1_700_000_000_000)), Arc::new(RandomIds))
                .expect("open in memory"),
        )
    }

    fn open_file(path: &Path) -> Result<SqliteMetadata> {
        SqliteMetadata::open(path, Arc::new(ManualClock::new(42)), Arc::new(RandomIds))
    }

    fn memory_subject() -> Subject {
        let clock = ManualClock::new(1_700_000_000_000);
        let meta =
            SqliteMetadata::open_in_memory(Arc::new(clock.clone()), Arc::new(RandomIds)).expect("open in memory");
        Subject::new(Arc::new(meta)).with_clock(clock)
    }

    fn file_subject() -> Subject {
        let dir = TempDir::new();
        let clock = ManualClock::new(42);
        let meta = SqliteMetadata::open(&dir.db(), Arc::new(clock.clone()), Arc::new(RandomIds)).expect("open file");
        Subject::new(Arc::new(meta)).with_clock(clock).with_guard(dir)
    }

    mod conformance_in_memory {
        crate::metadata_conformance_tests!(async { super::memory_subject() });
    }

    mod conformance_file {
        crate::metadata_conformance_tests!(async { super::file_subject() });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_all_in_memory() {
        conformance::run_all(|| async { memory_subject() }).await;
    }

    fn tn(s: &str) -> TopicName {
        TopicName::new(s).expect("topic name")
    }

    fn one_chunk(key: &str, topic: TopicId, partition: PartitionId, count: u32, ts: i64) -> SegmentCommit {
        SegmentCommit {
            object_key: key.to_owned(),
            object_size: 100,
            chunks: vec![ChunkCommit {
                topic,
                partition,
                record_count: count,
                byte_offset: 10,
                byte_len: 20,
                max_timestamp_ms: ts,
                producers: Vec::new(),
            }],
        }
    }

    async fn raw_sql(meta: &SqliteMetadata, sql: &'static str) {
        meta.run("test sql", move |conn| conn.execute_batch(sql).map_err(map_err))
            .await
            .expect("raw sql");
    }

    #[tokio::test]
    async fn reopen_survives() {
        let dir = TempDir::new();
        let clock = Arc::new(ManualClock::new(1234));
        let ids = Arc::new(SequentialIds::default());
        let (topic, group) = {
            let meta = SqliteMetadata::open(&dir.db(), clock.clone(), ids.clone()).expect("open");
            let config = TopicConfig {
                retention_ms: Some(5),
                retention_bytes: None,
            };
            let t = meta.create_topic(&tn("orders"), 2, config).await.expect("create");
            assert_eq!(t.created_ms, 1234);
            meta.create_topic(&tn("gone"), 1, TopicConfig::default())
                .await
                .expect("create");
            meta.delete_topic(&tn("gone")).await.expect("delete");
            meta.commit_segment(one_chunk("s1", t.id, 0, 7, 100))
                .await
                .expect("commit");
            meta.commit_segment(one_chunk("s2", t.id, 1, 3, 50))
                .await
                .expect("commit");
            let group = GroupName::new("g").expect("group");
            let commit = GroupCommit {
                generation: None,
                reset: false,
                offsets: vec![GroupOffset {
                    topic: tn("orders"),
                    partition: 1,
                    offset: 2,
                }],
            };
            meta.commit_group_offsets(&group, &commit).await.expect("group");
            (t, group)
        };

        let meta = SqliteMetadata::open(&dir.db(), clock, ids).expect("reopen");
        assert_eq!(meta.list_topics().await.expect("list"), vec![topic.clone()]);
        let states = meta.partition_states(topic.id).await.expect("states");
        let hwms: Vec<Offset> = states.iter().map(|s| s.high_watermark).collect();
        assert_eq!(hwms, vec![7, 3]);
        let loc = meta.lookup(topic.id, 0, 6).await.expect("lookup").expect("chunk");
        assert_eq!(
            (loc.object_key.as_str(), loc.base_offset, loc.last_offset),
            ("s1", 0, 6)
        );
        assert_eq!(
            meta.lookup_timestamp(topic.id, 1, 40)
                .await
                .expect("ts")
                .map(|c| c.object_key),
            Some("s2".to_owned())
        );
        assert_eq!(
            meta.group_offsets(&group).await.expect("group").offsets,
            vec![GroupOffset {
                topic: tn("orders"),
                partition: 1,
                offset: 2
            }]
        );
        // Offsets continue where they stopped.
        let outcome = meta
            .commit_segment(one_chunk("s3", topic.id, 0, 1, 1))
            .await
            .expect("commit");
        assert_eq!(outcome, vec![ChunkOutcome::Committed { base_offset: 7 }]);
        // The id generator is not reused from the database: a new topic gets a fresh id.
        let again = meta
            .create_topic(&tn("gone"), 1, TopicConfig::default())
            .await
            .expect("create");
        assert_ne!(again.id, topic.id);
    }

    #[tokio::test]
    async fn fresh_database_is_at_latest_schema_and_durable() {
        let dir = TempDir::new();
        let meta = open_file(&dir.db()).expect("open");
        let (version, mode, sync, fk) = meta
            .run("pragmas", |conn| {
                let get = |name: &str| -> Result<String> {
                    conn.pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
                        .map(|v| format!("{v:?}"))
                        .map_err(map_err)
                };
                Ok((
                    get("user_version")?,
                    get("journal_mode")?,
                    get("synchronous")?,
                    get("foreign_keys")?,
                ))
            })
            .await
            .expect("pragmas");
        assert_eq!(version, format!("Integer({})", SqliteMetadata::SCHEMA_VERSION));
        assert_eq!(mode, "Text(\"wal\")");
        assert_eq!(sync, "Integer(2)");
        assert_eq!(fk, "Integer(1)");
        drop(meta);
        // Reopening an up-to-date database is a no-op.
        open_file(&dir.db()).expect("reopen");
    }

    #[tokio::test]
    async fn refuses_newer_schema() {
        let dir = TempDir::new();
        drop(open_file(&dir.db()).expect("open"));
        {
            let conn = Connection::open(dir.db()).expect("raw open");
            conn.pragma_update(None, "user_version", SqliteMetadata::SCHEMA_VERSION + 1)
                .expect("bump version");
        }
        match open_file(&dir.db()) {
            Err(MetaError::Invalid(msg)) => assert!(msg.contains("newer"), "{msg}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn migrates_version_zero_database() {
        let dir = TempDir::new();
        {
            // An empty file someone created, at version 0.
            let conn = Connection::open(dir.db()).expect("raw open");
            conn.execute_batch("CREATE TABLE unrelated (x INTEGER)")
                .expect("create");
        }
        let meta = open_file(&dir.db()).expect("open migrates");
        meta.create_topic(&tn("t"), 1, TopicConfig::default())
            .await
            .expect("create");
    }

    #[tokio::test]
    async fn missing_directory_is_unavailable() {
        let dir = TempDir::new();
        let r = open_file(&dir.0.join("no/such/dir/meta.sqlite"));
        assert!(matches!(r, Err(MetaError::Unavailable(_))), "{r:?}");
    }

    #[tokio::test]
    async fn offset_below_log_start() {
        let meta = memory();
        let t = meta
            .create_topic(&tn("t"), 1, TopicConfig::default())
            .await
            .expect("create");
        for (i, ts) in [500, 100, 900].into_iter().enumerate() {
            meta.commit_segment(one_chunk(&format!("s{i}"), t.id, 0, 10, ts))
                .await
                .expect("commit");
        }
        // Retention is not part of the trait yet; move the log start by hand.
        raw_sql(&meta, "UPDATE partitions SET log_start_offset = 15").await;
        match meta.lookup(t.id, 0, 14).await {
            Err(MetaError::OffsetBelowStart {
                offset: 14,
                log_start: 15,
            }) => {}
            other => panic!("expected OffsetBelowStart, got {other:?}"),
        }
        let at = meta.lookup(t.id, 0, 15).await.expect("lookup").expect("chunk");
        assert_eq!(at.base_offset, 10);
        let state = meta.partition_state(t.id, 0).await.expect("state");
        assert_eq!((state.log_start_offset, state.high_watermark), (15, 30));
        // Chunk 0 (running max 500) lies below the start: the answer is the
        // chunk holding the log start, or later.
        let ts = |t_ms| {
            let meta = Arc::clone(&meta);
            async move {
                meta.lookup_timestamp(t.id, 0, t_ms)
                    .await
                    .expect("ts")
                    .map(|c| c.base_offset)
            }
        };
        assert_eq!(ts(0).await, Some(10));
        assert_eq!(ts(500).await, Some(10));
        assert_eq!(ts(501).await, Some(20));
        assert_eq!(ts(901).await, None);
        // Everything removed.
        raw_sql(&meta, "UPDATE partitions SET log_start_offset = 30").await;
        assert_eq!(ts(0).await, None);
        assert_eq!(meta.lookup(t.id, 0, 30).await.expect("lookup"), None);
    }

    #[tokio::test]
    async fn corrupt_rows_are_errors_not_panics() {
        let meta = memory();
        let t = meta
            .create_topic(&tn("t"), 1, TopicConfig::default())
            .await
            .expect("create");
        meta.commit_segment(one_chunk("s", t.id, 0, 10, 1))
            .await
            .expect("commit");
        raw_sql(&meta, "UPDATE topics SET config_json = '{\"bogus\": 1}'").await;
        assert!(matches!(meta.topic(&tn("t")).await, Err(MetaError::Corrupt(_))));
        assert!(matches!(meta.list_topics().await, Err(MetaError::Corrupt(_))));
        // A gap in the index.
        raw_sql(&meta, "UPDATE partitions SET next_offset = 20").await;
        assert!(matches!(meta.lookup(t.id, 0, 15).await, Err(MetaError::Corrupt(_))));
    }
}
