//! Kafka record batch v2 (magic 2): encoder and zero-copy decoder.
//!
//! Byte layout (all integers big-endian), offsets from the batch start:
//!
//! ```text
//!  0  baseOffset            i64   outside the CRC; patched to make offsets absolute
//!  8  batchLength           i32   bytes after this field
//! 12  partitionLeaderEpoch  i32   -1 when written by Silt
//! 16  magic                 i8    2
//! 17  crc                   u32   CRC-32C of bytes 21..end
//! 21  attributes            i16   bits 0-2 codec, 3 timestampType, 4 transactional, 5 control
//! 23  lastOffsetDelta       i32
//! 27  baseTimestamp         i64   first record's timestamp
//! 35  maxTimestamp          i64
//! 43  producerId            i64
//! 51  producerEpoch         i16
//! 53  baseSequence          i32
//! 57  recordCount           i32
//! 61  records               (compressed as a whole unless codec is none)
//! ```
//!
//! Each record: length varint, attributes i8, timestampDelta varlong,
//! offsetDelta varint, keyLength varint (-1 = null) + key, valueLength varint
//! (-1 = null) + value, headerCount varint, then per header keyLength varint +
//! UTF-8 key, valueLength varint (-1 = null) + value. Varints are zigzag LEB128.

use bytes::Bytes;
use silt_types::{Header, Record};

use crate::compression::{DEFAULT_ZSTD_LEVEL, MAX_DECOMPRESSED_BATCH, compress_into, decompress};
use crate::wire::{Reader, patch_u32, patch_u64, put_varint, put_varlong, varint_len, varlong_len};
use crate::{Compression, SegmentError};

/// Size of the fixed v2 batch header; records start at this offset.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batchLength`: the header after the first two fields.
const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
/// Offset of the `crc` field.
const CRC_OFFSET: usize = 17;
/// Offset of `attributes`, where the CRC-covered region starts.
const ATTRIBUTES_OFFSET: usize = 21;
/// Offset of `batchLength`.
const LENGTH_OFFSET: usize = 8;
/// The only batch magic Silt reads and writes.
pub const BATCH_MAGIC: i8 = 2;

const ATTR_CODEC_MASK: i16 = 0x07;
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Idempotent/transactional producer identity stored in every batch header;
/// the idempotent Kafka produce path will fill these in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerFields {
    /// Producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the batch's first record, or -1.
    pub base_sequence: i32,
}

impl ProducerFields {
    /// "No producer identity", Kafka's value for non-idempotent producers.
    pub const NONE: ProducerFields = ProducerFields {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

impl Default for ProducerFields {
    fn default() -> Self {
        Self::NONE
    }
}

/// Summary of a batch just encoded, so callers need not re-parse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// Bytes appended to the output, including the 12-byte log overhead.
    pub len: usize,
    /// Number of records in the batch.
    pub record_count: u32,
    /// Largest record timestamp.
    pub max_timestamp_ms: i64,
    /// First record's timestamp (the batch's baseTimestamp).
    pub first_timestamp_ms: i64,
}

/// Appends one v2 batch of `records` (baseOffset 0) to `out`, the way a
/// Kafka producer would, so Silt stores what Kafka clients can read.
///
/// Zstd uses [`DEFAULT_ZSTD_LEVEL`]. On error `out` is left unchanged.
pub fn encode_batch(
    records: &[Record],
    compression: Compression,
    producer: ProducerFields,
    out: &mut Vec<u8>,
) -> Result<BatchInfo, SegmentError> {
    encode_batch_with_level(records, compression, DEFAULT_ZSTD_LEVEL, producer, out)
}

/// [`encode_batch`] with an explicit zstd level (ignored by other codecs);
/// exists so the level can be measured and tuned.
pub fn encode_batch_with_level(
    records: &[Record],
    compression: Compression,
    zstd_level: i32,
    producer: ProducerFields,
    out: &mut Vec<u8>,
) -> Result<BatchInfo, SegmentError> {
    let start = out.len();
    let result = encode_inner(records, compression, zstd_level, producer, out, start);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_inner(
    records: &[Record],
    compression: Compression,
    zstd_level: i32,
    producer: ProducerFields,
    out: &mut Vec<u8>,
    start: usize,
) -> Result<BatchInfo, SegmentError> {
    let first = records.first().ok_or(SegmentError::EmptyBatch)?;
    let count = i32::try_from(records.len()).map_err(|_| SegmentError::TooLarge {
        what: "record count",
        len: records.len() as u64,
    })?;
    let base_ts = first.timestamp_ms;
    let max_ts = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(base_ts);

    out.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
    out.extend_from_slice(&0i32.to_be_bytes()); // batchLength, patched below
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
    out.push(BATCH_MAGIC as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
    out.extend_from_slice(&compression.codec_id().to_be_bytes()); // attributes
    out.extend_from_slice(&(count - 1).to_be_bytes()); // lastOffsetDelta
    out.extend_from_slice(&base_ts.to_be_bytes());
    out.extend_from_slice(&max_ts.to_be_bytes());
    out.extend_from_slice(&producer.producer_id.to_be_bytes());
    out.extend_from_slice(&producer.producer_epoch.to_be_bytes());
    out.extend_from_slice(&producer.base_sequence.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());

    if compression == Compression::None {
        write_records(records, base_ts, out)?;
    } else {
        let mut plain = Vec::new();
        write_records(records, base_ts, &mut plain)?;
        compress_into(compression, zstd_level, &plain, out)?;
    }

    let total = out.len() - start;
    let batch_length = i32::try_from(total - LOG_OVERHEAD).map_err(|_| SegmentError::TooLarge {
        what: "record batch",
        len: total as u64,
    })?;
    let batch = out.get_mut(start..).ok_or(SegmentError::Overflow("batch bounds"))?;
    patch_u32(batch, LENGTH_OFFSET, batch_length as u32);
    let crc = crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or_default());
    patch_u32(batch, CRC_OFFSET, crc);

    Ok(BatchInfo {
        len: total,
        record_count: count as u32,
        max_timestamp_ms: max_ts,
        first_timestamp_ms: base_ts,
    })
}

/// Converts a length to the i32 the wire format stores.
fn wire_len(len: usize, what: &'static str) -> Result<i32, SegmentError> {
    i32::try_from(len).map_err(|_| SegmentError::TooLarge { what, len: len as u64 })
}

/// Wire length of an optional byte string: -1 for null.
fn nullable_len(b: Option<&Bytes>, what: &'static str) -> Result<i32, SegmentError> {
    match b {
        None => Ok(-1),
        Some(b) => wire_len(b.len(), what),
    }
}

fn write_records(records: &[Record], base_ts: i64, out: &mut Vec<u8>) -> Result<(), SegmentError> {
    for (i, record) in records.iter().enumerate() {
        // i < records.len() <= i32::MAX, checked by the caller.
        let offset_delta = i as i32;
        let ts_delta = record
            .timestamp_ms
            .checked_sub(base_ts)
            .ok_or(SegmentError::Overflow("timestamp delta"))?;
        let key_len = nullable_len(record.key.as_ref(), "record key")?;
        let value_len = nullable_len(record.value.as_ref(), "record value")?;
        let header_count = wire_len(record.headers.len(), "header count")?;

        let mut body: usize = 1
            + varlong_len(ts_delta)
            + varint_len(offset_delta)
            + varint_len(key_len)
            + record.key.as_ref().map_or(0, Bytes::len)
            + varint_len(value_len)
            + record.value.as_ref().map_or(0, Bytes::len)
            + varint_len(header_count);
        for h in &record.headers {
            let hk = wire_len(h.key.len(), "header key")?;
            let hv = nullable_len(h.value.as_ref(), "header value")?;
            body = body
                .checked_add(varint_len(hk) + h.key.len() + varint_len(hv) + h.value.as_ref().map_or(0, Bytes::len))
                .ok_or(SegmentError::Overflow("record size"))?;
        }
        let body_len = wire_len(body, "record")?;

        out.reserve(body + 5);
        put_varint(out, body_len);
        out.push(0); // record attributes
        put_varlong(out, ts_delta);
        put_varint(out, offset_delta);
        put_varint(out, key_len);
        if let Some(k) = &record.key {
            out.extend_from_slice(k);
        }
        put_varint(out, value_len);
        if let Some(v) = &record.value {
            out.extend_from_slice(v);
        }
        put_varint(out, header_count);
        for h in &record.headers {
            put_varint(out, h.key.len() as i32);
            out.extend_from_slice(h.key.as_bytes());
            match &h.value {
                None => put_varint(out, -1),
                Some(v) => {
                    put_varint(out, v.len() as i32);
                    out.extend_from_slice(v);
                }
            }
        }
    }
    Ok(())
}

/// Overwrites a batch's baseOffset; it is outside the CRC, so this is how
/// relative offsets become absolute without re-encoding.
///
/// Errors if `batch` is shorter than the 8-byte field.
pub fn set_base_offset(batch: &mut [u8], base: i64) -> Result<(), SegmentError> {
    if patch_u64(batch, 0, base as u64) {
        Ok(())
    } else {
        Err(SegmentError::Truncated {
            what: "batch base offset",
            needed: 8,
            available: batch.len(),
        })
    }
}

/// Parsed fixed header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchHeader {
    base_offset: i64,
    batch_length: i32,
    partition_leader_epoch: i32,
    magic: i8,
    crc: u32,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    record_count: i32,
}

/// One whole v2 batch, borrowed zero-copy from a larger buffer; the unit
/// Silt stores, verifies and serves to Kafka fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchView {
    bytes: Bytes,
    header: BatchHeader,
}

impl BatchView {
    /// Parses the batch starting at `pos` in `buf`; returns it and the
    /// position just after it. Checks framing and magic, not the CRC.
    pub fn parse(buf: &Bytes, pos: usize) -> Result<(BatchView, usize), SegmentError> {
        let rest = buf.get(pos..).ok_or(SegmentError::Truncated {
            what: "record batch",
            needed: pos,
            available: buf.len(),
        })?;
        let mut r = Reader::new(rest);
        let base_offset = r.i64("batch base offset")?;
        let batch_length = r.i32("batch length")?;
        let partition_leader_epoch = r.i32("partition leader epoch")?;
        let magic = r.i8("batch magic")?;
        if magic != BATCH_MAGIC {
            return Err(SegmentError::UnsupportedBatchMagic(magic));
        }
        if batch_length < MIN_BATCH_LENGTH {
            return Err(SegmentError::Invalid {
                field: "batch length",
                value: i64::from(batch_length),
            });
        }
        // batch_length >= 49 > 0, so the cast is lossless.
        let total = LOG_OVERHEAD + batch_length as usize;
        if total > rest.len() {
            return Err(SegmentError::Truncated {
                what: "record batch",
                needed: total,
                available: rest.len(),
            });
        }
        let header = BatchHeader {
            base_offset,
            batch_length,
            partition_leader_epoch,
            magic,
            crc: r.u32("batch crc")?,
            attributes: r.i16("batch attributes")?,
            last_offset_delta: r.i32("last offset delta")?,
            base_timestamp: r.i64("base timestamp")?,
            max_timestamp: r.i64("max timestamp")?,
            producer_id: r.i64("producer id")?,
            producer_epoch: r.i16("producer epoch")?,
            base_sequence: r.i32("base sequence")?,
            record_count: r.i32("record count")?,
        };
        if header.record_count < 0 {
            return Err(SegmentError::Invalid {
                field: "record count",
                value: i64::from(header.record_count),
            });
        }
        if header.last_offset_delta < 0 {
            return Err(SegmentError::Invalid {
                field: "last offset delta",
                value: i64::from(header.last_offset_delta),
            });
        }
        let end = pos + total;
        Ok((
            BatchView {
                bytes: buf.slice(pos..end),
                header,
            },
            end,
        ))
    }

    /// Parses `bytes` as exactly one batch, refusing trailing bytes.
    pub fn new(bytes: Bytes) -> Result<BatchView, SegmentError> {
        let (view, end) = Self::parse(&bytes, 0)?;
        if end != bytes.len() {
            return Err(SegmentError::LengthMismatch {
                what: "record batch",
                declared: end as u64,
                actual: bytes.len() as u64,
            });
        }
        Ok(view)
    }

    /// The batch's bytes, exactly as stored.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The batch's bytes, consuming the view.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Total size in bytes including the 12-byte log overhead.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a parsed batch has at least a header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// baseOffset as stored (relative inside a segment chunk).
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset
    }

    /// batchLength: bytes after this field.
    pub fn batch_length(&self) -> i32 {
        self.header.batch_length
    }

    /// partitionLeaderEpoch (-1 when Silt wrote it).
    pub fn partition_leader_epoch(&self) -> i32 {
        self.header.partition_leader_epoch
    }

    /// magic byte (always 2 for a parsed view).
    pub fn magic(&self) -> i8 {
        self.header.magic
    }

    /// Stored CRC-32C.
    pub fn crc(&self) -> u32 {
        self.header.crc
    }

    /// Raw attributes field.
    pub fn attributes(&self) -> i16 {
        self.header.attributes
    }

    /// Kafka codec id from attributes bits 0-2.
    pub fn codec_id(&self) -> i16 {
        self.header.attributes & ATTR_CODEC_MASK
    }

    /// The compression codec; errors for codecs Silt cannot decode.
    pub fn compression(&self) -> Result<Compression, SegmentError> {
        Compression::from_codec_id(self.codec_id())
    }

    /// True if timestamps are broker LogAppendTime (attribute bit 3).
    pub fn is_log_append_time(&self) -> bool {
        self.header.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// True for transactional batches (attribute bit 4).
    pub fn is_transactional(&self) -> bool {
        self.header.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// True for control batches (attribute bit 5).
    pub fn is_control(&self) -> bool {
        self.header.attributes & ATTR_CONTROL != 0
    }

    /// lastOffsetDelta.
    pub fn last_offset_delta(&self) -> i32 {
        self.header.last_offset_delta
    }

    /// baseTimestamp: the first record's timestamp.
    pub fn base_timestamp(&self) -> i64 {
        self.header.base_timestamp
    }

    /// maxTimestamp over the batch's records.
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp
    }

    /// producerId.
    pub fn producer_id(&self) -> i64 {
        self.header.producer_id
    }

    /// producerEpoch.
    pub fn producer_epoch(&self) -> i16 {
        self.header.producer_epoch
    }

    /// baseSequence.
    pub fn base_sequence(&self) -> i32 {
        self.header.base_sequence
    }

    /// The producer fields together.
    pub fn producer(&self) -> ProducerFields {
        ProducerFields {
            producer_id: self.header.producer_id,
            producer_epoch: self.header.producer_epoch,
            base_sequence: self.header.base_sequence,
        }
    }

    /// recordCount as declared in the header (never negative).
    pub fn record_count(&self) -> i32 {
        self.header.record_count
    }

    /// CRC-32C computed over the bytes the stored CRC covers.
    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(self.bytes.get(ATTRIBUTES_OFFSET..).unwrap_or_default())
    }

    /// Checks the Kafka CRC, detecting corruption of the batch body.
    pub fn verify_crc(&self) -> Result<(), SegmentError> {
        let actual = self.computed_crc();
        if actual == self.header.crc {
            Ok(())
        } else {
            Err(SegmentError::BatchCrcMismatch {
                expected: self.header.crc,
                actual,
            })
        }
    }

    /// Iterates the records, decompressing once (bounded by
    /// [`MAX_DECOMPRESSED_BATCH`]); uncompressed batches are sliced zero-copy.
    /// Does not check the CRC; call [`BatchView::verify_crc`] first.
    pub fn records(&self) -> Result<RecordIter, SegmentError> {
        let codec = self.compression()?;
        let payload = self.bytes.slice(BATCH_HEADER_LEN..);
        let data = match codec {
            Compression::None => payload,
            other => Bytes::from(decompress(other, &payload, MAX_DECOMPRESSED_BATCH)?),
        };
        Ok(RecordIter {
            data,
            pos: 0,
            decoded: 0,
            declared: self.header.record_count,
            base_timestamp: self.header.base_timestamp,
            log_append_time: self.is_log_append_time().then_some(self.header.max_timestamp),
            done: false,
        })
    }

    /// This batch with its baseOffset replaced by `base`, sharing the body
    /// (only the 8-byte field is copied); used to serve fetches byte for byte.
    pub fn with_base_offset(&self, base: i64) -> PatchedBatch {
        PatchedBatch {
            head: base.to_be_bytes(),
            tail: self.bytes.slice(8..),
        }
    }
}

/// A batch whose baseOffset was rewritten without copying its body; write
/// [`PatchedBatch::head`] then [`PatchedBatch::tail`] to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchedBatch {
    head: [u8; 8],
    tail: Bytes,
}

impl PatchedBatch {
    /// The new baseOffset, big-endian: the batch's first 8 bytes.
    pub fn head(&self) -> &[u8; 8] {
        &self.head
    }

    /// Everything after baseOffset, shared with the source buffer.
    pub fn tail(&self) -> &Bytes {
        &self.tail
    }

    /// The patched baseOffset.
    pub fn base_offset(&self) -> i64 {
        i64::from_be_bytes(self.head)
    }

    /// Total size in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Always false: a batch has a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the whole patched batch to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&self.tail);
    }

    /// The whole patched batch as one contiguous buffer (copies).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.len());
        self.write_to(&mut out);
        Bytes::from(out)
    }
}

/// Iterates batches laid back to back in one buffer (a chunk, a produce
/// request's record set); stops after the first error.
#[derive(Debug, Clone)]
pub struct BatchIter {
    buf: Bytes,
    pos: usize,
    done: bool,
}

impl BatchIter {
    /// Iterates the batches in `buf`.
    pub fn new(buf: Bytes) -> Self {
        Self {
            buf,
            pos: 0,
            done: false,
        }
    }
}

impl Iterator for BatchIter {
    type Item = Result<BatchView, SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        match BatchView::parse(&self.buf, self.pos) {
            Ok((view, end)) => {
                self.pos = end;
                Some(Ok(view))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// One decoded record of a batch; key, value and header values share the
/// batch's (or its decompressed) buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// offsetDelta relative to the batch's baseOffset.
    pub offset_delta: i32,
    /// Absolute timestamp (baseTimestamp + delta, or maxTimestamp for
    /// LogAppendTime batches, as Kafka consumers see it).
    pub timestamp_ms: i64,
    /// Key; `None` is null.
    pub key: Option<Bytes>,
    /// Value; `None` is null (a tombstone).
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<Header>,
}

/// Iterates a batch's records; validates recordCount against what is
/// decoded and stops after the first error.
#[derive(Debug, Clone)]
pub struct RecordIter {
    data: Bytes,
    pos: usize,
    decoded: i32,
    declared: i32,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    done: bool,
}

impl RecordIter {
    fn decode_one(&mut self) -> Result<RecordView, SegmentError> {
        let data = self.data.clone();
        let rest = data.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return Err(SegmentError::RecordCountMismatch {
                declared: i64::from(self.declared),
                actual: i64::from(self.decoded),
            });
        }
        let mut r = Reader::new(rest);
        let len = r.varint("record length")?;
        let len = usize::try_from(len).map_err(|_| SegmentError::Invalid {
            field: "record length",
            value: i64::from(len),
        })?;
        let body = r.take(len, "record")?;
        let consumed = r.pos();

        let mut b = Reader::new(body);
        let _attributes = b.i8("record attributes")?;
        let ts_delta = b.varlong("timestamp delta")?;
        let offset_delta = b.varint("offset delta")?;
        let key = read_nullable(&mut b, &data, "record key")?;
        let value = read_nullable(&mut b, &data, "record value")?;
        let header_count = b.varint("header count")?;
        let header_count = usize::try_from(header_count).map_err(|_| SegmentError::Invalid {
            field: "header count",
            value: i64::from(header_count),
        })?;
        // Each header takes at least two bytes; cap the preallocation by that.
        let mut headers = Vec::with_capacity(header_count.min(b.remaining() / 2));
        for _ in 0..header_count {
            let key_len = b.varint("header key length")?;
            let key_len = usize::try_from(key_len).map_err(|_| SegmentError::Invalid {
                field: "header key length",
                value: i64::from(key_len),
            })?;
            let key = std::str::from_utf8(b.take(key_len, "header key")?)
                .map_err(|_| SegmentError::InvalidHeaderKey)?
                .to_owned();
            let value = read_nullable(&mut b, &data, "header value")?;
            headers.push(Header { key, value });
        }
        if b.remaining() != 0 {
            return Err(SegmentError::LengthMismatch {
                what: "record",
                declared: len as u64,
                actual: (len - b.remaining()) as u64,
            });
        }
        let timestamp_ms = match self.log_append_time {
            Some(ts) => ts,
            None => self
                .base_timestamp
                .checked_add(ts_delta)
                .ok_or(SegmentError::Overflow("record timestamp"))?,
        };
        self.pos += consumed;
        Ok(RecordView {
            offset_delta,
            timestamp_ms,
            key,
            value,
            headers,
        })
    }
}

/// Reads a varint length (-1 = null) and that many bytes, sliced zero-copy
/// out of `data` (the buffer the reader's input was borrowed from).
fn read_nullable(r: &mut Reader<'_>, data: &Bytes, what: &'static str) -> Result<Option<Bytes>, SegmentError> {
    let len = r.varint(what)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| SegmentError::Invalid {
        field: what,
        value: i64::from(len),
    })?;
    let slice = r.take(len, what)?;
    if slice.is_empty() {
        return Ok(Some(Bytes::new()));
    }
    Ok(Some(data.slice_ref(slice)))
}

impl Iterator for RecordIter {
    type Item = Result<RecordView, SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.decoded >= self.declared {
            self.done = true;
            if self.pos != self.data.len() {
                return Some(Err(SegmentError::LengthMismatch {
                    what: "records section",
                    declared: self.pos as u64,
                    actual: self.data.len() as u64,
                }));
            }
            return None;
        }
        match self.decode_one() {
            Ok(rec) => {
                self.decoded += 1;
                Some(Ok(rec))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let left = usize::try_from(self.declared - self.decoded).unwrap_or(0);
        // +1 for a possible trailing error.
        (0, Some(left.saturating_add(1)))
    }
}
