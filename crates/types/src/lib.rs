//! Shared vocabulary of Silt: validated names, ids, records, limits, and the
//! seams for time and randomness.
//!
//! This is the bottom layer. It performs no I/O and may depend only on small
//! data crates (`bytes`, `serde`, `uuid`, `thiserror`, `rand`). Every other
//! crate builds on these types so that a topic name or an offset means the
//! same thing everywhere.

mod clock;
mod ids;
mod names;
mod record;

pub use clock::{Clock, ManualClock, SystemClock};
pub use ids::{IdGen, RandomIds, SegmentId, SequentialIds, TopicId};
pub use names::{GroupName, NameError, TopicName};
pub use record::{Header, Record};

/// A partition number within a topic, as Kafka numbers them (0-based).
pub type PartitionId = u32;

/// A record's position in its partition; assigned once, at commit.
pub type Offset = u64;

/// The largest number of partitions a topic may have; bounds per-topic state.
pub const MAX_PARTITIONS: u32 = 10_000;
