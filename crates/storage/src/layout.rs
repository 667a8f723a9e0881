//! The one place object keys are made.
//!
//! Keys start with a short hash prefix so writes spread over the store's
//! key-space partitions (S3 scales request rates per prefix).

use object_store::path::Path;
use silt_types::{Offset, PartitionId, SegmentId, TopicId};

/// Object key layout of a Silt bucket.
///
/// ```text
/// segments/<2 hex hash>/<32 hex segment id>.seg     L0 multi-partition segments
/// topics/<topic id>/<partition>/<base offset:020>-<last offset:020>.parquet
///                                                    L1 per-partition Parquet files
/// ```
///
/// L1 keys are not hash-spread: a partition's files share one folder so SQL
/// engines can read a topic or partition with one glob (see `docs/layout.md`);
/// compaction writes them at a rate far below S3's per-prefix limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout;

impl Layout {
    /// Folder of all L0 segments.
    pub const SEGMENTS: &'static str = "segments";

    /// Object key of an L0 segment.
    pub fn segment_key(self, id: SegmentId) -> Path {
        Path::from(format!("{}/{:02x}/{id}.seg", Self::SEGMENTS, spread(id.0)))
    }

    /// Folder of all L1 Parquet files.
    pub const TOPICS: &'static str = "topics";

    /// Folder of one partition's L1 files.
    pub fn partition_prefix(self, topic: TopicId, partition: PartitionId) -> Path {
        Path::from(format!("{}/{topic}/{partition}", Self::TOPICS))
    }

    /// Object key of the L1 Parquet file holding offsets `base..=last` of a
    /// partition; zero-padded so keys sort in offset order.
    pub fn l1_key(self, topic: TopicId, partition: PartitionId, base: Offset, last: Offset) -> Path {
        Path::from(format!(
            "{}/{topic}/{partition}/{base:020}-{last:020}.parquet",
            Self::TOPICS
        ))
    }
}

/// A well-mixed byte of `id` (splitmix64 finaliser), so even sequential ids spread.
fn spread(id: u128) -> u8 {
    let mut z = (id as u64) ^ ((id >> 64) as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z & 0xff) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn sequential_ids_spread_over_prefixes() {
        let prefixes: HashSet<String> = (0..1000u128)
            .map(|i| {
                Layout
                    .segment_key(SegmentId(i))
                    .as_ref()
                    .split('/')
                    .nth(1)
                    .map(str::to_owned)
                    .unwrap_or_default()
            })
            .collect();
        assert!(prefixes.len() > 200, "only {} prefixes", prefixes.len());
        let topic = TopicId::from_bytes([0xab; 16]);
        assert_eq!(
            Layout.l1_key(topic, 3, 7, 1234).as_ref(),
            format!("topics/{topic}/3/00000000000000000007-00000000000000001234.parquet")
        );
        assert!(
            Layout
                .l1_key(topic, 3, 7, 9)
                .as_ref()
                .starts_with(Layout.partition_prefix(topic, 3).as_ref())
        );
        assert_eq!(
            Layout.segment_key(SegmentId(1)).as_ref(),
            format!("segments/{:02x}/00000000000000000000000000000001.seg", spread(1))
        );
    }
}
