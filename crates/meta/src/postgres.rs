//! The PostgreSQL backend: a fleet's shared metadata database.
//!
//! Several metadata services (and their agents) may share one database.
//! Offsets are assigned inside one transaction per commit batch, which first
//! locks every partition row it touches in one statement ordered by
//! `(topic_id, partition_id)`, so committers of overlapping partitions queue
//! up instead of deadlocking. The lock is `FOR NO KEY UPDATE`: as exclusive
//! as `FOR UPDATE` between committers, but it lets foreign-key checks of
//! group-offset and producer-state rows proceed. `delete_topic` takes
//! `FOR UPDATE` on the same rows in the same order.
//!
//! Group commit: `commit_segment` calls hand their (already validated)
//! segment to one committer task per instance; it takes everything queued
//! (up to a bound), commits it in arrival order in one transaction, each
//! segment under its own savepoint so one segment's failure does not fail
//! the others, and answers every caller. Losing the connection during
//! `COMMIT` is [`MetaError::Indeterminate`].
//!
//! Connections come from a small pool written here (a semaphore bounds
//! them); the schema is migrated at start-up in numbered steps, each in a
//! transaction under `pg_advisory_xact_lock`, recorded in
//! `silt_schema_migrations`. TLS is rustls with the server always verified
//! (`pgtls`): `sslmode` as in libpq, `sslrootcert` for a private CA.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use silt_types::{Clock, GroupName, IdGen, MAX_PARTITIONS, Offset, PartitionId, TopicId, TopicName};
use tokio::sync::{Semaphore, SemaphorePermit, mpsc, oneshot};
use tokio_postgres::{Client, IsolationLevel, NoTls, Row, Transaction};

use crate::rules::{
    PartitionProducer, bumped, check_replaced, evaluate_chunk, expiry, running_maxima, to_i16, to_i32, to_i64, to_u32,
    to_u64, validate_append, validate_lease, validate_registration, validate_replacement, validate_segment,
};
use crate::{
    AgentInfo, AgentRegistration, ChunkCommit, ChunkFormat, ChunkLocation, ChunkOutcome, ChunkReplacement, GroupCommit,
    GroupOffset, GroupState, MetaError, Metadata, PartitionState, ProducerAppend, ProducerCheck, ProducerIdentity,
    ReplaceOutcome, Result, SegmentCommit, TopicConfig, TopicInfo,
};

/// Connections per instance.
const POOL_SIZE: usize = 16;
/// How long an operation waits for a pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Segments waiting for the committer; callers wait beyond that.
const COMMIT_QUEUE: usize = 1024;
/// Upper bounds of one group-commit transaction.
const MAX_BATCH_SEGMENTS: usize = 64;
const MAX_BATCH_CHUNKS: usize = 4096;
/// Key of the advisory lock that serialises migrators ("SILT").
const MIGRATION_LOCK: i64 = 0x5349_4c54;

/// Schema migrations; step `i` takes the database from version `i` to `i + 1`.
/// Append only: never edit a step that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r"
    CREATE TABLE topics (
        id          BYTEA  NOT NULL PRIMARY KEY CHECK (length(id) = 16),
        name        TEXT   NOT NULL UNIQUE,
        partitions  BIGINT NOT NULL CHECK (partitions >= 1),
        config_json TEXT   NOT NULL,
        created_ms  BIGINT NOT NULL
    );

    CREATE TABLE partitions (
        topic_id         BYTEA  NOT NULL REFERENCES topics (id),
        partition_id     BIGINT NOT NULL CHECK (partition_id >= 0),
        next_offset      BIGINT NOT NULL CHECK (next_offset >= 0),
        log_start_offset BIGINT NOT NULL CHECK (log_start_offset >= 0),
        max_timestamp_ms BIGINT,
        PRIMARY KEY (topic_id, partition_id)
    );

    CREATE TABLE chunks (
        topic_id                 BYTEA  NOT NULL,
        partition_id             BIGINT NOT NULL,
        base_offset              BIGINT NOT NULL CHECK (base_offset >= 0),
        last_offset              BIGINT NOT NULL CHECK (last_offset >= base_offset),
        object_key               TEXT   NOT NULL CHECK (object_key <> ''),
        object_size              BIGINT NOT NULL CHECK (object_size >= 0),
        byte_offset              BIGINT NOT NULL CHECK (byte_offset >= 0),
        byte_len                 BIGINT NOT NULL CHECK (byte_len >= 0),
        max_timestamp_ms         BIGINT NOT NULL,
        running_max_timestamp_ms BIGINT NOT NULL CHECK (running_max_timestamp_ms >= max_timestamp_ms),
        PRIMARY KEY (topic_id, partition_id, base_offset),
        FOREIGN KEY (topic_id, partition_id) REFERENCES partitions (topic_id, partition_id)
    );

    CREATE INDEX chunks_by_running_max
        ON chunks (topic_id, partition_id, running_max_timestamp_ms, base_offset);

    CREATE TABLE consumer_groups (
        group_name TEXT   NOT NULL PRIMARY KEY,
        generation BIGINT NOT NULL CHECK (generation BETWEEN 0 AND 2147483647)
    );

    CREATE TABLE group_offsets (
        group_name       TEXT   NOT NULL,
        topic_id         BYTEA  NOT NULL,
        partition_id     BIGINT NOT NULL,
        committed_offset BIGINT NOT NULL CHECK (committed_offset >= 0),
        PRIMARY KEY (group_name, topic_id, partition_id),
        FOREIGN KEY (topic_id, partition_id) REFERENCES partitions (topic_id, partition_id)
    );

    CREATE INDEX group_offsets_by_topic ON group_offsets (topic_id);

    CREATE SEQUENCE producer_ids START WITH 1000 MINVALUE 1000;

    CREATE TABLE producers (
        producer_id BIGINT NOT NULL PRIMARY KEY,
        epoch       BIGINT NOT NULL CHECK (epoch BETWEEN 0 AND 32767)
    );

    CREATE TABLE producer_state (
        producer_id   BIGINT NOT NULL REFERENCES producers (producer_id),
        topic_id      BYTEA  NOT NULL,
        partition_id  BIGINT NOT NULL,
        epoch         BIGINT NOT NULL CHECK (epoch >= 0),
        last_sequence BIGINT NOT NULL CHECK (last_sequence >= 0),
        window_json   TEXT   NOT NULL,
        PRIMARY KEY (producer_id, topic_id, partition_id),
        FOREIGN KEY (topic_id, partition_id) REFERENCES partitions (topic_id, partition_id)
    );

    CREATE INDEX producer_state_by_topic ON producer_state (topic_id);

    CREATE TABLE agents (
        node_id       TEXT   NOT NULL PRIMARY KEY,
        address       TEXT   NOT NULL,
        zone          TEXT,
        registered_ms BIGINT NOT NULL,
        expires_ms    BIGINT NOT NULL
    );

    CREATE TABLE leases (
        name       TEXT   NOT NULL PRIMARY KEY,
        holder     TEXT   NOT NULL,
        expires_ms BIGINT NOT NULL
    );
    ",
    // 3: compaction: chunk formats (L0 segment chunk or L1 Parquet row
    // group) and lookups by object for garbage collection.
    r"
    ALTER TABLE chunks ADD COLUMN format SMALLINT NOT NULL DEFAULT 0 CHECK (format IN (0, 1));
    ALTER TABLE chunks ADD COLUMN footer_len BIGINT NOT NULL DEFAULT 0 CHECK (footer_len >= 0);
    CREATE INDEX chunks_by_object ON chunks (object_key);
    ",
];

// ---------------------------------------------------------------------------
// Connection pool.

/// A bounded pool of connections; idle ones are reused, broken ones dropped.
struct Pool {
    config: tokio_postgres::Config,
    /// `None` when the URL says `sslmode=disable`.
    tls: Option<crate::pgtls::MakeRustlsConnect>,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
}

/// A pooled connection; goes back to the pool on drop unless broken.
struct Conn<'a> {
    client: Option<Client>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("client taken before drop"))
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .unwrap_or_else(|| unreachable!("client taken before drop"))
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
        {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(client);
        }
    }
}

impl Pool {
    async fn get(&self) -> Result<Conn<'_>> {
        let permit = tokio::time::timeout(POOL_WAIT, self.permits.acquire())
            .await
            .map_err(|_| MetaError::Unavailable(format!("no database connection free within {POOL_WAIT:?}")))?
            .map_err(|_| MetaError::Unavailable("connection pool closed".into()))?;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                match idle.pop() {
                    Some(c) if c.is_closed() => {}
                    other => break other,
                }
            }
        };
        let client = match reused {
            Some(c) => c,
            None => self.connect().await?,
        };
        Ok(Conn {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<Client> {
        let failed = |e: tokio_postgres::Error| {
            let e = describe(&e);
            // A certificate the roots do not vouch for is the usual TLS failure: say what to do.
            let hint = if e.contains("UnknownIssuer") {
                " (the server's certificate is not signed by a trusted CA: name its CA bundle with sslrootcert=<PEM file> in the URL, or, on a network you trust, turn TLS off with sslmode=disable)"
            } else {
                ""
            };
            MetaError::Unavailable(format!("connect to PostgreSQL: {e}{hint}"))
        };
        match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await.map_err(failed)?;
                tokio::spawn(drive(connection));
                Ok(client)
            }
            None => {
                let (client, connection) = self.config.connect(NoTls).await.map_err(failed)?;
                tokio::spawn(drive(connection));
                Ok(client)
            }
        }
    }
}

/// Runs a connection's I/O until it closes.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "PostgreSQL connection ended");
    }
}

// ---------------------------------------------------------------------------
// The backend.

/// [`Metadata`] stored in a PostgreSQL database shared by a fleet.
#[derive(Clone)]
pub struct PostgresMetadata {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Arc<Pool>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGen>,
    commits: mpsc::Sender<CommitRequest>,
    location: String,
}

impl std::fmt::Debug for PostgresMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresMetadata")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

/// One caller's segment, waiting for the committer.
struct CommitRequest {
    segment: SegmentCommit,
    order: Vec<usize>,
    reply: oneshot::Sender<Result<Vec<ChunkOutcome>>>,
}

impl PostgresMetadata {
    /// Schema version this build writes; databases of a newer version are refused.
    pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

    /// Connects to the database at `url` (`postgres://user@host:port/db`),
    /// migrates it to [`Self::SCHEMA_VERSION`] and starts the committer task
    /// on the current tokio runtime.
    ///
    /// Fails with [`MetaError::Invalid`] for a bad URL or a database of a
    /// newer schema, and with [`MetaError::Unavailable`] if it cannot connect.
    pub async fn connect(url: &str, clock: Arc<dyn Clock>, ids: Arc<dyn IdGen>) -> Result<Self> {
        let (url, roots) = crate::pgtls::split_url(url)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| MetaError::Invalid(format!("PostgreSQL URL: {e}")))?;
        let tls = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => None,
            _ => Some(crate::pgtls::connector(&roots)?),
        };
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("silt-meta");
        let location = format!("{:?}/{}", config.get_hosts(), config.get_dbname().unwrap_or_default());
        let tls_mode = config.get_ssl_mode();
        let pool = Arc::new(Pool {
            tls,
            config,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(POOL_SIZE),
        });
        migrate(&pool).await?;
        let (commits, queue) = mpsc::channel(COMMIT_QUEUE);
        tokio::spawn(committer(Arc::clone(&pool), queue));
        tracing::info!(location = %location, schema_version = Self::SCHEMA_VERSION, tls = ?tls_mode, "metadata database open");
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                clock,
                ids,
                commits,
                location,
            }),
        })
    }

    async fn conn(&self) -> Result<Conn<'_>> {
        self.inner.pool.get().await
    }
}

/// Brings the schema up to date, one step per transaction, under an advisory lock.
async fn migrate(pool: &Pool) -> Result<()> {
    let latest = i64::from(PostgresMetadata::SCHEMA_VERSION);
    let mut conn = pool.get().await?;
    loop {
        let tx = conn.transaction().await.map_err(map_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(map_err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS silt_schema_migrations (
                version    BIGINT      NOT NULL PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(map_err)?;
        let version: i64 = tx
            .query_one("SELECT COALESCE(max(version), 0) FROM silt_schema_migrations", &[])
            .await
            .map_err(map_err)?
            .get(0);
        if version > latest {
            return Err(MetaError::Invalid(format!(
                "metadata database has schema version {version}, newer than the {latest} this build supports; \
                 refusing to use it (upgrade silt, or point it at another database)"
            )));
        }
        let Some(step) = usize::try_from(version).ok().and_then(|v| MIGRATIONS.get(v)) else {
            commit_tx(tx).await?;
            return Ok(());
        };
        tx.batch_execute(step).await.map_err(map_err)?;
        tx.execute(
            "INSERT INTO silt_schema_migrations (version) VALUES ($1)",
            &[&(version + 1)],
        )
        .await
        .map_err(map_err)?;
        commit_tx(tx).await?;
        tracing::info!(from = version, to = version + 1, "migrated metadata schema");
    }
}

// ---------------------------------------------------------------------------
// Error mapping and helpers.

/// An error with its causes: tokio-postgres' own text is only "db error" or
/// "error performing TLS handshake", the reason is in its source.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn map_err(e: tokio_postgres::Error) -> MetaError {
    let Some(db) = e.as_db_error() else {
        return MetaError::Unavailable(format!("PostgreSQL: {}", describe(&e)));
    };
    let code = db.code().code();
    match &code[..2] {
        // Foreign key races with a concurrent delete are retryable.
        "23" if code == "23503" => MetaError::Unavailable(format!("conflicting concurrent change, retry: {db}")),
        "23" => MetaError::Corrupt(format!("constraint violated: {db}")),
        "22" => MetaError::Invalid(db.to_string()),
        "XX" => MetaError::Corrupt(db.to_string()),
        _ => MetaError::Unavailable(format!("PostgreSQL: {db}")),
    }
}

/// Commits; an error the server reported means it rolled back, anything
/// else (a lost connection) leaves the outcome unknown.
async fn commit_tx(tx: Transaction<'_>) -> Result<()> {
    tx.commit().await.map_err(|e| {
        if e.as_db_error().is_some() {
            map_err(e)
        } else {
            MetaError::Indeterminate(format!("commit failed: {e}"))
        }
    })
}

/// A consistent read-only snapshot for multi-statement reads.
async fn read_tx(conn: &mut Client) -> Result<Transaction<'_>> {
    conn.build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(map_err)
}

fn decode_id(bytes: &[u8]) -> Result<TopicId> {
    let arr: [u8; 16] = bytes
        .try_into()
        .map_err(|_| MetaError::Corrupt(format!("stored topic id has {} bytes, not 16", bytes.len())))?;
    Ok(TopicId::from_bytes(arr))
}

fn pid(p: PartitionId) -> i64 {
    i64::from(p)
}

const TOPIC_COLUMNS: &str = "id, name, partitions, config_json, created_ms";

fn decode_topic(row: &Row) -> Result<TopicInfo> {
    let name: String = row.try_get(1).map_err(corrupt_row)?;
    let name = TopicName::new(&name).map_err(|e| MetaError::Corrupt(format!("stored topic name {name:?}: {e}")))?;
    let config_json: String = row.try_get(3).map_err(corrupt_row)?;
    let config: TopicConfig = serde_json::from_str(&config_json)
        .map_err(|e| MetaError::Corrupt(format!("stored config of topic {name}: {e}")))?;
    Ok(TopicInfo {
        id: decode_id(row.try_get(0).map_err(corrupt_row)?)?,
        partitions: to_u32(row.try_get(2).map_err(corrupt_row)?, "partition count")?,
        name,
        config,
        created_ms: row.try_get(4).map_err(corrupt_row)?,
    })
}

fn corrupt_row(e: tokio_postgres::Error) -> MetaError {
    MetaError::Corrupt(format!("undecodable row: {e}"))
}

const CHUNK_COLUMNS: &str =
    "base_offset, last_offset, object_key, object_size, byte_offset, byte_len, max_timestamp_ms, format, footer_len";

fn decode_chunk(row: &Row, topic: TopicId, partition: PartitionId) -> Result<ChunkLocation> {
    let get = |i: usize| -> Result<i64> { row.try_get(i).map_err(corrupt_row) };
    Ok(ChunkLocation {
        topic,
        partition,
        base_offset: to_u64(get(0)?, "base offset")?,
        last_offset: to_u64(get(1)?, "last offset")?,
        object_key: row.try_get(2).map_err(corrupt_row)?,
        object_size: to_u64(get(3)?, "object size")?,
        byte_offset: to_u64(get(4)?, "byte offset")?,
        byte_len: to_u64(get(5)?, "byte length")?,
        max_timestamp_ms: get(6)?,
        format: {
            let code: i16 = row.try_get(7).map_err(corrupt_row)?;
            ChunkFormat::from_code(i64::from(code))
                .ok_or_else(|| MetaError::Corrupt(format!("unknown chunk format {code}")))?
        },
        footer_len: to_u64(get(8)?, "footer length")?,
    })
}

async fn topic_by_name(tx: &Transaction<'_>, name: &TopicName) -> Result<Option<TopicInfo>> {
    let row = tx
        .query_opt(
            &format!("SELECT {TOPIC_COLUMNS} FROM topics WHERE name = $1"),
            &[&name.as_str()],
        )
        .await
        .map_err(map_err)?;
    row.as_ref().map(decode_topic).transpose()
}

async fn require_topic(tx: &Transaction<'_>, name: &TopicName) -> Result<TopicInfo> {
    topic_by_name(tx, name)
        .await?
        .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))
}

async fn partition_count(tx: &Transaction<'_>, topic: TopicId) -> Result<Option<u32>> {
    let row = tx
        .query_opt(
            "SELECT partitions FROM topics WHERE id = $1",
            &[&topic.to_bytes().as_slice()],
        )
        .await
        .map_err(map_err)?;
    row.map(|r| to_u32(r.get(0), "partition count")).transpose()
}

async fn require_partition(tx: &Transaction<'_>, topic: TopicId, partition: PartitionId) -> Result<()> {
    let count = partition_count(tx, topic)
        .await?
        .ok_or_else(|| MetaError::UnknownTopic(topic.to_string()))?;
    if partition >= count {
        return Err(MetaError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        });
    }
    Ok(())
}

/// Log start and next offset of an existing partition.
async fn bounds(tx: &Transaction<'_>, topic: TopicId, partition: PartitionId) -> Result<(Offset, Offset)> {
    require_partition(tx, topic, partition).await?;
    let row = tx
        .query_opt(
            "SELECT log_start_offset, next_offset FROM partitions WHERE topic_id = $1 AND partition_id = $2",
            &[&topic.to_bytes().as_slice(), &pid(partition)],
        )
        .await
        .map_err(map_err)?
        .ok_or_else(|| MetaError::Corrupt(format!("topic {topic} has no row for partition {partition}")))?;
    let start = to_u64(row.get(0), "log start offset")?;
    let next = to_u64(row.get(1), "next offset")?;
    if start > next {
        return Err(MetaError::Corrupt(format!(
            "topic {topic} partition {partition}: log start {start} above next offset {next}"
        )));
    }
    Ok((start, next))
}

async fn chunk_at_or_before(
    tx: &Transaction<'_>,
    topic: TopicId,
    partition: PartitionId,
    offset: Offset,
) -> Result<Option<ChunkLocation>> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT {CHUNK_COLUMNS} FROM chunks WHERE topic_id = $1 AND partition_id = $2 AND base_offset <= $3 \
                 ORDER BY base_offset DESC LIMIT 1"
            ),
            &[
                &topic.to_bytes().as_slice(),
                &pid(partition),
                &i64::try_from(offset).unwrap_or(i64::MAX),
            ],
        )
        .await
        .map_err(map_err)?;
    row.map(|r| decode_chunk(&r, topic, partition)).transpose()
}

/// Entries with base offsets in `from..`, in order, at most `limit`.
async fn chunks_from(
    tx: &Transaction<'_>,
    topic: TopicId,
    partition: PartitionId,
    from: Offset,
    limit: usize,
) -> Result<Vec<ChunkLocation>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {CHUNK_COLUMNS} FROM chunks WHERE topic_id = $1 AND partition_id = $2 AND base_offset >= $3 \
                 ORDER BY base_offset LIMIT $4"
            ),
            &[
                &topic.to_bytes().as_slice(),
                &pid(partition),
                &i64::try_from(from).unwrap_or(i64::MAX),
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )
        .await
        .map_err(map_err)?;
    rows.iter().map(|r| decode_chunk(r, topic, partition)).collect()
}

/// Locks a partition's row against commits, swaps and retention; its log
/// start and next offset.
async fn lock_partition(tx: &Transaction<'_>, topic: TopicId, partition: PartitionId) -> Result<(Offset, Offset)> {
    require_partition(tx, topic, partition).await?;
    let row = tx
        .query_opt(
            "SELECT log_start_offset, next_offset FROM partitions WHERE topic_id = $1 AND partition_id = $2 \
             FOR NO KEY UPDATE",
            &[&topic.to_bytes().as_slice(), &pid(partition)],
        )
        .await
        .map_err(map_err)?
        .ok_or_else(|| MetaError::Corrupt(format!("topic {topic} has no row for partition {partition}")))?;
    Ok((
        to_u64(row.get(0), "log start offset")?,
        to_u64(row.get(1), "next offset")?,
    ))
}

// ---------------------------------------------------------------------------
// Producer state.

/// Current epochs of the given producers, share-locked so a concurrent
/// `init_producer` fences only after this transaction ends.
async fn registered_epochs(tx: &Transaction<'_>, ids: &[i64], lock: bool) -> Result<HashMap<i64, i16>> {
    let sql = if lock {
        "SELECT producer_id, epoch FROM producers WHERE producer_id = ANY($1) ORDER BY producer_id FOR SHARE"
    } else {
        "SELECT producer_id, epoch FROM producers WHERE producer_id = ANY($1)"
    };
    let rows = tx.query(sql, &[&ids]).await.map_err(map_err)?;
    rows.iter()
        .map(|r| Ok((r.get::<_, i64>(0), to_i16(r.get(1), "producer epoch")?)))
        .collect()
}

async fn producer_states(
    tx: &Transaction<'_>,
    topic: TopicId,
    partition: PartitionId,
    ids: &[i64],
) -> Result<HashMap<i64, PartitionProducer>> {
    let rows = tx
        .query(
            "SELECT producer_id, epoch, last_sequence, window_json FROM producer_state \
             WHERE producer_id = ANY($1) AND topic_id = $2 AND partition_id = $3",
            &[&ids, &topic.to_bytes().as_slice(), &pid(partition)],
        )
        .await
        .map_err(map_err)?;
    rows.iter()
        .map(|r| {
            let window: String = r.get(3);
            Ok((
                r.get::<_, i64>(0),
                PartitionProducer::decode(r.get(1), r.get(2), &window)?,
            ))
        })
        .collect()
}

/// Judges the producer batches of a chunk whose first record gets `base`.
async fn producer_updates(
    tx: &Transaction<'_>,
    c: &ChunkCommit,
    base: Offset,
    lock: bool,
) -> Result<std::result::Result<HashMap<i64, PartitionProducer>, ProducerCheck>> {
    if c.producers.is_empty() {
        return Ok(Ok(HashMap::new()));
    }
    let mut ids: Vec<i64> = c.producers.iter().map(|a| a.producer_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let registered = registered_epochs(tx, &ids, lock).await?;
    let stored = producer_states(tx, c.topic, c.partition, &ids).await?;
    Ok(evaluate_chunk(c, base, &registered, &stored))
}

// ---------------------------------------------------------------------------
// Group commit of segments.

/// The committer: batches whatever is queued into one transaction.
async fn committer(pool: Arc<Pool>, mut queue: mpsc::Receiver<CommitRequest>) {
    while let Some(first) = queue.recv().await {
        let mut chunks = first.segment.chunks.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_SEGMENTS && chunks < MAX_BATCH_CHUNKS {
            match queue.try_recv() {
                Ok(next) => {
                    chunks += next.segment.chunks.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        // A caller that gave up gets nothing committed on its behalf.
        batch.retain(|r| !r.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let results = commit_batch(&pool, &batch).await;
        tracing::debug!(segments = batch.len(), chunks, "group commit");
        for (request, result) in batch.into_iter().zip(results) {
            let _ = request.reply.send(result);
        }
    }
}

/// Next offset and running max timestamp of a locked partition.
type Locked = BTreeMap<(TopicId, PartitionId), (i64, Option<i64>)>;

/// Commits a batch in one transaction; one result per request.
async fn commit_batch(pool: &Pool, batch: &[CommitRequest]) -> Vec<Result<Vec<ChunkOutcome>>> {
    match commit_batch_tx(pool, batch).await {
        Ok(results) => results,
        Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
    }
}

async fn commit_batch_tx(pool: &Pool, batch: &[CommitRequest]) -> Result<Vec<Result<Vec<ChunkOutcome>>>> {
    let mut conn = pool.get().await?;
    let mut tx = conn.transaction().await.map_err(map_err)?;
    let mut keys: Vec<(TopicId, PartitionId)> = batch
        .iter()
        .flat_map(|r| r.segment.chunks.iter().map(|c| (c.topic, c.partition)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let topics: Vec<Vec<u8>> = keys.iter().map(|(t, _)| t.to_bytes().to_vec()).collect();
    let parts: Vec<i64> = keys.iter().map(|(_, p)| pid(*p)).collect();
    let rows = tx
        .query(
            "SELECT topic_id, partition_id, next_offset, max_timestamp_ms FROM partitions \
             WHERE (topic_id, partition_id) IN (SELECT * FROM unnest($1::bytea[], $2::bigint[])) \
             ORDER BY topic_id, partition_id FOR NO KEY UPDATE",
            &[&topics, &parts],
        )
        .await
        .map_err(map_err)?;
    let mut locked = Locked::new();
    for r in &rows {
        let topic = decode_id(r.get(0))?;
        let partition = to_u32(r.get(1), "partition")?;
        locked.insert((topic, partition), (r.get(2), r.get(3)));
    }
    let mut results = Vec::with_capacity(batch.len());
    let mut any_ok = false;
    for request in batch {
        let mut attempt = locked.clone();
        let result = if batch.len() == 1 {
            commit_segment_in(&tx, &request.segment, &request.order, &mut attempt).await
        } else {
            let sp = tx.savepoint("segment").await.map_err(map_err)?;
            let r = commit_segment_in(&sp, &request.segment, &request.order, &mut attempt).await;
            if r.is_ok() {
                sp.commit().await.map_err(map_err)?;
            } else {
                sp.rollback().await.map_err(map_err)?;
            }
            r
        };
        if result.is_ok() {
            locked = attempt;
            any_ok = true;
        }
        results.push(result);
    }
    if any_ok {
        commit_tx(tx).await?;
    } else {
        tx.rollback().await.map_err(map_err)?;
    }
    Ok(results)
}

/// Commits one segment inside the batch transaction, updating `locked`.
async fn commit_segment_in(
    tx: &Transaction<'_>,
    segment: &SegmentCommit,
    order: &[usize],
    locked: &mut Locked,
) -> Result<Vec<ChunkOutcome>> {
    let mut outcomes = vec![ChunkOutcome::TopicGone; segment.chunks.len()];
    let object_size = to_i64(segment.object_size, "object size")?;
    // Rows for one INSERT into chunks and one UPDATE of partitions.
    let mut c_topic: Vec<Vec<u8>> = Vec::new();
    let mut c_part: Vec<i64> = Vec::new();
    let mut c_base: Vec<i64> = Vec::new();
    let mut c_last: Vec<i64> = Vec::new();
    let mut c_boff: Vec<i64> = Vec::new();
    let mut c_blen: Vec<i64> = Vec::new();
    let mut c_max: Vec<i64> = Vec::new();
    let mut c_running: Vec<i64> = Vec::new();
    for &i in order {
        let c = &segment.chunks[i];
        let Some(&(next, running_max)) = locked.get(&(c.topic, c.partition)) else {
            continue;
        };
        let new_next = next.checked_add(i64::from(c.record_count)).ok_or_else(|| {
            MetaError::Invalid(format!(
                "topic {} partition {}: offset space exhausted",
                c.topic, c.partition
            ))
        })?;
        let base = to_u64(next, "next offset")?;
        let updates = match producer_updates(tx, c, base, true).await? {
            Ok(updates) => updates,
            Err(check) => {
                outcomes[i] = ChunkOutcome::ProducerRejected(check);
                continue;
            }
        };
        for (producer_id, state) in &updates {
            tx.execute(
                "INSERT INTO producer_state (producer_id, topic_id, partition_id, epoch, last_sequence, window_json) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (producer_id, topic_id, partition_id) DO UPDATE SET \
                 epoch = excluded.epoch, last_sequence = excluded.last_sequence, window_json = excluded.window_json",
                &[
                    producer_id,
                    &c.topic.to_bytes().as_slice(),
                    &pid(c.partition),
                    &i64::from(state.epoch),
                    &i64::from(state.last_sequence),
                    &state.window_json(),
                ],
            )
            .await
            .map_err(map_err)?;
        }
        let running = running_max.map_or(c.max_timestamp_ms, |m| m.max(c.max_timestamp_ms));
        c_topic.push(c.topic.to_bytes().to_vec());
        c_part.push(pid(c.partition));
        c_base.push(next);
        c_last.push(new_next - 1);
        c_boff.push(to_i64(c.byte_offset, "byte offset")?);
        c_blen.push(to_i64(c.byte_len, "byte length")?);
        c_max.push(c.max_timestamp_ms);
        c_running.push(running);
        locked.insert((c.topic, c.partition), (new_next, Some(running)));
        outcomes[i] = ChunkOutcome::Committed { base_offset: base };
    }
    if !c_topic.is_empty() {
        tx.execute(
            "INSERT INTO chunks (topic_id, partition_id, base_offset, last_offset, object_key, object_size, \
             byte_offset, byte_len, max_timestamp_ms, running_max_timestamp_ms) \
             SELECT t, p, b, l, $9, $10, bo, bl, m, r \
             FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], \
                         $7::bigint[], $8::bigint[]) AS u(t, p, b, l, bo, bl, m, r)",
            &[
                &c_topic,
                &c_part,
                &c_base,
                &c_last,
                &c_boff,
                &c_blen,
                &c_max,
                &c_running,
                &segment.object_key,
                &object_size,
            ],
        )
        .await
        .map_err(map_err)?;
        let next: Vec<i64> = c_last.iter().map(|l| l + 1).collect();
        tx.execute(
            "UPDATE partitions SET next_offset = u.n, max_timestamp_ms = u.r \
             FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::bigint[]) AS u(t, p, n, r) \
             WHERE partitions.topic_id = u.t AND partitions.partition_id = u.p",
            &[&c_topic, &c_part, &next, &c_running],
        )
        .await
        .map_err(map_err)?;
    }
    Ok(outcomes)
}

// ---------------------------------------------------------------------------
// The trait.

#[async_trait::async_trait]
impl Metadata for PostgresMetadata {
    async fn create_topic(&self, name: &TopicName, partitions: u32, config: TopicConfig) -> Result<TopicInfo> {
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(MetaError::Invalid(format!(
                "topic {name}: partition count {partitions} not in 1..={MAX_PARTITIONS}"
            )));
        }
        let config_json =
            serde_json::to_string(&config).map_err(|e| MetaError::Invalid(format!("topic config: {e}")))?;
        let topic = TopicInfo {
            id: self.inner.ids.topic_id(),
            name: name.clone(),
            partitions,
            config,
            created_ms: self.inner.clock.now_ms(),
        };
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(map_err)?;
        let id = topic.id.to_bytes();
        let inserted = tx
            .execute(
                "INSERT INTO topics (id, name, partitions, config_json, created_ms) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name) DO NOTHING",
                &[
                    &id.as_slice(),
                    &name.as_str(),
                    &i64::from(partitions),
                    &config_json,
                    &topic.created_ms,
                ],
            )
            .await
            .map_err(map_err)?;
        if inserted == 0 {
            return Err(MetaError::TopicExists(name.clone()));
        }
        tx.execute(
            "INSERT INTO partitions (topic_id, partition_id, next_offset, log_start_offset, max_timestamp_ms) \
             SELECT $1, g, 0, 0, NULL FROM generate_series(0::bigint, $2::bigint - 1) AS g",
            &[&id.as_slice(), &i64::from(partitions)],
        )
        .await
        .map_err(map_err)?;
        commit_tx(tx).await?;
        tracing::info!(topic = %topic.name, id = %topic.id, partitions, "created topic");
        Ok(topic)
    }

    async fn delete_topic(&self, name: &TopicName) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(map_err)?;
        let row = tx
            .query_opt("SELECT id FROM topics WHERE name = $1 FOR UPDATE", &[&name.as_str()])
            .await
            .map_err(map_err)?
            .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
        let id: Vec<u8> = row.get(0);
        // Same lock order as commits: wait for in-flight commits, block new ones.
        tx.execute(
            "SELECT 1 FROM partitions WHERE topic_id = $1 ORDER BY topic_id, partition_id FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(map_err)?;
        for sql in [
            "DELETE FROM group_offsets WHERE topic_id = $1",
            "DELETE FROM producer_state WHERE topic_id = $1",
            "DELETE FROM chunks WHERE topic_id = $1",
            "DELETE FROM partitions WHERE topic_id = $1",
            "DELETE FROM topics WHERE id = $1",
        ] {
            tx.execute(sql, &[&id]).await.map_err(map_err)?;
        }
        commit_tx(tx).await?;
        tracing::info!(topic = %name, id = %decode_id(&id)?, "deleted topic");
        Ok(())
    }

    async fn topic(&self, name: &TopicName) -> Result<TopicInfo> {
        let mut conn = self.conn().await?;
        let tx = read_tx(&mut conn).await?;
        require_topic(&tx, name).await
    }

    async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(&format!("SELECT {TOPIC_COLUMNS} FROM topics ORDER BY name"), &[])
            .await
            .map_err(map_err)?;
        let mut topics: Vec<TopicInfo> = rows.iter().map(decode_topic).collect::<Result<_>>()?;
        // Byte order, as SQLite sorts, whatever the database's collation.
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    async fn update_topic_config(&self, name: &TopicName, config: TopicConfig) -> Result<TopicInfo> {
        let config_json =
            serde_json::to_string(&config).map_err(|e| MetaError::Invalid(format!("topic config: {e}")))?;
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!("UPDATE topics SET config_json = $2 WHERE name = $1 RETURNING {TOPIC_COLUMNS}"),
                &[&name.as_str(), &config_json],
            )
            .await
            .map_err(map_err)?
            .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
        decode_topic(&row)
    }

    async fn commit_segment(&self, segment: SegmentCommit) -> Result<Vec<ChunkOutcome>> {
        let order = validate_segment(&segment)?;
        let key = segment.object_key.clone();
        let (reply, answer) = oneshot::channel();
        self.inner
            .commits
            .send(CommitRequest { segment, order, reply })
            .await
            .map_err(|_| MetaError::Unavailable("metadata committer has stopped".into()))?;
        let outcomes = answer
            .await
            .map_err(|_| MetaError::Indeterminate(format!("committer dropped segment {key} mid-commit")))??;
        tracing::debug!(object_key = %key, chunks = outcomes.len(), "committed segment");
        Ok(outcomes)
    }

    async fn lookup(&self, topic: TopicId, partition: PartitionId, offset: Offset) -> Result<Option<ChunkLocation>> {
        let mut conn = self.conn().await?;
        let tx = read_tx(&mut conn).await?;
        let (start, next) = bounds(&tx, topic, partition).await?;
        if offset < start {
            return Err(MetaError::OffsetBelowStart {
                offset,
                log_start: start,
            });
        }
        if offset >= next {
            return Ok(None);
        }
        let chunk = chunk_at_or_before(&tx, topic, partition, offset)
            .await?
            .ok_or_else(|| {
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

    async fn partition_state(&self, topic: TopicId, partition: PartitionId) -> Result<PartitionState> {
        let mut conn = self.conn().await?;
        let tx = read_tx(&mut conn).await?;
        let (start, next) = bounds(&tx, topic, partition).await?;
        Ok(PartitionState {
            partition,
            log_start_offset: start,
            high_watermark: next,
        })
    }

    async fn partition_states(&self, topic: TopicId) -> Result<Vec<PartitionState>> {
        let mut conn = self.conn().await?;
        let tx = read_tx(&mut conn).await?;
        let count = partition_count(&tx, topic)
            .await?
            .ok_or_else(|| MetaError::UnknownTopic(topic.to_string()))?;
        let rows = tx
            .query(
                "SELECT partition_id, log_start_offset, next_offset FROM partitions WHERE topic_id = $1 \
                 ORDER BY partition_id",
                &[&topic.to_bytes().as_slice()],
            )
            .await
            .map_err(map_err)?;
        let states = rows
            .iter()
            .map(|r| {
                Ok(PartitionState {
                    partition: to_u32(r.get(0), "partition")?,
                    log_start_offset: to_u64(r.get(1), "log start offset")?,
                    high_watermark: to_u64(r.get(2), "next offset")?,
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

    async fn lookup_timestamp(
        &self,
        topic: TopicId,
        partition: PartitionId,
        timestamp_ms: i64,
    ) -> Result<Option<ChunkLocation>> {
        let mut conn = self.conn().await?;
        let tx = read_tx(&mut conn).await?;
        let (start, next) = bounds(&tx, topic, partition).await?;
        if start >= next {
            return Ok(None);
        }
        let id = topic.to_bytes();
        let by_time: Option<i64> = tx
            .query_opt(
                "SELECT base_offset FROM chunks WHERE topic_id = $1 AND partition_id = $2 \
                 AND running_max_timestamp_ms >= $3 ORDER BY running_max_timestamp_ms, base_offset LIMIT 1",
                &[&id.as_slice(), &pid(partition), &timestamp_ms],
            )
            .await
            .map_err(map_err)?
            .map(|r| r.get(0));
        let Some(by_time) = by_time else {
            return Ok(None);
        };
        let first = chunk_at_or_before(&tx, topic, partition, start).await?.ok_or_else(|| {
            MetaError::Corrupt(format!(
                "topic {topic} partition {partition}: no chunk holds log start {start}"
            ))
        })?;
        let base = to_u64(by_time, "base offset")?.max(first.base_offset);
        let chunk = chunk_at_or_before(&tx, topic, partition, base)
            .await?
            .filter(|c| c.base_offset == base)
            .ok_or_else(|| MetaError::Corrupt(format!("topic {topic} partition {partition}: chunk {base} vanished")))?;
        Ok(Some(chunk))
    }

    async fn commit_group_offsets(&self, group: &GroupName, commit: &GroupCommit) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(map_err)?;
        if let Some(given) = commit.generation {
            let current = tx
                .query_opt(
                    "SELECT generation FROM consumer_groups WHERE group_name = $1 FOR SHARE",
                    &[&group.as_str()],
                )
                .await
                .map_err(map_err)?
                .map_or(Ok(0), |r| to_i32(r.get(0), "group generation"))?;
            if given != current {
                return Err(MetaError::StaleGeneration {
                    group: group.to_string(),
                    current,
                    given,
                });
            }
        }
        // Resolve names, in input order for the first error.
        let mut topics: HashMap<TopicName, TopicInfo> = HashMap::new();
        let mut latest: BTreeMap<(TopicId, PartitionId), (&GroupOffset, i64)> = BTreeMap::new();
        for o in &commit.offsets {
            if !topics.contains_key(&o.topic) {
                let t = require_topic(&tx, &o.topic).await?;
                topics.insert(o.topic.clone(), t);
            }
            let t = &topics[&o.topic];
            if o.partition >= t.partitions {
                return Err(MetaError::UnknownPartition {
                    topic: o.topic.to_string(),
                    partition: o.partition,
                });
            }
            latest.insert((t.id, o.partition), (o, to_i64(o.offset, "group offset")?));
        }
        if latest.is_empty() {
            return commit_tx(tx).await;
        }
        // Lock the stored rows (in key order) and check for regressions.
        let rows = tx
            .query(
                "SELECT topic_id, partition_id, committed_offset FROM group_offsets WHERE group_name = $1 \
                 ORDER BY topic_id, partition_id FOR UPDATE",
                &[&group.as_str()],
            )
            .await
            .map_err(map_err)?;
        if !commit.reset {
            for r in &rows {
                let key = (decode_id(r.get(0))?, to_u32(r.get(1), "partition")?);
                let stored: i64 = r.get(2);
                if let Some((o, given)) = latest.get(&key)
                    && *given < stored
                {
                    return Err(MetaError::OffsetRegression {
                        topic: o.topic.to_string(),
                        partition: o.partition,
                        committed: to_u64(stored, "group offset")?,
                        given: o.offset,
                    });
                }
            }
        }
        let t: Vec<Vec<u8>> = latest.keys().map(|(t, _)| t.to_bytes().to_vec()).collect();
        let p: Vec<i64> = latest.keys().map(|(_, p)| pid(*p)).collect();
        let off: Vec<i64> = latest.values().map(|(_, v)| *v).collect();
        let written = tx
            .execute(
                "INSERT INTO group_offsets (group_name, topic_id, partition_id, committed_offset) \
                 SELECT $1, t, p, o FROM unnest($2::bytea[], $3::bigint[], $4::bigint[]) AS u(t, p, o) \
                 ON CONFLICT (group_name, topic_id, partition_id) DO UPDATE \
                 SET committed_offset = excluded.committed_offset \
                 WHERE $5 OR group_offsets.committed_offset <= excluded.committed_offset",
                &[&group.as_str(), &t, &p, &off, &commit.reset],
            )
            .await
            .map_err(map_err)?;
        if written != latest.len() as u64 {
            // A concurrent commit inserted a higher offset after our check.
            return Err(MetaError::Unavailable(format!(
                "group {group}: offsets changed concurrently; retry"
            )));
        }
        commit_tx(tx).await
    }

    async fn group_offsets(&self, group: &GroupName) -> Result<GroupState> {
        let mut conn = self.conn().await?;
        let tx = read_tx(&mut conn).await?;
        let generation = tx
            .query_opt(
                "SELECT generation FROM consumer_groups WHERE group_name = $1",
                &[&group.as_str()],
            )
            .await
            .map_err(map_err)?
            .map_or(Ok(0), |r| to_i32(r.get(0), "group generation"))?;
        let rows = tx
            .query(
                "SELECT t.name, g.partition_id, g.committed_offset FROM group_offsets g \
                 JOIN topics t ON t.id = g.topic_id WHERE g.group_name = $1",
                &[&group.as_str()],
            )
            .await
            .map_err(map_err)?;
        let mut offsets = rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                Ok(GroupOffset {
                    topic: TopicName::new(&name)
                        .map_err(|e| MetaError::Corrupt(format!("stored topic name {name:?}: {e}")))?,
                    partition: to_u32(r.get(1), "partition")?,
                    offset: to_u64(r.get(2), "group offset")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(GroupState { generation, offsets })
    }

    async fn join_group(&self, group: &GroupName) -> Result<i32> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                "INSERT INTO consumer_groups (group_name, generation) VALUES ($1, 1) \
                 ON CONFLICT (group_name) DO UPDATE SET generation = consumer_groups.generation + 1 \
                 RETURNING generation",
                &[&group.as_str()],
            )
            .await
            .map_err(|e| match map_err(e) {
                MetaError::Corrupt(_) => MetaError::Invalid(format!("group {group}: generation exhausted")),
                other => other,
            })?;
        to_i32(row.get(0), "group generation")
    }

    async fn init_producer(&self, existing: Option<i64>) -> Result<ProducerIdentity> {
        let conn = self.conn().await?;
        let identity = match existing {
            None => {
                let row = conn
                    .query_one(
                        "INSERT INTO producers (producer_id, epoch) VALUES (nextval('producer_ids'), 0) \
                         RETURNING producer_id",
                        &[],
                    )
                    .await
                    .map_err(map_err)?;
                ProducerIdentity {
                    producer_id: row.get(0),
                    producer_epoch: 0,
                }
            }
            Some(id) => {
                let row = conn
                    .query_opt(
                        "UPDATE producers SET epoch = epoch + 1 WHERE producer_id = $1 AND epoch < 32767 \
                         RETURNING epoch",
                        &[&id],
                    )
                    .await
                    .map_err(map_err)?;
                match row {
                    Some(r) => ProducerIdentity {
                        producer_id: id,
                        producer_epoch: to_i16(r.get(0), "producer epoch")?,
                    },
                    None => {
                        let exists = conn
                            .query_opt("SELECT epoch FROM producers WHERE producer_id = $1", &[&id])
                            .await
                            .map_err(map_err)?;
                        return match exists {
                            Some(r) => bumped(id, to_i16(r.get(0), "producer epoch")?),
                            None => Err(MetaError::UnknownProducer(id)),
                        };
                    }
                }
            }
        };
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
        let mut conn = self.conn().await?;
        let tx = read_tx(&mut conn).await?;
        let (_, next) = bounds(&tx, topic, partition).await?;
        let probe = ChunkCommit {
            topic,
            partition,
            record_count: append.record_count.saturating_add(append.offset_in_chunk),
            byte_offset: 0,
            byte_len: 0,
            max_timestamp_ms: 0,
            producers: vec![*append],
        };
        Ok(match producer_updates(&tx, &probe, next, false).await? {
            Ok(_) => ProducerCheck::Accept,
            Err(check) => check,
        })
    }

    async fn register_agent(&self, agent: &AgentRegistration) -> Result<()> {
        validate_registration(agent)?;
        let now = self.inner.clock.now_ms();
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO agents (node_id, address, zone, registered_ms, expires_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (node_id) DO UPDATE SET address = excluded.address, zone = excluded.zone, \
             registered_ms = CASE WHEN agents.expires_ms > $4 THEN agents.registered_ms ELSE excluded.registered_ms END, \
             expires_ms = excluded.expires_ms",
            &[
                &agent.node_id,
                &agent.address,
                &agent.zone,
                &now,
                &expiry(now, agent.lease_ms),
            ],
        )
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn list_agents(&self) -> Result<Vec<AgentInfo>> {
        let now = self.inner.clock.now_ms();
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT node_id, address, zone, registered_ms, expires_ms FROM agents WHERE expires_ms > $1",
                &[&now],
            )
            .await
            .map_err(map_err)?;
        let mut agents: Vec<AgentInfo> = rows
            .iter()
            .map(|r| AgentInfo {
                node_id: r.get(0),
                address: r.get(1),
                zone: r.get(2),
                registered_ms: r.get(3),
                expires_ms: r.get(4),
            })
            .collect();
        agents.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(agents)
    }

    async fn try_acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool> {
        validate_lease(name, holder, Some(ttl_ms))?;
        let now = self.inner.clock.now_ms();
        let conn = self.conn().await?;
        let changed = conn
            .execute(
                "INSERT INTO leases (name, holder, expires_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms \
                 WHERE leases.holder = excluded.holder OR leases.expires_ms <= $4",
                &[&name, &holder, &expiry(now, ttl_ms), &now],
            )
            .await
            .map_err(map_err)?;
        Ok(changed == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        validate_lease(name, holder, None)?;
        let conn = self.conn().await?;
        conn.execute("DELETE FROM leases WHERE name = $1 AND holder = $2", &[&name, &holder])
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn list_chunks(
        &self,
        topic: TopicId,
        partition: PartitionId,
        from: Offset,
        limit: usize,
    ) -> Result<Vec<ChunkLocation>> {
        let mut conn = self.conn().await?;
        let tx = read_tx(&mut conn).await?;
        let (start, _) = bounds(&tx, topic, partition).await?;
        let from = from.max(start);
        let first = chunk_at_or_before(&tx, topic, partition, from)
            .await?
            .map_or(from, |c| if c.last_offset >= from { c.base_offset } else { from });
        chunks_from(&tx, topic, partition, first, limit).await
    }

    async fn replace_chunks(&self, r: ChunkReplacement) -> Result<ReplaceOutcome> {
        validate_replacement(&r)?;
        let (first, last) = match (r.old.first(), r.old.last()) {
            (Some(f), Some(l)) => (f.base_offset, l.last_offset),
            _ => return Err(MetaError::Invalid("chunk replacement without old entries".into())),
        };
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(map_err)?;
        let (log_start, _) = lock_partition(&tx, r.topic, r.partition).await?;
        let mut current = chunks_from(&tx, r.topic, r.partition, first, r.old.len() + 1).await?;
        current.retain(|c| c.base_offset <= last);
        let outcome = check_replaced(&r, log_start, &current);
        if outcome != ReplaceOutcome::Replaced {
            tx.rollback().await.map_err(map_err)?;
            return Ok(outcome);
        }
        let id = r.topic.to_bytes();
        let first_i = to_i64(first, "base offset")?;
        let before: Option<i64> = tx
            .query_opt(
                "SELECT running_max_timestamp_ms FROM chunks WHERE topic_id = $1 AND partition_id = $2 \
                 AND base_offset < $3 ORDER BY base_offset DESC LIMIT 1",
                &[&id.as_slice(), &pid(r.partition), &first_i],
            )
            .await
            .map_err(map_err)?
            .map(|row| row.get(0));
        tx.execute(
            "DELETE FROM chunks WHERE topic_id = $1 AND partition_id = $2 AND base_offset >= $3 AND base_offset <= $4",
            &[
                &id.as_slice(),
                &pid(r.partition),
                &first_i,
                &to_i64(last, "last offset")?,
            ],
        )
        .await
        .map_err(map_err)?;
        let running = running_maxima(&r, before);
        let mut base = Vec::new();
        let mut lastv = Vec::new();
        let mut boff = Vec::new();
        let mut blen = Vec::new();
        let mut maxts = Vec::new();
        for e in &r.entries {
            base.push(to_i64(e.base_offset, "base offset")?);
            lastv.push(to_i64(e.last_offset, "last offset")?);
            boff.push(to_i64(e.byte_offset, "byte offset")?);
            blen.push(to_i64(e.byte_len, "byte length")?);
            maxts.push(e.max_timestamp_ms);
        }
        let format = i16::try_from(r.format.code()).unwrap_or(0);
        tx.execute(
            "INSERT INTO chunks (topic_id, partition_id, base_offset, last_offset, object_key, object_size, \
             byte_offset, byte_len, max_timestamp_ms, running_max_timestamp_ms, format, footer_len) \
             SELECT $1, $2, b, l, $3, $4, bo, bl, m, rm, $5, $6 \
             FROM unnest($7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[]) \
             AS u(b, l, bo, bl, m, rm)",
            &[
                &id.as_slice(),
                &pid(r.partition),
                &r.object_key,
                &to_i64(r.object_size, "object size")?,
                &format,
                &to_i64(r.footer_len, "footer length")?,
                &base,
                &lastv,
                &boff,
                &blen,
                &maxts,
                &running,
            ],
        )
        .await
        .map_err(map_err)?;
        commit_tx(tx).await?;
        Ok(ReplaceOutcome::Replaced)
    }

    async fn advance_log_start(&self, topic: TopicId, partition: PartitionId, new_start: Offset) -> Result<Offset> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(map_err)?;
        let (log_start, next) = lock_partition(&tx, topic, partition).await?;
        if new_start > next {
            return Err(MetaError::Invalid(format!(
                "topic {topic} partition {partition}: log start {new_start} past the high watermark {next}"
            )));
        }
        if new_start <= log_start {
            tx.rollback().await.map_err(map_err)?;
            return Ok(log_start);
        }
        let id = topic.to_bytes();
        let start = to_i64(new_start, "log start offset")?;
        tx.execute(
            "UPDATE partitions SET log_start_offset = $3 WHERE topic_id = $1 AND partition_id = $2",
            &[&id.as_slice(), &pid(partition), &start],
        )
        .await
        .map_err(map_err)?;
        tx.execute(
            "DELETE FROM chunks WHERE topic_id = $1 AND partition_id = $2 AND last_offset < $3",
            &[&id.as_slice(), &pid(partition), &start],
        )
        .await
        .map_err(map_err)?;
        commit_tx(tx).await?;
        Ok(new_start)
    }

    async fn unreferenced_objects(&self, keys: Vec<String>) -> Result<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT DISTINCT object_key FROM chunks WHERE object_key = ANY($1::text[])",
                &[&keys],
            )
            .await
            .map_err(map_err)?;
        let referenced: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        Ok(keys.into_iter().filter(|k| !referenced.contains(k)).collect())
    }
}

#[cfg(test)]
mod tests {
    use silt_types::{ManualClock, RandomIds};

    use super::*;
    use crate::conformance::Subject;

    /// A backend on a fresh database of the test PostgreSQL server, or why there is none.
    async fn subject() -> std::result::Result<Subject, silt_testkit::Unavailable> {
        let server = silt_testkit::PostgresServer::shared().await?;
        let url = server.fresh_database().await?;
        let clock = ManualClock::new(1_700_000_000_000);
        let meta = PostgresMetadata::connect(&url, Arc::new(clock.clone()), Arc::new(RandomIds))
            .await
            .expect("connect to fresh database");
        Ok(Subject::new(Arc::new(meta)).with_clock(clock))
    }

    mod conformance_postgres {
        crate::metadata_conformance_tests!(super::subject());
    }

    #[tokio::test]
    async fn migrations_are_idempotent_and_refuse_newer() {
        let server = silt_testkit::require!(silt_testkit::PostgresServer::shared().await);
        let url = server.fresh_database().await.expect("fresh database");
        let open = || PostgresMetadata::connect(&url, Arc::new(ManualClock::new(0)), Arc::new(RandomIds));
        // Concurrent first starts race to migrate; the advisory lock serialises them.
        let (a, b) = tokio::join!(open(), open());
        let (a, _b) = (a.expect("first"), b.expect("second"));
        let conn = a.conn().await.expect("conn");
        let rows = conn
            .query("SELECT version FROM silt_schema_migrations ORDER BY version", &[])
            .await
            .expect("versions");
        let versions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(
            versions,
            (1..=i64::from(PostgresMetadata::SCHEMA_VERSION)).collect::<Vec<_>>()
        );
        conn.execute(
            "INSERT INTO silt_schema_migrations (version) VALUES ($1)",
            &[&(i64::from(PostgresMetadata::SCHEMA_VERSION) + 1)],
        )
        .await
        .expect("bump");
        drop(conn);
        match open().await {
            Err(MetaError::Invalid(msg)) => assert!(msg.contains("newer"), "{msg}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn tls_connections_are_verified_and_carry_the_catalog() {
        let (server, ca) = silt_testkit::require!(silt_testkit::PostgresServer::start_new_tls().await);
        let port = server.port().expect("a local cluster");
        // The cluster lets only `postgres` in without TLS; this role must use it.
        server
            .execute("CREATE ROLE silt_tls LOGIN SUPERUSER")
            .await
            .expect("create role");
        let base = format!("postgres://silt_tls@127.0.0.1:{port}/postgres");
        let open = |query: String| {
            let url = format!("{base}?{query}");
            async move { PostgresMetadata::connect(&url, Arc::new(ManualClock::new(0)), Arc::new(RandomIds)).await }
        };
        let ca_param: String = form_urlencoded::byte_serialize(ca.to_string_lossy().as_bytes()).collect();

        // Verified TLS with the test CA: migrations run and the catalog works.
        let meta = open(format!("sslmode=verify-full&sslrootcert={ca_param}"))
            .await
            .expect("TLS connection verified against the CA");
        let topic = TopicName::new("over-tls").expect("name");
        meta.create_topic(&topic, 2, TopicConfig::default())
            .await
            .expect("create topic over TLS");
        assert_eq!(meta.topic(&topic).await.expect("topic").partitions, 2);
        // The default (prefer) uses TLS too when the server offers it.
        open(format!("sslrootcert={ca_param}"))
            .await
            .expect("prefer upgrades to TLS");

        // The same role without TLS is refused by the server: the connections above were TLS.
        match open("sslmode=disable".into()).await {
            Err(MetaError::Unavailable(m)) => assert!(m.contains("pg_hba.conf"), "{m}"),
            other => panic!("plaintext must be refused, got {other:?}"),
        }
        // Without the CA the certificate cannot be verified, and the error says what to do.
        match open("sslmode=require".into()).await {
            Err(MetaError::Unavailable(m)) => assert!(m.contains("sslrootcert"), "{m}"),
            other => panic!("an unverifiable certificate must be refused, got {other:?}"),
        }
        // A certificate for another name is refused even with the right CA.
        let wrong_name =
            format!("postgres://silt_tls@127.0.0.2:{port}/postgres?sslmode=require&sslrootcert={ca_param}");
        match PostgresMetadata::connect(&wrong_name, Arc::new(ManualClock::new(0)), Arc::new(RandomIds)).await {
            Err(MetaError::Unavailable(m)) => assert!(m.contains("not valid for name"), "{m}"),
            other => panic!("a certificate for another name must be refused, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        let port = silt_testkit::free_port().expect("port");
        let url = format!("postgres://postgres@127.0.0.1:{port}/none");
        let r = PostgresMetadata::connect(&url, Arc::new(ManualClock::new(0)), Arc::new(RandomIds)).await;
        assert!(matches!(r, Err(MetaError::Unavailable(_))), "{r:?}");
        let r = PostgresMetadata::connect("not a url", Arc::new(ManualClock::new(0)), Arc::new(RandomIds)).await;
        assert!(matches!(r, Err(MetaError::Invalid(_))), "{r:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_commits_are_batched() {
        let subject = match subject().await {
            Ok(s) => s,
            Err(e) => {
                silt_testkit::skip(&e);
                return;
            }
        };
        let meta = subject.meta;
        let t = meta
            .create_topic(&TopicName::new("t").expect("name"), 1, TopicConfig::default())
            .await
            .expect("create");
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let meta = Arc::clone(&meta);
            tasks.push(tokio::spawn(async move {
                let segment = SegmentCommit {
                    object_key: format!("s{i}"),
                    object_size: 10,
                    chunks: vec![ChunkCommit {
                        topic: t.id,
                        partition: 0,
                        record_count: 1,
                        byte_offset: 0,
                        byte_len: 10,
                        max_timestamp_ms: 0,
                        producers: Vec::new(),
                    }],
                };
                meta.commit_segment(segment).await.expect("commit")
            }));
        }
        let mut bases = Vec::new();
        for t in tasks {
            match t.await.expect("task")[..] {
                [ChunkOutcome::Committed { base_offset }] => bases.push(base_offset),
                ref o => panic!("{o:?}"),
            }
        }
        bases.sort_unstable();
        assert_eq!(bases, (0..64).collect::<Vec<_>>());
    }
}
