//! Silt's segment object: header, self-verifying chunks, footer, trailer.
//! See FORMAT.md in this crate for the byte layout.

use std::collections::HashSet;

use bytes::Bytes;
use silt_types::{Header, Offset, PartitionId, Record, TopicId};

use crate::SegmentError;
use crate::batch::{BatchIter, BatchView, PatchedBatch, RecordIter, set_base_offset};
use crate::wire::{Reader, patch_u32};

/// Version of the segment object format this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// First 8 bytes of every segment object.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SILTSEG\0";
/// Last 6 bytes of every segment object.
pub const FOOTER_MAGIC: [u8; 6] = *b"SILTFT";
/// Segment header size: magic, version u16, reserved u16.
pub const SEGMENT_HEADER_LEN: usize = 12;
/// Chunk header size: crc, length, topic, partition, record_count, max_timestamp.
pub const CHUNK_HEADER_LEN: usize = 40;
/// Size of one footer entry.
pub const FOOTER_ENTRY_LEN: usize = 52;
/// Size of the fixed trailer: footer length, footer crc, version, magic.
pub const TRAILER_LEN: usize = 16;
/// Most chunks one segment can hold, so the footer length fits its u32.
const MAX_CHUNKS: usize = (u32::MAX as usize - 4) / FOOTER_ENTRY_LEN;

/// Where one partition's chunk lives in a segment object; persisted in the
/// footer and indexed by the metadata store to serve reads with ranged GETs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkEntry {
    /// Topic of the chunk's records.
    pub topic: TopicId,
    /// Partition of the chunk's records.
    pub partition: PartitionId,
    /// Position of the chunk header in the object.
    pub byte_offset: u64,
    /// Whole chunk length, header included.
    pub byte_len: u64,
    /// Records in the chunk.
    pub record_count: u32,
    /// Largest record timestamp in the chunk.
    pub max_timestamp_ms: i64,
    /// The chunk's Silt CRC-32C (as in its header).
    pub crc: u32,
}

/// Builds one segment object in memory from per-partition batches.
#[derive(Debug)]
pub struct SegmentWriter {
    buf: Vec<u8>,
    entries: Vec<ChunkEntry>,
    seen: HashSet<(TopicId, PartitionId)>,
}

impl Default for SegmentWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentWriter {
    /// An empty segment (header only).
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(SEGMENT_HEADER_LEN);
        buf.extend_from_slice(&SEGMENT_MAGIC);
        buf.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes());
        Self {
            buf,
            entries: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Bytes written so far (header and chunks, not yet the footer); lets
    /// callers cut segments by size.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True while no chunk has been added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of chunks added.
    pub fn chunk_count(&self) -> usize {
        self.entries.len()
    }

    /// Appends a chunk for (`topic`, `partition`) holding `batches` (each one
    /// whole v2 batch), rewriting their baseOffsets to be relative to the
    /// chunk and cumulative. Each batch's CRC is checked so corrupt client
    /// data is never persisted. On error the writer is unchanged.
    pub fn add_chunk(
        &mut self,
        topic: TopicId,
        partition: PartitionId,
        batches: &[Bytes],
    ) -> Result<ChunkEntry, SegmentError> {
        if batches.is_empty() {
            return Err(SegmentError::EmptyChunk);
        }
        if self.seen.contains(&(topic, partition)) {
            return Err(SegmentError::DuplicateChunk { topic, partition });
        }
        if self.entries.len() >= MAX_CHUNKS {
            return Err(SegmentError::TooLarge {
                what: "chunk count",
                len: self.entries.len() as u64,
            });
        }
        let start = self.buf.len();
        let result = self.append_chunk(topic, partition, batches, start);
        match result {
            Ok(entry) => {
                self.entries.push(entry);
                self.seen.insert((topic, partition));
                Ok(entry)
            }
            Err(e) => {
                self.buf.truncate(start);
                Err(e)
            }
        }
    }

    fn append_chunk(
        &mut self,
        topic: TopicId,
        partition: PartitionId,
        batches: &[Bytes],
        start: usize,
    ) -> Result<ChunkEntry, SegmentError> {
        self.buf.resize(start + CHUNK_HEADER_LEN, 0);
        let mut record_count: u32 = 0;
        let mut max_ts = i64::MIN;
        for batch in batches {
            let view = BatchView::new(batch.clone())?;
            view.verify_crc()?;
            view.compression()?;
            let count = view.record_count();
            if count <= 0 || view.last_offset_delta() != count - 1 {
                return Err(SegmentError::RecordCountMismatch {
                    declared: i64::from(count),
                    actual: i64::from(view.last_offset_delta()) + 1,
                });
            }
            let batch_start = self.buf.len();
            self.buf.extend_from_slice(batch);
            let dst = self.buf.get_mut(batch_start..).unwrap_or_default();
            set_base_offset(dst, i64::from(record_count))?;
            record_count = record_count.checked_add(count as u32).ok_or(SegmentError::TooLarge {
                what: "chunk record count",
                len: u64::from(record_count) + count as u64,
            })?;
            max_ts = max_ts.max(view.max_timestamp());
        }
        let byte_len = self.buf.len() - start;
        let chunk_len = u32::try_from(byte_len - 8).map_err(|_| SegmentError::TooLarge {
            what: "chunk",
            len: byte_len as u64,
        })?;
        let chunk = self.buf.get_mut(start..).unwrap_or_default();
        let mut header = Vec::with_capacity(CHUNK_HEADER_LEN - 4);
        header.extend_from_slice(&chunk_len.to_be_bytes());
        header.extend_from_slice(&topic.to_bytes());
        header.extend_from_slice(&partition.to_be_bytes());
        header.extend_from_slice(&record_count.to_be_bytes());
        header.extend_from_slice(&max_ts.to_be_bytes());
        if let Some(dst) = chunk.get_mut(4..CHUNK_HEADER_LEN) {
            dst.copy_from_slice(&header);
        }
        let crc = crc32c::crc32c(chunk.get(4..).unwrap_or_default());
        patch_u32(chunk, 0, crc);
        Ok(ChunkEntry {
            topic,
            partition,
            byte_offset: start as u64,
            byte_len: byte_len as u64,
            record_count,
            max_timestamp_ms: max_ts,
            crc,
        })
    }

    /// Appends the footer and trailer; returns the object bytes and the
    /// chunk entries (the same ones the footer holds).
    pub fn finish(self) -> (Bytes, Vec<ChunkEntry>) {
        let mut buf = self.buf;
        let footer_start = buf.len();
        // add_chunk caps the count at MAX_CHUNKS, so these fit in u32.
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        buf.extend_from_slice(&count.to_be_bytes());
        for e in &self.entries {
            buf.extend_from_slice(&e.topic.to_bytes());
            buf.extend_from_slice(&e.partition.to_be_bytes());
            buf.extend_from_slice(&e.byte_offset.to_be_bytes());
            buf.extend_from_slice(&e.byte_len.to_be_bytes());
            buf.extend_from_slice(&e.record_count.to_be_bytes());
            buf.extend_from_slice(&e.max_timestamp_ms.to_be_bytes());
            buf.extend_from_slice(&e.crc.to_be_bytes());
        }
        let footer = buf.get(footer_start..).unwrap_or_default();
        let footer_len = u32::try_from(footer.len()).unwrap_or(u32::MAX);
        let footer_crc = crc32c::crc32c(footer);
        buf.extend_from_slice(&footer_len.to_be_bytes());
        buf.extend_from_slice(&footer_crc.to_be_bytes());
        buf.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        buf.extend_from_slice(&FOOTER_MAGIC);
        (Bytes::from(buf), self.entries)
    }
}

/// Reads the chunk index of a whole segment object, checking header magic,
/// version, footer CRC and that every entry lies within the object.
pub fn decode_footer(object: &[u8]) -> Result<Vec<ChunkEntry>, SegmentError> {
    let mut r = Reader::new(object);
    let magic: [u8; 8] = r.array("segment magic")?;
    if magic != SEGMENT_MAGIC {
        return Err(SegmentError::BadSegmentMagic("header"));
    }
    let version = r.u16("segment version")?;
    if version != FORMAT_VERSION {
        return Err(SegmentError::UnsupportedVersion(version));
    }
    let reserved = r.u16("segment reserved")?;
    if reserved != 0 {
        return Err(SegmentError::Invalid {
            field: "segment reserved",
            value: i64::from(reserved),
        });
    }
    decode_footer_from_tail(object, object.len() as u64)
}

/// Reads the trailer (the last [`TRAILER_LEN`] bytes of an object) and
/// returns how many footer bytes precede it; lets a reader fetch exactly the
/// footer with a second ranged read.
pub fn decode_trailer(trailer: &[u8]) -> Result<u32, SegmentError> {
    let start = trailer.len().checked_sub(TRAILER_LEN).ok_or(SegmentError::Truncated {
        what: "segment trailer",
        needed: TRAILER_LEN,
        available: trailer.len(),
    })?;
    let mut r = Reader::new(trailer.get(start..).unwrap_or_default());
    let footer_len = r.u32("footer length")?;
    let _crc = r.u32("footer crc")?;
    let version = r.u16("footer version")?;
    let magic: [u8; 6] = r.array("footer magic")?;
    if magic != FOOTER_MAGIC {
        return Err(SegmentError::BadSegmentMagic("trailer"));
    }
    if version != FORMAT_VERSION {
        return Err(SegmentError::UnsupportedVersion(version));
    }
    Ok(footer_len)
}

/// Like [`decode_footer`] but from only the last bytes of an object of
/// `object_len` bytes (at least footer + trailer), so readers need not fetch
/// the whole object. Does not see the segment header.
pub fn decode_footer_from_tail(tail: &[u8], object_len: u64) -> Result<Vec<ChunkEntry>, SegmentError> {
    if tail.len() as u64 > object_len {
        return Err(SegmentError::LengthMismatch {
            what: "segment tail",
            declared: object_len,
            actual: tail.len() as u64,
        });
    }
    let footer_len = decode_trailer(tail)?;
    let trailer_start = tail.len() - TRAILER_LEN;
    let mut tr = Reader::new(tail.get(trailer_start..).unwrap_or_default());
    let _len = tr.u32("footer length")?;
    let expected_crc = tr.u32("footer crc")?;

    let footer_len_usize = footer_len as usize;
    let min_object = SEGMENT_HEADER_LEN as u64 + u64::from(footer_len) + TRAILER_LEN as u64;
    if min_object > object_len {
        return Err(SegmentError::Invalid {
            field: "footer length",
            value: i64::from(footer_len),
        });
    }
    let footer_start = trailer_start
        .checked_sub(footer_len_usize)
        .ok_or(SegmentError::Truncated {
            what: "segment footer",
            needed: footer_len_usize,
            available: trailer_start,
        })?;
    let footer = tail.get(footer_start..trailer_start).unwrap_or_default();
    let actual_crc = crc32c::crc32c(footer);
    if actual_crc != expected_crc {
        return Err(SegmentError::FooterCrcMismatch {
            expected: expected_crc,
            actual: actual_crc,
        });
    }

    let mut r = Reader::new(footer);
    let count = r.u32("chunk count")?;
    let expected_len = 4 + u64::from(count) * FOOTER_ENTRY_LEN as u64;
    if expected_len != u64::from(footer_len) {
        return Err(SegmentError::LengthMismatch {
            what: "segment footer",
            declared: expected_len,
            actual: u64::from(footer_len),
        });
    }
    // Chunks must lie between the segment header and the footer, in order.
    let chunks_end = object_len - u64::from(footer_len) - TRAILER_LEN as u64;
    let mut prev_end = SEGMENT_HEADER_LEN as u64;
    let mut seen = HashSet::new();
    // count is bounded by the footer bytes actually present.
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let entry = ChunkEntry {
            topic: TopicId::from_bytes(r.array("chunk topic")?),
            partition: r.u32("chunk partition")?,
            byte_offset: r.u64("chunk byte offset")?,
            byte_len: r.u64("chunk byte length")?,
            record_count: r.u32("chunk record count")?,
            max_timestamp_ms: r.i64("chunk max timestamp")?,
            crc: r.u32("chunk crc")?,
        };
        let end = entry.byte_offset.checked_add(entry.byte_len);
        let in_bounds = entry.byte_offset >= prev_end
            && entry.byte_len >= CHUNK_HEADER_LEN as u64
            && end.is_some_and(|end| end <= chunks_end);
        if !in_bounds {
            return Err(SegmentError::Invalid {
                field: "chunk byte range",
                value: i64::try_from(entry.byte_offset).unwrap_or(i64::MAX),
            });
        }
        if !seen.insert((entry.topic, entry.partition)) {
            return Err(SegmentError::DuplicateChunk {
                topic: entry.topic,
                partition: entry.partition,
            });
        }
        prev_end = end.unwrap_or(u64::MAX);
        entries.push(entry);
    }
    Ok(entries)
}

/// Verifies and opens one chunk given exactly its bytes (a ranged read of
/// `byte_offset..byte_offset+byte_len`), without needing the footer.
///
/// Checks the Silt CRC, the length, and that the batch framing and relative
/// base offsets are consistent with the header's record count.
pub fn decode_chunk(bytes: Bytes) -> Result<ChunkView, SegmentError> {
    let mut r = Reader::new(&bytes);
    let expected_crc = r.u32("chunk crc")?;
    let chunk_len = r.u32("chunk length")?;
    let actual_len = bytes.len() - 8.min(bytes.len());
    if u64::from(chunk_len) != actual_len as u64 || bytes.len() < CHUNK_HEADER_LEN {
        return Err(SegmentError::LengthMismatch {
            what: "chunk",
            declared: u64::from(chunk_len),
            actual: actual_len as u64,
        });
    }
    let actual_crc = crc32c::crc32c(bytes.get(4..).unwrap_or_default());
    if actual_crc != expected_crc {
        return Err(SegmentError::ChunkCrcMismatch {
            expected: expected_crc,
            actual: actual_crc,
        });
    }
    let view = ChunkView {
        topic: TopicId::from_bytes(r.array("chunk topic")?),
        partition: r.u32("chunk partition")?,
        record_count: r.u32("chunk record count")?,
        max_timestamp_ms: r.i64("chunk max timestamp")?,
        batches: bytes.slice(CHUNK_HEADER_LEN..),
    };
    view.check_framing()?;
    Ok(view)
}

/// One verified chunk: a partition's batches from one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkView {
    /// Topic of the records.
    pub topic: TopicId,
    /// Partition of the records.
    pub partition: PartitionId,
    /// Records in the chunk.
    pub record_count: u32,
    /// Largest record timestamp.
    pub max_timestamp_ms: i64,
    /// The chunk's v2 batches back to back, baseOffsets relative to the chunk.
    pub batches: Bytes,
}

impl ChunkView {
    /// Walks batch headers: relative base offsets must be cumulative record
    /// counts and add up to the chunk's record count.
    fn check_framing(&self) -> Result<(), SegmentError> {
        let mut next: i64 = 0;
        let mut max_ts = i64::MIN;
        for batch in self.batches() {
            let batch = batch?;
            if batch.base_offset() != next {
                return Err(SegmentError::NonContiguousOffset {
                    expected: next,
                    actual: batch.base_offset(),
                });
            }
            let count = batch.record_count();
            if count <= 0 || batch.last_offset_delta() != count - 1 {
                return Err(SegmentError::RecordCountMismatch {
                    declared: i64::from(count),
                    actual: i64::from(batch.last_offset_delta()) + 1,
                });
            }
            // count > 0 and next <= u32::MAX-ish, so no overflow.
            next += i64::from(count);
            if next > i64::from(self.record_count) {
                break;
            }
            max_ts = max_ts.max(batch.max_timestamp());
        }
        if next != i64::from(self.record_count) || next == 0 {
            return Err(SegmentError::RecordCountMismatch {
                declared: i64::from(self.record_count),
                actual: next,
            });
        }
        if max_ts != self.max_timestamp_ms {
            return Err(SegmentError::Invalid {
                field: "chunk max timestamp",
                value: self.max_timestamp_ms,
            });
        }
        Ok(())
    }

    /// The chunk's batches with baseOffsets as stored (relative).
    pub fn batches(&self) -> BatchIter {
        BatchIter::new(self.batches.clone())
    }

    /// The chunk's batches with absolute baseOffsets, given the chunk's first
    /// offset; ready to serve to Kafka fetches byte for byte.
    pub fn absolute_batches(&self, base_offset: Offset) -> AbsoluteBatches {
        AbsoluteBatches {
            inner: self.batches(),
            base_offset,
            done: false,
        }
    }

    /// Every record with its absolute offset (chunk base + batch base +
    /// offsetDelta) and timestamp; verifies each batch's Kafka CRC and that
    /// offsets are contiguous. Stops after the first error.
    pub fn records(&self, base_offset: Offset) -> ChunkRecords {
        ChunkRecords {
            batches: self.batches(),
            current: None,
            base_offset,
            next_offset: base_offset,
            decoded: 0,
            record_count: self.record_count,
            done: false,
        }
    }
}

/// Iterator of [`ChunkView::absolute_batches`].
#[derive(Debug, Clone)]
pub struct AbsoluteBatches {
    inner: BatchIter,
    base_offset: Offset,
    done: bool,
}

impl Iterator for AbsoluteBatches {
    type Item = Result<PatchedBatch, SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.inner.next()?.and_then(|batch| {
            let abs = absolute(self.base_offset, batch.base_offset())?;
            let abs = i64::try_from(abs).map_err(|_| SegmentError::Overflow("batch base offset"))?;
            Ok(batch.with_base_offset(abs))
        });
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }
}

/// `base + rel` for a stored relative offset, refusing negatives and overflow.
fn absolute(base: Offset, rel: i64) -> Result<Offset, SegmentError> {
    let rel = u64::try_from(rel).map_err(|_| SegmentError::Invalid {
        field: "relative offset",
        value: rel,
    })?;
    base.checked_add(rel).ok_or(SegmentError::Overflow("absolute offset"))
}

/// A record read back from a segment, with its absolute offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Absolute offset in the partition.
    pub offset: Offset,
    /// Absolute timestamp in milliseconds.
    pub timestamp_ms: i64,
    /// Key; `None` is null.
    pub key: Option<Bytes>,
    /// Value; `None` is null.
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<Header>,
}

impl DecodedRecord {
    /// The record without its offset, as a producer sent it.
    pub fn into_record(self) -> Record {
        Record {
            key: self.key,
            value: self.value,
            headers: self.headers,
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// Iterator of [`ChunkView::records`].
#[derive(Debug, Clone)]
pub struct ChunkRecords {
    batches: BatchIter,
    current: Option<(RecordIter, Offset)>,
    base_offset: Offset,
    next_offset: Offset,
    decoded: u64,
    record_count: u32,
    done: bool,
}

impl ChunkRecords {
    fn advance(&mut self) -> Option<Result<DecodedRecord, SegmentError>> {
        loop {
            if let Some((records, batch_base)) = &mut self.current {
                match records.next() {
                    Some(Ok(rec)) => {
                        let offset = match absolute(*batch_base, i64::from(rec.offset_delta)) {
                            Ok(o) => o,
                            Err(e) => return Some(Err(e)),
                        };
                        if offset != self.next_offset {
                            return Some(Err(SegmentError::NonContiguousOffset {
                                expected: i64::try_from(self.next_offset).unwrap_or(i64::MAX),
                                actual: i64::try_from(offset).unwrap_or(i64::MAX),
                            }));
                        }
                        self.next_offset = match offset.checked_add(1) {
                            Some(n) => n,
                            None => return Some(Err(SegmentError::Overflow("next offset"))),
                        };
                        self.decoded += 1;
                        return Some(Ok(DecodedRecord {
                            offset,
                            timestamp_ms: rec.timestamp_ms,
                            key: rec.key,
                            value: rec.value,
                            headers: rec.headers,
                        }));
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    None => self.current = None,
                }
            }
            let batch = match self.batches.next() {
                None => {
                    if self.decoded != u64::from(self.record_count) {
                        return Some(Err(SegmentError::RecordCountMismatch {
                            declared: i64::from(self.record_count),
                            actual: i64::try_from(self.decoded).unwrap_or(i64::MAX),
                        }));
                    }
                    return None;
                }
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(b)) => b,
            };
            if let Err(e) = batch.verify_crc() {
                return Some(Err(e));
            }
            let batch_base = match absolute(self.base_offset, batch.base_offset()) {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            };
            if batch_base != self.next_offset {
                return Some(Err(SegmentError::NonContiguousOffset {
                    expected: i64::try_from(self.next_offset).unwrap_or(i64::MAX),
                    actual: i64::try_from(batch_base).unwrap_or(i64::MAX),
                }));
            }
            match batch.records() {
                Ok(records) => self.current = Some((records, batch_base)),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Iterator for ChunkRecords {
    type Item = Result<DecodedRecord, SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.advance();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}
