//! Byte-for-byte snapshots of persisted formats. These bytes are an API: if
//! a snapshot changes, old segments would no longer read back the same.
//!
//! To regenerate after an intentional format change (which also requires a
//! new FORMAT_VERSION), run with `SILT_UPDATE_SNAPSHOTS=1`.

use bytes::Bytes;
use silt_segment::{BatchView, Compression, ProducerFields, SegmentWriter, decode_chunk, decode_footer, encode_batch};
use silt_types::{Header, Record, TopicId};

fn records() -> Vec<Record> {
    vec![
        Record {
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"v1")),
            headers: vec![Header {
                key: "h".into(),
                value: Some(Bytes::from_static(b"x")),
            }],
            timestamp_ms: 1_700_000_000_000,
        },
        Record {
            key: None,
            value: Some(Bytes::from_static(b"val")),
            headers: vec![Header {
                key: "h".into(),
                value: None,
            }],
            // 10 ms earlier than the first: a negative timestamp delta.
            timestamp_ms: 1_699_999_999_990,
        },
    ]
}

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for line in bytes.chunks(16) {
        for b in line {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('\n');
    }
    s
}

/// Compares against tests/snapshots/<name>; whitespace in the file is ignored.
fn check_snapshot(name: &str, bytes: &[u8]) {
    let path = format!("{}/tests/snapshots/{name}", env!("CARGO_MANIFEST_DIR"));
    let actual = to_hex(bytes);
    if std::env::var_os("SILT_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &actual).expect("write snapshot");
    }
    let expected = std::fs::read_to_string(&path).expect("snapshot file exists");
    let strip = |s: &str| s.split_whitespace().collect::<String>();
    assert_eq!(strip(&actual), strip(&expected), "snapshot {name} differs");
}

fn batch() -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch(&records(), Compression::None, ProducerFields::NONE, &mut out).expect("encodes");
    out
}

/// Hand-checked layout of tests/snapshots/batch_v2_none.hex (89 bytes; the
/// CRCs were also recomputed with an independent bitwise CRC-32C):
///
/// ```text
///  0..8   0000000000000000  baseOffset 0
///  8..12  0000004d          batchLength 77 (= 89 - 12)
/// 12..16  ffffffff          partitionLeaderEpoch -1
/// 16      02                magic 2
/// 17..21  2e323e7e          crc: CRC-32C of bytes 21..89
/// 21..23  0000              attributes: codec none, CreateTime, not txn/control
/// 23..27  00000001          lastOffsetDelta 1
/// 27..35  0000018bcfe56800  baseTimestamp 1700000000000 (first record)
/// 35..43  0000018bcfe56800  maxTimestamp  1700000000000
/// 43..51  ffffffffffffffff  producerId -1
/// 51..53  ffff              producerEpoch -1
/// 53..57  ffffffff          baseSequence -1
/// 57..61  00000002          recordCount 2
/// record 0 (61..76), varints zigzag:
///   1c length 14 | 00 attributes | 00 tsDelta 0 | 00 offsetDelta 0
///   04 6b31 key "k1" | 04 7631 value "v1"
///   02 headerCount 1 | 02 68 key "h" | 02 78 value "x"
/// record 1 (76..89):
///   18 length 12 | 00 attributes | 13 tsDelta -10 | 02 offsetDelta 1
///   01 key null | 06 76616c value "val"
///   02 headerCount 1 | 02 68 key "h" | 01 value null
/// ```
#[test]
fn batch_v2_none_snapshot() {
    let bytes = batch();
    check_snapshot("batch_v2_none.hex", &bytes);
    let view = BatchView::new(Bytes::from(bytes)).expect("parses");
    view.verify_crc().expect("crc");
    let got: Vec<Record> = view
        .records()
        .expect("iter")
        .map(|r| {
            let r = r.expect("ok");
            Record {
                key: r.key,
                value: r.value,
                headers: r.headers,
                timestamp_ms: r.timestamp_ms,
            }
        })
        .collect();
    assert_eq!(got, records());
}

/// Hand-checked layout of tests/snapshots/segment_v1_small.hex (213 bytes):
///
/// ```text
///   0..12   53494c5453454700 0001 0000  magic "SILTSEG\0", version 1, reserved 0
///  12..16   d85b4d36            chunk crc: CRC-32C of bytes 16..141
///  16..20   00000079            chunk length 121 (bytes after this field)
///  20..36   11 x 16             topic id
///  36..40   00000007            partition 7
///  40..44   00000002            record_count 2
///  44..52   0000018bcfe56800    max_timestamp_ms 1700000000000
///  52..141  the 89-byte batch above, baseOffset 0 (relative to the chunk)
/// 141..145  00000001            footer: chunk count 1
/// 145..197  entry: topic 11 x 16, partition 00000007,
///           byte_offset 000000000000000c (12), byte_len 0000000000000081 (129),
///           record_count 00000002, max_timestamp 0000018bcfe56800,
///           crc d85b4d36 (same as the chunk header)
/// 197..201  00000038            footer length 56
/// 201..205  76a923b6            footer crc: CRC-32C of bytes 141..197
/// 205..207  0001                version 1
/// 207..213  53494c544654        "SILTFT"
/// ```
#[test]
fn segment_v1_small_snapshot() {
    let mut w = SegmentWriter::new();
    let topic = TopicId::from_bytes([0x11; 16]);
    w.add_chunk(topic, 7, &[Bytes::from(batch())]).expect("adds");
    let (object, entries) = w.finish();
    check_snapshot("segment_v1_small.hex", &object);
    assert_eq!(object.len(), 213);
    assert_eq!(decode_footer(&object).expect("footer"), entries);
    let e = entries[0];
    let chunk =
        decode_chunk(object.slice(e.byte_offset as usize..(e.byte_offset + e.byte_len) as usize)).expect("chunk");
    let got: Vec<Record> = chunk.records(1000).map(|r| r.expect("ok").into_record()).collect();
    assert_eq!(got, records());
}
