//! High-watermark notifications, so long-polling readers wake on commit
//! instead of polling.

use std::collections::HashMap;
use std::sync::Mutex;

use silt_types::{Offset, PartitionId, TopicId};
use tokio::sync::watch;

/// Latest known high watermark per partition, with waiters.
#[derive(Debug, Default)]
pub struct HwmWatch {
    partitions: Mutex<HashMap<(TopicId, PartitionId), watch::Sender<Offset>>>,
}

impl HwmWatch {
    /// A receiver that changes whenever the partition's high watermark rises.
    pub fn subscribe(&self, topic: TopicId, partition: PartitionId) -> watch::Receiver<Offset> {
        let mut map = self.partitions.lock().expect("hwm lock poisoned");
        map.entry((topic, partition))
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Records a new high watermark; never moves one backwards.
    pub fn advance(&self, topic: TopicId, partition: PartitionId, hwm: Offset) {
        let mut map = self.partitions.lock().expect("hwm lock poisoned");
        let sender = map.entry((topic, partition)).or_insert_with(|| watch::channel(0).0);
        sender.send_if_modified(|current| {
            if hwm > *current {
                *current = hwm;
                true
            } else {
                false
            }
        });
    }

    /// Forgets a deleted topic's partitions.
    pub fn forget(&self, topic: TopicId) {
        let mut map = self.partitions.lock().expect("hwm lock poisoned");
        map.retain(|(t, _), _| *t != topic);
    }
}
