//! The persisted segment format of Silt: sans-IO encode/decode, CRC-checked,
//! versioned. Persisted bytes are an API: once written to object storage they
//! must stay readable, so field order and meaning never change within a
//! format version (see `FORMAT.md` in this crate for the byte layout).
//!
//! Two layers live here:
//!
//! * the Kafka record batch v2 codec ([`encode_batch`], [`BatchView`],
//!   [`BatchIter`]), byte-compatible with Kafka so batches can be stored as
//!   produced and served to fetches unchanged;
//! * Silt's segment object ([`SegmentWriter`], [`decode_footer`],
//!   [`decode_chunk`]): per-partition self-verifying chunks of such batches
//!   plus a footer index.
//!
//! Dependencies are limited to `silt-types`, `bytes`, `thiserror` and the
//! checksum/compression crates (`crc32c`, `lz4_flex`, `zstd`). No I/O, no
//! async, no clocks: callers hand in bytes and get bytes back. Decoders treat
//! input as hostile: truncated, corrupted or malicious bytes yield a
//! [`SegmentError`], never a panic, and allocations are bounded by the input.

mod batch;
mod compression;
mod error;
mod segment;
mod wire;

pub use batch::{
    BATCH_HEADER_LEN, BATCH_MAGIC, BatchInfo, BatchIter, BatchView, PatchedBatch, ProducerFields, RecordIter,
    RecordView, encode_batch, encode_batch_with_level, set_base_offset,
};
pub use compression::{Compression, DEFAULT_ZSTD_LEVEL, MAX_DECOMPRESSED_BATCH};
pub use error::SegmentError;
pub use segment::{
    AbsoluteBatches, CHUNK_HEADER_LEN, ChunkEntry, ChunkRecords, ChunkView, DecodedRecord, FOOTER_ENTRY_LEN,
    FOOTER_MAGIC, FORMAT_VERSION, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SegmentWriter, TRAILER_LEN, decode_chunk,
    decode_footer, decode_footer_from_tail, decode_trailer,
};
