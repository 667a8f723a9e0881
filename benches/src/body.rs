//! Produce request bodies as the load generator sends them.
//!
//! Every record value starts with the send time in microseconds since the
//! Unix epoch as 16 ASCII digits, so a tail consumer can compute the
//! produce→consume latency of each record; the rest of the value is cut from
//! a pool of random URL-safe characters (JSON-safe, never escaped, and about
//! as compressible as base64 text).

use std::time::{SystemTime, UNIX_EPOCH};

/// Digits of the send-time prefix of every value.
pub const STAMP_LEN: usize = 16;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Random printable bytes from which record values are cut.
#[derive(Debug, Clone)]
pub struct ValuePool {
    bytes: Vec<u8>,
}

impl ValuePool {
    /// A pool of `len` (at least 1) pseudo-random characters from `seed`.
    pub fn new(len: usize, seed: u64) -> Self {
        let mut state = seed | 1;
        let bytes = (0..len.max(1))
            .map(|_| {
                // xorshift64*: fast and good enough for filler bytes.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
                ALPHABET[(r >> 58) as usize]
            })
            .collect();
        Self { bytes }
    }

    /// `len` bytes starting near `pos` (wrapping), for varied values.
    pub fn slice(&self, pos: usize, len: usize) -> &[u8] {
        let len = len.min(self.bytes.len());
        let start = pos % (self.bytes.len() - len + 1);
        &self.bytes[start..start + len]
    }
}

/// Microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Builds `{"records":[{"value":"<stamp><filler>"[,"partition":p]},...]}`
/// with `records` values of `value_bytes` bytes each (at least the stamp).
/// With `partitions = Some((first, count))` record `i` names partition
/// `(first + i) % count`; otherwise records are keyless and the server
/// spreads them round-robin.
pub fn produce_body(
    pool: &ValuePool,
    records: usize,
    value_bytes: usize,
    partitions: Option<(u32, u32)>,
    stamp_micros: u64,
    seed: usize,
) -> Vec<u8> {
    let value_bytes = value_bytes.max(STAMP_LEN);
    let mut out = Vec::with_capacity(16 + records * (value_bytes + 40));
    out.extend_from_slice(b"{\"records\":[");
    let stamp = format!("{stamp_micros:016}");
    for i in 0..records {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"value\":\"");
        out.extend_from_slice(stamp.as_bytes());
        out.extend_from_slice(pool.slice(mix(seed, i), value_bytes - STAMP_LEN));
        out.push(b'"');
        if let Some((first, count)) = partitions {
            let p = (first + i as u32) % count.max(1);
            out.extend_from_slice(b",\"partition\":");
            out.extend_from_slice(p.to_string().as_bytes());
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// A well-spread pool position for record `i` of request `seed`, so values
/// of one batch do not overlap (overlapping values would let the server's
/// compression shrink them far more than real data).
fn mix(seed: usize, i: usize) -> usize {
    let mut z = (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64).wrapping_add(0x632b_e59b_d9b4_e019);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as usize
}

/// The send time stamped at the start of `value`, if there is one.
pub fn stamp_of(value: &str) -> Option<u64> {
    value.get(..STAMP_LEN)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_valid_json_with_stamped_values() {
        let pool = ValuePool::new(4096, 7);
        let body = produce_body(&pool, 3, 100, Some((5, 2)), 1_234_567, 9);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let records = v["records"].as_array().expect("records");
        assert_eq!(records.len(), 3);
        let value = records[0]["value"].as_str().expect("value");
        assert_eq!(value.len(), 100);
        assert_eq!(stamp_of(value), Some(1_234_567));
        assert_eq!(records[0]["partition"], 1);
        assert_eq!(records[1]["partition"], 0);
        assert_eq!(records[2]["partition"], 1);
    }

    #[test]
    fn keyless_body_names_no_partition_and_short_values_keep_the_stamp() {
        let pool = ValuePool::new(10, 1);
        let body = produce_body(&pool, 1, 4, None, 42, 0);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert!(v["records"][0].get("partition").is_none());
        assert_eq!(v["records"][0]["value"].as_str().map(str::len), Some(STAMP_LEN));
    }
}
