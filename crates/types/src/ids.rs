//! Identifiers and the one seam for randomness.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A topic's stable identity, assigned at creation.
///
/// Names can be reused after deletion; ids never are, so data of a deleted
/// topic can never leak into a new topic of the same name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TopicId(pub uuid::Uuid);

impl TopicId {
    /// The id as 16 bytes, as stored in segment footers.
    pub fn to_bytes(self) -> [u8; 16] {
        *self.0.as_bytes()
    }

    /// The id from 16 stored bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Uuid::from_bytes(bytes))
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({})", self.0)
    }
}

/// A segment object's unique id; its object key is derived from it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub u128);

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SegmentId({self})")
    }
}

/// The one seam for randomness: every id Silt mints comes from here.
pub trait IdGen: Send + Sync + fmt::Debug + 'static {
    /// A fresh 128-bit value, unique with overwhelming probability.
    fn next_u128(&self) -> u128;

    /// A fresh topic id.
    fn topic_id(&self) -> TopicId {
        TopicId(uuid::Builder::from_random_bytes(self.next_u128().to_be_bytes()).into_uuid())
    }

    /// A fresh segment id.
    fn segment_id(&self) -> SegmentId {
        SegmentId(self.next_u128())
    }
}

/// Ids from the operating system's random source.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl IdGen for RandomIds {
    fn next_u128(&self) -> u128 {
        rand::random()
    }
}

/// Deterministic ids for tests: 1, 2, 3, ...
#[derive(Debug, Default)]
pub struct SequentialIds {
    next: AtomicU64,
}

impl IdGen for SequentialIds {
    fn next_u128(&self) -> u128 {
        u128::from(self.next.fetch_add(1, Ordering::SeqCst) + 1)
    }
}
