//! The replay path: reads far behind the high watermark stream chunk byte
//! ranges straight from object storage, through their own concurrency and
//! bandwidth budget, with read-ahead into a small buffer of their own — and
//! never into the tail cache, so a replay of any size cannot evict what live
//! consumers read or take the object-store capacity producers need.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use object_store::path::Path;
use silt_meta::ChunkLocation;
use silt_storage::StorageError;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::debug;

use crate::Shared;

/// Concurrency and bandwidth allowance of all replay reads of one agent.
#[derive(Debug)]
pub(crate) struct ReplayBudget {
    permits: Semaphore,
    bucket: Option<Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    available: f64,
    last: Instant,
}

impl ReplayBudget {
    pub(crate) fn new(concurrency: usize, bytes_per_sec: u64) -> Self {
        Self {
            permits: Semaphore::new(concurrency.max(1)),
            bucket: (bytes_per_sec > 0).then(|| {
                Mutex::new(Bucket {
                    rate: bytes_per_sec as f64,
                    available: bytes_per_sec as f64,
                    last: Instant::now(),
                })
            }),
        }
    }

    /// Waits until `bytes` fit the bandwidth budget (bursts up to one second's worth).
    async fn throttle(&self, bytes: u64) {
        let Some(bucket) = &self.bucket else { return };
        loop {
            let wait = {
                let mut b = bucket.lock().expect("replay bucket lock poisoned");
                let now = Instant::now();
                b.available = (b.available + now.duration_since(b.last).as_secs_f64() * b.rate).min(b.rate);
                b.last = now;
                let want = (bytes as f64).min(b.rate);
                if b.available >= want {
                    b.available -= bytes as f64;
                    return;
                }
                Duration::from_secs_f64((want - b.available) / b.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn fetch(&self, shared: &Shared, loc: &ChunkLocation) -> Result<Bytes, StorageError> {
        let _permit = self.permits.acquire().await.expect("replay semaphore never closes");
        self.throttle(loc.byte_len).await;
        shared
            .replay_store
            .get_range(
                &Path::from(loc.object_key.as_str()),
                loc.byte_offset..loc.byte_offset + loc.byte_len,
            )
            .await
    }
}

/// Chunks fetched ahead of the reader; bounded in bytes, each used once.
#[derive(Debug)]
pub(crate) struct ReadAhead {
    capacity: usize,
    inner: Mutex<ReadAheadInner>,
}

#[derive(Debug, Default)]
struct ReadAheadInner {
    bytes: usize,
    order: VecDeque<ChunkKey>,
    chunks: HashMap<ChunkKey, Bytes>,
    pending: HashSet<ChunkKey>,
}

type ChunkKey = (String, u64);

fn chunk_key(loc: &ChunkLocation) -> ChunkKey {
    (loc.object_key.clone(), loc.byte_offset)
}

impl ReadAhead {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::default(),
        }
    }

    fn take(&self, loc: &ChunkLocation) -> Option<Bytes> {
        let mut inner = self.inner.lock().expect("read-ahead lock poisoned");
        let key = chunk_key(loc);
        let bytes = inner.chunks.remove(&key)?;
        inner.bytes -= bytes.len();
        inner.order.retain(|k| *k != key);
        Some(bytes)
    }

    /// Claims a chunk for prefetching; false if it is buffered or already
    /// coming. A full buffer does not refuse: `put` evicts the oldest chunks
    /// (those of readers that went away), so read-ahead never stalls.
    fn claim(&self, loc: &ChunkLocation) -> bool {
        let mut inner = self.inner.lock().expect("read-ahead lock poisoned");
        let key = chunk_key(loc);
        if inner.chunks.contains_key(&key) {
            return false;
        }
        inner.pending.insert(key)
    }

    /// A reader got this chunk itself (it joined the prefetch's GET): the
    /// prefetch must not buffer a copy nobody will take.
    fn served(&self, loc: &ChunkLocation) {
        let mut inner = self.inner.lock().expect("read-ahead lock poisoned");
        inner.pending.remove(&chunk_key(loc));
    }

    /// Buffers a prefetched chunk, unless a reader was already served it.
    fn put(&self, loc: &ChunkLocation, bytes: Option<Bytes>) {
        let mut inner = self.inner.lock().expect("read-ahead lock poisoned");
        let key = chunk_key(loc);
        if !inner.pending.remove(&key) {
            return;
        }
        let Some(bytes) = bytes else { return };
        inner.bytes += bytes.len();
        inner.order.push_back(key.clone());
        inner.chunks.insert(key, bytes);
        while inner.bytes > self.capacity {
            let Some(old) = inner.order.pop_front() else { break };
            if let Some(b) = inner.chunks.remove(&old) {
                inner.bytes -= b.len();
            }
        }
    }
}

/// The bytes of one chunk for a replay read: the tail cache if the object
/// happens to be there (no admission otherwise), then read-ahead, then a
/// ranged GET through the replay budget.
pub(crate) async fn chunk_bytes(shared: &Arc<Shared>, loc: &ChunkLocation, fresh: bool) -> Result<Bytes, StorageError> {
    if !fresh {
        if let Some(object) = shared.cache.peek(&loc.object_key) {
            shared.metrics.chunk_read("cache");
            let start = loc.byte_offset as usize;
            let end = start.saturating_add(loc.byte_len as usize);
            if end <= object.len() {
                return Ok(object.slice(start..end));
            }
        }
        if let Some(bytes) = shared.readahead.take(loc) {
            shared.metrics.chunk_read("readahead");
            return Ok(bytes);
        }
    }
    shared.metrics.chunk_read("replay");
    // Joins a read-ahead of the same chunk that is still in flight instead of fetching twice.
    let fetched = fetch_range_once(shared, loc).await.map_err(unshare);
    shared.readahead.served(loc);
    fetched
}

/// One ranged GET of a chunk through the replay budget; concurrent callers
/// (a reader and its read-ahead) share it.
async fn fetch_range_once(shared: &Arc<Shared>, loc: &ChunkLocation) -> crate::read::FetchResult {
    let flight = format!("{}#{}+{}", loc.object_key, loc.byte_offset, loc.byte_len);
    let fetcher = shared.clone();
    let loc = loc.clone();
    let fetch = async move {
        fetcher.metrics.object_get(&fetcher.topic_names.label(loc.topic));
        let bytes = fetcher.replay.fetch(&fetcher, &loc).await.map_err(Arc::new)?;
        fetcher.metrics.replay_bytes(bytes.len() as u64);
        Ok(bytes)
    };
    crate::read::fetch_once(shared, flight, fetch.boxed()).await
}

/// A shared error back as an owned one (the variants callers match on survive).
fn unshare(e: Arc<StorageError>) -> StorageError {
    match Arc::try_unwrap(e) {
        Ok(e) => e,
        Err(e) => match &*e {
            StorageError::NotFound(key) => StorageError::NotFound(key.clone()),
            other => StorageError::Unavailable {
                op: "get_range",
                key: String::new(),
                source: object_store::Error::Generic {
                    store: "replay",
                    source: other.to_string().into(),
                },
            },
        },
    }
}

/// Fetches the chunks after `after` (up to `count`) into the read-ahead
/// buffer in the background, so the reader's next request finds them there.
pub(crate) fn prefetch(shared: &Arc<Shared>, after: &ChunkLocation, high_watermark: u64, count: usize) {
    if count == 0 {
        return;
    }
    let (topic, partition, mut next) = (after.topic, after.partition, after.last_offset + 1);
    let runtime = shared
        .replay_runtime
        .clone()
        .unwrap_or_else(tokio::runtime::Handle::current);
    let shared = shared.clone();
    runtime.spawn(async move {
        for _ in 0..count {
            if next >= high_watermark || shared.stopping.is_cancelled() {
                return;
            }
            let loc = match crate::read::locate(&shared, topic, partition, next).await {
                Ok(Some(loc)) => loc,
                _ => return,
            };
            next = loc.last_offset + 1;
            if shared.cache.peek(&loc.object_key).is_some() || !shared.readahead.claim(&loc) {
                continue;
            }
            let fetched = fetch_range_once(&shared, &loc).await;
            if let Err(e) = &fetched {
                debug!(key = %loc.object_key, error = %e, "read-ahead fetch failed; the reader will fetch itself");
            }
            shared.readahead.put(&loc, fetched.ok());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use silt_meta::ChunkFormat;
    use silt_types::TopicId;

    fn loc(offset: u64, len: u64) -> ChunkLocation {
        ChunkLocation {
            topic: TopicId::from_bytes([0; 16]),
            partition: 0,
            base_offset: offset,
            last_offset: offset,
            object_key: "k".into(),
            byte_offset: offset,
            byte_len: len,
            object_size: 1 << 30,
            format: ChunkFormat::Segment,
            footer_len: 0,
            max_timestamp_ms: 0,
        }
    }

    #[test]
    fn a_chunk_a_reader_already_got_is_not_buffered() {
        let ra = ReadAhead::new(1 << 20);
        let l = loc(0, 10);
        assert!(ra.claim(&l));
        ra.served(&l);
        ra.put(&l, Some(Bytes::from_static(b"0123456789")));
        assert!(ra.take(&l).is_none(), "nobody would ever take this copy");
    }

    #[test]
    fn a_full_buffer_evicts_the_oldest_instead_of_refusing() {
        let ra = ReadAhead::new(20);
        for i in 0..5u64 {
            let l = loc(i * 10, 10);
            assert!(ra.claim(&l), "claim {i} refused: read-ahead would stall");
            ra.put(&l, Some(Bytes::from(vec![0u8; 10])));
        }
        assert!(ra.take(&loc(0, 10)).is_none(), "the oldest was evicted");
        assert!(ra.take(&loc(40, 10)).is_some(), "the newest is buffered");
    }
}
