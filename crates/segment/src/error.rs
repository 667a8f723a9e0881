//! The single error type of this crate.

use silt_types::{PartitionId, TopicId};

/// Everything that can go wrong encoding or decoding batches and segments.
///
/// Decoders return these for truncated, corrupted or hostile input; they never
/// panic. Messages are lowercase with the offending values at the end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// Input ended before a field could be read.
    #[error("truncated input reading {what} needed={needed} available={available}")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A length, count or other field holds a value that cannot be valid.
    #[error("invalid {field} value={value}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The value found.
        value: i64,
    },
    /// A varint ran past the longest legal encoding.
    #[error("varint too long max_bytes={max_bytes}")]
    VarintTooLong {
        /// The longest legal encoding in bytes.
        max_bytes: usize,
    },
    /// A Kafka record batch failed its CRC-32C check.
    #[error("batch crc mismatch expected={expected:#010x} actual={actual:#010x}")]
    BatchCrcMismatch {
        /// CRC stored in the batch.
        expected: u32,
        /// CRC computed over the bytes.
        actual: u32,
    },
    /// A segment chunk failed its CRC-32C check.
    #[error("chunk crc mismatch expected={expected:#010x} actual={actual:#010x}")]
    ChunkCrcMismatch {
        /// CRC stored in the chunk header.
        expected: u32,
        /// CRC computed over the bytes.
        actual: u32,
    },
    /// A segment footer failed its CRC-32C check.
    #[error("footer crc mismatch expected={expected:#010x} actual={actual:#010x}")]
    FooterCrcMismatch {
        /// CRC stored in the trailer.
        expected: u32,
        /// CRC computed over the footer.
        actual: u32,
    },
    /// A record batch has a magic byte other than 2.
    #[error("unsupported record batch magic magic={0}")]
    UnsupportedBatchMagic(i8),
    /// The segment header or trailer magic is wrong: not a Silt segment.
    #[error("bad segment magic where={0}")]
    BadSegmentMagic(&'static str),
    /// The segment was written by a format version this code cannot read.
    #[error("unsupported segment format version version={0}")]
    UnsupportedVersion(u16),
    /// The batch uses a compression codec Silt does not implement.
    #[error("unsupported compression codec codec={0}")]
    UnsupportedCompression(i16),
    /// A compression name could not be parsed.
    #[error("unknown compression name name={0:?}")]
    UnknownCompressionName(String),
    /// Decompression would produce more bytes than allowed.
    #[error("decompressed batch exceeds limit limit={limit}")]
    DecompressedTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The compressed payload could not be decompressed.
    #[error("decompression failed codec={codec} error={message}")]
    Decompress {
        /// The codec that failed.
        codec: &'static str,
        /// The library's message.
        message: String,
    },
    /// The compressor failed (should not happen with valid levels).
    #[error("compression failed codec={codec} error={message}")]
    Compress {
        /// The codec that failed.
        codec: &'static str,
        /// The library's message.
        message: String,
    },
    /// `encode_batch` was called with no records; Kafka batches are never empty.
    #[error("cannot encode an empty batch")]
    EmptyBatch,
    /// `add_chunk` was called with no batches.
    #[error("chunk must contain at least one batch")]
    EmptyChunk,
    /// A segment may hold at most one chunk per partition.
    #[error("duplicate chunk in segment topic={topic} partition={partition}")]
    DuplicateChunk {
        /// The topic.
        topic: TopicId,
        /// The partition.
        partition: PartitionId,
    },
    /// A declared record count disagrees with what was decoded.
    #[error("record count mismatch declared={declared} actual={actual}")]
    RecordCountMismatch {
        /// Count stored in the header.
        declared: i64,
        /// Count actually found.
        actual: i64,
    },
    /// Offsets inside a chunk or batch are not contiguous.
    #[error("non-contiguous offset expected={expected} actual={actual}")]
    NonContiguousOffset {
        /// The offset that should come next.
        expected: i64,
        /// The offset found.
        actual: i64,
    },
    /// A declared length disagrees with the bytes present.
    #[error("length mismatch in {what} declared={declared} actual={actual}")]
    LengthMismatch {
        /// The structure whose length is wrong.
        what: &'static str,
        /// Length stored in the data.
        declared: u64,
        /// Length found.
        actual: u64,
    },
    /// A header key is not valid UTF-8 (Kafka header keys are strings).
    #[error("header key is not valid utf-8")]
    InvalidHeaderKey,
    /// Something to encode does not fit the wire format's integer fields.
    #[error("{what} too large for the wire format len={len}")]
    TooLarge {
        /// The thing that is too large.
        what: &'static str,
        /// Its size.
        len: u64,
    },
    /// An offset or timestamp computation overflowed.
    #[error("arithmetic overflow computing {0}")]
    Overflow(&'static str),
}
