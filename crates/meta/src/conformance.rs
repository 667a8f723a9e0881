//! The conformance suite every [`Metadata`] backend must pass unchanged.
//!
//! Each case is a `pub async fn` taking a fresh, empty backend and panicking
//! (via `assert!`) on a violation. A backend runs all of them as separate
//! `#[tokio::test]`s with one line:
//!
//! ```ignore
//! silt_meta::metadata_conformance_tests!(async { make_fresh_backend().await });
//! ```
//!
//! The factory expression is evaluated once per test and must produce a
//! [`TestSubject`]: either an `Arc<dyn Metadata>`/`Arc<impl Metadata>`, or a
//! pair `(Arc<dyn Metadata>, guard)` whose guard (a temp dir, a scratch
//! database) is dropped after the case. The calling crate needs `tokio` with
//! the `macros` and `rt-multi-thread` features. [`run_all`] runs every case
//! in sequence instead. Nothing here depends on a particular backend.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use silt_types::{GroupName, MAX_PARTITIONS, Offset, PartitionId, TopicId, TopicName};

use crate::{
    ChunkCommit, ChunkLocation, ChunkOutcome, GroupOffset, MetaError, Metadata, PartitionState, SegmentCommit,
    TopicConfig, TopicInfo,
};

/// A backend instance under test, plus whatever must outlive it.
pub trait TestSubject {
    /// The backend and a guard to drop after the case has run.
    fn split(self) -> (Arc<dyn Metadata>, Box<dyn Any + Send>);
}

impl TestSubject for Arc<dyn Metadata> {
    fn split(self) -> (Arc<dyn Metadata>, Box<dyn Any + Send>) {
        (self, Box::new(()))
    }
}

impl<M: Metadata> TestSubject for Arc<M> {
    fn split(self) -> (Arc<dyn Metadata>, Box<dyn Any + Send>) {
        (self, Box::new(()))
    }
}

impl<G: Send + 'static> TestSubject for (Arc<dyn Metadata>, G) {
    fn split(self) -> (Arc<dyn Metadata>, Box<dyn Any + Send>) {
        (self.0, Box::new(self.1))
    }
}

/// Lists every conformance case once and hands the list to the `tests` or
/// `run_all` expansion; internal to [`metadata_conformance_tests!`] and [`run_all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __silt_meta_conformance_cases {
    ($mode:ident $factory:expr) => {
        $crate::__silt_meta_conformance_cases! { @$mode ($factory)
            topic_create_get_list
            topic_duplicate_name
            topic_partition_count_bounds
            topic_delete
            topic_recreate_gets_new_id
            topic_config_round_trip_and_update
            commit_contiguous_offsets
            commit_outcomes_in_input_order
            commit_invalid_segment_commits_nothing
            commit_topic_gone_others_commit
            lookup_offset_boundaries
            lookup_unknown_topic_or_partition
            partition_states_track_high_watermark
            lookup_timestamp_running_max
            lookup_timestamp_equal_and_extreme
            group_offsets_upsert_and_order
            group_offsets_unknown_topic_or_partition
            group_offsets_removed_with_topic
            concurrent_commits_contiguous
        }
    };
    (@tests ($factory:expr) $($case:ident)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (meta, guard) = $crate::conformance::TestSubject::split($factory.await);
                $crate::conformance::$case(meta).await;
                drop(guard);
            }
        )*
    };
    (@run_all ($factory:expr) $($case:ident)*) => {
        $(
            {
                let (meta, guard) = $crate::conformance::TestSubject::split(($factory)().await);
                ::tracing::info!(case = stringify!($case), "metadata conformance case");
                $crate::conformance::$case(meta).await;
                drop(guard);
            }
        )*
    };
}

/// Expands to one `#[tokio::test]` per conformance case; the argument is an
/// expression evaluating to a future of a fresh [`TestSubject`](crate::conformance::TestSubject).
#[macro_export]
macro_rules! metadata_conformance_tests {
    ($factory:expr) => {
        $crate::__silt_meta_conformance_cases!(tests $factory);
    };
}

/// Runs every conformance case in order, each against a fresh subject from `factory`.
pub async fn run_all<F, Fut, S>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: TestSubject,
{
    crate::__silt_meta_conformance_cases!(run_all factory);
}

// ---------------------------------------------------------------------------
// Helpers.

fn tn(name: &str) -> TopicName {
    TopicName::new(name).expect("valid topic name")
}

fn gn(name: &str) -> GroupName {
    GroupName::new(name).expect("valid group name")
}

/// A chunk of `count` records; its byte range only has to fit in the object,
/// which [`seg`] sizes to hold every chunk.
fn chunk(topic: TopicId, partition: PartitionId, count: u32, max_ts: i64) -> ChunkCommit {
    ChunkCommit {
        topic,
        partition,
        record_count: count,
        byte_offset: u64::from(partition) * 1000,
        byte_len: u64::from(count) * 10,
        max_timestamp_ms: max_ts,
    }
}

fn seg(key: &str, chunks: Vec<ChunkCommit>) -> SegmentCommit {
    let object_size = chunks.iter().map(|c| c.byte_offset + c.byte_len).max().unwrap_or(0) + 7;
    SegmentCommit {
        object_key: key.to_owned(),
        object_size,
        chunks,
    }
}

async fn create(meta: &Arc<dyn Metadata>, name: &str, partitions: u32) -> TopicInfo {
    meta.create_topic(&tn(name), partitions, TopicConfig::default())
        .await
        .expect("create topic")
}

async fn commit(meta: &Arc<dyn Metadata>, segment: SegmentCommit) -> Vec<ChunkOutcome> {
    meta.commit_segment(segment).await.expect("commit segment")
}

/// Commits one single-chunk segment and returns its base offset.
async fn commit_one(meta: &Arc<dyn Metadata>, key: &str, c: ChunkCommit) -> Offset {
    match commit(meta, seg(key, vec![c])).await[..] {
        [ChunkOutcome::Committed { base_offset }] => base_offset,
        ref other => panic!("expected one committed chunk, got {other:?}"),
    }
}

async fn hwm(meta: &Arc<dyn Metadata>, topic: TopicId, partition: PartitionId) -> Offset {
    meta.partition_state(topic, partition)
        .await
        .expect("partition state")
        .high_watermark
}

async fn lookup(
    meta: &Arc<dyn Metadata>,
    topic: TopicId,
    partition: PartitionId,
    offset: Offset,
) -> Option<ChunkLocation> {
    meta.lookup(topic, partition, offset).await.expect("lookup")
}

async fn lookup_ts(meta: &Arc<dyn Metadata>, topic: TopicId, partition: PartitionId, ts: i64) -> Option<Offset> {
    meta.lookup_timestamp(topic, partition, ts)
        .await
        .expect("lookup timestamp")
        .map(|c| c.base_offset)
}

fn go(topic: &str, partition: PartitionId, offset: Offset) -> GroupOffset {
    GroupOffset {
        topic: tn(topic),
        partition,
        offset,
    }
}

// ---------------------------------------------------------------------------
// Topics.

/// Created topics can be read back by name and are listed in name order.
pub async fn topic_create_get_list(meta: Arc<dyn Metadata>) {
    assert!(meta.list_topics().await.expect("list").is_empty());
    let config = TopicConfig {
        retention_ms: Some(60_000),
        retention_bytes: None,
    };
    let b = meta.create_topic(&tn("b"), 3, config.clone()).await.expect("create b");
    assert_eq!(b.name, tn("b"));
    assert_eq!(b.partitions, 3);
    assert_eq!(b.config, config);
    let a = create(&meta, "a", 1).await;
    let c = create(&meta, "c.d_e-f", 2).await;
    assert_ne!(a.id, b.id);
    assert_ne!(b.id, c.id);

    assert_eq!(meta.topic(&tn("b")).await.expect("get b"), b);
    assert_eq!(meta.topic(&tn("a")).await.expect("get a"), a);
    // The id is stable across reads.
    assert_eq!(meta.topic(&tn("b")).await.expect("get b").id, b.id);

    let listed = meta.list_topics().await.expect("list");
    assert_eq!(listed, vec![a, b, c]);

    match meta.topic(&tn("missing")).await {
        Err(MetaError::UnknownTopic(name)) => assert_eq!(name, "missing"),
        other => panic!("expected UnknownTopic, got {other:?}"),
    }
}

/// A taken name is refused and the existing topic is untouched.
pub async fn topic_duplicate_name(meta: Arc<dyn Metadata>) {
    let t = create(&meta, "dup", 2).await;
    let again = meta
        .create_topic(
            &tn("dup"),
            5,
            TopicConfig {
                retention_ms: Some(1),
                retention_bytes: Some(2),
            },
        )
        .await;
    assert!(
        matches!(again, Err(MetaError::TopicExists(ref n)) if *n == tn("dup")),
        "{again:?}"
    );
    assert_eq!(meta.topic(&tn("dup")).await.expect("get"), t);
    assert_eq!(meta.list_topics().await.expect("list").len(), 1);
}

/// Partition counts must be in `1..=MAX_PARTITIONS`.
pub async fn topic_partition_count_bounds(meta: Arc<dyn Metadata>) {
    for bad in [0, MAX_PARTITIONS + 1, u32::MAX] {
        let r = meta.create_topic(&tn("bad"), bad, TopicConfig::default()).await;
        assert!(matches!(r, Err(MetaError::Invalid(_))), "partitions={bad}: {r:?}");
    }
    assert!(matches!(meta.topic(&tn("bad")).await, Err(MetaError::UnknownTopic(_))));
    let big = create(&meta, "big", MAX_PARTITIONS).await;
    assert_eq!(big.partitions, MAX_PARTITIONS);
    let last = MAX_PARTITIONS - 1;
    assert_eq!(hwm(&meta, big.id, last).await, 0);
    assert!(matches!(
        meta.partition_state(big.id, MAX_PARTITIONS).await,
        Err(MetaError::UnknownPartition { .. })
    ));
    assert_eq!(
        meta.partition_states(big.id).await.expect("states").len(),
        MAX_PARTITIONS as usize
    );
}

/// Deleting removes the topic and its index; deleting twice is `UnknownTopic`.
pub async fn topic_delete(meta: Arc<dyn Metadata>) {
    let keep = create(&meta, "keep", 1).await;
    let gone = create(&meta, "gone", 2).await;
    commit(
        &meta,
        seg("s1", vec![chunk(gone.id, 0, 5, 10), chunk(keep.id, 0, 3, 10)]),
    )
    .await;

    meta.delete_topic(&tn("gone")).await.expect("delete");
    assert!(matches!(meta.topic(&tn("gone")).await, Err(MetaError::UnknownTopic(_))));
    assert!(matches!(
        meta.delete_topic(&tn("gone")).await,
        Err(MetaError::UnknownTopic(_))
    ));
    assert!(matches!(
        meta.delete_topic(&tn("never")).await,
        Err(MetaError::UnknownTopic(_))
    ));
    assert_eq!(meta.list_topics().await.expect("list"), vec![keep.clone()]);

    // The old id is dead everywhere.
    assert!(matches!(
        meta.lookup(gone.id, 0, 0).await,
        Err(MetaError::UnknownTopic(_))
    ));
    assert!(matches!(
        meta.partition_state(gone.id, 0).await,
        Err(MetaError::UnknownTopic(_))
    ));
    assert!(matches!(
        meta.partition_states(gone.id).await,
        Err(MetaError::UnknownTopic(_))
    ));
    assert!(matches!(
        meta.lookup_timestamp(gone.id, 0, 0).await,
        Err(MetaError::UnknownTopic(_))
    ));

    // The other topic is untouched.
    assert_eq!(hwm(&meta, keep.id, 0).await, 3);
    assert_eq!(lookup(&meta, keep.id, 0, 2).await.expect("chunk").object_key, "s1");
}

/// Re-creating a name mints a new id and starts from offset 0.
pub async fn topic_recreate_gets_new_id(meta: Arc<dyn Metadata>) {
    let first = create(&meta, "t", 1).await;
    commit_one(&meta, "s1", chunk(first.id, 0, 10, 5)).await;
    meta.delete_topic(&tn("t")).await.expect("delete");

    let second = create(&meta, "t", 2).await;
    assert_ne!(first.id, second.id);
    assert_eq!(second.partitions, 2);
    assert_eq!(meta.topic(&tn("t")).await.expect("get").id, second.id);
    assert_eq!(hwm(&meta, second.id, 0).await, 0);
    assert_eq!(lookup(&meta, second.id, 0, 0).await, None);
    assert_eq!(lookup_ts(&meta, second.id, 0, i64::MIN).await, None);
    assert_eq!(commit_one(&meta, "s2", chunk(second.id, 0, 4, 5)).await, 0);

    // A late commit for the old incarnation must not land in the new one.
    let late = commit(&meta, seg("s3", vec![chunk(first.id, 0, 4, 5)])).await;
    assert_eq!(late, vec![ChunkOutcome::TopicGone]);
    assert_eq!(hwm(&meta, second.id, 0).await, 4);
}

/// Config survives a round trip and can be replaced; the id does not change.
pub async fn topic_config_round_trip_and_update(meta: Arc<dyn Metadata>) {
    let c1 = TopicConfig {
        retention_ms: Some(86_400_000),
        retention_bytes: Some(1 << 40),
    };
    let t = meta.create_topic(&tn("cfg"), 4, c1.clone()).await.expect("create");
    assert_eq!(meta.topic(&tn("cfg")).await.expect("get").config, c1);

    let c2 = TopicConfig {
        retention_ms: None,
        retention_bytes: Some(-1),
    };
    let updated = meta.update_topic_config(&tn("cfg"), c2.clone()).await.expect("update");
    assert_eq!(updated.config, c2);
    assert_eq!(updated.id, t.id);
    assert_eq!(updated.partitions, 4);
    assert_eq!(updated.created_ms, t.created_ms);
    assert_eq!(meta.topic(&tn("cfg")).await.expect("get"), updated);

    let cleared = meta
        .update_topic_config(&tn("cfg"), TopicConfig::default())
        .await
        .expect("clear");
    assert_eq!(cleared.config, TopicConfig::default());
    assert_eq!(meta.list_topics().await.expect("list"), vec![cleared]);

    let r = meta.update_topic_config(&tn("nope"), c2).await;
    assert!(matches!(r, Err(MetaError::UnknownTopic(_))), "{r:?}");
}

// ---------------------------------------------------------------------------
// Commit.

/// Base offsets are contiguous per partition across many segments and chunks.
pub async fn commit_contiguous_offsets(meta: Arc<dyn Metadata>) {
    let a = create(&meta, "a", 3).await;
    let b = create(&meta, "b", 2).await;
    let mut expected: BTreeMap<(TopicId, PartitionId), Offset> = BTreeMap::new();
    for s in 0..25u32 {
        let mut chunks = Vec::new();
        for p in 0..3 {
            if (s + p) % 3 != 0 {
                chunks.push(chunk(a.id, p, 1 + (s * 7 + p) % 9, i64::from(s)));
            }
        }
        if s % 2 == 0 {
            chunks.push(chunk(b.id, s % 2, 1 + s, i64::from(s)));
        }
        if chunks.is_empty() {
            continue;
        }
        let outcomes = commit(&meta, seg(&format!("seg-{s}"), chunks.clone())).await;
        assert_eq!(outcomes.len(), chunks.len());
        for (c, o) in chunks.iter().zip(outcomes) {
            let next = expected.entry((c.topic, c.partition)).or_insert(0);
            assert_eq!(
                o,
                ChunkOutcome::Committed { base_offset: *next },
                "segment {s} chunk {c:?}"
            );
            *next += u64::from(c.record_count);
        }
    }
    for ((topic, p), next) in &expected {
        assert_eq!(hwm(&meta, *topic, *p).await, *next);
    }
    assert_eq!(hwm(&meta, b.id, 1).await, 0);
}

/// Outcomes come back in input order, whatever order the backend works in.
pub async fn commit_outcomes_in_input_order(meta: Arc<dyn Metadata>) {
    let a = create(&meta, "a", 4).await;
    let z = create(&meta, "z", 1).await;
    // Give each partition a distinct next offset first.
    for p in 0..4 {
        commit_one(&meta, &format!("pre-{p}"), chunk(a.id, p, 10 * (p + 1), 0)).await;
    }
    commit_one(&meta, "pre-z", chunk(z.id, 0, 77, 0)).await;
    let chunks = vec![
        chunk(z.id, 0, 1, 0),
        chunk(a.id, 3, 1, 0),
        chunk(a.id, 0, 1, 0),
        chunk(a.id, 2, 1, 0),
        chunk(a.id, 1, 1, 0),
    ];
    let outcomes = commit(&meta, seg("mixed", chunks)).await;
    let bases: Vec<Offset> = outcomes
        .iter()
        .map(|o| match o {
            ChunkOutcome::Committed { base_offset } => *base_offset,
            ChunkOutcome::TopicGone => panic!("unexpected TopicGone"),
        })
        .collect();
    assert_eq!(bases, vec![77, 40, 10, 30, 20]);
}

/// A segment with any invalid part is refused whole: nothing commits.
pub async fn commit_invalid_segment_commits_nothing(meta: Arc<dyn Metadata>) {
    let t = create(&meta, "t", 2).await;
    commit_one(&meta, "base", chunk(t.id, 0, 5, 1)).await;
    let good = chunk(t.id, 1, 3, 1);

    let zero = chunk(t.id, 0, 0, 1);
    let dup = vec![good.clone(), chunk(t.id, 0, 1, 1), chunk(t.id, 1, 2, 1)];
    let mut out_of_object = seg("oob", vec![good.clone(), chunk(t.id, 0, 2, 1)]);
    out_of_object.object_size = 5;
    let mut empty_key = seg("x", vec![good.clone()]);
    empty_key.object_key.clear();
    let cases = vec![
        ("zero records", seg("zero", vec![good.clone(), zero])),
        ("duplicate partition", seg("dup", dup)),
        ("chunk outside object", out_of_object),
        ("empty object key", empty_key),
        ("no chunks", seg("none", Vec::new())),
    ];
    for (what, segment) in cases {
        let r = meta.commit_segment(segment).await;
        assert!(matches!(r, Err(MetaError::Invalid(_))), "{what}: {r:?}");
        assert_eq!(hwm(&meta, t.id, 0).await, 5, "{what}");
        assert_eq!(hwm(&meta, t.id, 1).await, 0, "{what}");
    }
    assert_eq!(lookup(&meta, t.id, 1, 0).await, None);
    // The good chunk still commits on its own afterwards, at offset 0.
    assert_eq!(commit_one(&meta, "ok", good).await, 0);
}

/// Chunks of deleted topics or missing partitions are `TopicGone`; the rest commit.
pub async fn commit_topic_gone_others_commit(meta: Arc<dyn Metadata>) {
    let live = create(&meta, "live", 2).await;
    let dead = create(&meta, "dead", 1).await;
    meta.delete_topic(&tn("dead")).await.expect("delete");
    let never = TopicId::from_bytes([0xab; 16]);

    let chunks = vec![
        chunk(dead.id, 0, 4, 1),
        chunk(live.id, 1, 2, 1),
        chunk(live.id, 5, 3, 1),
        chunk(never, 0, 1, 1),
        chunk(live.id, 0, 6, 1),
    ];
    let outcomes = commit(&meta, seg("s", chunks)).await;
    assert_eq!(
        outcomes,
        vec![
            ChunkOutcome::TopicGone,
            ChunkOutcome::Committed { base_offset: 0 },
            ChunkOutcome::TopicGone,
            ChunkOutcome::TopicGone,
            ChunkOutcome::Committed { base_offset: 0 },
        ]
    );
    assert_eq!(hwm(&meta, live.id, 0).await, 6);
    assert_eq!(hwm(&meta, live.id, 1).await, 2);

    // A segment of nothing but gone chunks commits nothing and is not an error.
    let outcomes = commit(&meta, seg("s2", vec![chunk(dead.id, 0, 1, 1)])).await;
    assert_eq!(outcomes, vec![ChunkOutcome::TopicGone]);
}

// ---------------------------------------------------------------------------
// Lookup.

/// Every offset maps to its chunk; at and beyond the high watermark is `None`.
pub async fn lookup_offset_boundaries(meta: Arc<dyn Metadata>) {
    let t = create(&meta, "t", 2).await;
    assert_eq!(lookup(&meta, t.id, 0, 0).await, None);
    assert_eq!(lookup(&meta, t.id, 0, u64::MAX).await, None);

    let sizes = [1u32, 5, 3, 1, 4];
    let mut bases = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let c = ChunkCommit {
            topic: t.id,
            partition: 0,
            record_count: *n,
            byte_offset: 100 + i as u64,
            byte_len: 50 + i as u64,
            max_timestamp_ms: 1000 + i as i64,
        };
        let segment = SegmentCommit {
            object_key: format!("obj-{i}"),
            object_size: 1000 + i as u64,
            chunks: vec![c],
        };
        let outcome = commit(&meta, segment).await;
        match outcome[..] {
            [ChunkOutcome::Committed { base_offset }] => bases.push(base_offset),
            ref o => panic!("{o:?}"),
        }
    }
    assert_eq!(bases, vec![0, 1, 6, 9, 10]);
    let total: u64 = sizes.iter().map(|n| u64::from(*n)).sum();
    assert_eq!(hwm(&meta, t.id, 0).await, total);

    for (i, (base, n)) in bases.iter().zip(sizes).enumerate() {
        let last = base + u64::from(n) - 1;
        let expected = ChunkLocation {
            topic: t.id,
            partition: 0,
            base_offset: *base,
            last_offset: last,
            object_key: format!("obj-{i}"),
            object_size: 1000 + i as u64,
            byte_offset: 100 + i as u64,
            byte_len: 50 + i as u64,
            max_timestamp_ms: 1000 + i as i64,
        };
        // First, middle and last offset of the chunk.
        for offset in [*base, base + u64::from(n) / 2, last] {
            assert_eq!(
                lookup(&meta, t.id, 0, offset).await.as_ref(),
                Some(&expected),
                "offset {offset}"
            );
        }
    }
    assert_eq!(lookup(&meta, t.id, 0, total).await, None);
    assert_eq!(lookup(&meta, t.id, 0, total + 1).await, None);
    assert_eq!(lookup(&meta, t.id, 0, u64::MAX).await, None);
    // The other partition is empty.
    assert_eq!(lookup(&meta, t.id, 1, 0).await, None);
}

/// Unknown topic ids and partitions are errors in every read.
pub async fn lookup_unknown_topic_or_partition(meta: Arc<dyn Metadata>) {
    let t = create(&meta, "t", 2).await;
    let unknown = TopicId::from_bytes([7; 16]);
    assert!(matches!(
        meta.lookup(unknown, 0, 0).await,
        Err(MetaError::UnknownTopic(_))
    ));
    assert!(matches!(
        meta.partition_state(unknown, 0).await,
        Err(MetaError::UnknownTopic(_))
    ));
    assert!(matches!(
        meta.partition_states(unknown).await,
        Err(MetaError::UnknownTopic(_))
    ));
    assert!(matches!(
        meta.lookup_timestamp(unknown, 0, 0).await,
        Err(MetaError::UnknownTopic(_))
    ));
    for p in [2, 3, u32::MAX] {
        let r = meta.lookup(t.id, p, 0).await;
        assert!(
            matches!(r, Err(MetaError::UnknownPartition { partition, .. }) if partition == p),
            "{r:?}"
        );
        assert!(matches!(
            meta.partition_state(t.id, p).await,
            Err(MetaError::UnknownPartition { .. })
        ));
        assert!(matches!(
            meta.lookup_timestamp(t.id, p, 0).await,
            Err(MetaError::UnknownPartition { .. })
        ));
    }
}

/// `partition_state(s)` report the high watermark of every partition.
pub async fn partition_states_track_high_watermark(meta: Arc<dyn Metadata>) {
    let t = create(&meta, "t", 3).await;
    let state = |p, hw| PartitionState {
        partition: p,
        log_start_offset: 0,
        high_watermark: hw,
    };
    assert_eq!(
        meta.partition_states(t.id).await.expect("states"),
        vec![state(0, 0), state(1, 0), state(2, 0)]
    );
    commit(&meta, seg("s1", vec![chunk(t.id, 2, 4, 0), chunk(t.id, 0, 1, 0)])).await;
    commit(&meta, seg("s2", vec![chunk(t.id, 2, 3, 0)])).await;
    assert_eq!(
        meta.partition_states(t.id).await.expect("states"),
        vec![state(0, 1), state(1, 0), state(2, 7)]
    );
    assert_eq!(meta.partition_state(t.id, 2).await.expect("state"), state(2, 7));
    assert_eq!(meta.partition_state(t.id, 1).await.expect("state"), state(1, 0));
}

/// Timestamp lookup uses the running maximum, so it works with non-monotonic timestamps.
pub async fn lookup_timestamp_running_max(meta: Arc<dyn Metadata>) {
    let t = create(&meta, "t", 2).await;
    assert_eq!(lookup_ts(&meta, t.id, 0, 0).await, None);
    // Chunk maxima 100, 50, 300 → running maxima 100, 100, 300.
    for (i, ts) in [100, 50, 300].into_iter().enumerate() {
        commit_one(&meta, &format!("s{i}"), chunk(t.id, 0, 10, ts)).await;
    }
    commit_one(&meta, "other", chunk(t.id, 1, 3, 1_000_000)).await;

    assert_eq!(lookup_ts(&meta, t.id, 0, 200).await, Some(20));
    assert_eq!(lookup_ts(&meta, t.id, 0, 60).await, Some(0));
    assert_eq!(lookup_ts(&meta, t.id, 0, 100).await, Some(0));
    assert_eq!(lookup_ts(&meta, t.id, 0, 101).await, Some(20));
    assert_eq!(lookup_ts(&meta, t.id, 0, 300).await, Some(20));
    assert_eq!(lookup_ts(&meta, t.id, 0, 301).await, None);
    assert_eq!(lookup_ts(&meta, t.id, 0, 400).await, None);
    assert_eq!(lookup_ts(&meta, t.id, 0, -5).await, Some(0));
    assert_eq!(lookup_ts(&meta, t.id, 1, 400).await, Some(0));

    let found = meta
        .lookup_timestamp(t.id, 0, 200)
        .await
        .expect("lookup")
        .expect("chunk");
    assert_eq!(found.object_key, "s2");
    assert_eq!((found.base_offset, found.last_offset), (20, 29));
    assert_eq!(found.max_timestamp_ms, 300);

    // A later, lower chunk never becomes the answer for a high T.
    commit_one(&meta, "s3", chunk(t.id, 0, 10, 10)).await;
    assert_eq!(lookup_ts(&meta, t.id, 0, 200).await, Some(20));
    assert_eq!(lookup_ts(&meta, t.id, 0, 301).await, None);
}

/// Ties, negative and extreme timestamps.
pub async fn lookup_timestamp_equal_and_extreme(meta: Arc<dyn Metadata>) {
    let t = create(&meta, "t", 1).await;
    for (i, ts) in [-10, 5, 5, 5, i64::MAX].into_iter().enumerate() {
        commit_one(&meta, &format!("s{i}"), chunk(t.id, 0, 2, ts)).await;
    }
    assert_eq!(lookup_ts(&meta, t.id, 0, i64::MIN).await, Some(0));
    assert_eq!(lookup_ts(&meta, t.id, 0, -10).await, Some(0));
    assert_eq!(lookup_ts(&meta, t.id, 0, -9).await, Some(2));
    assert_eq!(lookup_ts(&meta, t.id, 0, 5).await, Some(2));
    assert_eq!(lookup_ts(&meta, t.id, 0, 6).await, Some(8));
    assert_eq!(lookup_ts(&meta, t.id, 0, i64::MAX).await, Some(8));
}

// ---------------------------------------------------------------------------
// Groups.

/// Group offsets upsert, overwrite and come back ordered by topic and partition.
pub async fn group_offsets_upsert_and_order(meta: Arc<dyn Metadata>) {
    create(&meta, "b", 3).await;
    create(&meta, "a", 2).await;
    let g = gn("g1");
    assert!(meta.group_offsets(&g).await.expect("empty").is_empty());
    meta.commit_group_offsets(&g, &[]).await.expect("empty commit");
    assert!(meta.group_offsets(&g).await.expect("still empty").is_empty());

    meta.commit_group_offsets(&g, &[go("b", 2, 7), go("a", 1, 3), go("b", 0, 9)])
        .await
        .expect("commit");
    assert_eq!(
        meta.group_offsets(&g).await.expect("read"),
        vec![go("a", 1, 3), go("b", 0, 9), go("b", 2, 7)]
    );

    // Overwrite (also backwards: a group may rewind), and add one.
    meta.commit_group_offsets(&g, &[go("b", 0, 2), go("a", 0, 11)])
        .await
        .expect("overwrite");
    assert_eq!(
        meta.group_offsets(&g).await.expect("read"),
        vec![go("a", 0, 11), go("a", 1, 3), go("b", 0, 2), go("b", 2, 7)]
    );

    // Groups are independent.
    let other = gn("g2");
    meta.commit_group_offsets(&other, &[go("a", 0, 1)]).await.expect("g2");
    assert_eq!(meta.group_offsets(&other).await.expect("g2"), vec![go("a", 0, 1)]);
    assert_eq!(meta.group_offsets(&g).await.expect("g1").len(), 4);
    assert!(meta.group_offsets(&gn("g3")).await.expect("g3").is_empty());
}

/// Offsets for unknown topics or partitions are refused, all or nothing.
pub async fn group_offsets_unknown_topic_or_partition(meta: Arc<dyn Metadata>) {
    create(&meta, "t", 2).await;
    let g = gn("g");
    meta.commit_group_offsets(&g, &[go("t", 0, 1)]).await.expect("commit");

    let r = meta.commit_group_offsets(&g, &[go("t", 0, 50), go("nope", 0, 1)]).await;
    assert!(matches!(r, Err(MetaError::UnknownTopic(ref n)) if n == "nope"), "{r:?}");
    let r = meta.commit_group_offsets(&g, &[go("t", 1, 50), go("t", 2, 1)]).await;
    assert!(
        matches!(r, Err(MetaError::UnknownPartition { ref topic, partition: 2 }) if topic == "t"),
        "{r:?}"
    );
    assert_eq!(meta.group_offsets(&g).await.expect("read"), vec![go("t", 0, 1)]);
}

/// Deleting a topic drops group offsets for it; a re-created topic starts clean.
pub async fn group_offsets_removed_with_topic(meta: Arc<dyn Metadata>) {
    create(&meta, "t", 1).await;
    create(&meta, "u", 1).await;
    let g = gn("g");
    meta.commit_group_offsets(&g, &[go("t", 0, 5), go("u", 0, 6)])
        .await
        .expect("commit");
    meta.delete_topic(&tn("t")).await.expect("delete");
    assert_eq!(meta.group_offsets(&g).await.expect("read"), vec![go("u", 0, 6)]);
    create(&meta, "t", 1).await;
    assert_eq!(meta.group_offsets(&g).await.expect("read"), vec![go("u", 0, 6)]);
}

// ---------------------------------------------------------------------------
// Concurrency.

/// Many tasks committing to overlapping partitions get unique, gap-free offsets.
pub async fn concurrent_commits_contiguous(meta: Arc<dyn Metadata>) {
    const TASKS: u32 = 16;
    const SEGMENTS: u32 = 20;
    const PARTITIONS: u32 = 4;
    let a = create(&meta, "a", PARTITIONS).await;
    let b = create(&meta, "b", 1).await;

    let mut handles = Vec::new();
    for task in 0..TASKS {
        let meta = Arc::clone(&meta);
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for s in 0..SEGMENTS {
                // Two or three partitions per segment, listed in varying order.
                let mut chunks = vec![
                    chunk(a.id, (task + s) % PARTITIONS, 1 + (task * 7 + s) % 5, 0),
                    chunk(a.id, (task + s + 1) % PARTITIONS, 1 + (task + s * 3) % 4, 0),
                ];
                if (task + s) % 3 == 0 {
                    chunks.insert(0, chunk(b.id, 0, 2, 0));
                }
                if s % 2 == 1 {
                    chunks.reverse();
                }
                let outcomes = meta
                    .commit_segment(seg(&format!("t{task}-s{s}"), chunks.clone()))
                    .await
                    .expect("concurrent commit");
                assert_eq!(outcomes.len(), chunks.len());
                for (c, o) in chunks.into_iter().zip(outcomes) {
                    match o {
                        ChunkOutcome::Committed { base_offset } => {
                            got.push((c.topic, c.partition, base_offset, c.record_count));
                        }
                        ChunkOutcome::TopicGone => panic!("unexpected TopicGone"),
                    }
                }
            }
            got
        }));
    }
    let mut ranges: BTreeMap<(TopicId, PartitionId), Vec<(Offset, u32)>> = BTreeMap::new();
    for h in handles {
        for (topic, p, base, n) in h.await.expect("task") {
            ranges.entry((topic, p)).or_default().push((base, n));
        }
    }
    assert_eq!(ranges.len(), PARTITIONS as usize + 1);
    for ((topic, p), mut list) in ranges {
        list.sort_unstable();
        let mut next = 0;
        for (base, n) in list {
            assert_eq!(base, next, "gap or overlap in topic {topic} partition {p}");
            next += u64::from(n);
        }
        assert_eq!(hwm(&meta, topic, p).await, next);
        // The index agrees: the last offset resolves, the hwm does not.
        assert!(lookup(&meta, topic, p, next - 1).await.is_some());
        assert_eq!(lookup(&meta, topic, p, next).await, None);
    }
}
