//! The L1 file format: one Parquet file per compaction run of one partition.
//!
//! Schema (one row per record, in offset order, offsets contiguous):
//!
//! ```text
//! message silt_record {
//!   required int64 offset;
//!   required int64 timestamp_ms (TIMESTAMP(MILLIS,true));
//!   optional binary key;
//!   optional binary value;
//!   required group headers (LIST) {
//!     repeated group list {
//!       required group element {
//!         required binary key (STRING);
//!         optional binary value;
//!       }
//!     }
//!   }
//! }
//! ```
//!
//! Pages are zstd-compressed. Row groups are cut by row count and by
//! uncompressed bytes so that each one is a sensible ranged GET; the index
//! gets one entry per row group (its offsets and the byte range of its
//! column chunks), and readers fetch the footer once and then only the row
//! groups they need. Parquet itself does not checksum pages here, so the
//! footer's key-value metadata `silt.row_group_crc32c` lists a CRC32C of each
//! row group's byte range (hex, comma-separated, in row-group order), checked
//! on every decode: corrupt bytes never become records.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use parquet::basic::{Compression, ZstdLevel};
use parquet::column::reader::get_typed_column_reader;
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::metadata::{KeyValue, ParquetMetaData, ParquetMetaDataReader, RowGroupMetaData};
use parquet::file::properties::{ReaderProperties, WriterProperties};
use parquet::file::reader::{ChunkReader, Length, RowGroupReader};
use parquet::file::serialized_reader::SerializedRowGroupReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use silt_meta::IndexEntry;
use silt_segment::DecodedRecord;
use silt_types::Header;

/// The Parquet schema of every L1 file.
pub const SCHEMA: &str = "message silt_record {
  required int64 offset;
  required int64 timestamp_ms (TIMESTAMP(MILLIS,true));
  optional binary key;
  optional binary value;
  required group headers (LIST) {
    repeated group list {
      required group element {
        required binary key (STRING);
        optional binary value;
      }
    }
  }
}";

/// Footer key-value entry holding the row groups' CRC32Cs.
pub const CRC_KEY: &str = "silt.row_group_crc32c";

/// Errors of the L1 codec.
#[derive(Debug, thiserror::Error)]
pub enum L1Error {
    /// The Parquet library refused to write or read.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The bytes are not a valid L1 file or row group.
    #[error("invalid L1 data: {0}")]
    Invalid(String),
}

/// How L1 files are cut and compressed.
#[derive(Debug, Clone, Copy)]
pub struct L1Options {
    /// At most this many rows per row group.
    pub row_group_rows: usize,
    /// A row group is closed once its records reach about this many bytes (uncompressed).
    pub row_group_bytes: usize,
    /// zstd level of the pages.
    pub zstd_level: i32,
}

impl Default for L1Options {
    fn default() -> Self {
        Self {
            row_group_rows: 8192,
            row_group_bytes: 4 << 20,
            zstd_level: 3,
        }
    }
}

/// An encoded L1 file and the index entries of its row groups.
#[derive(Debug, Clone)]
pub struct L1File {
    /// The whole file.
    pub bytes: Bytes,
    /// Length of the footer (metadata plus the 8-byte tail) ending the file.
    pub footer_len: u64,
    /// One entry per row group, in offset order.
    pub entries: Vec<IndexEntry>,
}

fn record_bytes(r: &DecodedRecord) -> usize {
    16 + r.key.as_ref().map_or(0, Bytes::len)
        + r.value.as_ref().map_or(0, Bytes::len)
        + r.headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
            .sum::<usize>()
}

/// Encodes `records` (consecutive offsets, at least one) as one L1 file.
pub fn encode(records: &[DecodedRecord], opts: L1Options) -> Result<L1File, L1Error> {
    let Some(first) = records.first() else {
        return Err(L1Error::Invalid("no records to encode".into()));
    };
    for (i, r) in records.iter().enumerate() {
        if r.offset != first.offset + i as u64 {
            return Err(L1Error::Invalid(format!(
                "offsets not contiguous: {} at position {i} after base {}",
                r.offset, first.offset
            )));
        }
    }
    let schema = Arc::new(parse_message_type(SCHEMA)?);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(opts.zstd_level)?))
        .set_created_by(format!("silt {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, Arc::new(props))?;
    let mut entries = Vec::new();
    let mut crcs = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut size = 0;
        while end < records.len()
            && end - start < opts.row_group_rows.max(1)
            && (end == start || size < opts.row_group_bytes)
        {
            size += record_bytes(&records[end]);
            end += 1;
        }
        let group = &records[start..end];
        let meta = write_row_group(&mut writer, group)?;
        let (offset, len) = row_group_range(&meta)?;
        let written = writer.inner();
        let bytes = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(offset + len).ok())
            .and_then(|(a, b)| written.get(a..b))
            .ok_or_else(|| L1Error::Invalid("row group range outside the written bytes".into()))?;
        crcs.push(format!("{:08x}", crc32c::crc32c(bytes)));
        entries.push(IndexEntry {
            base_offset: group[0].offset,
            last_offset: group[group.len() - 1].offset,
            byte_offset: offset,
            byte_len: len,
            max_timestamp_ms: group.iter().map(|r| r.timestamp_ms).max().unwrap_or(i64::MIN),
        });
        start = end;
    }
    writer.append_key_value_metadata(KeyValue::new(CRC_KEY.to_owned(), crcs.join(",")));
    let bytes = Bytes::from(writer.into_inner()?);
    let footer_len = footer_len(&bytes)?;
    Ok(L1File {
        bytes,
        footer_len,
        entries,
    })
}

fn write_row_group(
    writer: &mut SerializedFileWriter<Vec<u8>>,
    group: &[DecodedRecord],
) -> Result<Arc<RowGroupMetaData>, L1Error> {
    let offsets: Vec<i64> = group
        .iter()
        .map(|r| i64::try_from(r.offset).map_err(|_| L1Error::Invalid(format!("offset {} too large", r.offset))))
        .collect::<Result<_, _>>()?;
    let timestamps: Vec<i64> = group.iter().map(|r| r.timestamp_ms).collect();
    let optional = |get: fn(&DecodedRecord) -> &Option<Bytes>| {
        let mut def = Vec::with_capacity(group.len());
        let mut values = Vec::new();
        for r in group {
            match get(r) {
                Some(b) => {
                    def.push(1i16);
                    values.push(ByteArray::from(b.clone()));
                }
                None => def.push(0),
            }
        }
        (def, values)
    };
    let (key_def, keys) = optional(|r| &r.key);
    let (value_def, values) = optional(|r| &r.value);
    let mut hk_def = Vec::new();
    let mut hv_def = Vec::new();
    let mut rep = Vec::new();
    let mut hkeys = Vec::new();
    let mut hvalues = Vec::new();
    for r in group {
        if r.headers.is_empty() {
            rep.push(0i16);
            hk_def.push(0i16);
            hv_def.push(0i16);
            continue;
        }
        for (i, h) in r.headers.iter().enumerate() {
            rep.push(i16::from(i > 0));
            hk_def.push(1);
            hkeys.push(ByteArray::from(h.key.as_bytes().to_vec()));
            match &h.value {
                Some(v) => {
                    hv_def.push(2);
                    hvalues.push(ByteArray::from(v.clone()));
                }
                None => hv_def.push(1),
            }
        }
    }
    let mut rg = writer.next_row_group()?;
    let mut column = 0;
    while let Some(mut col) = rg.next_column()? {
        match column {
            0 => {
                col.typed::<Int64Type>().write_batch(&offsets, None, None)?;
            }
            1 => {
                col.typed::<Int64Type>().write_batch(&timestamps, None, None)?;
            }
            2 => {
                col.typed::<ByteArrayType>().write_batch(&keys, Some(&key_def), None)?;
            }
            3 => {
                col.typed::<ByteArrayType>()
                    .write_batch(&values, Some(&value_def), None)?;
            }
            4 => {
                col.typed::<ByteArrayType>()
                    .write_batch(&hkeys, Some(&hk_def), Some(&rep))?;
            }
            5 => {
                col.typed::<ByteArrayType>()
                    .write_batch(&hvalues, Some(&hv_def), Some(&rep))?;
            }
            other => return Err(L1Error::Invalid(format!("unexpected column {other}"))),
        }
        col.close()?;
        column += 1;
    }
    Ok(rg.close()?)
}

/// Byte range (offset, length) of a row group's column chunks.
fn row_group_range(meta: &RowGroupMetaData) -> Result<(u64, u64), L1Error> {
    let mut start = u64::MAX;
    let mut end = 0u64;
    for c in meta.columns() {
        let (s, l) = c.byte_range();
        start = start.min(s);
        end = end.max(s.saturating_add(l));
    }
    if start >= end {
        return Err(L1Error::Invalid("row group without bytes".into()));
    }
    Ok((start, end - start))
}

/// Length of the footer of a whole Parquet file (metadata plus 8-byte tail).
pub fn footer_len(file: &[u8]) -> Result<u64, L1Error> {
    let n = file.len();
    if n < 12 || &file[n - 4..] != b"PAR1" {
        return Err(L1Error::Invalid("not a Parquet file (no PAR1 tail)".into()));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&file[n - 8..n - 4]);
    let meta_len = u64::from(u32::from_le_bytes(len));
    if meta_len + 12 > n as u64 {
        return Err(L1Error::Invalid(format!("footer length {meta_len} exceeds the file")));
    }
    Ok(meta_len + 8)
}

/// A decoded footer with the row groups' checksums.
#[derive(Debug)]
pub struct Footer {
    /// Parquet's metadata.
    pub meta: ParquetMetaData,
    crcs: Vec<u32>,
}

impl Footer {
    /// Approximate memory held, for bounded caches.
    pub fn memory_size(&self) -> usize {
        self.meta.memory_size() + self.crcs.len() * 4
    }
}

/// Decodes the footer (the last `footer_len` bytes of the file) and checks
/// the schema is L1's.
pub fn decode_footer(tail: &[u8]) -> Result<Footer, L1Error> {
    if tail.len() < 8 || &tail[tail.len() - 4..] != b"PAR1" {
        return Err(L1Error::Invalid("footer does not end in PAR1".into()));
    }
    let meta = ParquetMetaDataReader::decode_metadata(&tail[..tail.len() - 8])?;
    let columns: Vec<String> = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.path().string())
        .collect();
    let expected = [
        "offset",
        "timestamp_ms",
        "key",
        "value",
        "headers.list.element.key",
        "headers.list.element.value",
    ];
    if columns != expected {
        return Err(L1Error::Invalid(format!("unexpected columns {columns:?}")));
    }
    let crc_text = meta
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == CRC_KEY))
        .and_then(|e| e.value.clone())
        .ok_or_else(|| L1Error::Invalid(format!("footer has no {CRC_KEY}")))?;
    let crcs = crc_text
        .split(',')
        .map(|c| u32::from_str_radix(c, 16).map_err(|_| L1Error::Invalid(format!("bad crc {c:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if crcs.len() != meta.num_row_groups() {
        return Err(L1Error::Invalid(format!(
            "{} checksums for {} row groups",
            crcs.len(),
            meta.num_row_groups()
        )));
    }
    Ok(Footer { meta, crcs })
}

/// The bytes of one row group, placed at their offset in the file.
struct RowGroupBytes {
    start: u64,
    bytes: Bytes,
    file_len: u64,
}

impl RowGroupBytes {
    fn slice(&self, start: u64, length: u64) -> parquet::errors::Result<Bytes> {
        let from = start.checked_sub(self.start);
        let to = from.and_then(|f| f.checked_add(length));
        match (from, to) {
            (Some(f), Some(t)) if t <= self.bytes.len() as u64 => Ok(self.bytes.slice(f as usize..t as usize)),
            _ => Err(parquet::errors::ParquetError::General(format!(
                "read of {length} bytes at {start} outside the fetched row group {}+{}",
                self.start,
                self.bytes.len()
            ))),
        }
    }
}

impl Length for RowGroupBytes {
    fn len(&self) -> u64 {
        self.file_len
    }
}

impl ChunkReader for RowGroupBytes {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let rest = (self.start + self.bytes.len() as u64).saturating_sub(start);
        Ok(self.slice(start, rest)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, length as u64)
    }
}

/// Decodes the row group whose bytes start at `byte_offset` in the file
/// (the bytes a ranged GET of its index entry returned), checking its CRC.
pub fn decode_row_group(footer: &Footer, byte_offset: u64, bytes: Bytes) -> Result<Vec<DecodedRecord>, L1Error> {
    let (index, rg) = footer
        .meta
        .row_groups()
        .iter()
        .enumerate()
        .find(|(_, rg)| row_group_range(rg).is_ok_and(|(s, _)| s == byte_offset))
        .ok_or_else(|| L1Error::Invalid(format!("no row group starts at byte {byte_offset}")))?;
    let (_, len) = row_group_range(rg)?;
    if bytes.len() as u64 != len {
        return Err(L1Error::Invalid(format!(
            "row group at {byte_offset} has {len} bytes, {} given",
            bytes.len()
        )));
    }
    let crc = crc32c::crc32c(&bytes);
    if crc != footer.crcs[index] {
        return Err(L1Error::Invalid(format!(
            "row group {index} crc32c {crc:08x} != {:08x}",
            footer.crcs[index]
        )));
    }
    let rows = usize::try_from(rg.num_rows()).map_err(|_| L1Error::Invalid("negative row count".into()))?;
    let file_len = byte_offset + len;
    let source = Arc::new(RowGroupBytes {
        start: byte_offset,
        bytes,
        file_len,
    });
    let reader = SerializedRowGroupReader::new(source, rg, None, Arc::new(ReaderProperties::builder().build()))?;
    let offsets = read_i64(&reader, 0, rows)?;
    let timestamps = read_i64(&reader, 1, rows)?;
    let keys = read_optional(&reader, 2, rows)?;
    let values = read_optional(&reader, 3, rows)?;
    let headers = read_headers(&reader, rows)?;
    if offsets.len() != rows || timestamps.len() != rows || keys.len() != rows || values.len() != rows {
        return Err(L1Error::Invalid("columns of different lengths".into()));
    }
    let mut out = Vec::with_capacity(rows);
    for (i, ((((offset, timestamp_ms), key), value), headers)) in offsets
        .into_iter()
        .zip(timestamps)
        .zip(keys)
        .zip(values)
        .zip(headers)
        .enumerate()
    {
        let offset = u64::try_from(offset).map_err(|_| L1Error::Invalid(format!("negative offset {offset}")))?;
        if i > 0 && out.last().is_some_and(|p: &DecodedRecord| p.offset + 1 != offset) {
            return Err(L1Error::Invalid(format!("offset gap before {offset}")));
        }
        out.push(DecodedRecord {
            offset,
            timestamp_ms,
            key,
            value,
            headers,
        });
    }
    Ok(out)
}

fn read_i64(reader: &dyn RowGroupReader, column: usize, rows: usize) -> Result<Vec<i64>, L1Error> {
    let mut r = get_typed_column_reader::<Int64Type>(reader.get_column_reader(column)?);
    let mut values = Vec::with_capacity(rows);
    r.read_records(rows, None, None, &mut values)?;
    Ok(values)
}

fn read_optional(reader: &dyn RowGroupReader, column: usize, rows: usize) -> Result<Vec<Option<Bytes>>, L1Error> {
    let mut r = get_typed_column_reader::<ByteArrayType>(reader.get_column_reader(column)?);
    let mut def = Vec::with_capacity(rows);
    let mut values = Vec::with_capacity(rows);
    r.read_records(rows, Some(&mut def), None, &mut values)?;
    let mut values = values.into_iter();
    def.iter()
        .map(|d| match d {
            0 => Ok(None),
            _ => values
                .next()
                .map(|v| Some(Bytes::copy_from_slice(v.data())))
                .ok_or_else(|| L1Error::Invalid(format!("column {column} has fewer values than levels"))),
        })
        .collect()
}

/// Definition levels, repetition levels and values of a repeated column.
type Levels = (Vec<i16>, Vec<i16>, Vec<ByteArray>);

fn read_headers(reader: &dyn RowGroupReader, rows: usize) -> Result<Vec<Vec<Header>>, L1Error> {
    let read = |column: usize| -> Result<Levels, L1Error> {
        let mut r = get_typed_column_reader::<ByteArrayType>(reader.get_column_reader(column)?);
        let (mut def, mut rep, mut values) = (Vec::new(), Vec::new(), Vec::new());
        r.read_records(rows, Some(&mut def), Some(&mut rep), &mut values)?;
        Ok((def, rep, values))
    };
    let (kdef, krep, kvals) = read(4)?;
    let (vdef, vrep, vvals) = read(5)?;
    if kdef.len() != vdef.len() || krep != vrep {
        return Err(L1Error::Invalid("header key and value levels disagree".into()));
    }
    let mut out: Vec<Vec<Header>> = Vec::with_capacity(rows);
    let mut kvals = kvals.into_iter();
    let mut vvals = vvals.into_iter();
    for ((kd, vd), rep) in kdef.iter().zip(&vdef).zip(&krep) {
        if *rep == 0 {
            out.push(Vec::new());
        }
        let row = out
            .last_mut()
            .ok_or_else(|| L1Error::Invalid("header levels start mid-row".into()))?;
        if *kd == 0 {
            continue;
        }
        let key = kvals
            .next()
            .ok_or_else(|| L1Error::Invalid("missing header key".into()))?;
        let key =
            String::from_utf8(key.data().to_vec()).map_err(|_| L1Error::Invalid("header key is not UTF-8".into()))?;
        let value = match vd {
            2 => Some(Bytes::copy_from_slice(
                vvals
                    .next()
                    .ok_or_else(|| L1Error::Invalid("missing header value".into()))?
                    .data(),
            )),
            _ => None,
        };
        row.push(Header { key, value });
    }
    if out.len() != rows {
        return Err(L1Error::Invalid(format!(
            "{} header rows for {rows} records",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(base: u64, n: usize) -> Vec<DecodedRecord> {
        (0..n)
            .map(|i| DecodedRecord {
                offset: base + i as u64,
                timestamp_ms: 1_700_000_000_000 + i as i64,
                key: (!i.is_multiple_of(3)).then(|| Bytes::from(format!("key-{i}"))),
                value: (!i.is_multiple_of(7)).then(|| Bytes::from(vec![(i % 256) as u8, 0, 255, 10])),
                headers: match i % 4 {
                    0 => Vec::new(),
                    1 => vec![Header {
                        key: "h".into(),
                        value: None,
                    }],
                    _ => vec![
                        Header {
                            key: "dup".into(),
                            value: Some(Bytes::from_static(b"a")),
                        },
                        Header {
                            key: "dup".into(),
                            value: Some(Bytes::from(vec![0u8, 1, 2])),
                        },
                        Header {
                            key: "n".into(),
                            value: None,
                        },
                    ],
                },
            })
            .collect()
    }

    fn decode_all(file: &L1File) -> Vec<DecodedRecord> {
        let tail = &file.bytes[file.bytes.len() - file.footer_len as usize..];
        let footer = decode_footer(tail).expect("footer");
        let mut out = Vec::new();
        for e in &file.entries {
            let bytes = file
                .bytes
                .slice(e.byte_offset as usize..(e.byte_offset + e.byte_len) as usize);
            let rows = decode_row_group(&footer, e.byte_offset, bytes).expect("row group");
            assert_eq!(rows.first().map(|r| r.offset), Some(e.base_offset));
            assert_eq!(rows.last().map(|r| r.offset), Some(e.last_offset));
            out.extend(rows);
        }
        out
    }

    #[test]
    fn round_trip_through_row_groups() {
        let records = sample(1000, 2500);
        let opts = L1Options {
            row_group_rows: 700,
            ..L1Options::default()
        };
        let file = encode(&records, opts).expect("encode");
        assert_eq!(file.entries.len(), 4);
        assert_eq!(file.entries[0].byte_offset, 4);
        assert_eq!(decode_all(&file), records);
    }

    #[test]
    fn row_groups_cut_by_bytes() {
        let mut records = sample(0, 100);
        for r in &mut records {
            r.value = Some(Bytes::from(vec![7u8; 10_000]));
        }
        let opts = L1Options {
            row_group_bytes: 100_000,
            ..L1Options::default()
        };
        let file = encode(&records, opts).expect("encode");
        assert_eq!(file.entries.len(), 10);
        assert_eq!(decode_all(&file), records);
    }

    #[test]
    fn corruption_is_detected() {
        let records = sample(0, 300);
        let file = encode(&records, L1Options::default()).expect("encode");
        let tail = &file.bytes[file.bytes.len() - file.footer_len as usize..];
        let footer = decode_footer(tail).expect("footer");
        let e = &file.entries[0];
        let mut bytes = file.bytes[e.byte_offset as usize..(e.byte_offset + e.byte_len) as usize].to_vec();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        assert!(decode_row_group(&footer, e.byte_offset, Bytes::from(bytes)).is_err());
        assert!(decode_row_group(&footer, e.byte_offset + 1, Bytes::new()).is_err());
        assert!(decode_footer(&tail[1..tail.len() - 1]).is_err());
        assert!(encode(&[], L1Options::default()).is_err());
        let mut gap = sample(0, 3);
        gap[2].offset = 5;
        assert!(encode(&gap, L1Options::default()).is_err());
    }
}
