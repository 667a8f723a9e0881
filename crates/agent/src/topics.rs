//! A short-lived cache of topic lookups, so the hot path does not ask the
//! catalog on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use silt_meta::{Metadata, TopicInfo};
use silt_types::TopicName;
use tokio::time::Instant;

use crate::AgentError;

/// Bound on cached topics; past it the cache starts over.
const MAX_TOPICS: usize = 100_000;

/// Topic lookups by name, trusted for a TTL.
#[derive(Debug)]
pub(crate) struct TopicCache {
    ttl: Duration,
    entries: Mutex<HashMap<TopicName, (Instant, Arc<TopicInfo>)>>,
}

impl TopicCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    pub(crate) async fn get(&self, meta: &dyn Metadata, name: &TopicName) -> Result<Arc<TopicInfo>, AgentError> {
        {
            let entries = self.entries.lock().expect("topic cache lock poisoned");
            if let Some((at, info)) = entries.get(name)
                && at.elapsed() < self.ttl
            {
                return Ok(info.clone());
            }
        }
        let info = Arc::new(meta.topic(name).await?);
        let mut entries = self.entries.lock().expect("topic cache lock poisoned");
        if entries.len() >= MAX_TOPICS {
            entries.clear();
        }
        entries.insert(name.clone(), (Instant::now(), info.clone()));
        Ok(info)
    }

    pub(crate) fn invalidate(&self, name: &TopicName) {
        self.entries.lock().expect("topic cache lock poisoned").remove(name);
    }

    pub(crate) fn invalidate_id(&self, id: silt_types::TopicId) {
        self.entries
            .lock()
            .expect("topic cache lock poisoned")
            .retain(|_, (_, info)| info.id != id);
    }
}
