//! The client's own view of the v1 JSON bodies (design §7).
//!
//! Deliberately lenient when reading: unknown fields are ignored and
//! optional fields default, so a newer server does not break an older
//! client. Deliberately minimal when writing: optional fields are left out
//! unless set, so an older server does not see fields it rejects.

use serde::{Deserialize, Serialize};

/// One topic in `GET /v1/topics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSummary {
    /// Topic name.
    pub name: String,
    /// Partition count.
    #[serde(default)]
    pub partitions: u32,
}

/// `GET /v1/topics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicList {
    /// All topics.
    #[serde(default)]
    pub topics: Vec<TopicSummary>,
}

/// One partition of a topic description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: u32,
    /// First readable offset.
    #[serde(default)]
    pub log_start_offset: u64,
    /// Next offset to be assigned.
    #[serde(default)]
    pub high_watermark: u64,
}

/// `GET /v1/topics/{topic}` and the body of a creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Id of this incarnation of the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Settings, passed through as the server wrote them.
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Partitions with their bounds.
    #[serde(default)]
    pub partitions: Vec<PartitionDescription>,
}

impl TopicDescription {
    /// The bounds of `partition`, if the topic has it.
    pub fn partition(&self, partition: u32) -> Option<PartitionDescription> {
        self.partitions.iter().copied().find(|p| p.partition == partition)
    }
}

/// `POST /v1/topics`.
#[derive(Debug, Clone, Serialize)]
pub struct CreateTopic {
    /// Topic name.
    pub name: String,
    /// Partition count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// Settings; only the ones given.
    pub config: serde_json::Map<String, serde_json::Value>,
}

/// A record header in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Header key.
    pub key: String,
    /// Header value (in the request's encoding), or null.
    #[serde(default)]
    pub value: Option<String>,
}

/// One record of a produce request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProduceRecord {
    /// Key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Value.
    pub value: Option<String>,
    /// Headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// Explicit partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
}

/// `POST /v1/topics/{topic}/records`.
#[derive(Debug, Clone, Serialize)]
pub struct ProduceRequest<'a> {
    /// The records, in order.
    pub records: &'a [ProduceRecord],
    /// `"base64"` when keys and values are base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
}

/// One produced record's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ProducedOffset {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
}

/// Produce response.
#[derive(Debug, Clone, Deserialize)]
pub struct ProduceResponse {
    /// One entry per record, in request order.
    #[serde(default)]
    pub offsets: Vec<ProducedOffset>,
}

/// One record of a read response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordJson {
    /// Offset.
    pub offset: u64,
    /// Create time.
    #[serde(default)]
    pub timestamp_ms: i64,
    /// Key.
    #[serde(default)]
    pub key: Option<String>,
    /// Value.
    #[serde(default)]
    pub value: Option<String>,
    /// Headers.
    #[serde(default)]
    pub headers: Vec<Header>,
}

/// A read response.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadResponse {
    /// Consecutive records.
    #[serde(default)]
    pub records: Vec<RecordJson>,
    /// Where to read next.
    pub next_offset: u64,
    /// High watermark.
    pub high_watermark: u64,
    /// Log start.
    #[serde(default)]
    pub log_start_offset: u64,
}

/// `GET .../offsets?timestamp_ms=`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct OffsetResponse {
    /// First offset at or after the timestamp.
    pub offset: u64,
}

/// One group offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Next offset to consume.
    pub offset: u64,
}

/// `GET /v1/groups/{group}/offsets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffsets {
    /// The group's generation, from servers that have generations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The offsets.
    #[serde(default)]
    pub offsets: Vec<GroupOffset>,
}

/// `POST /v1/groups/{group}/offsets`.
#[derive(Debug, Clone, Serialize)]
pub struct CommitRequest {
    /// The offsets.
    pub offsets: Vec<GroupOffset>,
    /// Group generation (only sent when given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Allow moving the offset backwards (only sent when given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
}

/// A record as `consume --format json` and `replay --format jsonl` print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Create time.
    pub timestamp_ms: i64,
    /// Key or null.
    pub key: Option<String>,
    /// Value or null.
    pub value: Option<String>,
    /// Headers in order.
    pub headers: Vec<Header>,
}

impl OutputRecord {
    /// Tags a read record with its partition.
    pub fn new(partition: u32, r: RecordJson) -> Self {
        Self {
            partition,
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            key: r.key,
            value: r.value,
            headers: r.headers,
        }
    }
}

/// The error body of the contract.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

/// The inside of the error body.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub(crate) code: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_request_leaves_out_unset_fields() {
        let records = [ProduceRecord {
            key: None,
            value: Some("v".into()),
            headers: vec![],
            partition: None,
        }];
        let body = serde_json::to_string(&ProduceRequest {
            records: &records,
            encoding: None,
        })
        .expect("serialize");
        assert_eq!(body, r#"{"records":[{"value":"v"}]}"#);
    }

    #[test]
    fn commit_request_sends_generation_and_reset_only_when_given() {
        let offsets = vec![GroupOffset {
            topic: "t".into(),
            partition: 0,
            offset: 5,
        }];
        let plain = CommitRequest {
            offsets: offsets.clone(),
            generation: None,
            reset: None,
        };
        assert_eq!(
            serde_json::to_string(&plain).expect("serialize"),
            r#"{"offsets":[{"topic":"t","partition":0,"offset":5}]}"#
        );
        let full = CommitRequest {
            offsets,
            generation: Some(3),
            reset: Some(true),
        };
        let v: serde_json::Value = serde_json::to_value(&full).expect("serialize");
        assert_eq!(v["generation"], 3);
        assert_eq!(v["reset"], true);
    }

    #[test]
    fn responses_tolerate_unknown_and_missing_fields() {
        let d: TopicDescription = serde_json::from_str(
            r#"{"name":"t","future":1,"partitions":[{"partition":0,"high_watermark":4,"x":true}]}"#,
        )
        .expect("parse");
        assert_eq!(d.partition(0).map(|p| p.high_watermark), Some(4));
        assert_eq!(d.partition(1), None);
        assert!(d.id.is_none());
        let r: ReadResponse =
            serde_json::from_str(r#"{"records":[{"offset":1,"value":null}],"next_offset":2,"high_watermark":2}"#)
                .expect("parse");
        assert_eq!(r.records[0].value, None);
        assert!(serde_json::from_str::<ReadResponse>(r#"{"records":[]}"#).is_err());
    }
}
