//! The read path (design §4): lookup (cached) → cache → object store, with a
//! CRC check on every chunk read and a long-poll at the high watermark.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared as SharedFuture};
use object_store::path::Path;
use silt_compactor::l1;
use silt_meta::{ChunkFormat, ChunkLocation};
use silt_segment::DecodedRecord;
use silt_storage::StorageError;
use silt_types::{Offset, PartitionId, TopicId};
use tracing::warn;

use crate::{AgentError, Shared};

/// What a read asks for.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    /// Partition to read.
    pub partition: PartitionId,
    /// First offset wanted.
    pub offset: Offset,
    /// At most this many records.
    pub max_records: usize,
    /// About this many bytes (at least one record is returned regardless).
    pub max_bytes: usize,
    /// How long to wait at the high watermark for new data.
    pub wait: Duration,
}

/// What a read returns.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Consecutive records starting at the requested offset.
    pub records: Vec<DecodedRecord>,
    /// The offset to read next.
    pub next_offset: Offset,
    /// The partition's high watermark when the read finished.
    pub high_watermark: Offset,
    /// The partition's log start offset.
    pub log_start_offset: Offset,
}

pub(crate) type FetchResult = Result<Bytes, Arc<StorageError>>;

/// Concurrent fetches of one object share one GET (single flight).
#[derive(Default)]
pub(crate) struct InFlight {
    fetches: Mutex<HashMap<String, SharedFuture<BoxFuture<'static, FetchResult>>>>,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").finish_non_exhaustive()
    }
}

/// Returns the whole object, from the cache or (once per object, however many
/// readers ask at the same time) from the object store, then caches it.
async fn object_bytes(shared: &Arc<Shared>, key: &str, topic: silt_types::TopicId) -> Result<Bytes, AgentError> {
    if let Some(bytes) = shared.cache.get(key).await {
        shared.metrics.chunk_read("cache");
        return Ok(bytes);
    }
    shared.metrics.chunk_read("tail_fetch");
    let fetcher = shared.clone();
    let owned_key = key.to_owned();
    let fetch = async move {
        // A fetch that just finished left the object in memory; a reader that
        // missed the cache before that and arrives after it must not GET again.
        if let Some(bytes) = fetcher.cache.peek(&owned_key) {
            return Ok(bytes);
        }
        let result = fetcher.store.get(&Path::from(owned_key.as_str())).await;
        fetcher.metrics.object_get(&fetcher.topic_names.label(topic));
        if let Ok(bytes) = &result {
            // Cache before leaving the in-flight map, so no reader misses both.
            fetcher.cache.insert(&owned_key, bytes.clone());
        }
        result.map_err(Arc::new)
    };
    fetch_once(shared, key.to_owned(), fetch.boxed())
        .await
        .map_err(|e| match &*e {
            StorageError::NotFound(key) => AgentError::Storage(StorageError::NotFound(key.clone())),
            other => AgentError::Internal(format!("object read failed: {other}")),
        })
}

/// Runs `fetch` unless a fetch under the same `flight` key is already in
/// progress, in which case this caller shares that one's result.
pub(crate) async fn fetch_once(
    shared: &Arc<Shared>,
    flight: String,
    fetch: BoxFuture<'static, FetchResult>,
) -> FetchResult {
    let fut = {
        let mut fetches = shared.inflight.fetches.lock().expect("inflight lock poisoned");
        fetches
            .entry(flight.clone())
            .or_insert_with(|| {
                let shared = shared.clone();
                async move {
                    let result = fetch.await;
                    shared
                        .inflight
                        .fetches
                        .lock()
                        .expect("inflight lock poisoned")
                        .remove(&flight);
                    result
                }
                .boxed()
                .shared()
            })
            .clone()
    };
    fut.await
}

/// Decoded footers of L1 Parquet files, by object key; bounded by count.
#[derive(Debug, Default)]
pub(crate) struct FooterCache {
    footers: Mutex<HashMap<String, Arc<l1::Footer>>>,
}

/// Footers kept at most; a full cache starts over (lookups refill what is hot).
const FOOTER_CACHE_ENTRIES: usize = 1024;

impl FooterCache {
    fn get(&self, key: &str) -> Option<Arc<l1::Footer>> {
        self.footers
            .lock()
            .expect("footer cache lock poisoned")
            .get(key)
            .cloned()
    }

    fn insert(&self, key: &str, footer: Arc<l1::Footer>) {
        let mut footers = self.footers.lock().expect("footer cache lock poisoned");
        if footers.len() >= FOOTER_CACHE_ENTRIES {
            footers.clear();
        }
        footers.insert(key.to_owned(), footer);
    }

    fn remove(&self, key: &str) {
        self.footers.lock().expect("footer cache lock poisoned").remove(key);
    }
}

/// The records of one chunk, whichever tier it came from.
pub(crate) enum ChunkData {
    /// An L0 segment chunk, decoded lazily.
    Segment(silt_segment::ChunkView),
    /// An L1 row group, decoded.
    Parquet(Vec<DecodedRecord>),
}

impl ChunkData {
    /// The records, given the chunk's base offset.
    pub(crate) fn into_records(self, base_offset: Offset) -> ChunkRecordIter {
        match self {
            Self::Segment(view) => ChunkRecordIter::Segment(view.records(base_offset)),
            Self::Parquet(rows) => ChunkRecordIter::Parquet(rows.into_iter()),
        }
    }
}

/// Iterator over [`ChunkData`]'s records.
pub(crate) enum ChunkRecordIter {
    Segment(silt_segment::ChunkRecords),
    Parquet(std::vec::IntoIter<DecodedRecord>),
}

impl Iterator for ChunkRecordIter {
    type Item = Result<DecodedRecord, String>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Segment(it) => it.next().map(|r| r.map_err(|e| e.to_string())),
            Self::Parquet(it) => it.next().map(Ok),
        }
    }
}

/// The decoded footer of an L1 file: cached, or one ranged GET of the file's tail.
async fn l1_footer(shared: &Arc<Shared>, loc: &ChunkLocation, fresh: bool) -> Result<Arc<l1::Footer>, AgentError> {
    if !fresh && let Some(footer) = shared.footers.get(&loc.object_key) {
        return Ok(footer);
    }
    if loc.footer_len == 0 || loc.footer_len > loc.object_size {
        return Err(AgentError::Corrupt(format!(
            "key={} footer length {} does not fit object size {}",
            loc.object_key, loc.footer_len, loc.object_size
        )));
    }
    let tail = shared
        .replay_store
        .get_range(
            &Path::from(loc.object_key.as_str()),
            loc.object_size - loc.footer_len..loc.object_size,
        )
        .await
        .map_err(|e| match e {
            StorageError::NotFound(key) => AgentError::Storage(StorageError::NotFound(key)),
            other => AgentError::Internal(format!("object read failed: {other}")),
        })?;
    let footer = tokio::task::spawn_blocking(move || l1::decode_footer(&tail))
        .await
        .map_err(|e| AgentError::Internal(format!("footer decode panicked: {e}")))?;
    let footer = Arc::new(footer.map_err(|e| AgentError::Corrupt(format!("key={} footer: {e}", loc.object_key)))?);
    shared.footers.insert(&loc.object_key, footer.clone());
    Ok(footer)
}

/// Reads one L1 row group with a ranged GET (footer cached), checks its CRC
/// and that it holds exactly the index entry's offsets. A corrupt copy is
/// fetched again once (footer included); then the read fails with `Corrupt`.
async fn read_row_group(shared: &Arc<Shared>, loc: &ChunkLocation) -> Result<ChunkData, AgentError> {
    let mut last_error = String::new();
    for attempt in 0..2 {
        let fresh = attempt > 0;
        let footer = match l1_footer(shared, loc, fresh).await {
            Ok(f) => f,
            Err(AgentError::Corrupt(reason)) if !fresh => {
                last_error = reason;
                continue;
            }
            Err(e) => return Err(e),
        };
        let bytes = match crate::replay::chunk_bytes(shared, loc, fresh).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound(key)) => return Err(AgentError::Storage(StorageError::NotFound(key))),
            Err(other) => return Err(AgentError::Internal(format!("object read failed: {other}"))),
        };
        let byte_offset = loc.byte_offset;
        let decoded = tokio::task::spawn_blocking(move || l1::decode_row_group(&footer, byte_offset, bytes))
            .await
            .map_err(|e| AgentError::Internal(format!("row group decode panicked: {e}")))?;
        let checked = decoded.map_err(|e| e.to_string()).and_then(|rows| {
            let (first, last) = (rows.first().map(|r| r.offset), rows.last().map(|r| r.offset));
            if first == Some(loc.base_offset) && last == Some(loc.last_offset) {
                Ok(rows)
            } else {
                Err(format!(
                    "row group holds offsets {first:?}..={last:?} but index says {}..={}",
                    loc.base_offset, loc.last_offset
                ))
            }
        });
        match checked {
            Ok(rows) => return Ok(ChunkData::Parquet(rows)),
            Err(reason) => {
                shared.metrics.corrupt_chunk();
                warn!(key = %loc.object_key, base_offset = loc.base_offset, attempt, %reason, "corrupt row group, fetching again");
                shared.footers.remove(&loc.object_key);
                last_error = reason;
            }
        }
    }
    Err(AgentError::Corrupt(format!("key={} {last_error}", loc.object_key)))
}

/// Which path a read takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadPath {
    /// Near the high watermark: whole segments through the tail cache.
    Tail,
    /// Far behind: chunk ranges from object storage on the replay budget.
    Replay,
}

/// Reads and verifies one chunk. A copy that fails its CRC is dropped (from
/// the cache) and fetched again from the object store; if that copy is
/// corrupt too, the read fails with `Corrupt` — corrupt bytes are never served.
pub(crate) async fn read_chunk(
    shared: &Arc<Shared>,
    loc: &ChunkLocation,
    path: ReadPath,
) -> Result<ChunkData, AgentError> {
    if loc.format == ChunkFormat::Parquet {
        // L1 is old data by construction: always ranged GETs on the replay budget.
        return read_row_group(shared, loc).await;
    }
    let mut last_error = String::new();
    for attempt in 0..2 {
        let chunk = match path {
            ReadPath::Tail => {
                let object = object_bytes(shared, &loc.object_key, loc.topic).await?;
                slice_chunk(&object, loc)
            }
            ReadPath::Replay => match crate::replay::chunk_bytes(shared, loc, attempt > 0).await {
                Ok(bytes) => Ok(bytes),
                Err(StorageError::NotFound(key)) => return Err(AgentError::Storage(StorageError::NotFound(key))),
                Err(other) => return Err(AgentError::Internal(format!("object read failed: {other}"))),
            },
        };
        match chunk.and_then(|bytes| verify_chunk(bytes, loc)) {
            Ok(view) => return Ok(ChunkData::Segment(view)),
            Err(reason) => {
                shared.metrics.corrupt_chunk();
                warn!(key = %loc.object_key, topic = %loc.topic, partition = loc.partition, base_offset = loc.base_offset, attempt, %reason, "corrupt chunk, fetching again");
                shared.cache.remove(&loc.object_key);
                last_error = reason;
            }
        }
    }
    Err(AgentError::Corrupt(format!("key={} {last_error}", loc.object_key)))
}

fn slice_chunk(object: &Bytes, loc: &ChunkLocation) -> Result<Bytes, String> {
    let start = usize::try_from(loc.byte_offset).map_err(|_| "chunk offset out of range".to_owned())?;
    let len = usize::try_from(loc.byte_len).map_err(|_| "chunk length out of range".to_owned())?;
    let end = start.checked_add(len).ok_or("chunk range overflows")?;
    if end > object.len() || object.len() as u64 != loc.object_size {
        return Err(format!(
            "object size={} does not hold chunk range={start}..{end} (expected size={})",
            object.len(),
            loc.object_size
        ));
    }
    Ok(object.slice(start..end))
}

fn verify_chunk(bytes: Bytes, loc: &ChunkLocation) -> Result<silt_segment::ChunkView, String> {
    let view = silt_segment::decode_chunk(bytes).map_err(|e| e.to_string())?;
    let expected = loc.last_offset - loc.base_offset + 1;
    if view.topic != loc.topic || view.partition != loc.partition || u64::from(view.record_count) != expected {
        return Err(format!(
            "chunk header names topic={} partition={} records={} but index says topic={} partition={} records={expected}",
            view.topic, view.partition, view.record_count, loc.topic, loc.partition
        ));
    }
    Ok(view)
}

/// Finds the chunk holding `offset`, from the cache or the catalog.
pub(crate) async fn locate(
    shared: &Shared,
    topic: TopicId,
    partition: PartitionId,
    offset: Offset,
) -> Result<Option<Arc<ChunkLocation>>, AgentError> {
    if let Some(loc) = shared.locations.get(topic, partition, offset) {
        return Ok(Some(loc));
    }
    let Some(loc) = shared.meta.lookup(topic, partition, offset).await? else {
        return Ok(None);
    };
    shared.locations.insert(loc.clone());
    Ok(Some(Arc::new(loc)))
}

/// Whether a read from `offset` is far enough behind to take the replay path.
pub(crate) fn is_replay(config: &crate::AgentConfig, high_watermark: Offset, offset: Offset) -> bool {
    high_watermark.saturating_sub(offset) > config.replay_lag_records
}

/// Collects records `[offset, high_watermark)` within the request's limits.
pub(crate) async fn collect(
    shared: &Arc<Shared>,
    topic: TopicId,
    req: &ReadRequest,
    high_watermark: Offset,
) -> Result<(Vec<DecodedRecord>, Offset), AgentError> {
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut next = req.offset;
    let mut retried_gone = false;
    let path = if is_replay(&shared.config, high_watermark, req.offset) {
        ReadPath::Replay
    } else {
        ReadPath::Tail
    };
    let mut last_loc = None;
    while next < high_watermark && records.len() < req.max_records && (records.is_empty() || bytes < req.max_bytes) {
        let Some(loc) = locate(shared, topic, req.partition, next).await? else {
            break;
        };
        if path == ReadPath::Replay && last_loc.is_none() {
            crate::replay::prefetch(shared, &loc, high_watermark, shared.config.readahead_chunks);
        }
        let view = match read_chunk(shared, &loc, path).await {
            Ok(view) => view,
            Err(AgentError::Storage(StorageError::NotFound(_))) if !retried_gone => {
                // Compaction may have moved the range: look it up again once.
                shared.locations.remove(&loc);
                retried_gone = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        retried_gone = false;
        let mut expected = next;
        for record in view.into_records(loc.base_offset) {
            let record = record.map_err(|e| AgentError::Corrupt(format!("key={} {e}", loc.object_key)))?;
            if record.offset < next {
                continue;
            }
            if record.offset != expected {
                return Err(AgentError::Corrupt(format!(
                    "key={} offset gap expected={expected} found={}",
                    loc.object_key, record.offset
                )));
            }
            let size = record_size(&record);
            if records.len() >= req.max_records || (!records.is_empty() && bytes + size > req.max_bytes) {
                finish_replay(shared, path, &loc, high_watermark);
                return Ok((records, next));
            }
            bytes += size;
            expected += 1;
            next = record.offset + 1;
            records.push(record);
        }
        if next <= loc.last_offset {
            return Err(AgentError::Corrupt(format!(
                "key={} chunk ended at offset={next} before last_offset={}",
                loc.object_key, loc.last_offset
            )));
        }
        last_loc = Some(loc);
    }
    if let Some(loc) = last_loc {
        finish_replay(shared, path, &loc, high_watermark);
    }
    Ok((records, next))
}

/// After a replay read, fetch what the reader will ask for next.
fn finish_replay(shared: &Arc<Shared>, path: ReadPath, last: &ChunkLocation, high_watermark: Offset) {
    if path == ReadPath::Replay {
        crate::replay::prefetch(shared, last, high_watermark, shared.config.readahead_chunks);
    }
}

/// Size of a record as counted against `max_bytes`.
pub(crate) fn record_size(r: &DecodedRecord) -> usize {
    r.key.as_ref().map_or(0, Bytes::len)
        + r.value.as_ref().map_or(0, Bytes::len)
        + r.headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
            .sum::<usize>()
}
