//! A record as producers send it and consumers receive it.

use bytes::Bytes;

/// One header of a record. Keys may repeat; order is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header key (Kafka header keys are strings).
    pub key: String,
    /// Header value; `None` is Kafka's null.
    pub value: Option<Bytes>,
}

/// One record: what a producer sends and a consumer reads back, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Optional key; drives partitioning and compaction semantics.
    pub key: Option<Bytes>,
    /// The payload; `None` is a Kafka tombstone.
    pub value: Option<Bytes>,
    /// Ordered headers, duplicates allowed.
    pub headers: Vec<Header>,
    /// Create time in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

impl Record {
    /// Bytes this record occupies in memory before encoding; used to weigh
    /// admission and limits consistently everywhere.
    pub fn weight(&self) -> usize {
        let kv = self.key.as_ref().map_or(0, Bytes::len) + self.value.as_ref().map_or(0, Bytes::len);
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
            .sum();
        kv + headers + 32
    }
}
