//! The client agents use to reach the metadata service.

use std::time::Duration;

use async_trait::async_trait;
use rand::RngExt;
use serde::de::DeserializeOwned;
use silt_meta::*;
use silt_types::{GroupName, Offset, PartitionId, TopicId, TopicName};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::wire::{CALL_PATH, ErrorBody, MetaCall, WATCH_PATH, WatchReply, WireError};

/// A [`Metadata`] backed by a remote `silt meta` service.
///
/// Calls that never reached the service (connection refused while it
/// restarts) are retried for up to `retry_for`; so are read-only calls whose
/// outcome is unknown. A mutating call whose outcome is unknown fails with
/// [`MetaError::Indeterminate`].
#[derive(Debug, Clone)]
pub struct RemoteMetadata {
    http: reqwest::Client,
    base: String,
    retry_for: Duration,
}

impl RemoteMetadata {
    /// A client for the service at `base` (e.g. `http://meta:8081`).
    pub fn new(base: &str, retry_for: Duration) -> Result<Self, MetaError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(3))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| MetaError::Invalid(format!("cannot build http client: {e}")))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            retry_for,
        })
    }

    async fn call<T: DeserializeOwned>(&self, call: MetaCall) -> Result<T, MetaError> {
        let deadline = Instant::now() + self.retry_for;
        let body = serde_json::to_vec(&call).map_err(|e| MetaError::Invalid(format!("cannot encode call: {e}")))?;
        let mut attempt = 0u32;
        loop {
            let reason = match self.attempt(&call, &body).await {
                Attempt::Done(result) => return result,
                Attempt::Retry(reason) => reason,
            };
            if Instant::now() >= deadline {
                return Err(MetaError::Unavailable(format!(
                    "metadata service unreachable: {reason}"
                )));
            }
            attempt += 1;
            let backoff = (20u64 << attempt.min(6)).min(1000);
            debug!(op = call.name(), attempt, %reason, "retrying metadata call");
            let jittered = rand::rng().random_range(backoff / 2..=backoff);
            tokio::time::sleep(Duration::from_millis(jittered)).await;
        }
    }

    async fn attempt<T: DeserializeOwned>(&self, call: &MetaCall, body: &[u8]) -> Attempt<T> {
        let op = call.name();
        // After the request may have reached the service, only read-only calls may repeat.
        let unknown = |e: String| {
            if call.is_read_only() {
                Attempt::Retry(e)
            } else {
                Attempt::Done(Err(MetaError::Indeterminate(format!(
                    "{op} sent, outcome unknown: {e}"
                ))))
            }
        };
        let sent = self
            .http
            .post(format!("{}{CALL_PATH}", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Attempt::Retry(format!("cannot connect: {e}")),
            Err(e) => return unknown(e.to_string()),
        };
        let status = resp.status();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return unknown(e.to_string()),
        };
        if status.is_success() {
            return Attempt::Done(
                serde_json::from_slice(&bytes).map_err(|e| MetaError::Corrupt(format!("bad reply to {op}: {e}"))),
            );
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            // The backend said it could not reach its database: nothing was applied.
            Ok(ErrorBody {
                error: WireError::Unavailable { message },
            }) => Attempt::Retry(message),
            Ok(body) => Attempt::Done(Err(MetaError::from(body.error))),
            Err(_) => unknown(format!("metadata service answered {status}")),
        }
    }
}

enum Attempt<T> {
    Done(Result<T, MetaError>),
    Retry(String),
}

#[async_trait]
impl Metadata for RemoteMetadata {
    async fn create_topic(&self, name: &TopicName, partitions: u32, config: TopicConfig) -> Result<TopicInfo> {
        self.call(MetaCall::CreateTopic {
            name: name.clone(),
            partitions,
            config,
        })
        .await
    }

    async fn delete_topic(&self, name: &TopicName) -> Result<()> {
        self.call(MetaCall::DeleteTopic { name: name.clone() }).await
    }

    async fn topic(&self, name: &TopicName) -> Result<TopicInfo> {
        self.call(MetaCall::Topic { name: name.clone() }).await
    }

    async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        self.call(MetaCall::ListTopics).await
    }

    async fn update_topic_config(&self, name: &TopicName, config: TopicConfig) -> Result<TopicInfo> {
        self.call(MetaCall::UpdateTopicConfig {
            name: name.clone(),
            config,
        })
        .await
    }

    async fn commit_segment(&self, segment: SegmentCommit) -> Result<Vec<ChunkOutcome>> {
        self.call(MetaCall::CommitSegment { segment }).await
    }

    async fn lookup(&self, topic: TopicId, partition: PartitionId, offset: Offset) -> Result<Option<ChunkLocation>> {
        self.call(MetaCall::Lookup {
            topic,
            partition,
            offset,
        })
        .await
    }

    async fn partition_state(&self, topic: TopicId, partition: PartitionId) -> Result<PartitionState> {
        self.call(MetaCall::PartitionState { topic, partition }).await
    }

    async fn partition_states(&self, topic: TopicId) -> Result<Vec<PartitionState>> {
        self.call(MetaCall::PartitionStates { topic }).await
    }

    async fn lookup_timestamp(
        &self,
        topic: TopicId,
        partition: PartitionId,
        timestamp_ms: i64,
    ) -> Result<Option<ChunkLocation>> {
        self.call(MetaCall::LookupTimestamp {
            topic,
            partition,
            timestamp_ms,
        })
        .await
    }

    async fn commit_group_offsets(&self, group: &GroupName, commit: &GroupCommit) -> Result<()> {
        self.call(MetaCall::CommitGroupOffsets {
            group: group.clone(),
            commit: commit.clone(),
        })
        .await
    }

    async fn group_offsets(&self, group: &GroupName) -> Result<GroupState> {
        self.call(MetaCall::GroupOffsets { group: group.clone() }).await
    }

    async fn join_group(&self, group: &GroupName) -> Result<i32> {
        self.call(MetaCall::JoinGroup { group: group.clone() }).await
    }

    async fn init_producer(&self, existing: Option<i64>) -> Result<ProducerIdentity> {
        self.call(MetaCall::InitProducer { existing }).await
    }

    async fn check_producer(
        &self,
        topic: TopicId,
        partition: PartitionId,
        append: &ProducerAppend,
    ) -> Result<ProducerCheck> {
        self.call(MetaCall::CheckProducer {
            topic,
            partition,
            append: *append,
        })
        .await
    }

    async fn register_agent(&self, agent: &AgentRegistration) -> Result<()> {
        self.call(MetaCall::RegisterAgent { agent: agent.clone() }).await
    }

    async fn list_agents(&self) -> Result<Vec<AgentInfo>> {
        self.call(MetaCall::ListAgents).await
    }

    async fn try_acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool> {
        self.call(MetaCall::TryAcquireLease {
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl_ms,
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.call(MetaCall::ReleaseLease {
            name: name.to_owned(),
            holder: holder.to_owned(),
        })
        .await
    }

    async fn list_chunks(
        &self,
        topic: TopicId,
        partition: PartitionId,
        from: Offset,
        limit: usize,
    ) -> Result<Vec<ChunkLocation>> {
        self.call(MetaCall::ListChunks {
            topic,
            partition,
            from,
            limit,
        })
        .await
    }

    async fn replace_chunks(&self, replacement: ChunkReplacement) -> Result<ReplaceOutcome> {
        self.call(MetaCall::ReplaceChunks { replacement }).await
    }

    async fn advance_log_start(&self, topic: TopicId, partition: PartitionId, new_start: Offset) -> Result<Offset> {
        self.call(MetaCall::AdvanceLogStart {
            topic,
            partition,
            new_start,
        })
        .await
    }

    async fn unreferenced_objects(&self, keys: Vec<String>) -> Result<Vec<String>> {
        self.call(MetaCall::UnreferencedObjects { keys }).await
    }
}

/// Long-polls the service's high-watermark feed and hands every change to
/// `on_change` until `stop` is cancelled; survives service restarts.
pub async fn watch_high_watermarks(
    base: &str,
    stop: CancellationToken,
    on_change: impl Fn(TopicId, PartitionId, Offset) + Send,
) {
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(40)).build() {
        Ok(h) => h,
        Err(e) => {
            warn!(error = %e, "cannot build watch client; cross-agent long-polls fall back to their timeouts");
            return;
        }
    };
    let base = base.trim_end_matches('/').to_owned();
    let mut since = 0u64;
    let mut instance: Option<u64> = None;
    let mut failures = 0u32;
    loop {
        let mut url = format!("{base}{WATCH_PATH}?since={since}&wait_ms=25000");
        if let Some(i) = instance {
            url.push_str(&format!("&instance={i}"));
        }
        let reply = tokio::select! {
            r = http.get(url).send() => r,
            () = stop.cancelled() => return,
        };
        let reply: Result<WatchReply, String> = match reply {
            Ok(r) => r.json().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match reply {
            Ok(r) => {
                failures = 0;
                for c in &r.changes {
                    on_change(c.topic, c.partition, c.high_watermark);
                }
                instance = Some(r.instance);
                since = r.version;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    warn!(error = %e, "high-watermark watch failed, retrying");
                }
                let backoff = Duration::from_millis((50u64 << failures.min(5)).min(2000));
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    }
}
