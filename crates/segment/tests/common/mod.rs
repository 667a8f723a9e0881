//! Shared proptest strategies and helpers for the integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use proptest::prelude::*;
use silt_segment::{Compression, ProducerFields, encode_batch};
use silt_types::{Header, Record, TopicId};

pub fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

pub fn header() -> impl Strategy<Value = Header> {
    // A tiny key alphabet makes duplicate keys common; any::<String> covers
    // arbitrary UTF-8.
    let key = prop_oneof![3 => "[ab]{0,2}", 1 => any::<String>()];
    (key, prop::option::of(bytes(16))).prop_map(|(key, value)| Header { key, value })
}

pub fn record() -> impl Strategy<Value = Record> {
    (
        prop::option::of(bytes(24)),
        prop::option::of(bytes(200)),
        prop::collection::vec(header(), 0..4),
        // Negative and non-monotonic timestamps, deltas far beyond i32.
        -(1i64 << 45)..(1i64 << 45),
    )
        .prop_map(|(key, value, headers, timestamp_ms)| Record {
            key,
            value,
            headers,
            timestamp_ms,
        })
}

pub fn records(max: usize) -> impl Strategy<Value = Vec<Record>> {
    prop::collection::vec(record(), 1..max)
}

pub fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![Just(Compression::None), Just(Compression::Lz4), Just(Compression::Zstd)]
}

pub fn topic(n: u8) -> TopicId {
    TopicId::from_bytes([n; 16])
}

/// Encodes `records` as one standalone batch.
pub fn batch(records: &[Record], compression: Compression) -> Bytes {
    let mut out = Vec::new();
    encode_batch(records, compression, ProducerFields::NONE, &mut out).expect("encodes");
    Bytes::from(out)
}

/// A chunk to put in a segment: partition, and its batches' records.
pub type ChunkSpec = (u32, Vec<(Vec<Record>, Compression)>);

pub fn chunk_specs() -> impl Strategy<Value = Vec<ChunkSpec>> {
    prop::collection::vec(prop::collection::vec((records(6), compression()), 1..4), 1..4).prop_map(|chunks| {
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, batches)| (i as u32, batches))
            .collect()
    })
}

/// Builds a segment from specs; topic alternates between two ids.
pub fn build_segment(specs: &[ChunkSpec]) -> (Bytes, Vec<silt_segment::ChunkEntry>) {
    let mut w = silt_segment::SegmentWriter::new();
    for (partition, batches) in specs {
        let encoded: Vec<Bytes> = batches.iter().map(|(r, c)| batch(r, *c)).collect();
        w.add_chunk(topic((*partition % 2) as u8 + 1), *partition, &encoded)
            .expect("adds chunk");
    }
    w.finish()
}

/// Slices one chunk out of an object as a ranged read would.
pub fn chunk_bytes(object: &Bytes, e: &silt_segment::ChunkEntry) -> Bytes {
    object.slice(e.byte_offset as usize..(e.byte_offset + e.byte_len) as usize)
}

/// Decodes a whole object: footer, every chunk, every record.
pub fn decode_all(object: &Bytes) -> Result<Vec<Record>, silt_segment::SegmentError> {
    let mut out = Vec::new();
    for e in silt_segment::decode_footer(object)? {
        let chunk = silt_segment::decode_chunk(chunk_bytes(object, &e))?;
        for r in chunk.records(0) {
            out.push(r?.into_record());
        }
    }
    Ok(out)
}
