//! Retries with exponential backoff, full jitter and per-attempt timeouts.
//!
//! Only transient failures are retried: 5xx, throttling, resets, timeouts and
//! truncated bodies. What cannot succeed by repeating — not found, already
//! exists, failed preconditions, bad paths, permissions — is returned at once.

use std::future::Future;
use std::time::Duration;

use rand::RngExt;
use tracing::debug;

use crate::StorageError;

/// How hard to try one object-store operation.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in total (1 = no retry).
    pub max_attempts: u32,
    /// First backoff; doubles each attempt.
    pub base_delay: Duration,
    /// Cap on one backoff.
    pub max_delay: Duration,
    /// Timeout of one attempt; a slow request is abandoned and retried.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries, for tests that want to see raw failures.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.min(16));
        let cap = exp.min(self.max_delay);
        // Full jitter: spread retries of many agents over the whole window.
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// Runs `attempt` until it succeeds, fails permanently, or attempts run out.
    pub async fn run<T, F, Fut>(&self, op: &'static str, key: &str, mut attempt: F) -> Result<T, StorageError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StorageError>>,
    {
        let mut n = 0;
        loop {
            let result = match tokio::time::timeout(self.attempt_timeout, attempt()).await {
                Ok(result) => result,
                Err(_) => Err(StorageError::Timeout {
                    op,
                    key: key.to_owned(),
                    after: self.attempt_timeout,
                }),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(e) if e.is_transient() && n + 1 < self.max_attempts => {
                    let delay = self.backoff(n);
                    debug!(op, key, attempt = n + 1, error = %e, delay_ms = delay.as_millis() as u64, "retrying object store request");
                    tokio::time::sleep(delay).await;
                    n += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transient() -> StorageError {
        StorageError::Truncated {
            key: "k".into(),
            expected: 2,
            actual: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_then_succeeds() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::default();
        let result = policy
            .run("get", "k", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                    Err(transient())
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(result.expect("succeeds"), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_what_cannot_succeed() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = RetryPolicy::default()
            .run("get", "k", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StorageError::NotFound("k".into()))
            })
            .await;
        assert!(matches!(result, Err(StorageError::NotFound(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_and_times_out_slow_attempts() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            max_attempts: 3,
            attempt_timeout: Duration::from_millis(100),
            ..RetryPolicy::default()
        };
        let result: Result<(), _> = policy
            .run("put", "k", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .await;
        assert!(matches!(result, Err(StorageError::Timeout { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
