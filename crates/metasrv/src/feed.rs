//! High-watermark change feed of the metadata service.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use silt_types::{Offset, PartitionId, TopicId};
use tokio::sync::watch;

use crate::wire::{HwmChange, WatchReply};

/// Latest high watermark per partition, versioned, with long-poll waiters.
#[derive(Debug)]
pub struct HwmFeed {
    instance: u64,
    state: Mutex<FeedState>,
    version_tx: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct FeedState {
    version: u64,
    partitions: HashMap<(TopicId, PartitionId), (u64, Offset)>,
}

impl Default for HwmFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl HwmFeed {
    /// An empty feed with a random instance id.
    pub fn new() -> Self {
        Self {
            instance: rand::random::<u64>() | 1,
            state: Mutex::default(),
            version_tx: watch::channel(0).0,
        }
    }

    /// Records new high watermarks (one commit's worth) and wakes watchers.
    pub fn publish(&self, changes: impl IntoIterator<Item = HwmChange>) {
        let version = {
            let mut state = self.state.lock().expect("feed lock poisoned");
            state.version += 1;
            let version = state.version;
            for c in changes {
                let entry = state.partitions.entry((c.topic, c.partition)).or_insert((version, 0));
                if c.high_watermark > entry.1 {
                    *entry = (version, c.high_watermark);
                }
            }
            version
        };
        self.version_tx.send_replace(version);
    }

    /// Forgets a deleted topic.
    pub fn forget(&self, topic: TopicId) {
        self.state
            .lock()
            .expect("feed lock poisoned")
            .partitions
            .retain(|(t, _), _| *t != topic);
    }

    fn changes_since(&self, since: u64) -> WatchReply {
        let state = self.state.lock().expect("feed lock poisoned");
        let changes = if since >= state.version {
            Vec::new()
        } else {
            state
                .partitions
                .iter()
                .filter(|(_, (v, _))| *v > since)
                .map(|((topic, partition), (_, hwm))| HwmChange {
                    topic: *topic,
                    partition: *partition,
                    high_watermark: *hwm,
                })
                .collect()
        };
        WatchReply {
            instance: self.instance,
            version: state.version,
            changes,
        }
    }

    /// Changes after `since` (everything if `instance` is not ours), waiting
    /// up to `wait` for one if there are none yet.
    pub async fn watch(&self, instance: Option<u64>, since: u64, wait: Duration) -> WatchReply {
        let since = if instance == Some(self.instance) { since } else { 0 };
        let mut rx = self.version_tx.subscribe();
        rx.borrow_and_update();
        let reply = self.changes_since(since);
        if !reply.changes.is_empty() || wait.is_zero() {
            return reply;
        }
        let _ = tokio::time::timeout(wait, rx.changed()).await;
        self.changes_since(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(p: u32, hwm: u64) -> HwmChange {
        HwmChange {
            topic: TopicId(Default::default()),
            partition: p,
            high_watermark: hwm,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn watchers_see_changes_after_their_version() {
        let feed = HwmFeed::new();
        let first = feed.watch(None, 0, Duration::ZERO).await;
        assert!(first.changes.is_empty());
        feed.publish([change(0, 5), change(1, 3)]);
        let r = feed
            .watch(Some(first.instance), first.version, Duration::from_secs(1))
            .await;
        assert_eq!(r.changes.len(), 2);
        let started = tokio::time::Instant::now();
        let waiter = {
            let version = r.version;
            let instance = r.instance;
            let feed = std::sync::Arc::new(feed);
            let f = feed.clone();
            let handle = tokio::spawn(async move { f.watch(Some(instance), version, Duration::from_secs(30)).await });
            tokio::task::yield_now().await;
            feed.publish([change(1, 9)]);
            handle
        };
        let r = waiter.await.expect("join");
        assert_eq!(r.changes, vec![change(1, 9)]);
        // Woken by the publish, not by the 30 s timeout (the paused clock would jump there).
        assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_instance_gets_everything() {
        let feed = HwmFeed::new();
        feed.publish([change(0, 5)]);
        let r = feed.watch(Some(12345), 99, Duration::ZERO).await;
        assert_eq!(r.changes, vec![change(0, 5)]);
    }
}
