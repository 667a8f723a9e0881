//! Backend-independent rules: request validation and Kafka's idempotent
//! producer checks, as pure functions every backend applies the same way.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use silt_types::Offset;

use crate::{
    AgentRegistration, ChunkCommit, ChunkLocation, ChunkReplacement, MetaError, ProducerAppend, ProducerCheck,
    ProducerIdentity, ReplaceOutcome, Result, SegmentCommit,
};

/// Smallest producer id handed out; lower ids are reserved.
pub(crate) const FIRST_PRODUCER_ID: i64 = 1000;

/// How many recent batches per producer and partition are remembered for deduplication (Kafka's 5).
pub(crate) const PRODUCER_WINDOW: usize = 5;

pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| MetaError::Invalid(format!("{what} {v} exceeds {}", i64::MAX)))
}

pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| MetaError::Corrupt(format!("stored {what} is negative ({v})")))
}

pub(crate) fn to_u32(v: i64, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| MetaError::Corrupt(format!("stored {what} out of range ({v})")))
}

pub(crate) fn to_i32(v: i64, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| MetaError::Corrupt(format!("stored {what} out of range ({v})")))
}

pub(crate) fn to_i16(v: i64, what: &str) -> Result<i16> {
    i16::try_from(v).map_err(|_| MetaError::Corrupt(format!("stored {what} out of range ({v})")))
}

/// Checks a segment before any database work and returns the chunk indices
/// in the deterministic lock order `(topic, partition)`.
pub(crate) fn validate_segment(segment: &SegmentCommit) -> Result<Vec<usize>> {
    if segment.object_key.is_empty() {
        return Err(MetaError::Invalid("segment object key is empty".to_owned()));
    }
    if segment.chunks.is_empty() {
        return Err(MetaError::Invalid(format!(
            "segment {} has no chunks",
            segment.object_key
        )));
    }
    to_i64(segment.object_size, "object size")?;
    for c in &segment.chunks {
        if c.record_count == 0 {
            return Err(MetaError::Invalid(format!(
                "chunk of topic {} partition {} has no records",
                c.topic, c.partition
            )));
        }
        let end = c.byte_offset.checked_add(c.byte_len);
        if end.is_none_or(|end| end > segment.object_size) {
            return Err(MetaError::Invalid(format!(
                "chunk of topic {} partition {} (bytes {}+{}) lies outside object {} of {} bytes",
                c.topic, c.partition, c.byte_offset, c.byte_len, segment.object_key, segment.object_size
            )));
        }
        to_i64(c.byte_offset, "byte offset")?;
        to_i64(c.byte_len, "byte length")?;
        for a in &c.producers {
            validate_append(a)?;
            let end = u64::from(a.offset_in_chunk) + u64::from(a.record_count);
            if end > u64::from(c.record_count) {
                return Err(MetaError::Invalid(format!(
                    "producer {} batch (records {}+{}) lies outside its chunk of {} records",
                    a.producer_id, a.offset_in_chunk, a.record_count, c.record_count
                )));
            }
        }
    }
    let mut order: Vec<usize> = (0..segment.chunks.len()).collect();
    order.sort_by_key(|&i| (segment.chunks[i].topic, segment.chunks[i].partition));
    for pair in order.windows(2) {
        let (a, b) = (&segment.chunks[pair[0]], &segment.chunks[pair[1]]);
        if (a.topic, a.partition) == (b.topic, b.partition) {
            return Err(MetaError::Invalid(format!(
                "segment {} has two chunks for topic {} partition {}",
                segment.object_key, a.topic, a.partition
            )));
        }
    }
    Ok(order)
}

/// Checks the fields of one producer batch.
/// Checks a compaction swap's shape: old and new entries contiguous,
/// covering the same offsets, new byte ranges inside the new object.
pub(crate) fn validate_replacement(r: &ChunkReplacement) -> Result<()> {
    let invalid = |what: String| {
        Err(MetaError::Invalid(format!(
            "chunk replacement of {}: {what}",
            r.object_key
        )))
    };
    if r.object_key.is_empty() {
        return Err(MetaError::Invalid("chunk replacement object key is empty".to_owned()));
    }
    let (Some(first), Some(last)) = (r.old.first(), r.old.last()) else {
        return invalid("no old entries".to_owned());
    };
    if r.entries.is_empty() {
        return invalid("no new entries".to_owned());
    }
    to_i64(r.object_size, "object size")?;
    to_i64(r.footer_len, "footer length")?;
    let mut next = first.base_offset;
    for o in &r.old {
        if o.topic != r.topic || o.partition != r.partition || o.base_offset != next || o.last_offset < o.base_offset {
            return invalid(format!(
                "old entry {}..={} breaks the range",
                o.base_offset, o.last_offset
            ));
        }
        next = o.last_offset.saturating_add(1);
    }
    let mut next = first.base_offset;
    for e in &r.entries {
        if e.base_offset != next || e.last_offset < e.base_offset {
            return invalid(format!(
                "new entry {}..={} breaks the range",
                e.base_offset, e.last_offset
            ));
        }
        let end = e.byte_offset.checked_add(e.byte_len);
        if end.is_none_or(|end| end > r.object_size) {
            return invalid(format!(
                "new entry bytes {}+{} outside the object",
                e.byte_offset, e.byte_len
            ));
        }
        to_i64(e.base_offset, "base offset")?;
        to_i64(e.last_offset, "last offset")?;
        next = e.last_offset.saturating_add(1);
    }
    if next != last.last_offset.saturating_add(1) {
        return invalid(format!(
            "new entries end at {} but old ones at {}",
            next.saturating_sub(1),
            last.last_offset
        ));
    }
    Ok(())
}

/// Whether the entries stored now for a replacement's range are exactly the
/// ones the compactor read; a conflict names the first difference.
pub(crate) fn check_replaced(r: &ChunkReplacement, log_start: Offset, current: &[ChunkLocation]) -> ReplaceOutcome {
    let first = r.old.first().map_or(0, |o| o.base_offset);
    if first < log_start {
        return ReplaceOutcome::Conflict {
            reason: format!("range starts at {first}, below the log start {log_start}"),
        };
    }
    if current.len() != r.old.len() {
        return ReplaceOutcome::Conflict {
            reason: format!("{} entries expected in the range, {} found", r.old.len(), current.len()),
        };
    }
    for (want, have) in r.old.iter().zip(current) {
        let same = want.base_offset == have.base_offset
            && want.last_offset == have.last_offset
            && want.object_key == have.object_key
            && want.byte_offset == have.byte_offset
            && want.byte_len == have.byte_len
            && want.format == have.format;
        if !same {
            return ReplaceOutcome::Conflict {
                reason: format!(
                    "entry at {} is {}..={} in {}, expected {}..={} in {}",
                    want.base_offset,
                    have.base_offset,
                    have.last_offset,
                    have.object_key,
                    want.base_offset,
                    want.last_offset,
                    want.object_key
                ),
            };
        }
    }
    ReplaceOutcome::Replaced
}

/// Running maximum timestamps of a replacement's new entries, continuing
/// from the running maximum before the range (`None` if it starts the log).
pub(crate) fn running_maxima(r: &ChunkReplacement, before: Option<i64>) -> Vec<i64> {
    let mut running = before;
    r.entries
        .iter()
        .map(|e| {
            let m = running.map_or(e.max_timestamp_ms, |m| m.max(e.max_timestamp_ms));
            running = Some(m);
            m
        })
        .collect()
}

pub(crate) fn validate_append(a: &ProducerAppend) -> Result<()> {
    if a.producer_id < 0 || a.producer_epoch < 0 || a.base_sequence < 0 || a.record_count == 0 {
        return Err(MetaError::Invalid(format!(
            "producer batch needs producer_id, epoch and base_sequence >= 0 and at least one record: {a:?}"
        )));
    }
    if i64::from(a.record_count) > i64::from(i32::MAX) {
        return Err(MetaError::Invalid(format!(
            "producer batch of {} records is too large",
            a.record_count
        )));
    }
    Ok(())
}

pub(crate) fn validate_registration(agent: &AgentRegistration) -> Result<()> {
    if agent.node_id.is_empty() || agent.address.is_empty() {
        return Err(MetaError::Invalid("agent node id and address must not be empty".into()));
    }
    if agent.lease_ms <= 0 {
        return Err(MetaError::Invalid(format!(
            "agent lease must be positive, got {} ms",
            agent.lease_ms
        )));
    }
    Ok(())
}

pub(crate) fn validate_lease(name: &str, holder: &str, ttl_ms: Option<i64>) -> Result<()> {
    if name.is_empty() || holder.is_empty() {
        return Err(MetaError::Invalid("lease name and holder must not be empty".into()));
    }
    if let Some(ttl) = ttl_ms
        && ttl <= 0
    {
        return Err(MetaError::Invalid(format!("lease ttl must be positive, got {ttl} ms")));
    }
    Ok(())
}

/// `now + ms`, saturating.
pub(crate) fn expiry(now: i64, ms: i64) -> i64 {
    now.saturating_add(ms)
}

/// The identity after bumping `current`'s epoch.
pub(crate) fn bumped(producer_id: i64, epoch: i16) -> Result<ProducerIdentity> {
    let next = epoch.checked_add(1).ok_or_else(|| {
        MetaError::Invalid(format!(
            "producer {producer_id} has exhausted its epochs; initialise a new producer"
        ))
    })?;
    Ok(ProducerIdentity {
        producer_id,
        producer_epoch: next,
    })
}

/// Sequence numbers wrap to 0 after `i32::MAX`, as in Kafka.
pub(crate) fn seq_add(seq: i32, n: i64) -> i32 {
    let modulus = i64::from(i32::MAX) + 1;
    let v = (i64::from(seq) + n).rem_euclid(modulus);
    // rem_euclid keeps v in 0..=i32::MAX.
    i32::try_from(v).unwrap_or(0)
}

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WindowEntry {
    pub base_sequence: i32,
    pub record_count: u32,
    pub base_offset: Offset,
}

/// A producer's state in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionProducer {
    pub epoch: i16,
    pub last_sequence: i32,
    /// The last few batches, oldest first.
    pub window: Vec<WindowEntry>,
}

impl PartitionProducer {
    pub(crate) fn window_json(&self) -> String {
        serde_json::to_string(&self.window).unwrap_or_else(|_| "[]".to_owned())
    }

    pub(crate) fn decode(epoch: i64, last_sequence: i64, window_json: &str) -> Result<Self> {
        Ok(Self {
            epoch: to_i16(epoch, "producer epoch")?,
            last_sequence: to_i32(last_sequence, "producer sequence")?,
            window: serde_json::from_str(window_json)
                .map_err(|e| MetaError::Corrupt(format!("stored producer window: {e}")))?,
        })
    }
}

/// Kafka's rule for one batch against the producer's current epoch
/// (`registered`, `None` if unknown) and its state in the partition.
pub(crate) fn check_append(
    registered: Option<i16>,
    state: Option<&PartitionProducer>,
    a: &ProducerAppend,
) -> ProducerCheck {
    let Some(current) = registered else {
        return ProducerCheck::UnknownProducer;
    };
    if a.producer_epoch != current {
        // Older epochs are fenced; a newer one was never handed out.
        return ProducerCheck::Fenced { current_epoch: current };
    }
    match state {
        Some(s) if s.epoch == a.producer_epoch => {
            if let Some(w) = s
                .window
                .iter()
                .find(|w| w.base_sequence == a.base_sequence && w.record_count == a.record_count)
            {
                return ProducerCheck::Duplicate {
                    base_offset: w.base_offset,
                };
            }
            let expected = seq_add(s.last_sequence, 1);
            if a.base_sequence == expected {
                ProducerCheck::Accept
            } else {
                ProducerCheck::OutOfOrder {
                    expected_sequence: expected,
                }
            }
        }
        // First batch of this producer here, or of a new epoch: must start at 0.
        _ if a.base_sequence == 0 => ProducerCheck::Accept,
        _ => ProducerCheck::OutOfOrder { expected_sequence: 0 },
    }
}

/// State after accepting `a` whose first record got `base_offset`.
pub(crate) fn apply_append(
    state: Option<&PartitionProducer>,
    a: &ProducerAppend,
    base_offset: Offset,
) -> PartitionProducer {
    let mut window = match state {
        Some(s) if s.epoch == a.producer_epoch => s.window.clone(),
        _ => Vec::new(),
    };
    window.push(WindowEntry {
        base_sequence: a.base_sequence,
        record_count: a.record_count,
        base_offset,
    });
    if window.len() > PRODUCER_WINDOW {
        window.drain(..window.len() - PRODUCER_WINDOW);
    }
    PartitionProducer {
        epoch: a.producer_epoch,
        last_sequence: seq_add(a.base_sequence, i64::from(a.record_count) - 1),
        window,
    }
}

/// Evaluates every producer batch of a chunk in order against the stored
/// state; on success returns the new states to write (by producer id), else
/// the first verdict that is not `Accept`.
pub(crate) fn evaluate_chunk(
    chunk: &ChunkCommit,
    chunk_base: Offset,
    registered: &HashMap<i64, i16>,
    stored: &HashMap<i64, PartitionProducer>,
) -> std::result::Result<HashMap<i64, PartitionProducer>, ProducerCheck> {
    let mut updated: HashMap<i64, PartitionProducer> = HashMap::new();
    for a in &chunk.producers {
        let state = updated.get(&a.producer_id).or_else(|| stored.get(&a.producer_id));
        match check_append(registered.get(&a.producer_id).copied(), state, a) {
            ProducerCheck::Accept => {
                let next = apply_append(state, a, chunk_base + u64::from(a.offset_in_chunk));
                updated.insert(a.producer_id, next);
            }
            other => return Err(other),
        }
    }
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap() {
        assert_eq!(seq_add(0, 1), 1);
        assert_eq!(seq_add(i32::MAX, 1), 0);
        assert_eq!(seq_add(i32::MAX - 1, 3), 1);
        assert_eq!(seq_add(-1, 1), 0);
    }
}
