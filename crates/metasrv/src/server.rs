//! The metadata service's HTTP endpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use silt_meta::{ChunkOutcome, MetaError, Metadata};
use tracing::warn;

use crate::HwmFeed;
use crate::wire::{CALL_PATH, ErrorBody, HwmChange, MetaCall, WATCH_PATH, WireError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    op: &'static str,
    outcome: &'static str,
}

/// Everything the service's handlers need.
#[derive(Clone)]
pub struct MetaServiceState {
    backend: Arc<dyn Metadata>,
    feed: Arc<HwmFeed>,
    registry: Arc<Registry>,
    calls: Family<CallLabels, Histogram>,
}

impl std::fmt::Debug for MetaServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaServiceState")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl MetaServiceState {
    /// Serves `backend`, registering the service's metrics in `registry`.
    pub fn new(backend: Arc<dyn Metadata>, mut registry: Registry) -> Self {
        let calls = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0002, 2.0, 18))
        });
        registry.register(
            "silt_meta_call_seconds",
            "Metadata calls by operation and outcome",
            calls.clone(),
        );
        Self {
            backend,
            feed: Arc::new(HwmFeed::new()),
            registry: Arc::new(registry),
            calls,
        }
    }
}

/// Routes of the internal API plus health, readiness and metrics.
pub fn router(state: MetaServiceState) -> Router {
    Router::new()
        .route(CALL_PATH, post(call))
        .route(WATCH_PATH, get(watch))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(state)
}

fn error_response(e: &MetaError) -> Response {
    let status = match e {
        MetaError::Unavailable(_) | MetaError::Indeterminate(_) => StatusCode::SERVICE_UNAVAILABLE,
        MetaError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        MetaError::UnknownTopic(_)
        | MetaError::TopicExists(_)
        | MetaError::UnknownPartition { .. }
        | MetaError::OffsetBelowStart { .. }
        | MetaError::Invalid(_)
        | MetaError::StaleGeneration { .. }
        | MetaError::OffsetRegression { .. }
        | MetaError::UnknownProducer(_) => StatusCode::CONFLICT,
    };
    (
        status,
        axum::Json(ErrorBody {
            error: WireError::from(e),
        }),
    )
        .into_response()
}

fn ok<T: serde::Serialize>(value: T) -> Result<serde_json::Value, MetaError> {
    serde_json::to_value(value).map_err(|e| MetaError::Corrupt(format!("cannot encode reply: {e}")))
}

async fn call(State(state): State<MetaServiceState>, body: Bytes) -> Response {
    let call: MetaCall = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return error_response(&MetaError::Invalid(format!("bad call: {e}"))),
    };
    let op = call.name();
    let started = Instant::now();
    let result = dispatch(&state, call).await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    state
        .calls
        .get_or_create(&CallLabels { op, outcome })
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(value) => axum::Json(value).into_response(),
        Err(e) => {
            if matches!(
                e,
                MetaError::Unavailable(_) | MetaError::Indeterminate(_) | MetaError::Corrupt(_)
            ) {
                warn!(op, error = %e, "metadata call failed");
            }
            error_response(&e)
        }
    }
}

async fn dispatch(state: &MetaServiceState, call: MetaCall) -> Result<serde_json::Value, MetaError> {
    let m = state.backend.as_ref();
    match call {
        MetaCall::CreateTopic {
            name,
            partitions,
            config,
        } => ok(m.create_topic(&name, partitions, config).await?),
        MetaCall::DeleteTopic { name } => {
            let info = m.topic(&name).await?;
            m.delete_topic(&name).await?;
            state.feed.forget(info.id);
            ok(())
        }
        MetaCall::Topic { name } => ok(m.topic(&name).await?),
        MetaCall::ListTopics => ok(m.list_topics().await?),
        MetaCall::UpdateTopicConfig { name, config } => ok(m.update_topic_config(&name, config).await?),
        MetaCall::CommitSegment { segment } => {
            let chunks: Vec<_> = segment
                .chunks
                .iter()
                .map(|c| (c.topic, c.partition, c.record_count))
                .collect();
            let outcomes = m.commit_segment(segment).await?;
            let changes =
                chunks
                    .iter()
                    .zip(&outcomes)
                    .filter_map(|((topic, partition, count), outcome)| match outcome {
                        ChunkOutcome::Committed { base_offset } => Some(HwmChange {
                            topic: *topic,
                            partition: *partition,
                            high_watermark: base_offset + u64::from(*count),
                        }),
                        _ => None,
                    });
            state.feed.publish(changes);
            ok(outcomes)
        }
        MetaCall::Lookup {
            topic,
            partition,
            offset,
        } => ok(m.lookup(topic, partition, offset).await?),
        MetaCall::PartitionState { topic, partition } => ok(m.partition_state(topic, partition).await?),
        MetaCall::PartitionStates { topic } => ok(m.partition_states(topic).await?),
        MetaCall::LookupTimestamp {
            topic,
            partition,
            timestamp_ms,
        } => ok(m.lookup_timestamp(topic, partition, timestamp_ms).await?),
        MetaCall::CommitGroupOffsets { group, commit } => ok(m.commit_group_offsets(&group, &commit).await?),
        MetaCall::GroupOffsets { group } => ok(m.group_offsets(&group).await?),
        MetaCall::JoinGroup { group } => ok(m.join_group(&group).await?),
        MetaCall::InitProducer { existing } => ok(m.init_producer(existing).await?),
        MetaCall::CheckProducer {
            topic,
            partition,
            append,
        } => ok(m.check_producer(topic, partition, &append).await?),
        MetaCall::RegisterAgent { agent } => ok(m.register_agent(&agent).await?),
        MetaCall::ListAgents => ok(m.list_agents().await?),
        MetaCall::TryAcquireLease { name, holder, ttl_ms } => ok(m.try_acquire_lease(&name, &holder, ttl_ms).await?),
        MetaCall::ReleaseLease { name, holder } => ok(m.release_lease(&name, &holder).await?),
        MetaCall::ListChunks {
            topic,
            partition,
            from,
            limit,
        } => ok(m.list_chunks(topic, partition, from, limit).await?),
        MetaCall::ReplaceChunks { replacement } => ok(m.replace_chunks(replacement).await?),
        MetaCall::AdvanceLogStart {
            topic,
            partition,
            new_start,
        } => ok(m.advance_log_start(topic, partition, new_start).await?),
        MetaCall::UnreferencedObjects { keys } => ok(m.unreferenced_objects(keys).await?),
    }
}

#[derive(Debug, Deserialize)]
struct WatchQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    instance: Option<u64>,
    #[serde(default)]
    wait_ms: u64,
}

async fn watch(State(state): State<MetaServiceState>, Query(q): Query<WatchQuery>) -> Response {
    let wait = Duration::from_millis(q.wait_ms.min(60_000));
    axum::Json(state.feed.watch(q.instance, q.since, wait).await).into_response()
}

async fn readyz(State(state): State<MetaServiceState>) -> Response {
    match state.backend.list_agents().await {
        Ok(_) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": {"code": "not_ready", "message": e.to_string()}})),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<MetaServiceState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
