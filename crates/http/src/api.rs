//! Routes and handlers of the v1 HTTP contract (design §7).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use silt_agent::{Agent, ProduceRecord, ProducerHeader, ReadRequest};
use silt_meta::{GroupCommit, GroupOffset};
use silt_types::{GroupName, Header, PartitionId, Record, TopicName};

use crate::stream::{StreamFormat, StreamParams, stream_records};
use crate::wire::*;
use crate::{ApiError, HttpMetrics};

/// Limits the API enforces on every request.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Largest record (key + value + headers), in bytes; larger gets 413.
    pub max_record_bytes: usize,
    /// Largest request body, in bytes; larger gets 413.
    pub max_request_bytes: usize,
    /// Most records in one produce request.
    pub max_records_per_request: usize,
    /// Cap on a read's `max_records`.
    pub max_read_records: usize,
    /// Cap on a read's `max_bytes`.
    pub max_read_bytes: usize,
    /// Cap on a read's `wait_ms`.
    pub max_wait: Duration,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_record_bytes: 1 << 20,
            max_request_bytes: 16 << 20,
            max_records_per_request: 50_000,
            max_read_records: 10_000,
            max_read_bytes: 16 << 20,
            max_wait: Duration::from_secs(60),
        }
    }
}

/// Everything handlers need.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The write and read paths.
    pub agent: Agent,
    /// Request limits.
    pub limits: Arc<ApiLimits>,
    /// Metrics registry rendered by `/metrics`.
    pub registry: Arc<prometheus_client::registry::Registry>,
    /// HTTP metrics.
    pub metrics: HttpMetrics,
}

/// Builds the router of the public API.
pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.max_request_bytes;
    Router::new()
        .route("/v1/topics", post(create_topic).get(list_topics))
        .route(
            "/v1/topics/{topic}",
            get(describe_topic).delete(delete_topic).patch(update_topic),
        )
        .route("/v1/topics/{topic}/records", post(produce))
        .route("/v1/topics/{topic}/partitions/{partition}/records", get(read_records))
        .route(
            "/v1/topics/{topic}/partitions/{partition}/offsets",
            get(offset_for_timestamp),
        )
        .route("/v1/groups/{group}/offsets", post(commit_group).get(group_offsets))
        .route("/v1/groups/{group}/join", post(join_group))
        .route("/v1/producers", post(init_producer))
        .route("/v1/agents", get(list_agents))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

fn topic_name(raw: &str) -> Result<TopicName, ApiError> {
    TopicName::new(raw).map_err(|e| ApiError::bad_request("invalid_topic_name", format!("invalid topic name: {e}")))
}

fn partition_number(raw: &str) -> Result<PartitionId, ApiError> {
    raw.parse::<PartitionId>().map_err(|_| {
        ApiError::bad_request(
            "invalid_partition",
            format!("partition must be a non-negative integer partition={raw}"),
        )
    })
}

/// A request body, or the contract's error when it is too large or unreadable.
type Body = Result<Bytes, BytesRejection>;

/// Parses a JSON body, answering 413 when too large, 415 for another media
/// type and 400 for bad JSON.
fn json_body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("request body too large: {e}"),
            )
        } else {
            ApiError::bad_request("invalid_body", format!("cannot read request body: {e}"))
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected content-type application/json content_type={content_type:?}"),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid request body: {e}")))
}

fn query_map(raw: Option<String>) -> Result<HashMap<String, String>, ApiError> {
    let raw = raw.unwrap_or_default();
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if map.insert(k.to_string(), v.to_string()).is_some() {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("query parameter given twice name={k}"),
            ));
        }
    }
    Ok(map)
}

fn query_u64(map: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    map.get(name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("{name} must be a non-negative integer {name}={v}"),
                )
            })
        })
        .transpose()
}

async fn create_topic(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let req: CreateTopic = json_body(&headers, body)?;
    let name = topic_name(&req.name)?;
    let partitions = req.partitions.unwrap_or(1);
    if partitions == 0 || partitions > silt_types::MAX_PARTITIONS {
        return Err(ApiError::bad_request(
            "invalid_partitions",
            format!(
                "partitions must be between 1 and {} partitions={partitions}",
                silt_types::MAX_PARTITIONS
            ),
        ));
    }
    validate_config(&req.config)?;
    let info = state.agent.create_topic(&name, partitions, req.config).await?;
    let body = TopicDescription {
        name: info.name.to_string(),
        id: info.id.to_string(),
        config: info.config,
        partitions: (0..info.partitions)
            .map(|partition| PartitionDescription {
                partition,
                log_start_offset: 0,
                high_watermark: 0,
            })
            .collect(),
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

fn validate_config(config: &silt_meta::TopicConfig) -> Result<(), ApiError> {
    for (field, value) in [
        ("retention_ms", config.retention_ms),
        ("retention_bytes", config.retention_bytes),
    ] {
        if value.is_some_and(|v| v <= 0 && v != -1) {
            return Err(ApiError::bad_request(
                "invalid_config",
                format!("{field} must be positive or -1"),
            ));
        }
    }
    Ok(())
}

/// `PATCH /v1/topics/{topic}` `{"config": {...}}`: changes the given settings.
async fn update_topic(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<TopicDescription>, ApiError> {
    let name = topic_name(&topic)?;
    let req: UpdateTopic = json_body(&headers, body)?;
    validate_config(&req.config)?;
    state.agent.update_topic_config(&name, req.config).await?;
    describe_topic(State(state), Path(topic)).await
}

async fn list_topics(State(state): State<AppState>) -> Result<axum::Json<TopicList>, ApiError> {
    let topics = state.agent.list_topics().await?;
    Ok(axum::Json(TopicList {
        topics: topics
            .into_iter()
            .map(|t| TopicSummary {
                name: t.name.to_string(),
                partitions: t.partitions,
            })
            .collect(),
    }))
}

async fn describe_topic(
    State(state): State<AppState>,
    Path(topic): Path<String>,
) -> Result<axum::Json<TopicDescription>, ApiError> {
    let name = topic_name(&topic)?;
    let (info, states) = state.agent.describe_topic(&name).await?;
    Ok(axum::Json(TopicDescription {
        name: info.name.to_string(),
        id: info.id.to_string(),
        config: info.config,
        partitions: states
            .into_iter()
            .map(|s| PartitionDescription {
                partition: s.partition,
                log_start_offset: s.log_start_offset,
                high_watermark: s.high_watermark,
            })
            .collect(),
    }))
}

async fn delete_topic(State(state): State<AppState>, Path(topic): Path<String>) -> Result<StatusCode, ApiError> {
    let name = topic_name(&topic)?;
    state.agent.delete_topic(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn produce(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<ProduceResponse>, ApiError> {
    let name = topic_name(&topic)?;
    let req: ProduceRequest = json_body(&headers, body)?;
    let limits = &state.limits;
    if req.records.is_empty() {
        return Err(ApiError::bad_request("invalid_request", "records must not be empty"));
    }
    if req.records.len() > limits.max_records_per_request {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_records",
            format!(
                "at most {} records per request records={}",
                limits.max_records_per_request,
                req.records.len()
            ),
        ));
    }
    let encoding = req.encoding;
    let mut records = Vec::with_capacity(req.records.len());
    for (i, r) in req.records.into_iter().enumerate() {
        let key = r.key.map(|k| encoding.decode("key", k)).transpose()?;
        let value = r.value.map(|v| encoding.decode("value", v)).transpose()?;
        let headers = r
            .headers
            .into_iter()
            .map(|h| {
                Ok(Header {
                    key: h.key,
                    value: h.value.map(|v| encoding.decode("header value", v)).transpose()?,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let record = Record {
            key,
            value,
            headers,
            timestamp_ms: r.timestamp_ms.unwrap_or(0),
        };
        let size = record.weight() - 32;
        if size > limits.max_record_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "record_too_large",
                format!("record {i} is {size} bytes; the limit is {}", limits.max_record_bytes),
            ));
        }
        if r.timestamp_ms.is_some_and(|t| t < 0) {
            return Err(ApiError::bad_request(
                "invalid_timestamp",
                format!("record {i} has a negative timestamp_ms"),
            ));
        }
        records.push(ProduceRecord {
            partition: r.partition,
            timestamp_missing: r.timestamp_ms.is_none(),
            record,
        });
    }
    let producer = producer_header(&headers)?;
    let offsets = state.agent.produce(&name, records, producer).await?;
    Ok(axum::Json(ProduceResponse {
        offsets: offsets
            .into_iter()
            .map(|o| OffsetJson {
                partition: o.partition,
                offset: o.offset,
            })
            .collect(),
    }))
}

/// Parses the optional `Producer-Id`, `Producer-Epoch`, `Producer-Seq` headers (all or none).
fn producer_header(headers: &HeaderMap) -> Result<Option<ProducerHeader>, ApiError> {
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("").trim().to_owned());
    match (get("producer-id"), get("producer-epoch"), get("producer-seq")) {
        (None, None, None) => Ok(None),
        (Some(id), Some(epoch), Some(seq)) => {
            let bad = |h: &str, v: &str| {
                ApiError::bad_request(
                    "invalid_producer",
                    format!("{h} must be a non-negative integer {h}={v}"),
                )
            };
            let producer_id = id
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| bad("Producer-Id", &id))?;
            let producer_epoch = epoch
                .parse::<i16>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| bad("Producer-Epoch", &epoch))?;
            let sequence = seq
                .parse::<i32>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| bad("Producer-Seq", &seq))?;
            Ok(Some(ProducerHeader {
                producer_id,
                producer_epoch,
                sequence,
            }))
        }
        _ => Err(ApiError::bad_request(
            "invalid_producer",
            "Producer-Id, Producer-Epoch and Producer-Seq must be given together",
        )),
    }
}

async fn read_records(
    State(state): State<AppState>,
    Path((topic, partition)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = topic_name(&topic)?;
    let partition = partition_number(&partition)?;
    let q = query_map(query)?;
    let limits = &state.limits;
    let format = StreamFormat::from_accept(headers.get(header::ACCEPT));
    // A resuming SSE client names the next offset in Last-Event-ID.
    let resume = match (format, headers.get("last-event-id")) {
        (Some(StreamFormat::Sse), Some(v)) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("invalid_last_event_id", "Last-Event-ID must be an offset"))?,
        ),
        _ => None,
    };
    let offset = match resume {
        Some(offset) => offset,
        None => query_u64(&q, "offset")?.ok_or_else(|| ApiError::bad_request("invalid_query", "offset is required"))?,
    };
    let max_records = query_u64(&q, "max_records")?.unwrap_or(500);
    let max_bytes = query_u64(&q, "max_bytes")?.unwrap_or(1 << 20);
    if max_records == 0 || max_bytes == 0 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "max_records and max_bytes must be positive",
        ));
    }
    let wait_ms = query_u64(&q, "wait_ms")?.unwrap_or(if format.is_some() { 15_000 } else { 0 });
    let encoding = Encoding::parse(q.get("encoding").map(String::as_str))?;
    if let Some(unknown) = q.keys().find(|k| {
        !matches!(
            k.as_str(),
            "offset" | "max_records" | "max_bytes" | "wait_ms" | "encoding"
        )
    }) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("unknown query parameter name={unknown}"),
        ));
    }
    let req = ReadRequest {
        partition,
        offset,
        max_records: usize::try_from(max_records)
            .unwrap_or(usize::MAX)
            .min(limits.max_read_records),
        max_bytes: usize::try_from(max_bytes)
            .unwrap_or(usize::MAX)
            .min(limits.max_read_bytes),
        wait: Duration::from_millis(wait_ms).min(limits.max_wait),
    };
    if let Some(format) = format {
        let params = StreamParams {
            topic: name,
            first: req,
            encoding,
            format,
        };
        return stream_records(state.agent.clone(), params).await;
    }
    // Encoded inside the read: a replay's JSON is written on the replay lane.
    let body = state
        .agent
        .read_map(&name, req, move |result| {
            let body = read_response(result, encoding)?;
            serde_json::to_vec(&body)
                .map(Bytes::from)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
        })
        .await??;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Turns a read result into the contract's JSON body.
pub(crate) fn read_response(result: silt_agent::ReadResult, encoding: Encoding) -> Result<ReadResponse, ApiError> {
    let mut records = Vec::with_capacity(result.records.len());
    for r in result.records {
        let key = r
            .key
            .as_ref()
            .map(|k| encoding.encode(r.offset, "key", k))
            .transpose()?;
        let value = r
            .value
            .as_ref()
            .map(|v| encoding.encode(r.offset, "value", v))
            .transpose()?;
        let headers = r
            .headers
            .iter()
            .map(|h| {
                Ok(JsonHeader {
                    key: h.key.clone(),
                    value: h
                        .value
                        .as_ref()
                        .map(|v| encoding.encode(r.offset, "header value", v))
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        records.push(RecordJson {
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            key,
            value,
            headers,
        });
    }
    Ok(ReadResponse {
        records,
        next_offset: result.next_offset,
        high_watermark: result.high_watermark,
        log_start_offset: result.log_start_offset,
    })
}

async fn offset_for_timestamp(
    State(state): State<AppState>,
    Path((topic, partition)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<OffsetResponse>, ApiError> {
    let name = topic_name(&topic)?;
    let partition = partition_number(&partition)?;
    let q = query_map(query)?;
    let ts = q
        .get("timestamp_ms")
        .ok_or_else(|| ApiError::bad_request("invalid_query", "timestamp_ms is required"))?;
    let ts: i64 = ts.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_query",
            format!("timestamp_ms must be an integer timestamp_ms={ts}"),
        )
    })?;
    let offset = state.agent.offset_for_timestamp(&name, partition, ts).await?;
    Ok(axum::Json(OffsetResponse { offset }))
}

fn group_name(raw: &str) -> Result<GroupName, ApiError> {
    GroupName::new(raw).map_err(|e| ApiError::bad_request("invalid_group_name", format!("invalid group name: {e}")))
}

async fn commit_group(
    State(state): State<AppState>,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let group = group_name(&group)?;
    let req: GroupCommitJson = json_body(&headers, body)?;
    if req.offsets.is_empty() {
        return Err(ApiError::bad_request("invalid_request", "offsets must not be empty"));
    }
    if req.offsets.len() > 100_000 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_offsets",
            "at most 100000 offsets per commit",
        ));
    }
    let offsets = req
        .offsets
        .into_iter()
        .map(|o| {
            Ok(GroupOffset {
                topic: topic_name(&o.topic)?,
                partition: o.partition,
                offset: o.offset,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let commit = GroupCommit {
        generation: req.generation,
        reset: req.reset,
        offsets,
    };
    state.agent.commit_group_offsets(&group, &commit).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn group_offsets(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<axum::Json<GroupOffsets>, ApiError> {
    let group = group_name(&group)?;
    let group_state = state.agent.group_offsets(&group).await?;
    Ok(axum::Json(GroupOffsets {
        generation: group_state.generation,
        offsets: group_state
            .offsets
            .into_iter()
            .map(|o| GroupOffsetJson {
                topic: o.topic.to_string(),
                partition: o.partition,
                offset: o.offset,
            })
            .collect(),
    }))
}

async fn join_group(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let group = group_name(&group)?;
    let generation = state.agent.join_group(&group).await?;
    Ok(axum::Json(serde_json::json!({"generation": generation})))
}

/// `POST /v1/producers` with an empty body allocates a producer id; with
/// `{"producer_id": N}` it bumps that producer's epoch, fencing older ones.
async fn init_producer(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct InitProducer {
        #[serde(default)]
        producer_id: Option<i64>,
    }
    let existing = match &body {
        Ok(b) if b.is_empty() => None,
        _ => json_body::<InitProducer>(&headers, body)?.producer_id,
    };
    let identity = state.agent.init_producer(existing).await?;
    Ok(axum::Json(serde_json::json!({
        "producer_id": identity.producer_id,
        "producer_epoch": identity.producer_epoch,
    })))
}

async fn list_agents(State(state): State<AppState>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let agents = state.agent.list_agents().await?;
    let agents: Vec<_> = agents
        .into_iter()
        .map(|a| {
            serde_json::json!({
                "node_id": a.node_id,
                "address": a.address,
                "zone": a.zone,
                "registered_ms": a.registered_ms,
                "expires_ms": a.expires_ms,
            })
        })
        .collect();
    Ok(axum::Json(serde_json::json!({"agents": agents})))
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.agent.ready().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string()).into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
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
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("metrics encoding failed: {e}"),
        )
        .into_response(),
    }
}
