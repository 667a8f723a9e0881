//! Silt's local segment cache: a foyer hybrid cache (memory + NVMe disk)
//! keyed by object key. The only crate that imports foyer.
//!
//! It is a cache and nothing more: entries may vanish at any time (eviction,
//! a full or broken disk), so nothing acknowledged ever lives only here.
//! May depend on `silt-types`, `bytes` and `foyer`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder, HybridCachePolicy,
    PsyncIoEngineConfig, RecoverMode,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::{info, warn};

/// Sizes and place of the cache.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Directory of the disk tier; `None` keeps the cache in memory only.
    pub dir: Option<PathBuf>,
    /// Byte budget of the memory tier.
    pub memory_bytes: usize,
    /// Byte budget of the disk tier.
    pub disk_bytes: usize,
    /// Disk block size; an entry larger than a block is kept in memory only.
    pub block_bytes: usize,
}

impl CacheConfig {
    /// A memory-only cache of `memory_bytes`, for tests and tools.
    pub fn memory_only(memory_bytes: usize) -> Self {
        Self {
            dir: None,
            memory_bytes,
            disk_bytes: 0,
            block_bytes: 16 << 20,
        }
    }
}

/// Hit and miss counts, by tier, for metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Lookups answered from the memory tier.
    pub memory_hits: AtomicU64,
    /// Lookups answered from the disk tier.
    pub disk_hits: AtomicU64,
    /// Lookups the cache could not answer.
    pub misses: AtomicU64,
    /// Lookups that failed inside the cache and were treated as misses.
    pub errors: AtomicU64,
}

impl CacheStats {
    /// All hits, either tier.
    pub fn hits(&self) -> u64 {
        self.memory_hits.load(Ordering::Relaxed) + self.disk_hits.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    tier: &'static str,
    result: &'static str,
}

/// Registers `silt_cache_lookups_total{tier, result}` and
/// `silt_cache_bytes{tier}` for `cache` in `registry`.
pub fn register_metrics(cache: &SegmentCache, registry: &mut Registry) {
    let lookups = Family::<LookupLabels, Counter>::default();
    registry.register(
        "silt_cache_lookups",
        "Segment cache lookups by tier and result",
        lookups.clone(),
    );
    let usage = Family::<TierLabel, Gauge>::default();
    registry.register("silt_cache_bytes", "Bytes held by each cache tier", usage.clone());
    *cache.exported.lock().expect("cache metrics lock poisoned") = Some((lookups, usage));
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabel {
    tier: &'static str,
}

type Exported = Option<(Family<LookupLabels, Counter>, Family<TierLabel, Gauge>)>;

/// Cache of whole segment objects (or other immutable objects) by key.
#[derive(Debug, Clone)]
pub struct SegmentCache {
    inner: HybridCache<String, Bytes>,
    stats: Arc<CacheStats>,
    hybrid: bool,
    exported: Arc<Mutex<Exported>>,
}

impl SegmentCache {
    /// Opens the cache. A disk tier that cannot be opened (missing
    /// permissions, full disk) degrades to memory only, with a warning:
    /// the agent keeps serving from object storage.
    pub async fn open(config: &CacheConfig) -> Self {
        if let Some(dir) = &config.dir
            && config.disk_bytes > 0
        {
            match Self::open_hybrid(config, dir.clone()).await {
                Ok(inner) => {
                    info!(dir = %dir.display(), memory_bytes = config.memory_bytes, disk_bytes = config.disk_bytes, "cache opened");
                    return Self {
                        inner,
                        stats: Arc::default(),
                        hybrid: true,
                        exported: Arc::default(),
                    };
                }
                Err(e) => warn!(dir = %dir.display(), error = %e, "cache disk tier unavailable, using memory only"),
            }
        }
        let inner = Self::builder(config)
            .storage()
            .build()
            .await
            .expect("a memory-only foyer cache has no fallible parts");
        Self {
            inner,
            stats: Arc::default(),
            hybrid: false,
            exported: Arc::default(),
        }
    }

    fn builder(config: &CacheConfig) -> foyer::HybridCacheBuilderPhaseMemory<String, Bytes, foyer::DefaultHasher> {
        HybridCacheBuilder::new()
            .with_name("silt-segments")
            .with_policy(HybridCachePolicy::WriteOnInsertion)
            .with_flush_on_close(false)
            .memory(config.memory_bytes.max(1))
            .with_weighter(|key: &String, value: &Bytes| key.len() + value.len())
    }

    async fn open_hybrid(config: &CacheConfig, dir: PathBuf) -> Result<HybridCache<String, Bytes>, String> {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let block = config.block_bytes.max(1 << 20);
        let capacity = (config.disk_bytes / block).max(1) * block;
        let device = FsDeviceBuilder::new(&dir)
            .with_capacity(capacity)
            .build()
            .map_err(|e| e.to_string())?;
        Self::builder(config)
            .storage()
            .with_io_engine_config(PsyncIoEngineConfig::new())
            .with_engine_config(BlockEngineConfig::new(device).with_block_size(block))
            .with_recover_mode(RecoverMode::None)
            .build()
            .await
            .map_err(|e| e.to_string())
    }

    /// Whether a disk tier is in use.
    pub fn is_hybrid(&self) -> bool {
        self.hybrid
    }

    /// Hit and miss counters.
    pub fn stats(&self) -> &Arc<CacheStats> {
        &self.stats
    }

    /// Stores an immutable object's bytes.
    pub fn insert(&self, key: &str, bytes: Bytes) {
        self.inner.insert(key.to_owned(), bytes);
    }

    /// The object's bytes if cached. A failing disk tier reads as a miss.
    pub async fn get(&self, key: &str) -> Option<Bytes> {
        if let Some(entry) = self.inner.memory().get(key) {
            self.count(&self.stats.memory_hits, "memory", "hit");
            return Some(entry.value().clone());
        }
        match self.inner.get(key).await {
            Ok(Some(entry)) => {
                self.count(&self.stats.disk_hits, "disk", "hit");
                Some(entry.value().clone())
            }
            Ok(None) => {
                self.count(&self.stats.misses, "all", "miss");
                None
            }
            Err(e) => {
                self.count(&self.stats.errors, "disk", "error");
                warn!(key, error = %e, "cache read failed, treating as miss");
                None
            }
        }
    }

    fn count(&self, stat: &AtomicU64, tier: &'static str, result: &'static str) {
        stat.fetch_add(1, Ordering::Relaxed);
        if let Some((lookups, usage)) = self.exported.lock().expect("cache metrics lock poisoned").as_ref() {
            lookups.get_or_create(&LookupLabels { tier, result }).inc();
            let memory = i64::try_from(self.inner.memory().usage()).unwrap_or(i64::MAX);
            usage.get_or_create(&TierLabel { tier: "memory" }).set(memory);
        }
    }

    /// The object's bytes if they are in the memory tier, without touching
    /// the disk tier or admitting anything: for readers that must not
    /// disturb the cache (replays).
    pub fn peek(&self, key: &str) -> Option<Bytes> {
        self.inner.memory().get(key).map(|entry| entry.value().clone())
    }

    /// Drops an entry, e.g. one found corrupt.
    pub fn remove(&self, key: &str) {
        self.inner.remove(key);
    }

    /// Closes the cache, waiting for its disk writers.
    pub async fn close(&self) {
        if let Err(e) = self.inner.close().await {
            warn!(error = %e, "cache close failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_only_round_trip() {
        let cache = SegmentCache::open(&CacheConfig::memory_only(1 << 20)).await;
        assert!(!cache.is_hybrid());
        assert_eq!(cache.get("a").await, None);
        cache.insert("a", Bytes::from_static(b"abc"));
        assert_eq!(cache.get("a").await, Some(Bytes::from_static(b"abc")));
        cache.remove("a");
        assert_eq!(cache.get("a").await, None);
        assert_eq!(cache.stats().hits(), 1);
        assert_eq!(cache.stats().misses.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn disk_tier_serves_entries_evicted_from_memory() {
        let dir = std::env::temp_dir().join(format!("silt-cache-test-{}", std::process::id()));
        let config = CacheConfig {
            dir: Some(dir.clone()),
            memory_bytes: 64 << 10,
            disk_bytes: 16 << 20,
            block_bytes: 1 << 20,
        };
        let cache = SegmentCache::open(&config).await;
        assert!(cache.is_hybrid());
        let value = Bytes::from(vec![7u8; 40 << 10]);
        for i in 0..8 {
            cache.insert(&format!("k{i}"), value.clone());
        }
        // Every entry was written to disk on insertion; the memory tier holds one.
        let mut found = 0;
        for i in 0..8 {
            if cache.get(&format!("k{i}")).await.as_ref() == Some(&value) {
                found += 1;
            }
        }
        assert!(found >= 2, "disk tier served only {found} entries");
        cache.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn unusable_disk_dir_degrades_to_memory() {
        let file = std::env::temp_dir().join(format!("silt-cache-file-{}", std::process::id()));
        std::fs::write(&file, b"not a directory").expect("write temp file");
        let config = CacheConfig {
            dir: Some(file.join("sub")),
            memory_bytes: 1 << 20,
            disk_bytes: 16 << 20,
            block_bytes: 1 << 20,
        };
        let cache = SegmentCache::open(&config).await;
        assert!(!cache.is_hybrid());
        cache.insert("a", Bytes::from_static(b"x"));
        assert_eq!(cache.get("a").await, Some(Bytes::from_static(b"x")));
        let _ = std::fs::remove_file(file);
    }
}
