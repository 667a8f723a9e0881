//! Corrupted, truncated and hostile input must give errors, never panics.

mod common;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use silt_segment::{
    BatchIter, BatchView, Compression, SegmentError, decode_chunk, decode_footer, decode_footer_from_tail,
    decode_trailer,
};
use silt_types::Record;

/// Runs every decoder over `data`; only checks that nothing panics.
fn poke_everything(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let _ = decode_footer(data);
    let _ = decode_trailer(data);
    let _ = decode_footer_from_tail(data, data.len() as u64);
    let _ = decode_footer_from_tail(data, u64::MAX);
    if let Ok(chunk) = decode_chunk(bytes.clone()) {
        chunk.records(0).for_each(drop);
        chunk.records(u64::MAX).for_each(drop);
        chunk.absolute_batches(u64::MAX).for_each(drop);
    }
    for b in BatchIter::new(bytes.clone()).flatten() {
        let _ = b.verify_crc();
        if let Ok(records) = b.records() {
            records.for_each(drop);
        }
    }
    for pos in 0..data.len().min(16) {
        let _ = BatchView::parse(&bytes, pos);
    }
    let _ = BatchView::parse(&bytes, usize::MAX);
}

fn small_segment() -> impl Strategy<Value = Vec<ChunkSpec>> {
    prop::collection::vec(prop::collection::vec((records(4), compression()), 1..3), 1..3)
        .prop_map(|chunks| chunks.into_iter().enumerate().map(|(i, b)| (i as u32, b)).collect())
}

fn decode_chunk_fully(bytes: Bytes) -> Result<usize, SegmentError> {
    let chunk = decode_chunk(bytes)?;
    let mut n = 0;
    for r in chunk.records(0) {
        r?;
        n += 1;
    }
    Ok(n)
}

/// Recomputes a chunk's Silt CRC after tampering, to reach the inner decoders.
fn reseal_chunk(chunk: &mut [u8]) {
    if chunk.len() >= 8 {
        let crc = crc32c::crc32c(&chunk[4..]);
        chunk[..4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Recomputes a batch's Kafka CRC after tampering.
fn reseal_batch(batch: &mut [u8]) {
    if batch.len() >= 21 {
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bit_flip_in_a_chunk_is_detected(specs in small_segment(), which in any::<prop::sample::Index>(),
                                           bit in any::<prop::sample::Index>()) {
        let (object, entries) = build_segment(&specs);
        let entry = which.get(&entries);
        let mut chunk = chunk_bytes(&object, entry).to_vec();
        let bit = bit.index(chunk.len() * 8);
        chunk[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(decode_chunk_fully(Bytes::from(chunk)).is_err());
    }

    #[test]
    fn any_bit_flip_in_an_object_is_detected(specs in small_segment(), bit in any::<prop::sample::Index>()) {
        let (object, _) = build_segment(&specs);
        let mut bad = object.to_vec();
        let bit = bit.index(bad.len() * 8);
        bad[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(decode_all(&Bytes::from(bad)).is_err());
    }

    #[test]
    fn every_truncation_is_an_error(specs in small_segment()) {
        let (object, entries) = build_segment(&specs);
        for len in 0..object.len() {
            prop_assert!(decode_footer(&object[..len]).is_err(), "object len {}", len);
        }
        for e in &entries {
            let chunk = chunk_bytes(&object, e);
            for len in 0..chunk.len() {
                prop_assert!(decode_chunk_fully(chunk.slice(..len)).is_err(), "chunk len {}", len);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        poke_everything(&data);
    }

    #[test]
    fn random_bytes_behind_valid_headers_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..300),
        codec in 0i16..8,
        count in any::<i32>(),
    ) {
        // A structurally valid batch header (correct length, magic, CRC)
        // followed by garbage records, so the record decoder itself is fuzzed.
        let mut b = batch(&[Record { key: None, value: None, headers: vec![], timestamp_ms: 0 }],
                          Compression::None).to_vec();
        b.truncate(61);
        b.extend_from_slice(&data);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[21..23].copy_from_slice(&codec.to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        reseal_batch(&mut b);
        if let Ok(view) = BatchView::new(Bytes::from(b)) {
            prop_assert!(view.verify_crc().is_ok());
            if let Ok(iter) = view.records() {
                iter.take(1000).for_each(drop);
            }
        }
    }

    #[test]
    fn tampered_but_resealed_chunks_never_panic(specs in small_segment(),
                                                edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let (object, entries) = build_segment(&specs);
        let mut chunk = chunk_bytes(&object, &entries[0]).to_vec();
        for (at, byte) in &edits {
            let at = at.index(chunk.len());
            chunk[at] = *byte;
        }
        // Reseal each batch inside, then the chunk, so decoding goes deep.
        let mut pos = 40;
        while pos + 12 <= chunk.len() {
            let len = i32::from_be_bytes(chunk[pos + 8..pos + 12].try_into().expect("4 bytes"));
            let Ok(len) = usize::try_from(len) else { break };
            let end = pos + 12 + len;
            if end > chunk.len() { break; }
            reseal_batch(&mut chunk[pos..end]);
            pos = end;
        }
        reseal_chunk(&mut chunk);
        let _ = decode_chunk_fully(Bytes::from(chunk));
    }
}

#[test]
fn hostile_record_count_does_not_preallocate() {
    let one = [Record {
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: vec![],
        timestamp_ms: 0,
    }];
    for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let mut b = batch(&one, c).to_vec();
        b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        reseal_batch(&mut b);
        let view = BatchView::new(Bytes::from(b)).expect("header is fine");
        let results: Vec<_> = view.records().expect("iter").collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        assert_eq!(
            results[1],
            Err(SegmentError::RecordCountMismatch {
                declared: i64::from(i32::MAX),
                actual: 1
            })
        );
    }
}

#[test]
fn record_count_too_small_is_an_error() {
    let two = [
        Record {
            key: None,
            value: None,
            headers: vec![],
            timestamp_ms: 0,
        },
        Record {
            key: None,
            value: None,
            headers: vec![],
            timestamp_ms: 1,
        },
    ];
    let mut b = batch(&two, Compression::None).to_vec();
    b[57..61].copy_from_slice(&1i32.to_be_bytes());
    reseal_batch(&mut b);
    let view = BatchView::new(Bytes::from(b)).expect("header is fine");
    let results: Vec<_> = view.records().expect("iter").collect();
    assert!(matches!(results.last(), Some(Err(SegmentError::LengthMismatch { .. }))));
}

#[test]
fn hostile_header_count_does_not_preallocate() {
    // One record whose header count claims i32::MAX headers.
    let mut rec = vec![0u8]; // attributes
    rec.push(0); // timestamp delta 0
    rec.push(0); // offset delta 0
    rec.push(1); // key null
    rec.push(1); // value null
    rec.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]); // zigzag(i32::MAX)
    let mut b = batch(
        &[Record {
            key: None,
            value: None,
            headers: vec![],
            timestamp_ms: 0,
        }],
        Compression::None,
    )
    .to_vec();
    b.truncate(61);
    b.push((rec.len() as u8) << 1);
    b.extend_from_slice(&rec);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    reseal_batch(&mut b);
    let view = BatchView::new(Bytes::from(b)).expect("header ok");
    let first = view.records().expect("iter").next().expect("item");
    assert!(matches!(first, Err(SegmentError::Truncated { .. })));
}

#[test]
fn decompression_bomb_is_refused() {
    let big = Record {
        key: None,
        value: Some(Bytes::from(vec![0u8; silt_segment::MAX_DECOMPRESSED_BATCH + 1])),
        headers: vec![],
        timestamp_ms: 0,
    };
    for c in [Compression::Lz4, Compression::Zstd] {
        let b = batch(std::slice::from_ref(&big), c);
        assert!(b.len() < 8 * 1024 * 1024, "compresses well");
        let view = BatchView::new(b).expect("parses");
        assert_eq!(
            view.records().err(),
            Some(SegmentError::DecompressedTooLarge {
                limit: silt_segment::MAX_DECOMPRESSED_BATCH
            })
        );
    }
}

#[test]
fn unsupported_codecs_and_magic_are_refused() {
    let mut b = batch(
        &[Record {
            key: None,
            value: None,
            headers: vec![],
            timestamp_ms: 0,
        }],
        Compression::None,
    )
    .to_vec();
    b[22] = 1; // gzip
    reseal_batch(&mut b);
    let view = BatchView::new(Bytes::from(b.clone())).expect("parses");
    assert_eq!(view.records().err(), Some(SegmentError::UnsupportedCompression(1)));
    let mut w = silt_segment::SegmentWriter::new();
    assert_eq!(
        w.add_chunk(topic(1), 0, &[Bytes::from(b.clone())]),
        Err(SegmentError::UnsupportedCompression(1))
    );
    b[16] = 1;
    assert_eq!(
        BatchView::new(Bytes::from(b)).err(),
        Some(SegmentError::UnsupportedBatchMagic(1))
    );
}

#[test]
fn footer_with_out_of_bounds_entry_is_refused() {
    let (object, _) = build_segment(&[(
        0,
        vec![(
            vec![Record {
                key: None,
                value: None,
                headers: vec![],
                timestamp_ms: 0,
            }],
            Compression::None,
        )],
    )]);
    let mut bad = object.to_vec();
    let footer_start = bad.len() - 16 - 56;
    // byte_len of entry 0 lives at footer + 4 + 16 + 4 + 8.
    let at = footer_start + 4 + 28;
    bad[at..at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
    let crc = crc32c::crc32c(&bad[footer_start..bad.len() - 16]);
    let crc_at = bad.len() - 12;
    bad[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        decode_footer(&bad),
        Err(SegmentError::Invalid {
            field: "chunk byte range",
            ..
        })
    ));
    let mut future = object.to_vec();
    future[9] = 2;
    assert_eq!(decode_footer(&future), Err(SegmentError::UnsupportedVersion(2)));
}
