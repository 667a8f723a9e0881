//! Round trips: records → batch → view → records, and segments of chunks.

mod common;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use silt_segment::{
    BatchIter, BatchView, ChunkEntry, Compression, ProducerFields, SegmentError, SegmentWriter, decode_chunk,
    decode_footer, decode_footer_from_tail, encode_batch, set_base_offset,
};
use silt_types::{Header, Record};

fn decode_batch(bytes: Bytes) -> Vec<Record> {
    let view = BatchView::new(bytes).expect("parses");
    view.verify_crc().expect("crc ok");
    view.records()
        .expect("records")
        .enumerate()
        .map(|(i, r)| {
            let r = r.expect("record decodes");
            assert_eq!(r.offset_delta, i as i32);
            Record {
                key: r.key,
                value: r.value,
                headers: r.headers,
                timestamp_ms: r.timestamp_ms,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn batch_roundtrip(recs in records(30), c in compression(), pid in any::<i64>(),
                       epoch in any::<i16>(), seq in any::<i32>()) {
        let producer = ProducerFields { producer_id: pid, producer_epoch: epoch, base_sequence: seq };
        let mut out = vec![0xAA; 3]; // encode_batch appends
        let info = encode_batch(&recs, c, producer, &mut out).expect("encodes");
        prop_assert_eq!(&out[..3], &[0xAA; 3]);
        let bytes = Bytes::from(out).slice(3..);
        prop_assert_eq!(info.len, bytes.len());
        prop_assert_eq!(info.record_count as usize, recs.len());
        prop_assert_eq!(info.first_timestamp_ms, recs[0].timestamp_ms);
        let max = recs.iter().map(|r| r.timestamp_ms).max().expect("non-empty");
        prop_assert_eq!(info.max_timestamp_ms, max);

        let view = BatchView::new(bytes.clone()).expect("parses");
        prop_assert_eq!(view.base_offset(), 0);
        prop_assert_eq!(view.batch_length() as usize, bytes.len() - 12);
        prop_assert_eq!(view.partition_leader_epoch(), -1);
        prop_assert_eq!(view.magic(), 2);
        prop_assert_eq!(view.compression(), Ok(c));
        prop_assert_eq!(view.attributes(), c.codec_id());
        prop_assert!(!view.is_transactional() && !view.is_control() && !view.is_log_append_time());
        prop_assert_eq!(view.last_offset_delta() as usize, recs.len() - 1);
        prop_assert_eq!(view.base_timestamp(), recs[0].timestamp_ms);
        prop_assert_eq!(view.max_timestamp(), max);
        prop_assert_eq!(view.producer(), producer);
        prop_assert_eq!(view.record_count() as usize, recs.len());
        prop_assert_eq!(decode_batch(bytes), recs);
    }

    #[test]
    fn segment_roundtrip(specs in chunk_specs(), bases in prop::collection::vec(0u64..(1 << 62), 4)) {
        let (object, entries) = build_segment(&specs);
        let footer = decode_footer(&object).expect("footer");
        prop_assert_eq!(&footer, &entries);
        // The footer can also be read from just the tail.
        let tail_len = 4 + 52 * entries.len() + 16;
        let tail = &object[object.len() - tail_len..];
        prop_assert_eq!(decode_footer_from_tail(tail, object.len() as u64).expect("tail"), footer.clone());

        for ((entry, (partition, batches)), base) in footer.iter().zip(&specs).zip(&bases) {
            let base = *base;
            prop_assert_eq!(entry.partition, *partition);
            let chunk = decode_chunk(chunk_bytes(&object, entry)).expect("chunk");
            prop_assert_eq!(chunk.topic, entry.topic);
            prop_assert_eq!(chunk.partition, entry.partition);
            prop_assert_eq!(chunk.record_count, entry.record_count);
            prop_assert_eq!(chunk.max_timestamp_ms, entry.max_timestamp_ms);

            let want: Vec<Record> = batches.iter().flat_map(|(r, _)| r.clone()).collect();
            prop_assert_eq!(want.len(), entry.record_count as usize);
            let want_max = want.iter().map(|r| r.timestamp_ms).max().expect("non-empty");
            prop_assert_eq!(entry.max_timestamp_ms, want_max);
            let got: Vec<_> = chunk.records(base).collect::<Result<_, _>>().expect("records");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert_eq!(g.offset, base + i as u64);
                prop_assert_eq!(&g.clone().into_record(), w);
            }
            prop_assert_eq!(got.len(), want.len());

            // Relative base offsets as stored, and patched absolute ones.
            let mut rel = 0i64;
            let patched: Vec<_> = chunk.absolute_batches(base).collect::<Result<_, _>>().expect("patch");
            for (b, p) in chunk.batches().zip(&patched) {
                let b = b.expect("batch");
                prop_assert_eq!(b.base_offset(), rel);
                prop_assert_eq!(p.base_offset(), base as i64 + rel);
                let whole = BatchView::new(p.to_bytes()).expect("patched parses");
                prop_assert_eq!(whole.base_offset(), base as i64 + rel);
                whole.verify_crc().expect("base offset is outside the crc");
                prop_assert_eq!(&p.to_bytes()[8..], &b.as_bytes()[8..]);
                rel += i64::from(b.record_count());
            }
            prop_assert_eq!(rel, i64::from(entry.record_count));
        }
    }
}

#[test]
fn crc32c_sanity() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

fn rec(ts: i64, key: Option<&'static [u8]>, value: Option<&'static [u8]>) -> Record {
    Record {
        key: key.map(Bytes::from_static),
        value: value.map(Bytes::from_static),
        headers: vec![],
        timestamp_ms: ts,
    }
}

#[test]
fn empty_batch_and_chunk_are_refused() {
    let mut out = vec![1, 2, 3];
    assert_eq!(
        encode_batch(&[], Compression::None, ProducerFields::NONE, &mut out),
        Err(SegmentError::EmptyBatch)
    );
    assert_eq!(out, vec![1, 2, 3]);
    let mut w = SegmentWriter::new();
    assert!(w.is_empty());
    assert_eq!(w.add_chunk(topic(1), 0, &[]), Err(SegmentError::EmptyChunk));
}

#[test]
fn duplicate_chunk_is_refused_and_writer_unchanged() {
    let b = batch(&[rec(1, None, Some(b"v"))], Compression::None);
    let mut w = SegmentWriter::new();
    w.add_chunk(topic(1), 3, std::slice::from_ref(&b)).expect("first");
    let len = w.len();
    assert_eq!(
        w.add_chunk(topic(1), 3, std::slice::from_ref(&b)),
        Err(SegmentError::DuplicateChunk {
            topic: topic(1),
            partition: 3
        })
    );
    assert_eq!(w.len(), len);
    // Same partition number, other topic, is fine.
    w.add_chunk(topic(2), 3, &[b]).expect("other topic");
    assert_eq!(w.chunk_count(), 2);
}

#[test]
fn add_chunk_rejects_corrupt_batch_and_leaves_writer_unchanged() {
    let good = batch(&[rec(1, None, Some(b"v"))], Compression::None);
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let mut w = SegmentWriter::new();
    w.add_chunk(topic(1), 0, std::slice::from_ref(&good)).expect("good");
    let len = w.len();
    let err = w.add_chunk(topic(1), 1, &[good.clone(), Bytes::from(bad)]);
    assert!(matches!(err, Err(SegmentError::BatchCrcMismatch { .. })));
    assert_eq!(w.len(), len);
    // Two batches glued together are not "one batch".
    let mut two = good.to_vec();
    two.extend_from_slice(&good);
    assert!(matches!(
        w.add_chunk(topic(1), 1, &[Bytes::from(two)]),
        Err(SegmentError::LengthMismatch { .. })
    ));
    // The partition is still free after the failures.
    w.add_chunk(topic(1), 1, &[good]).expect("retry");
}

#[test]
fn client_base_offset_is_replaced() {
    let mut b = batch(&[rec(5, None, None), rec(6, None, None)], Compression::None).to_vec();
    set_base_offset(&mut b, 12345).expect("long enough");
    let b = Bytes::from(b);
    let mut w = SegmentWriter::new();
    w.add_chunk(topic(1), 0, &[b.clone(), b]).expect("adds");
    let (object, entries) = w.finish();
    let chunk = decode_chunk(chunk_bytes(&object, &entries[0])).expect("chunk");
    let bases: Vec<i64> = chunk.batches().map(|b| b.expect("batch").base_offset()).collect();
    assert_eq!(bases, vec![0, 2]);
    let offsets: Vec<u64> = chunk.records(100).map(|r| r.expect("record").offset).collect();
    assert_eq!(offsets, vec![100, 101, 102, 103]);
    assert!(set_base_offset(&mut [0u8; 7], 1).is_err());
}

#[test]
fn uncompressed_values_are_zero_copy() {
    let b = batch(&[rec(1, Some(b"key"), Some(b"some value bytes"))], Compression::None);
    let range = b.as_ptr() as usize..b.as_ptr() as usize + b.len();
    let view = BatchView::new(b.clone()).expect("parses");
    let r = view.records().expect("iter").next().expect("one").expect("ok");
    let v = r.value.expect("value");
    let k = r.key.expect("key");
    assert_eq!(&v[..], b"some value bytes");
    assert!(range.contains(&(v.as_ptr() as usize)));
    assert!(range.contains(&(k.as_ptr() as usize)));
}

#[test]
fn batch_iter_walks_concatenated_batches() {
    let mut all = Vec::new();
    for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
        all.extend_from_slice(&batch(&[rec(1, None, Some(b"x"))], c));
    }
    let views: Vec<BatchView> = BatchIter::new(Bytes::from(all))
        .collect::<Result<_, _>>()
        .expect("three batches");
    assert_eq!(views.len(), 3);
    assert_eq!(views[2].compression(), Ok(Compression::Zstd));
}

#[test]
fn log_append_time_uses_max_timestamp() {
    // Kafka consumers see maxTimestamp for every record of a LogAppendTime batch.
    let mut b = batch(&[rec(10, None, None), rec(20, None, None)], Compression::None).to_vec();
    b[22] |= 0x08;
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    let view = BatchView::new(Bytes::from(b)).expect("parses");
    view.verify_crc().expect("crc");
    assert!(view.is_log_append_time());
    let ts: Vec<i64> = view
        .records()
        .expect("iter")
        .map(|r| r.expect("ok").timestamp_ms)
        .collect();
    assert_eq!(ts, vec![20, 20]);
}

#[test]
fn headers_keep_order_duplicates_and_nulls() {
    let r = Record {
        key: Some(Bytes::new()),
        value: Some(Bytes::new()),
        headers: vec![
            Header {
                key: "a".into(),
                value: None,
            },
            Header {
                key: "a".into(),
                value: Some(Bytes::new()),
            },
            Header {
                key: String::new(),
                value: Some(Bytes::from_static(&[0, 255])),
            },
        ],
        timestamp_ms: -5,
    };
    for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
        assert_eq!(decode_batch(batch(std::slice::from_ref(&r), c)), vec![r.clone()]);
    }
}

#[test]
fn footer_entries_match_writer() {
    let mut w = SegmentWriter::new();
    let e1: ChunkEntry = w
        .add_chunk(topic(1), 0, &[batch(&[rec(7, None, None)], Compression::Lz4)])
        .expect("chunk");
    assert_eq!(e1.byte_offset, 12);
    assert_eq!(e1.record_count, 1);
    assert_eq!(e1.max_timestamp_ms, 7);
    let (object, entries) = w.finish();
    assert_eq!(decode_footer(&object).expect("footer"), entries);
    assert_eq!(&object[object.len() - 6..], b"SILTFT");
    assert_eq!(&object[..8], b"SILTSEG\0");
}

#[test]
fn empty_segment_has_valid_footer() {
    let (object, entries) = SegmentWriter::default().finish();
    assert!(entries.is_empty());
    assert_eq!(object.len(), 12 + 4 + 16);
    assert_eq!(decode_footer(&object), Ok(vec![]));
}
