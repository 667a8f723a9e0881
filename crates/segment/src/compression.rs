//! Batch compression codecs and their bounded decompression.

use std::cell::RefCell;
use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use crate::SegmentError;

/// Largest decompressed records section Silt will materialise for one batch;
/// stops a small hostile batch from expanding into gigabytes.
pub const MAX_DECOMPRESSED_BATCH: usize = 64 * 1024 * 1024;

/// log2 of the largest zstd window accepted when decoding (64 MiB, the
/// decompressed-size cap).
const ZSTD_WINDOW_LOG_MAX: u32 = 26;

/// Zstd level used when a batch is encoded with [`Compression::Zstd`];
/// chosen by measurement (docs/decisions/0001-default-compression.md).
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// The compression codec of a record batch, as Kafka numbers them.
///
/// Only the codecs Silt writes are listed; gzip (1) and snappy (2) batches are
/// refused with [`SegmentError::UnsupportedCompression`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Records stored as-is (codec 0).
    None,
    /// LZ4 frame format (codec 3).
    Lz4,
    /// Zstandard frame (codec 4).
    Zstd,
}

impl Compression {
    /// Codec used when the operator does not choose one; picked by measurement
    /// in docs/decisions/0001-default-compression.md.
    pub const DEFAULT: Compression = Compression::Zstd;

    /// Kafka's codec id, stored in bits 0-2 of the batch attributes.
    pub fn codec_id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for a Kafka codec id; errors for codecs Silt cannot read.
    pub fn from_codec_id(id: i16) -> Result<Self, SegmentError> {
        match id {
            0 => Ok(Compression::None),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(SegmentError::UnsupportedCompression(other)),
        }
    }

    /// The lowercase name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl Default for Compression {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Compression {
    type Err = SegmentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            other => Err(SegmentError::UnknownCompressionName(other.to_owned())),
        }
    }
}

thread_local! {
    /// One zstd context per thread: creating one per batch costs more than
    /// compressing a small batch.
    static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// Appends `data` compressed with `codec` to `out`.
pub(crate) fn compress_into(
    codec: Compression,
    zstd_level: i32,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SegmentError> {
    match codec {
        Compression::None => {
            out.extend_from_slice(data);
            Ok(())
        }
        Compression::Lz4 => {
            // Kafka's LZ4 reader wants independent blocks of a standard size,
            // no content size and no dictionary; 64 KiB is Kafka's default.
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            let lz4_err = |e: &dyn fmt::Display| SegmentError::Compress {
                codec: "lz4",
                message: e.to_string(),
            };
            enc.write_all(data).map_err(|e| lz4_err(&e))?;
            enc.finish().map_err(|e| lz4_err(&e))?;
            Ok(())
        }
        Compression::Zstd => ZSTD.with(|cell| {
            let zstd_err = |e: std::io::Error| SegmentError::Compress {
                codec: "zstd",
                message: e.to_string(),
            };
            let mut slot = cell.borrow_mut();
            let compressor = match slot.as_mut() {
                Some((level, c)) if *level == zstd_level => c,
                _ => {
                    let c = zstd::bulk::Compressor::new(zstd_level).map_err(zstd_err)?;
                    &mut slot.insert((zstd_level, c)).1
                }
            };
            let compressed = compressor.compress(data).map_err(zstd_err)?;
            out.extend_from_slice(&compressed);
            Ok(())
        }),
    }
}

/// Decompresses `data`, refusing output larger than `limit` bytes.
pub(crate) fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, SegmentError> {
    let name = codec.as_str();
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let result = match codec {
        Compression::None => {
            out.extend_from_slice(data);
            Ok(out.len())
        }
        Compression::Lz4 => lz4_flex::frame::FrameDecoder::new(data).take(cap).read_to_end(&mut out),
        Compression::Zstd => zstd::stream::read::Decoder::with_buffer(data).and_then(|mut dec| {
            // A window larger than the output cap is never needed; refusing it
            // stops a hostile frame header from reserving up to 2 GiB.
            dec.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            dec.take(cap).read_to_end(&mut out)
        }),
    };
    result.map_err(|e| SegmentError::Decompress {
        codec: name,
        message: e.to_string(),
    })?;
    if out.len() > limit {
        return Err(SegmentError::DecompressedTooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            assert_eq!(c.to_string().parse::<Compression>(), Ok(c));
            assert_eq!(Compression::from_codec_id(c.codec_id()), Ok(c));
        }
        assert!("gzip".parse::<Compression>().is_err());
        assert_eq!(
            Compression::from_codec_id(1),
            Err(SegmentError::UnsupportedCompression(1))
        );
    }

    #[test]
    fn bounded_decompression() {
        let data = vec![b'a'; 10_000];
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut packed = Vec::new();
            compress_into(c, 3, &data, &mut packed).expect("compresses");
            assert_eq!(decompress(c, &packed, 10_000).expect("fits"), data);
            assert_eq!(
                decompress(c, &packed, 9_999),
                Err(SegmentError::DecompressedTooLarge { limit: 9_999 })
            );
        }
    }

    #[test]
    fn garbage_fails_cleanly() {
        for c in [Compression::Lz4, Compression::Zstd] {
            assert!(decompress(c, b"not compressed at all", 1024).is_err());
        }
    }
}
