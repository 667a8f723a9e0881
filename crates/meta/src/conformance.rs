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
//! [`TestSubject`]: a [`Subject`] (backend, the [`ManualClock`] it reads
//! time from, and a guard such as a temp dir or scratch database, dropped
//! after the case), an `Arc<dyn Metadata>`/`Arc<impl Metadata>`, a pair
//! `(Arc<dyn Metadata>, guard)`, or a `Result` of any of these whose `Err`
//! means "this backend is not available here": the test prints
//! `SKIP: <reason>` and returns (see `silt_testkit::skip`). Cases that move
//! time (agent registry, leases) need the subject's clock and fail without it.
//! The calling crate needs `tokio` with the `macros` and `rt-multi-thread`
//! features. [`run_all`] runs every case in sequence instead. Nothing here
//! depends on a particular backend.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use silt_types::{GroupName, MAX_PARTITIONS, ManualClock, Offset, PartitionId, TopicId, TopicName};

use crate::{
    AgentInfo, AgentRegistration, ChunkCommit, ChunkFormat, ChunkLocation, ChunkOutcome, ChunkReplacement, GroupCommit,
    GroupOffset, GroupState, IndexEntry, MetaError, Metadata, PartitionState, ProducerAppend, ProducerCheck,
    ProducerIdentity, ReplaceOutcome, SegmentCommit, TopicConfig, TopicInfo,
};

/// A backend under test with the clock it reads and whatever must outlive it.
pub struct Subject {
    /// The backend.
    pub meta: Arc<dyn Metadata>,
    /// The clock the backend was built with, for cases that move time.
    pub clock: Option<ManualClock>,
    /// Dropped after the case (temp dir, scratch database, ...).
    pub guard: Box<dyn Any + Send>,
}

impl Subject {
    /// A subject with no clock and no guard.
    pub fn new(meta: Arc<dyn Metadata>) -> Self {
        Self {
            meta,
            clock: None,
            guard: Box::new(()),
        }
    }

    /// Sets the clock the backend reads.
    pub fn with_clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Sets the guard to drop after the case.
    pub fn with_guard(mut self, guard: impl Any + Send) -> Self {
        self.guard = Box::new(guard);
        self
    }

    /// The clock; panics with a hint if the factory did not provide one.
    pub fn require_clock(&self) -> ManualClock {
        self.clock
            .clone()
            .expect("this conformance case moves time: the factory must return a Subject with_clock(ManualClock)")
    }
}

/// Anything a conformance factory may produce.
pub trait TestSubject {
    /// The subject, or why the backend is unavailable (the test then skips).
    fn into_subject(self) -> Result<Subject, String>;
}

impl TestSubject for Subject {
    fn into_subject(self) -> Result<Subject, String> {
        Ok(self)
    }
}

impl TestSubject for Arc<dyn Metadata> {
    fn into_subject(self) -> Result<Subject, String> {
        Ok(Subject::new(self))
    }
}

impl<M: Metadata> TestSubject for Arc<M> {
    fn into_subject(self) -> Result<Subject, String> {
        Ok(Subject::new(self))
    }
}

impl<G: Send + 'static> TestSubject for (Arc<dyn Metadata>, G) {
    fn into_subject(self) -> Result<Subject, String> {
        Ok(Subject::new(self.0).with_guard(self.1))
    }
}

impl<S: TestSubject, E: Display> TestSubject for Result<S, E> {
    fn into_subject(self) -> Result<Subject, String> {
        self.map_err(|e| e.to_string())?.into_subject()
    }
}

/// Turns a factory's product into a subject, or prints `SKIP: <reason>` and
/// returns `None`; internal to the macros.
#[doc(hidden)]
pub fn __obtain<S: TestSubject>(produced: S) -> Option<Subject> {
    match produced.into_subject() {
        Ok(s) => Some(s),
        Err(reason) => {
            eprintln!("SKIP: {reason}");
            None
        }
    }
}

/// Lists every conformance case once and hands the list to the `tests` or
/// `run_all` expansion; internal to [`metadata_conformance_tests!`] and [`run_all`].
/// `plain` cases take the backend; `clocked` cases also take its clock.
#[doc(hidden)]
#[macro_export]
macro_rules! __silt_meta_conformance_cases {
    ($mode:ident $factory:expr) => {
        $crate::__silt_meta_conformance_cases! { @$mode ($factory)
            plain [
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
                group_join_and_generation_fencing
                group_offset_regression_and_reset
                producer_init_and_epoch_bump
                producer_accept_duplicate_fenced_out_of_order
                producer_new_epoch_starts_at_zero
                producer_sequence_wrap
                producer_rejected_chunk_others_commit
                producer_check_agrees_with_commit
                concurrent_commits_contiguous
                concurrent_producers_deduplicated
                list_chunks_in_offset_order
                replace_chunks_swaps_atomically
                replace_chunks_conflicts_change_nothing
                advance_log_start_forward_only
                unreferenced_objects_after_swap_and_retention
            ]
            clocked [
                agents_register_renew_expire
                leases_acquire_renew_steal_release
            ]
        }
    };
    (@tests ($factory:expr) plain [$($case:ident)*] clocked [$($clocked:ident)*]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(subject) = $crate::conformance::__obtain($factory.await) else {
                    return;
                };
                $crate::conformance::$case(::std::sync::Arc::clone(&subject.meta)).await;
                drop(subject);
            }
        )*
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $clocked() {
                let Some(subject) = $crate::conformance::__obtain($factory.await) else {
                    return;
                };
                let clock = subject.require_clock();
                $crate::conformance::$clocked(::std::sync::Arc::clone(&subject.meta), clock).await;
                drop(subject);
            }
        )*
    };
    (@run_all ($factory:expr) plain [$($case:ident)*] clocked [$($clocked:ident)*]) => {
        $(
            {
                if let Some(subject) = $crate::conformance::__obtain(($factory)().await) {
                    ::tracing::info!(case = stringify!($case), "metadata conformance case");
                    $crate::conformance::$case(::std::sync::Arc::clone(&subject.meta)).await;
                    drop(subject);
                }
            }
        )*
        $(
            {
                if let Some(subject) = $crate::conformance::__obtain(($factory)().await) {
                    ::tracing::info!(case = stringify!($clocked), "metadata conformance case");
                    let clock = subject.require_clock();
                    $crate::conformance::$clocked(::std::sync::Arc::clone(&subject.meta), clock).await;
                    drop(subject);
                }
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

/// Runs every conformance case in order, each against a fresh subject from
/// `factory`; cases whose subject is unavailable are skipped with a message.
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
        producers: Vec::new(),
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

/// A group commit without generation and without reset.
fn plain(offsets: Vec<GroupOffset>) -> GroupCommit {
    GroupCommit {
        generation: None,
        reset: false,
        offsets,
    }
}

/// A group commit that may move offsets backwards.
fn reset(offsets: Vec<GroupOffset>) -> GroupCommit {
    GroupCommit {
        generation: None,
        reset: true,
        offsets,
    }
}

async fn offsets_of(meta: &Arc<dyn Metadata>, group: &GroupName) -> Vec<GroupOffset> {
    meta.group_offsets(group).await.expect("group offsets").offsets
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
            other => panic!("unexpected {other:?}"),
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
            producers: Vec::new(),
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
            format: ChunkFormat::Segment,
            footer_len: 0,
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
    assert!(offsets_of(&meta, &g).await.is_empty());
    meta.commit_group_offsets(&g, &plain(Vec::new()))
        .await
        .expect("empty commit");
    assert!(offsets_of(&meta, &g).await.is_empty());

    meta.commit_group_offsets(&g, &plain(vec![go("b", 2, 7), go("a", 1, 3), go("b", 0, 9)]))
        .await
        .expect("commit");
    assert_eq!(
        offsets_of(&meta, &g).await,
        vec![go("a", 1, 3), go("b", 0, 9), go("b", 2, 7)]
    );

    // Overwrite (also backwards: a reset may rewind), and add one.
    meta.commit_group_offsets(&g, &reset(vec![go("b", 0, 2), go("a", 0, 11)]))
        .await
        .expect("overwrite");
    assert_eq!(
        offsets_of(&meta, &g).await,
        vec![go("a", 0, 11), go("a", 1, 3), go("b", 0, 2), go("b", 2, 7)]
    );

    // Groups are independent.
    let other = gn("g2");
    meta.commit_group_offsets(&other, &plain(vec![go("a", 0, 1)]))
        .await
        .expect("g2");
    assert_eq!(offsets_of(&meta, &other).await, vec![go("a", 0, 1)]);
    assert_eq!(offsets_of(&meta, &g).await.len(), 4);
    assert!(offsets_of(&meta, &gn("g3")).await.is_empty());
}

/// Offsets for unknown topics or partitions are refused, all or nothing.
pub async fn group_offsets_unknown_topic_or_partition(meta: Arc<dyn Metadata>) {
    create(&meta, "t", 2).await;
    let g = gn("g");
    meta.commit_group_offsets(&g, &plain(vec![go("t", 0, 1)]))
        .await
        .expect("commit");

    let r = meta
        .commit_group_offsets(&g, &plain(vec![go("t", 0, 50), go("nope", 0, 1)]))
        .await;
    assert!(matches!(r, Err(MetaError::UnknownTopic(ref n)) if n == "nope"), "{r:?}");
    let r = meta
        .commit_group_offsets(&g, &plain(vec![go("t", 1, 50), go("t", 2, 1)]))
        .await;
    assert!(
        matches!(r, Err(MetaError::UnknownPartition { ref topic, partition: 2 }) if topic == "t"),
        "{r:?}"
    );
    assert_eq!(offsets_of(&meta, &g).await, vec![go("t", 0, 1)]);
}

/// Deleting a topic drops group offsets for it; a re-created topic starts clean.
pub async fn group_offsets_removed_with_topic(meta: Arc<dyn Metadata>) {
    create(&meta, "t", 1).await;
    create(&meta, "u", 1).await;
    let g = gn("g");
    meta.commit_group_offsets(&g, &plain(vec![go("t", 0, 5), go("u", 0, 6)]))
        .await
        .expect("commit");
    meta.delete_topic(&tn("t")).await.expect("delete");
    assert_eq!(offsets_of(&meta, &g).await, vec![go("u", 0, 6)]);
    create(&meta, "t", 1).await;
    assert_eq!(offsets_of(&meta, &g).await, vec![go("u", 0, 6)]);
}

/// Joining bumps the generation; commits naming another generation are refused whole.
pub async fn group_join_and_generation_fencing(meta: Arc<dyn Metadata>) {
    create(&meta, "t", 2).await;
    let g = gn("g");
    assert_eq!(
        meta.group_offsets(&g).await.expect("state"),
        GroupState {
            generation: 0,
            offsets: Vec::new()
        }
    );
    // A group that never joined is at generation 0.
    let at = |generation, offsets| GroupCommit {
        generation: Some(generation),
        reset: false,
        offsets,
    };
    meta.commit_group_offsets(&g, &at(0, vec![go("t", 0, 1)]))
        .await
        .expect("generation 0");
    assert_eq!(meta.join_group(&g).await.expect("join"), 1);
    assert_eq!(meta.join_group(&g).await.expect("join"), 2);
    assert_eq!(meta.group_offsets(&g).await.expect("state").generation, 2);

    for stale in [0, 1, 3] {
        let r = meta
            .commit_group_offsets(&g, &at(stale, vec![go("t", 0, 50), go("t", 1, 50)]))
            .await;
        assert!(
            matches!(r, Err(MetaError::StaleGeneration { ref group, current: 2, given }) if group == "g" && given == stale),
            "{r:?}"
        );
    }
    assert_eq!(offsets_of(&meta, &g).await, vec![go("t", 0, 1)]);
    meta.commit_group_offsets(&g, &at(2, vec![go("t", 0, 5), go("t", 1, 6)]))
        .await
        .expect("current generation");
    // Without a generation the commit is not fenced.
    meta.commit_group_offsets(&g, &plain(vec![go("t", 1, 7)]))
        .await
        .expect("unfenced");
    assert_eq!(
        meta.group_offsets(&g).await.expect("state"),
        GroupState {
            generation: 2,
            offsets: vec![go("t", 0, 5), go("t", 1, 7)]
        }
    );
    // Groups have their own generations.
    assert_eq!(meta.group_offsets(&gn("h")).await.expect("h").generation, 0);
    assert_eq!(meta.join_group(&gn("h")).await.expect("join h"), 1);
    assert_eq!(meta.group_offsets(&g).await.expect("state").generation, 2);
}

/// Offsets never move backwards unless the commit is a reset; refusals change nothing.
pub async fn group_offset_regression_and_reset(meta: Arc<dyn Metadata>) {
    create(&meta, "t", 2).await;
    let g = gn("g");
    meta.commit_group_offsets(&g, &plain(vec![go("t", 0, 10), go("t", 1, 5)]))
        .await
        .expect("commit");
    let r = meta
        .commit_group_offsets(&g, &plain(vec![go("t", 1, 7), go("t", 0, 8)]))
        .await;
    assert!(
        matches!(
            r,
            Err(MetaError::OffsetRegression { ref topic, partition: 0, committed: 10, given: 8 }) if topic == "t"
        ),
        "{r:?}"
    );
    assert_eq!(offsets_of(&meta, &g).await, vec![go("t", 0, 10), go("t", 1, 5)]);
    // Equal is not a regression.
    meta.commit_group_offsets(&g, &plain(vec![go("t", 0, 10), go("t", 1, 7)]))
        .await
        .expect("equal and forward");
    meta.commit_group_offsets(&g, &reset(vec![go("t", 0, 0)]))
        .await
        .expect("reset");
    assert_eq!(offsets_of(&meta, &g).await, vec![go("t", 0, 0), go("t", 1, 7)]);
    // Another group's offsets are not compared.
    meta.commit_group_offsets(&gn("other"), &plain(vec![go("t", 1, 1)]))
        .await
        .expect("other group");
}

// ---------------------------------------------------------------------------
// Idempotent producers.

fn batch(p: ProducerIdentity, base_sequence: i32, record_count: u32, offset_in_chunk: u32) -> ProducerAppend {
    ProducerAppend {
        producer_id: p.producer_id,
        producer_epoch: p.producer_epoch,
        base_sequence,
        record_count,
        offset_in_chunk,
    }
}

/// A chunk of `count` records holding the given producer batches.
fn pchunk(topic: TopicId, partition: PartitionId, count: u32, producers: Vec<ProducerAppend>) -> ChunkCommit {
    ChunkCommit {
        producers,
        ..chunk(topic, partition, count, 0)
    }
}

/// Commits one producer chunk in its own segment and returns its outcome.
async fn commit_p(meta: &Arc<dyn Metadata>, key: &str, c: ChunkCommit) -> ChunkOutcome {
    let outcomes = commit(meta, seg(key, vec![c])).await;
    assert_eq!(outcomes.len(), 1);
    outcomes[0]
}

async fn init(meta: &Arc<dyn Metadata>) -> ProducerIdentity {
    meta.init_producer(None).await.expect("init producer")
}

fn committed(base_offset: Offset) -> ChunkOutcome {
    ChunkOutcome::Committed { base_offset }
}

fn rejected(check: ProducerCheck) -> ChunkOutcome {
    ChunkOutcome::ProducerRejected(check)
}

/// Fresh producers get distinct ids from 1000 up at epoch 0; re-initialising bumps the epoch.
pub async fn producer_init_and_epoch_bump(meta: Arc<dyn Metadata>) {
    let a = init(&meta).await;
    let b = init(&meta).await;
    assert!(a.producer_id >= 1000 && b.producer_id >= 1000, "{a:?} {b:?}");
    assert_ne!(a.producer_id, b.producer_id);
    assert_eq!((a.producer_epoch, b.producer_epoch), (0, 0));
    let a1 = meta.init_producer(Some(a.producer_id)).await.expect("bump");
    assert_eq!(
        a1,
        ProducerIdentity {
            producer_id: a.producer_id,
            producer_epoch: 1
        }
    );
    let a2 = meta.init_producer(Some(a.producer_id)).await.expect("bump");
    assert_eq!(a2.producer_epoch, 2);
    let r = meta.init_producer(Some(999_999_999)).await;
    assert!(matches!(r, Err(MetaError::UnknownProducer(999_999_999))), "{r:?}");
    let r = meta.init_producer(Some(b.producer_id + 1_000_000)).await;
    assert!(matches!(r, Err(MetaError::UnknownProducer(_))), "{r:?}");

    // b's epoch is untouched; a's old epochs are fenced.
    let t = create(&meta, "t", 1).await;
    assert_eq!(
        commit_p(&meta, "b0", pchunk(t.id, 0, 1, vec![batch(b, 0, 1, 0)])).await,
        committed(0)
    );
    assert_eq!(
        commit_p(&meta, "a0", pchunk(t.id, 0, 1, vec![batch(a1, 0, 1, 0)])).await,
        rejected(ProducerCheck::Fenced { current_epoch: 2 })
    );
    assert_eq!(
        commit_p(&meta, "a2", pchunk(t.id, 0, 1, vec![batch(a2, 0, 1, 0)])).await,
        committed(1)
    );
}

/// Kafka's rules: next sequence accepted, retries deduplicated with the original offset,
/// gaps and forgotten batches out of order, old or unknown epochs fenced.
pub async fn producer_accept_duplicate_fenced_out_of_order(meta: Arc<dyn Metadata>) {
    let t = create(&meta, "t", 1).await;
    let p = init(&meta).await;
    assert_eq!(
        commit_p(&meta, "c1", pchunk(t.id, 0, 5, vec![batch(p, 0, 5, 0)])).await,
        committed(0)
    );
    commit_one(&meta, "plain", chunk(t.id, 0, 3, 0)).await;
    assert_eq!(
        commit_p(&meta, "c2", pchunk(t.id, 0, 4, vec![batch(p, 5, 4, 0)])).await,
        committed(8)
    );

    // Retries (say through another agent after a crash) commit nothing.
    assert_eq!(
        commit_p(&meta, "c1-retry", pchunk(t.id, 0, 5, vec![batch(p, 0, 5, 0)])).await,
        rejected(ProducerCheck::Duplicate { base_offset: 0 })
    );
    assert_eq!(
        commit_p(&meta, "c2-retry", pchunk(t.id, 0, 4, vec![batch(p, 5, 4, 0)])).await,
        rejected(ProducerCheck::Duplicate { base_offset: 8 })
    );
    assert_eq!(hwm(&meta, t.id, 0).await, 12);

    // A batch after other records in its chunk: the absolute offset is remembered.
    assert_eq!(
        commit_p(&meta, "c3", pchunk(t.id, 0, 6, vec![batch(p, 9, 4, 2)])).await,
        committed(12)
    );
    assert_eq!(
        commit_p(&meta, "c3-retry", pchunk(t.id, 0, 4, vec![batch(p, 9, 4, 0)])).await,
        rejected(ProducerCheck::Duplicate { base_offset: 14 })
    );
    // Same base sequence, different size: not a duplicate.
    assert_eq!(
        commit_p(&meta, "c3-odd", pchunk(t.id, 0, 3, vec![batch(p, 9, 3, 0)])).await,
        rejected(ProducerCheck::OutOfOrder { expected_sequence: 13 })
    );
    // A gap.
    assert_eq!(
        commit_p(&meta, "gap", pchunk(t.id, 0, 1, vec![batch(p, 20, 1, 0)])).await,
        rejected(ProducerCheck::OutOfOrder { expected_sequence: 13 })
    );
    assert_eq!(hwm(&meta, t.id, 0).await, 18);

    // Only the last 5 batches are remembered.
    for i in 0..5 {
        let seq = 13 + i;
        assert_eq!(
            commit_p(&meta, &format!("w{i}"), pchunk(t.id, 0, 1, vec![batch(p, seq, 1, 0)])).await,
            committed(18 + u64::try_from(i).expect("small"))
        );
    }
    assert_eq!(
        commit_p(&meta, "w0-retry", pchunk(t.id, 0, 1, vec![batch(p, 13, 1, 0)])).await,
        rejected(ProducerCheck::Duplicate { base_offset: 18 })
    );
    assert_eq!(
        commit_p(&meta, "c3-forgotten", pchunk(t.id, 0, 4, vec![batch(p, 9, 4, 0)])).await,
        rejected(ProducerCheck::OutOfOrder { expected_sequence: 18 })
    );

    // Fencing: an older epoch, or one never handed out.
    let p1 = meta.init_producer(Some(p.producer_id)).await.expect("bump");
    assert_eq!(
        commit_p(&meta, "old", pchunk(t.id, 0, 1, vec![batch(p, 18, 1, 0)])).await,
        rejected(ProducerCheck::Fenced { current_epoch: 1 })
    );
    let future = ProducerIdentity {
        producer_epoch: 5,
        ..p1
    };
    assert_eq!(
        commit_p(&meta, "future", pchunk(t.id, 0, 1, vec![batch(future, 0, 1, 0)])).await,
        rejected(ProducerCheck::Fenced { current_epoch: 1 })
    );
    // Unknown producer ids.
    let ghost = ProducerIdentity {
        producer_id: 77,
        producer_epoch: 0,
    };
    assert_eq!(
        commit_p(&meta, "ghost", pchunk(t.id, 0, 1, vec![batch(ghost, 0, 1, 0)])).await,
        rejected(ProducerCheck::UnknownProducer)
    );
    assert_eq!(hwm(&meta, t.id, 0).await, 23);
}

/// The first batch of a producer in a partition, and the first of a new epoch, must have sequence 0.
pub async fn producer_new_epoch_starts_at_zero(meta: Arc<dyn Metadata>) {
    let t = create(&meta, "t", 2).await;
    let p = init(&meta).await;
    assert_eq!(
        commit_p(&meta, "first", pchunk(t.id, 0, 1, vec![batch(p, 3, 1, 0)])).await,
        rejected(ProducerCheck::OutOfOrder { expected_sequence: 0 })
    );
    assert_eq!(
        commit_p(&meta, "a", pchunk(t.id, 0, 4, vec![batch(p, 0, 4, 0)])).await,
        committed(0)
    );
    // Partitions keep separate sequences.
    assert_eq!(
        commit_p(&meta, "b", pchunk(t.id, 1, 2, vec![batch(p, 0, 2, 0)])).await,
        committed(0)
    );

    let p1 = meta.init_producer(Some(p.producer_id)).await.expect("bump");
    assert_eq!(
        commit_p(&meta, "continue", pchunk(t.id, 0, 1, vec![batch(p1, 4, 1, 0)])).await,
        rejected(ProducerCheck::OutOfOrder { expected_sequence: 0 })
    );
    assert_eq!(
        commit_p(&meta, "restart", pchunk(t.id, 0, 1, vec![batch(p1, 0, 1, 0)])).await,
        committed(4)
    );
    assert_eq!(
        commit_p(&meta, "next", pchunk(t.id, 0, 1, vec![batch(p1, 1, 1, 0)])).await,
        committed(5)
    );
    // The old epoch's batches are fenced, not deduplicated.
    assert_eq!(
        commit_p(&meta, "old-retry", pchunk(t.id, 0, 4, vec![batch(p, 0, 4, 0)])).await,
        rejected(ProducerCheck::Fenced { current_epoch: 1 })
    );
    // The new epoch is new on partition 1 as well.
    assert_eq!(
        commit_p(&meta, "p1-continue", pchunk(t.id, 1, 1, vec![batch(p1, 2, 1, 0)])).await,
        rejected(ProducerCheck::OutOfOrder { expected_sequence: 0 })
    );
    assert_eq!(
        commit_p(&meta, "p1-restart", pchunk(t.id, 1, 1, vec![batch(p1, 0, 1, 0)])).await,
        committed(2)
    );
}

/// Sequences wrap to 0 after `i32::MAX`, also in the middle of a batch.
pub async fn producer_sequence_wrap(meta: Arc<dyn Metadata>) {
    let t = create(&meta, "t", 2).await;
    let p = init(&meta).await;
    let max = i32::MAX;
    let big = u32::try_from(max).expect("fits") - 1;
    // Sequences 0..=max-2.
    assert_eq!(
        commit_p(&meta, "big", pchunk(t.id, 0, big, vec![batch(p, 0, big, 0)])).await,
        committed(0)
    );
    // max-1, max, 0: spans the wrap.
    assert_eq!(
        commit_p(&meta, "span", pchunk(t.id, 0, 3, vec![batch(p, max - 1, 3, 0)])).await,
        committed(u64::from(big))
    );
    assert_eq!(
        meta.check_producer(t.id, 0, &batch(p, 5, 1, 0)).await.expect("check"),
        ProducerCheck::OutOfOrder { expected_sequence: 1 }
    );
    assert_eq!(
        commit_p(&meta, "after", pchunk(t.id, 0, 1, vec![batch(p, 1, 1, 0)])).await,
        committed(u64::from(big) + 3)
    );
    // Ending exactly at max: the next batch starts at 0.
    assert_eq!(
        commit_p(&meta, "o-big", pchunk(t.id, 1, big, vec![batch(p, 0, big, 0)])).await,
        committed(0)
    );
    assert_eq!(
        commit_p(&meta, "o-end", pchunk(t.id, 1, 2, vec![batch(p, max - 1, 2, 0)])).await,
        committed(u64::from(big))
    );
    assert_eq!(
        commit_p(&meta, "o-wrapped", pchunk(t.id, 1, 1, vec![batch(p, 0, 1, 0)])).await,
        committed(u64::from(big) + 2)
    );
}

/// A chunk with a rejected batch does not commit; the segment's other chunks do.
pub async fn producer_rejected_chunk_others_commit(meta: Arc<dyn Metadata>) {
    let t = create(&meta, "t", 3).await;
    let p = init(&meta).await;
    let outcomes = commit(
        &meta,
        seg(
            "mixed",
            vec![
                chunk(t.id, 0, 3, 0),
                pchunk(t.id, 1, 1, vec![batch(p, 7, 1, 0)]),
                pchunk(t.id, 2, 2, vec![batch(p, 0, 2, 0)]),
            ],
        ),
    )
    .await;
    assert_eq!(
        outcomes,
        vec![
            committed(0),
            rejected(ProducerCheck::OutOfOrder { expected_sequence: 0 }),
            committed(0)
        ]
    );
    assert_eq!(hwm(&meta, t.id, 1).await, 0);
    assert_eq!(lookup(&meta, t.id, 1, 0).await, None);
    assert_eq!(
        meta.check_producer(t.id, 2, &batch(p, 2, 1, 0)).await.expect("check"),
        ProducerCheck::Accept
    );

    // Two batches in one chunk: the second is out of order, so neither is applied.
    let two_bad = pchunk(t.id, 1, 3, vec![batch(p, 0, 2, 0), batch(p, 5, 1, 2)]);
    assert_eq!(
        commit_p(&meta, "two-bad", two_bad).await,
        rejected(ProducerCheck::OutOfOrder { expected_sequence: 2 })
    );
    assert_eq!(
        meta.check_producer(t.id, 1, &batch(p, 0, 2, 0)).await.expect("check"),
        ProducerCheck::Accept
    );
    // Two good batches in one chunk, with plain records around them.
    let two_good = pchunk(t.id, 1, 7, vec![batch(p, 0, 2, 1), batch(p, 2, 3, 3)]);
    assert_eq!(commit_p(&meta, "two-good", two_good).await, committed(0));
    assert_eq!(
        commit_p(&meta, "second-retry", pchunk(t.id, 1, 3, vec![batch(p, 2, 3, 0)])).await,
        rejected(ProducerCheck::Duplicate { base_offset: 3 })
    );
    assert_eq!(hwm(&meta, t.id, 1).await, 7);

    // Malformed batches make the whole segment invalid.
    for bad in [
        batch(p, -1, 1, 0),
        batch(p, 0, 0, 0),
        batch(p, 0, 2, 2),
        ProducerAppend {
            producer_epoch: -1,
            ..batch(p, 0, 1, 0)
        },
    ] {
        let r = meta
            .commit_segment(seg("bad", vec![chunk(t.id, 0, 1, 0), pchunk(t.id, 2, 3, vec![bad])]))
            .await;
        assert!(matches!(r, Err(MetaError::Invalid(_))), "{bad:?}: {r:?}");
    }
    assert_eq!(hwm(&meta, t.id, 0).await, 3);

    // Deleting the topic forgets its producer state.
    meta.delete_topic(&tn("t")).await.expect("delete");
    let again = create(&meta, "t", 3).await;
    assert_eq!(
        commit_p(&meta, "fresh", pchunk(again.id, 2, 1, vec![batch(p, 0, 1, 0)])).await,
        committed(0)
    );
}

/// `check_producer` is read-only and agrees with what a commit then does.
pub async fn producer_check_agrees_with_commit(meta: Arc<dyn Metadata>) {
    let t = create(&meta, "t", 2).await;
    let p = init(&meta).await;
    let ghost = ProducerIdentity {
        producer_id: 5,
        producer_epoch: 0,
    };
    let steps = [
        batch(p, 1, 1, 0),
        batch(p, 0, 2, 0),
        batch(p, 0, 2, 0),
        batch(p, 2, 1, 0),
        batch(p, 4, 1, 0),
        batch(ghost, 0, 1, 0),
        batch(p, 3, 2, 0),
    ];
    for (i, append) in steps.iter().enumerate() {
        let check = meta.check_producer(t.id, 0, append).await.expect("check");
        // Read-only: asking twice gives the same answer.
        assert_eq!(meta.check_producer(t.id, 0, append).await.expect("check"), check);
        let outcome = commit_p(
            &meta,
            &format!("s{i}"),
            pchunk(t.id, 0, append.record_count, vec![*append]),
        )
        .await;
        match (check, outcome) {
            (ProducerCheck::Accept, ChunkOutcome::Committed { .. }) => {}
            (c, ChunkOutcome::ProducerRejected(r)) => assert_eq!(c, r, "step {i}"),
            (c, o) => panic!("step {i}: check said {c:?}, commit did {o:?}"),
        }
    }
    assert_eq!(hwm(&meta, t.id, 0).await, 5);
    // Other partition: fresh state.
    assert_eq!(
        meta.check_producer(t.id, 1, &batch(p, 3, 1, 0)).await.expect("check"),
        ProducerCheck::OutOfOrder { expected_sequence: 0 }
    );
    let r = meta.check_producer(t.id, 2, &batch(p, 0, 1, 0)).await;
    assert!(
        matches!(r, Err(MetaError::UnknownPartition { partition: 2, .. })),
        "{r:?}"
    );
    let r = meta
        .check_producer(TopicId::from_bytes([3; 16]), 0, &batch(p, 0, 1, 0))
        .await;
    assert!(matches!(r, Err(MetaError::UnknownTopic(_))), "{r:?}");
    let r = meta.check_producer(t.id, 0, &batch(p, -4, 1, 0)).await;
    assert!(matches!(r, Err(MetaError::Invalid(_))), "{r:?}");
}

// ---------------------------------------------------------------------------
// Agents and leases.

fn agent(node: &str, address: &str, zone: Option<&str>, lease_ms: i64) -> AgentRegistration {
    AgentRegistration {
        node_id: node.to_owned(),
        address: address.to_owned(),
        zone: zone.map(str::to_owned),
        lease_ms,
    }
}

/// Agents register, renew (keeping their registration time) and drop out when their lease lapses.
pub async fn agents_register_renew_expire(meta: Arc<dyn Metadata>, clock: ManualClock) {
    use silt_types::Clock as _;
    let t0 = clock.now_ms();
    assert!(meta.list_agents().await.expect("list").is_empty());
    meta.register_agent(&agent("b", "10.0.0.2:8080", None, 1000))
        .await
        .expect("register b");
    meta.register_agent(&agent("a", "10.0.0.1:8080", Some("az1"), 500))
        .await
        .expect("register a");
    let info = |node: &str, address: &str, zone: Option<&str>, registered_ms, expires_ms| AgentInfo {
        node_id: node.to_owned(),
        address: address.to_owned(),
        zone: zone.map(str::to_owned),
        registered_ms,
        expires_ms,
    };
    assert_eq!(
        meta.list_agents().await.expect("list"),
        vec![
            info("a", "10.0.0.1:8080", Some("az1"), t0, t0 + 500),
            info("b", "10.0.0.2:8080", None, t0, t0 + 1000)
        ]
    );

    clock.advance(400);
    meta.register_agent(&agent("a", "10.0.0.9:8080", None, 500))
        .await
        .expect("renew a");
    assert_eq!(
        meta.list_agents().await.expect("list")[0],
        info("a", "10.0.0.9:8080", None, t0, t0 + 900)
    );

    clock.set(t0 + 950);
    let live: Vec<String> = meta
        .list_agents()
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.node_id)
        .collect();
    assert_eq!(live, vec!["b".to_owned()]);
    // A lease ends at its expiry instant.
    clock.set(t0 + 1000);
    assert!(meta.list_agents().await.expect("list").is_empty());

    // Registering again after lapsing starts a new registration.
    meta.register_agent(&agent("a", "10.0.0.1:8080", Some("az2"), 100))
        .await
        .expect("re-register a");
    assert_eq!(
        meta.list_agents().await.expect("list"),
        vec![info("a", "10.0.0.1:8080", Some("az2"), t0 + 1000, t0 + 1100)]
    );

    for bad in [
        agent("c", "x", None, 0),
        agent("c", "x", None, -5),
        agent("", "x", None, 10),
    ] {
        let r = meta.register_agent(&bad).await;
        assert!(matches!(r, Err(MetaError::Invalid(_))), "{bad:?}: {r:?}");
    }
}

/// Leases: acquire, renew by the holder, refuse others, steal after expiry, release.
pub async fn leases_acquire_renew_steal_release(meta: Arc<dyn Metadata>, clock: ManualClock) {
    let acquire = |name: &'static str, holder: &'static str, ttl| {
        let meta = Arc::clone(&meta);
        async move { meta.try_acquire_lease(name, holder, ttl).await.expect("try acquire") }
    };
    assert!(acquire("compact", "A", 1000).await);
    assert!(!acquire("compact", "B", 1000).await);
    // Names are independent.
    assert!(acquire("gc", "B", 1000).await);

    clock.advance(500);
    assert!(acquire("compact", "A", 1000).await, "holder renews");
    clock.advance(900);
    assert!(!acquire("compact", "B", 1000).await, "renewed lease still held");
    clock.advance(100);
    assert!(acquire("compact", "B", 1000).await, "expired lease is taken over");
    assert!(!acquire("compact", "A", 1000).await);

    // Only the holder releases.
    meta.release_lease("compact", "A").await.expect("release by non-holder");
    assert!(!acquire("compact", "A", 1000).await);
    meta.release_lease("compact", "B").await.expect("release");
    assert!(acquire("compact", "A", 1000).await);
    meta.release_lease("never", "A").await.expect("release unknown");

    let r = meta.try_acquire_lease("compact", "A", 0).await;
    assert!(matches!(r, Err(MetaError::Invalid(_))), "{r:?}");
    let r = meta.try_acquire_lease("", "A", 10).await;
    assert!(matches!(r, Err(MetaError::Invalid(_))), "{r:?}");
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
                        other => panic!("unexpected {other:?}"),
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

/// Producers retrying concurrently (as through several agents) never commit a batch twice.
pub async fn concurrent_producers_deduplicated(meta: Arc<dyn Metadata>) {
    const PRODUCERS: usize = 4;
    const BATCHES: i32 = 10;
    const COPIES: usize = 3;
    let t = create(&meta, "t", 2).await;
    let mut ids = Vec::new();
    for _ in 0..PRODUCERS {
        ids.push(init(&meta).await);
    }
    let mut handles = Vec::new();
    for (n, p) in ids.into_iter().enumerate() {
        // The copies of one producer send each batch together, then wait for one another.
        let barrier = Arc::new(tokio::sync::Barrier::new(COPIES));
        for copy in 0..COPIES {
            let meta = Arc::clone(&meta);
            let barrier = Arc::clone(&barrier);
            handles.push(tokio::spawn(async move {
                let mut got = Vec::new();
                let partition = u32::try_from(n % 2).expect("small");
                for seq in 0..BATCHES {
                    let c = pchunk(t.id, partition, 2, vec![batch(p, seq * 2, 2, 0)]);
                    match commit_p(&meta, &format!("p{n}-c{copy}-s{seq}"), c).await {
                        ChunkOutcome::Committed { base_offset } => got.push((n, seq, base_offset, true)),
                        ChunkOutcome::ProducerRejected(ProducerCheck::Duplicate { base_offset }) => {
                            got.push((n, seq, base_offset, false));
                        }
                        other => panic!("producer {n} copy {copy} seq {seq}: {other:?}"),
                    }
                    barrier.wait().await;
                }
                got
            }));
        }
    }
    let mut first: BTreeMap<(usize, i32), Vec<(Offset, bool)>> = BTreeMap::new();
    for h in handles {
        for (n, seq, base, fresh) in h.await.expect("task") {
            first.entry((n, seq)).or_default().push((base, fresh));
        }
    }
    assert_eq!(first.len(), PRODUCERS * usize::try_from(BATCHES).expect("small"));
    for ((n, seq), answers) in &first {
        assert_eq!(answers.len(), COPIES);
        assert_eq!(
            answers.iter().filter(|(_, fresh)| *fresh).count(),
            1,
            "producer {n} seq {seq} committed other than once: {answers:?}"
        );
        assert!(
            answers.iter().all(|(b, _)| *b == answers[0].0),
            "copies disagree on the offset: {answers:?}"
        );
    }
    // Each partition holds exactly one copy of every batch.
    let per_partition = u64::try_from(PRODUCERS / 2 * usize::try_from(BATCHES).expect("small") * 2).expect("small");
    assert_eq!(hwm(&meta, t.id, 0).await, per_partition);
    assert_eq!(hwm(&meta, t.id, 1).await, per_partition);
}

// ---------------------------------------------------------------------------
// Compaction, retention, garbage collection.

/// Commits chunks of `sizes` records to partition 0 of a new topic "c", one
/// segment each (`seg-<i>`, max timestamp `100 * (i + 1)`); their locations.
async fn committed_chunks(meta: &Arc<dyn Metadata>, sizes: &[u32]) -> (TopicInfo, Vec<ChunkLocation>) {
    let t = create(meta, "c", 2).await;
    for (i, n) in sizes.iter().enumerate() {
        commit_one(meta, &format!("seg-{i}"), chunk(t.id, 0, *n, 100 * (i as i64 + 1))).await;
    }
    let locs = meta.list_chunks(t.id, 0, 0, 1000).await.expect("list chunks");
    (t, locs)
}

/// A replacement of `old` by one Parquet object with one entry per `split` records.
fn parquet_replacement(old: &[ChunkLocation], key: &str, split: u64) -> ChunkReplacement {
    let first = old.first().expect("old entries").base_offset;
    let last = old.last().expect("old entries").last_offset;
    let mut entries = Vec::new();
    let mut base = first;
    while base <= last {
        let end = (base + split - 1).min(last);
        let max_ts = old
            .iter()
            .filter(|o| o.last_offset >= base && o.base_offset <= end)
            .map(|o| o.max_timestamp_ms)
            .max()
            .unwrap_or(0);
        entries.push(IndexEntry {
            base_offset: base,
            last_offset: end,
            byte_offset: 4 + (base - first) * 10,
            byte_len: (end - base + 1) * 10,
            max_timestamp_ms: max_ts,
        });
        base = end + 1;
    }
    ChunkReplacement {
        topic: old[0].topic,
        partition: old[0].partition,
        old: old.to_vec(),
        object_key: key.to_owned(),
        object_size: 4 + (last - first + 1) * 10 + 100,
        format: ChunkFormat::Parquet,
        footer_len: 100,
        entries,
    }
}

/// `list_chunks` starts at the entry holding `from` and goes up in offset order.
pub async fn list_chunks_in_offset_order(meta: Arc<dyn Metadata>) {
    let (t, all) = committed_chunks(&meta, &[2, 3, 1, 4]).await;
    let bases: Vec<Offset> = all.iter().map(|c| c.base_offset).collect();
    assert_eq!(bases, vec![0, 2, 5, 6]);
    assert!(
        all.iter()
            .all(|c| c.format == ChunkFormat::Segment && c.footer_len == 0)
    );
    assert_eq!(all[1].object_key, "seg-1");
    let from3 = meta.list_chunks(t.id, 0, 3, 2).await.expect("list from 3");
    assert_eq!(from3.iter().map(|c| c.base_offset).collect::<Vec<_>>(), vec![2, 5]);
    assert!(
        meta.list_chunks(t.id, 0, 10, 5)
            .await
            .expect("list past end")
            .is_empty()
    );
    assert!(
        meta.list_chunks(t.id, 1, 0, 5)
            .await
            .expect("empty partition")
            .is_empty()
    );
    assert!(matches!(
        meta.list_chunks(t.id, 9, 0, 5).await,
        Err(MetaError::UnknownPartition { .. })
    ));
}

/// A swap replaces the range in one step: lookups, timestamps and the high
/// watermark agree before and after, and later commits continue after it.
pub async fn replace_chunks_swaps_atomically(meta: Arc<dyn Metadata>) {
    let (t, all) = committed_chunks(&meta, &[2, 3, 1, 4]).await;
    let before_ts: Vec<Option<Offset>> = {
        let mut v = Vec::new();
        for ts in [0, 100, 150, 300, 400, 401] {
            v.push(lookup_ts(&meta, t.id, 0, ts).await);
        }
        v
    };
    // Compact the first three chunks (offsets 0..=5) into entries of 4 records.
    let r = parquet_replacement(&all[..3], "topics/x/0/a.parquet", 4);
    assert_eq!(
        meta.replace_chunks(r.clone()).await.expect("replace"),
        ReplaceOutcome::Replaced
    );
    assert_eq!(hwm(&meta, t.id, 0).await, 10);
    let l = lookup(&meta, t.id, 0, 3).await.expect("offset 3");
    assert_eq!((l.base_offset, l.last_offset), (0, 3));
    assert_eq!(l.object_key, "topics/x/0/a.parquet");
    assert_eq!(l.format, ChunkFormat::Parquet);
    assert_eq!(l.footer_len, 100);
    assert_eq!((l.byte_offset, l.byte_len), (4, 40));
    let l = lookup(&meta, t.id, 0, 5).await.expect("offset 5");
    assert_eq!((l.base_offset, l.last_offset), (4, 5));
    let l = lookup(&meta, t.id, 0, 6).await.expect("offset 6");
    assert_eq!(l.object_key, "seg-3");
    assert_eq!(l.format, ChunkFormat::Segment);
    let mut after_ts = Vec::new();
    for ts in [0, 100, 150, 300, 400, 401] {
        after_ts.push(lookup_ts(&meta, t.id, 0, ts).await);
    }
    // Timestamp lookups land on the entry holding the same first offset.
    for (b, a) in before_ts.iter().zip(&after_ts) {
        match (b, a) {
            (Some(b), Some(a)) => assert!(a <= b, "timestamp lookup moved from {b} to {a}"),
            (None, None) => {}
            other => panic!("timestamp lookup changed: {other:?}"),
        }
    }
    // The same swap again conflicts: the old entries are gone.
    assert!(matches!(
        meta.replace_chunks(r).await.expect("replace again"),
        ReplaceOutcome::Conflict { .. }
    ));
    let c = commit_one(&meta, "seg-4", chunk(t.id, 0, 2, 900)).await;
    assert_eq!(c, 10);
    let listed = meta.list_chunks(t.id, 0, 0, 100).await.expect("list");
    let ranges: Vec<(Offset, Offset)> = listed.iter().map(|c| (c.base_offset, c.last_offset)).collect();
    assert_eq!(ranges, vec![(0, 3), (4, 5), (6, 9), (10, 11)]);
}

/// A swap whose expected entries differ from the stored ones, or whose shape
/// is invalid, changes nothing.
pub async fn replace_chunks_conflicts_change_nothing(meta: Arc<dyn Metadata>) {
    let (t, all) = committed_chunks(&meta, &[2, 3, 1]).await;
    // A stale view: the compactor thinks chunk 1 lives elsewhere.
    let mut stale = all.clone();
    stale[1].object_key = "other".into();
    let r = parquet_replacement(&stale, "p1", 10);
    assert!(matches!(
        meta.replace_chunks(r).await.expect("replace"),
        ReplaceOutcome::Conflict { .. }
    ));
    // Only part of a stored range: expected two entries, three are there.
    let mut partial = all[..2].to_vec();
    partial[1].last_offset = 5;
    let r = parquet_replacement(&partial, "p2", 10);
    assert!(matches!(
        meta.replace_chunks(r).await.expect("replace"),
        ReplaceOutcome::Conflict { .. }
    ));
    // Invalid shapes are refused outright.
    let mut gap = parquet_replacement(&all, "p3", 2);
    gap.entries.remove(1);
    assert!(matches!(meta.replace_chunks(gap).await, Err(MetaError::Invalid(_))));
    let mut short = parquet_replacement(&all, "p4", 2);
    short.entries.pop();
    assert!(matches!(meta.replace_chunks(short).await, Err(MetaError::Invalid(_))));
    let mut outside = parquet_replacement(&all, "p5", 2);
    outside.entries[0].byte_len = outside.object_size;
    assert!(matches!(meta.replace_chunks(outside).await, Err(MetaError::Invalid(_))));
    // Nothing changed.
    assert_eq!(meta.list_chunks(t.id, 0, 0, 100).await.expect("list"), all);
    // Below the log start: conflict.
    meta.advance_log_start(t.id, 0, 2).await.expect("advance");
    let r = parquet_replacement(&all, "p6", 10);
    assert!(matches!(
        meta.replace_chunks(r).await.expect("replace"),
        ReplaceOutcome::Conflict { .. }
    ));
}

/// The log start only moves forward, never past the high watermark, and
/// drops the entries that end below it.
pub async fn advance_log_start_forward_only(meta: Arc<dyn Metadata>) {
    let (t, _) = committed_chunks(&meta, &[2, 3, 1, 4]).await;
    assert_eq!(meta.advance_log_start(t.id, 0, 3).await.expect("advance"), 3);
    let state = meta.partition_state(t.id, 0).await.expect("state");
    assert_eq!((state.log_start_offset, state.high_watermark), (3, 10));
    assert!(matches!(
        meta.lookup(t.id, 0, 2).await,
        Err(MetaError::OffsetBelowStart {
            offset: 2,
            log_start: 3
        })
    ));
    assert_eq!(lookup(&meta, t.id, 0, 3).await.expect("offset 3").base_offset, 2);
    let listed = meta.list_chunks(t.id, 0, 0, 100).await.expect("list");
    assert_eq!(listed.first().map(|c| c.base_offset), Some(2));
    // Backwards is a no-op.
    assert_eq!(meta.advance_log_start(t.id, 0, 1).await.expect("backwards"), 3);
    // Past the high watermark is refused.
    assert!(matches!(
        meta.advance_log_start(t.id, 0, 11).await,
        Err(MetaError::Invalid(_))
    ));
    assert_eq!(lookup_ts(&meta, t.id, 0, 0).await, Some(2));
    // Up to the high watermark: everything goes; new commits continue.
    assert_eq!(meta.advance_log_start(t.id, 0, 10).await.expect("all"), 10);
    assert!(meta.list_chunks(t.id, 0, 0, 100).await.expect("list").is_empty());
    assert_eq!(lookup(&meta, t.id, 0, 10).await, None);
    assert_eq!(lookup_ts(&meta, t.id, 0, 0).await, None);
    assert_eq!(commit_one(&meta, "seg-9", chunk(t.id, 0, 1, 5)).await, 10);
    assert_eq!(lookup(&meta, t.id, 0, 10).await.expect("offset 10").object_key, "seg-9");
    // Other partitions are untouched.
    assert_eq!(meta.partition_state(t.id, 1).await.expect("p1").log_start_offset, 0);
    assert!(matches!(
        meta.advance_log_start(TopicId::from_bytes([3; 16]), 0, 1).await,
        Err(MetaError::UnknownTopic(_))
    ));
}

/// Objects still referenced by any entry are never reported unreferenced.
pub async fn unreferenced_objects_after_swap_and_retention(meta: Arc<dyn Metadata>) {
    let (t, all) = committed_chunks(&meta, &[2, 3, 1, 4]).await;
    let keys = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let every = keys(&["seg-0", "seg-1", "seg-2", "seg-3", "l1", "orphan"]);
    assert_eq!(
        meta.unreferenced_objects(every.clone()).await.expect("unreferenced"),
        keys(&["l1", "orphan"])
    );
    let r = parquet_replacement(&all[..2], "l1", 2);
    assert_eq!(meta.replace_chunks(r).await.expect("replace"), ReplaceOutcome::Replaced);
    assert_eq!(
        meta.unreferenced_objects(every.clone()).await.expect("unreferenced"),
        keys(&["seg-0", "seg-1", "orphan"])
    );
    meta.advance_log_start(t.id, 0, 6).await.expect("advance");
    assert_eq!(
        meta.unreferenced_objects(every.clone()).await.expect("unreferenced"),
        keys(&["seg-0", "seg-1", "seg-2", "l1", "orphan"])
    );
    meta.delete_topic(&t.name).await.expect("delete");
    assert_eq!(
        meta.unreferenced_objects(every.clone()).await.expect("unreferenced"),
        every
    );
    assert!(meta.unreferenced_objects(Vec::new()).await.expect("none").is_empty());
}
