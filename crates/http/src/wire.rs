//! Request and response bodies of the v1 contract, and their conversions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use silt_meta::TopicConfig;

use crate::ApiError;

/// How keys, values and header values are written in JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 strings (the default).
    #[default]
    Utf8,
    /// Base64 (standard alphabet, padded).
    Base64,
}

impl Encoding {
    /// Parses the `encoding` query value.
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("utf8") | Some("utf-8") => Ok(Self::Utf8),
            Some("base64") => Ok(Self::Base64),
            Some(other) => Err(ApiError::bad_request(
                "invalid_encoding",
                format!("encoding must be utf8 or base64 encoding={other}"),
            )),
        }
    }

    /// Turns a JSON string into bytes.
    pub fn decode(self, field: &str, value: String) -> Result<Bytes, ApiError> {
        match self {
            Self::Utf8 => Ok(Bytes::from(value)),
            Self::Base64 => STANDARD
                .decode(value.as_bytes())
                .map(Bytes::from)
                .map_err(|e| ApiError::bad_request("invalid_base64", format!("{field} is not valid base64: {e}"))),
        }
    }

    /// Turns bytes into a JSON string.
    pub fn encode(self, offset: u64, field: &str, value: &Bytes) -> Result<String, ApiError> {
        match self {
            Self::Utf8 => std::str::from_utf8(value).map(str::to_owned).map_err(|_| {
                ApiError::bad_request(
                    "not_utf8",
                    format!("{field} of record at offset={offset} is not valid UTF-8; read with encoding=base64"),
                )
            }),
            Self::Base64 => Ok(STANDARD.encode(value)),
        }
    }
}

/// `POST /v1/topics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// Topic name.
    pub name: String,
    /// Number of partitions (default 1).
    #[serde(default)]
    pub partitions: Option<u32>,
    /// Settings.
    #[serde(default)]
    pub config: TopicConfig,
}

/// `PATCH /v1/topics/{topic}`: the settings to change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTopic {
    /// Settings to replace; absent ones stay as they are.
    pub config: TopicConfig,
}

/// One topic in `GET /v1/topics`.
#[derive(Debug, Serialize)]
pub struct TopicSummary {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
}

/// `GET /v1/topics`.
#[derive(Debug, Serialize)]
pub struct TopicList {
    /// All topics by name.
    pub topics: Vec<TopicSummary>,
}

/// One partition in a topic description.
#[derive(Debug, Serialize)]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: u32,
    /// First readable offset.
    pub log_start_offset: u64,
    /// Next offset to be assigned.
    pub high_watermark: u64,
}

/// `GET /v1/topics/{topic}` and the 201 body of a creation.
#[derive(Debug, Serialize)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Stable id of this incarnation of the topic.
    pub id: String,
    /// Settings.
    pub config: TopicConfig,
    /// Partitions with their bounds.
    pub partitions: Vec<PartitionDescription>,
}

/// A header as written in JSON.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonHeader {
    /// Header key (always a UTF-8 string).
    pub key: String,
    /// Header value, in the request's encoding; null allowed.
    pub value: Option<String>,
}

/// One record of a produce request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecordJson {
    /// Optional key.
    #[serde(default)]
    pub key: Option<String>,
    /// Value; null is a tombstone.
    pub value: Option<String>,
    /// Ordered headers.
    #[serde(default)]
    pub headers: Vec<JsonHeader>,
    /// Explicit partition.
    #[serde(default)]
    pub partition: Option<u32>,
    /// Create time; defaults to the time of the request.
    #[serde(default)]
    pub timestamp_ms: Option<i64>,
}

/// `POST /v1/topics/{topic}/records`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    /// The records, in order.
    pub records: Vec<ProduceRecordJson>,
    /// Encoding of keys and values.
    #[serde(default)]
    pub encoding: Encoding,
}

/// One produced record's position.
#[derive(Debug, Serialize)]
pub struct OffsetJson {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
}

/// Produce response.
#[derive(Debug, Serialize)]
pub struct ProduceResponse {
    /// One entry per record, in request order.
    pub offsets: Vec<OffsetJson>,
}

/// One record in a read response.
#[derive(Debug, Serialize)]
pub struct RecordJson {
    /// Offset.
    pub offset: u64,
    /// Create time.
    pub timestamp_ms: i64,
    /// Key or null.
    pub key: Option<String>,
    /// Value or null.
    pub value: Option<String>,
    /// Headers in order.
    pub headers: Vec<JsonHeader>,
}

/// Read response.
#[derive(Debug, Serialize)]
pub struct ReadResponse {
    /// Consecutive records.
    pub records: Vec<RecordJson>,
    /// Where to read next.
    pub next_offset: u64,
    /// Partition high watermark.
    pub high_watermark: u64,
    /// Partition log start.
    pub log_start_offset: u64,
}

/// `GET .../offsets?timestamp_ms=`.
#[derive(Debug, Serialize)]
pub struct OffsetResponse {
    /// First offset with a timestamp at or after the one asked for.
    pub offset: u64,
}

/// One group offset in JSON.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupOffsetJson {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Next offset to consume.
    pub offset: u64,
}

/// Group offsets commit body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCommitJson {
    /// The offsets.
    pub offsets: Vec<GroupOffsetJson>,
    /// Generation from `POST /v1/groups/{group}/join`; a stale one is refused with 409.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i32>,
    /// Allow offsets to move backwards.
    #[serde(default)]
    pub reset: bool,
}

/// Group offsets response body.
#[derive(Debug, Deserialize, Serialize)]
pub struct GroupOffsets {
    /// The group's current generation (0 if no member ever joined).
    pub generation: i32,
    /// The offsets.
    pub offsets: Vec<GroupOffsetJson>,
}
