//! Building stores from URLs, and segment put/get on top of them.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tracing::{debug, warn};

use crate::{Result, RetryPolicy, StorageError, StorageMetrics};

/// How to reach the object store.
#[derive(Debug, Clone)]
pub struct ObjectStoreConfig {
    /// `file:///path`, `memory://` or `s3://bucket/prefix`.
    pub url: String,
    /// Retries of one request before giving up (S3 only; local stores do not fail transiently).
    pub max_retries: usize,
    /// Upper bound on the time spent retrying one request.
    pub retry_timeout: Duration,
}

impl ObjectStoreConfig {
    /// Defaults for `url`: 5 retries within 30 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_retries: 5,
            retry_timeout: Duration::from_secs(30),
        }
    }
}

/// Builds the object store a URL names. The only place stores are made.
///
/// `s3://` reads credentials, region and endpoint from the usual `AWS_*`
/// environment variables (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP=true`, ...).
pub fn build_object_store(config: &ObjectStoreConfig) -> Result<Arc<dyn ObjectStore>> {
    let url = config.url.as_str();
    let invalid = |reason: String| StorageError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    if url == "memory://" || url == "memory:///" {
        return Ok(Arc::new(object_store::memory::InMemory::new()));
    }
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(invalid(
                "file urls need an absolute path, e.g. file:///var/lib/silt".into(),
            ));
        }
        std::fs::create_dir_all(path).map_err(|e| invalid(format!("cannot create directory: {e}")))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(path)
            .map_err(|e| invalid(e.to_string()))?
            .with_automatic_cleanup(true);
        return Ok(Arc::new(store));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = match rest.split_once('/') {
            Some((bucket, prefix)) => (bucket, prefix.trim_matches('/')),
            None => (rest, ""),
        };
        if bucket.is_empty() {
            return Err(invalid("missing bucket name".into()));
        }
        let retry = object_store::RetryConfig {
            max_retries: config.max_retries,
            retry_timeout: config.retry_timeout,
            ..Default::default()
        };
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry)
            .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        if prefix.is_empty() {
            return Ok(Arc::new(s3));
        }
        return Ok(Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)));
    }
    Err(invalid("expected file:///path, memory:// or s3://bucket/prefix".into()))
}

/// Segment-level operations on an object store, each retried by policy and
/// counted in metrics.
#[derive(Debug, Clone)]
pub struct SegmentStore {
    store: Arc<dyn ObjectStore>,
    retry: RetryPolicy,
    metrics: StorageMetrics,
}

impl SegmentStore {
    /// Wraps a store built by [`build_object_store`] (or a test store) with the default retry policy.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            retry: RetryPolicy::default(),
            metrics: StorageMetrics::default(),
        }
    }

    /// Uses `retry` for every operation.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Counts requests and bytes into `metrics`.
    pub fn with_metrics(mut self, metrics: StorageMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The underlying store, for layers that need it directly.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Writes a new object; never overwrites.
    ///
    /// Keys are unique per segment, so finding the key taken with the same
    /// size means an earlier attempt of ours succeeded and its response was
    /// lost: that counts as success.
    pub async fn put_new(&self, key: &Path, bytes: Bytes) -> Result<()> {
        let len = bytes.len() as u64;
        let result = self
            .retry
            .run("put", key.as_ref(), || {
                let bytes = bytes.clone();
                async move {
                    let opts = PutOptions {
                        mode: PutMode::Create,
                        ..Default::default()
                    };
                    let outcome = self.store.put_opts(key, PutPayload::from_bytes(bytes), opts).await;
                    self.metrics.request("put", outcome.is_ok());
                    match outcome {
                        Ok(_) => Ok(()),
                        Err(object_store::Error::AlreadyExists { .. }) => {
                            let meta = self
                                .store
                                .head(key)
                                .await
                                .map_err(|e| StorageError::from_store("head", key.as_ref(), e))?;
                            if meta.size == len {
                                debug!(key = %key, "put found its own earlier write");
                                Ok(())
                            } else {
                                warn!(key = %key, size = meta.size, expected = len, "object key collision");
                                Err(StorageError::Conflict(key.to_string()))
                            }
                        }
                        Err(e) => Err(StorageError::from_store("put", key.as_ref(), e)),
                    }
                }
            })
            .await;
        if result.is_ok() {
            self.metrics.bytes_written(len);
        }
        result
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &Path) -> Result<Bytes> {
        self.retry
            .run("get", key.as_ref(), || async move {
                let result = self.store.get(key).await;
                let result = match result {
                    Ok(r) => r,
                    Err(e) => {
                        self.metrics.request("get", answered(Some(&e)));
                        return Err(StorageError::from_store("get", key.as_ref(), e));
                    }
                };
                let expected = result.meta.size;
                let bytes = result.bytes().await;
                self.metrics.request("get", answered(bytes.as_ref().err()));
                let bytes = bytes.map_err(|e| StorageError::from_store("get", key.as_ref(), e))?;
                self.complete(key, bytes, expected)
            })
            .await
    }

    /// Counts the bytes read and refuses a body shorter or longer than expected.
    fn complete(&self, key: &Path, bytes: Bytes, expected: u64) -> Result<Bytes> {
        self.metrics.bytes_read(bytes.len() as u64);
        if bytes.len() as u64 != expected {
            return Err(StorageError::Truncated {
                key: key.to_string(),
                expected,
                actual: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    /// Reads a byte range of an object.
    pub async fn get_range(&self, key: &Path, range: Range<u64>) -> Result<Bytes> {
        let expected = range.end.saturating_sub(range.start);
        self.retry
            .run("get_range", key.as_ref(), || {
                let range = range.clone();
                async move {
                    let bytes = self.store.get_range(key, range).await;
                    self.metrics.request("get_range", answered(bytes.as_ref().err()));
                    let bytes = bytes.map_err(|e| StorageError::from_store("get_range", key.as_ref(), e))?;
                    self.complete(key, bytes, expected)
                }
            })
            .await
    }

    /// Deletes an object; deleting a missing object succeeds.
    pub async fn delete(&self, key: &Path) -> Result<()> {
        self.retry
            .run("delete", key.as_ref(), || async move {
                let result = self.store.delete(key).await;
                self.metrics.request("delete", result.is_ok());
                match result {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(StorageError::from_store("delete", key.as_ref(), e)),
                }
            })
            .await
    }

    /// Checks that the store answers; used by readiness probes (one attempt, short timeout).
    pub async fn probe(&self) -> Result<()> {
        let key = Path::from("_silt/probe");
        let probe = tokio::time::timeout(Duration::from_secs(5), self.store.head(&key));
        match probe.await {
            Ok(Ok(_)) | Ok(Err(object_store::Error::NotFound { .. })) => Ok(()),
            Ok(Err(e)) => Err(StorageError::from_store("head", key.as_ref(), e)),
            Err(_) => Err(StorageError::Timeout {
                op: "head",
                key: key.to_string(),
                after: Duration::from_secs(5),
            }),
        }
    }
}

/// Whether the store answered: a missing object is an answer (normal after
/// garbage collection), not a failed request.
fn answered(error: Option<&object_store::Error>) -> bool {
    error.is_none_or(|e| matches!(e, object_store::Error::NotFound { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_new_is_idempotent_for_same_bytes_and_refuses_others() {
        let store = SegmentStore::new(build_object_store(&ObjectStoreConfig::new("memory://")).expect("memory store"));
        let key = Path::from("segments/00/a.seg");
        store
            .put_new(&key, Bytes::from_static(b"hello"))
            .await
            .expect("first put");
        store
            .put_new(&key, Bytes::from_static(b"hello"))
            .await
            .expect("retried put");
        assert!(matches!(
            store.put_new(&key, Bytes::from_static(b"other!")).await,
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(store.get(&key).await.expect("get"), Bytes::from_static(b"hello"));
        assert_eq!(
            store.get_range(&key, 1..3).await.expect("range"),
            Bytes::from_static(b"el")
        );
        assert!(matches!(
            store.get(&Path::from("nope")).await,
            Err(StorageError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn file_store_round_trip_and_bad_urls() {
        let dir = std::env::temp_dir().join(format!("silt-storage-test-{}", std::process::id()));
        let url = format!("file://{}", dir.display());
        let store = SegmentStore::new(build_object_store(&ObjectStoreConfig::new(url)).expect("file store"));
        let key = Path::from("segments/01/b.seg");
        store.put_new(&key, Bytes::from_static(b"abc")).await.expect("put");
        assert_eq!(store.get(&key).await.expect("get"), Bytes::from_static(b"abc"));
        store.probe().await.expect("probe");
        let _ = std::fs::remove_dir_all(&dir);
        for bad in ["file://relative", "ftp://x", "s3://", "nonsense"] {
            assert!(
                matches!(
                    build_object_store(&ObjectStoreConfig::new(bad)),
                    Err(StorageError::InvalidUrl { .. })
                ),
                "{bad} accepted"
            );
        }
    }
}
