//! Cache of offset→chunk lookups. What an offset means never changes once
//! committed, so entries stay valid until compaction moves a range (a reader
//! that finds its object gone drops the entry and asks again).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use silt_meta::ChunkLocation;
use silt_types::{Offset, PartitionId, TopicId};

/// Bounded map of chunk locations per partition.
#[derive(Debug)]
pub(crate) struct LocationCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    len: usize,
    partitions: HashMap<(TopicId, PartitionId), BTreeMap<Offset, Arc<ChunkLocation>>>,
}

impl LocationCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    /// The cached chunk holding `offset`, if any.
    pub(crate) fn get(&self, topic: TopicId, partition: PartitionId, offset: Offset) -> Option<Arc<ChunkLocation>> {
        let inner = self.inner.lock().expect("location cache lock poisoned");
        let chunks = inner.partitions.get(&(topic, partition))?;
        let (_, loc) = chunks.range(..=offset).next_back()?;
        (offset <= loc.last_offset).then(|| loc.clone())
    }

    pub(crate) fn insert(&self, loc: ChunkLocation) {
        let mut inner = self.inner.lock().expect("location cache lock poisoned");
        if inner.len >= self.capacity {
            // Crude but bounded: start over. Lookups refill what is hot.
            inner.partitions.clear();
            inner.len = 0;
        }
        let chunks = inner.partitions.entry((loc.topic, loc.partition)).or_default();
        if chunks.insert(loc.base_offset, Arc::new(loc)).is_none() {
            inner.len += 1;
        }
    }

    pub(crate) fn remove(&self, loc: &ChunkLocation) {
        let mut inner = self.inner.lock().expect("location cache lock poisoned");
        let removed = inner
            .partitions
            .get_mut(&(loc.topic, loc.partition))
            .and_then(|chunks| chunks.remove(&loc.base_offset))
            .is_some();
        if removed {
            inner.len -= 1;
        }
    }

    pub(crate) fn forget_topic(&self, topic: TopicId) {
        let mut inner = self.inner.lock().expect("location cache lock poisoned");
        let mut dropped = 0;
        inner.partitions.retain(|(t, _), chunks| {
            if *t == topic {
                dropped += chunks.len();
                false
            } else {
                true
            }
        });
        inner.len -= dropped;
    }
}
