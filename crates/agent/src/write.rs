//! The write path (design §3): admit → open segment → seal → stage in cache
//! → upload → commit in seal order → acknowledge.
//!
//! One open segment collects records of every topic and partition. Sealed
//! segments upload concurrently (bounded), but a single committer task
//! commits them strictly in seal order, so a client's successive requests
//! get increasing offsets. The upload→commit→ack steps run in tasks of
//! their own: a client that disconnects cannot abandon them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use silt_meta::{ChunkCommit, ChunkOutcome, MetaError, ProducerAppend, ProducerCheck, SegmentCommit};
use silt_segment::SegmentWriter;
use silt_types::{Offset, PartitionId, SegmentId, TopicId};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info_span, warn};

use crate::metrics::AdmittedBytes;
use crate::{AgentError, Shared};

/// Why a segment was sealed; a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SealReason {
    /// Reached `segment_max_bytes`.
    Size,
    /// Oldest record waited `flush_interval`.
    Time,
    /// The agent is shutting down.
    Shutdown,
}

impl SealReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Size => "size",
            Self::Time => "time",
            Self::Shutdown => "shutdown",
        }
    }
}

/// The answer a produce waits for: offset of each of its batches' first record.
pub(crate) type AckResult = Result<(Vec<Offset>, SegmentId), Arc<AgentError>>;

/// One produce request waiting in a segment.
struct Waiter {
    /// Per batch of the request: its partition and where its first record sits in the chunk.
    slots: Vec<(TopicId, PartitionId, u32)>,
    tx: oneshot::Sender<AckResult>,
    /// Admission bytes, released when the request is answered.
    _permit: (OwnedSemaphorePermit, AdmittedBytes),
}

#[derive(Default)]
struct PartitionBuf {
    batches: Vec<Bytes>,
    records: u32,
    max_timestamp_ms: i64,
    /// Idempotent producers' batches, validated again inside the commit.
    producers: Vec<ProducerAppend>,
}

/// The segment being filled.
#[derive(Default)]
pub(crate) struct OpenSegment {
    parts: BTreeMap<(TopicId, PartitionId), PartitionBuf>,
    bytes: usize,
    waiters: Vec<Waiter>,
    opened_at: Option<Instant>,
    next_seq: u64,
    closed: bool,
}

/// A sealed segment on its way to the store.
pub(crate) struct Sealed {
    seq: u64,
    id: SegmentId,
    reason: SealReason,
    parts: BTreeMap<(TopicId, PartitionId), PartitionBuf>,
    bytes: usize,
    waiters: Vec<Waiter>,
}

/// One batch of one request, ready to join the open segment.
pub(crate) struct PendingBatch {
    pub(crate) topic: TopicId,
    pub(crate) partition: PartitionId,
    pub(crate) bytes: Bytes,
    pub(crate) records: u32,
    pub(crate) max_timestamp_ms: i64,
    /// `(producer id, epoch, base sequence)` of an idempotent producer's batch.
    pub(crate) producer: Option<(i64, i16, i32)>,
}

/// Handle to the running pipeline tasks.
pub(crate) struct Pipeline {
    pub(crate) sealed_tx: mpsc::UnboundedSender<Sealed>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl OpenSegment {
    fn take(&mut self, reason: SealReason, id: SegmentId) -> Option<Sealed> {
        if self.parts.is_empty() {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.opened_at = None;
        let bytes = std::mem::take(&mut self.bytes);
        Some(Sealed {
            seq,
            id,
            reason,
            parts: std::mem::take(&mut self.parts),
            bytes,
            waiters: std::mem::take(&mut self.waiters),
        })
    }
}

/// Adds one request's batches to the open segment and returns the receiver
/// of its acknowledgement.
pub(crate) fn append(
    shared: &Shared,
    batches: Vec<PendingBatch>,
    permit: (OwnedSemaphorePermit, AdmittedBytes),
) -> Result<oneshot::Receiver<AckResult>, AgentError> {
    let (tx, rx) = oneshot::channel();
    let sealed = {
        let mut guard = shared.open.lock().expect("open segment lock poisoned");
        let open = &mut *guard;
        if open.closed {
            return Err(AgentError::ShuttingDown);
        }
        let mut slots = Vec::with_capacity(batches.len());
        for batch in batches {
            let part = open.parts.entry((batch.topic, batch.partition)).or_default();
            slots.push((batch.topic, batch.partition, part.records));
            if let Some((producer_id, producer_epoch, base_sequence)) = batch.producer {
                part.producers.push(ProducerAppend {
                    producer_id,
                    producer_epoch,
                    base_sequence,
                    record_count: batch.records,
                    offset_in_chunk: part.records,
                });
            }
            part.records += batch.records;
            part.max_timestamp_ms = if part.batches.is_empty() {
                batch.max_timestamp_ms
            } else {
                part.max_timestamp_ms.max(batch.max_timestamp_ms)
            };
            open.bytes += batch.bytes.len();
            part.batches.push(batch.bytes);
        }
        open.waiters.push(Waiter {
            slots,
            tx,
            _permit: permit,
        });
        if open.opened_at.is_none() {
            open.opened_at = Some(Instant::now());
            shared.flush_wakeup.notify_one();
        }
        if open.bytes >= shared.config.segment_max_bytes || chunk_records_full(open) {
            open.take(SealReason::Size, shared.ids.segment_id())
        } else {
            None
        }
    };
    if let Some(sealed) = sealed {
        send_sealed(shared, sealed);
    }
    Ok(rx)
}

/// A chunk's record count must fit the format's u32; seal well before.
fn chunk_records_full(open: &OpenSegment) -> bool {
    open.parts.values().any(|p| p.records > (u32::MAX / 2))
}

fn send_sealed(shared: &Shared, sealed: Sealed) {
    shared.metrics.segment_sealed(sealed.reason, sealed.bytes);
    if let Some(tx) = shared.pipeline_tx.lock().expect("pipeline lock poisoned").as_ref()
        && let Err(mpsc::error::SendError(sealed)) = tx.send(sealed)
    {
        fail_waiters(sealed.waiters, AgentError::ShuttingDown);
    }
}

/// Seals the open segment now (if it has anything); used by the timer and shutdown.
pub(crate) fn seal_now(shared: &Shared, reason: SealReason) {
    let sealed = shared
        .open
        .lock()
        .expect("open segment lock poisoned")
        .take(reason, shared.ids.segment_id());
    if let Some(sealed) = sealed {
        send_sealed(shared, sealed);
    }
}

/// Stops admitting records and seals what the open segment holds.
pub(crate) fn close_and_seal(shared: &Shared) {
    let sealed = {
        let mut open = shared.open.lock().expect("open segment lock poisoned");
        open.closed = true;
        open.take(SealReason::Shutdown, shared.ids.segment_id())
    };
    if let Some(sealed) = sealed {
        send_sealed(shared, sealed);
    }
}

fn fail_waiters(waiters: Vec<Waiter>, error: AgentError) {
    let error = Arc::new(error);
    for waiter in waiters {
        let _ = waiter.tx.send(Err(error.clone()));
    }
}

/// Seals the open segment when its oldest record has waited `flush_interval`.
pub(crate) async fn flush_timer(shared: Arc<Shared>) {
    loop {
        let opened_at = shared.open.lock().expect("open segment lock poisoned").opened_at;
        match opened_at {
            None => {
                tokio::select! {
                    () = shared.flush_wakeup.notified() => {}
                    () = shared.stopping.cancelled() => return,
                }
            }
            Some(at) => {
                let deadline = at + shared.config.flush_interval;
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {
                        let due = {
                            let open = shared.open.lock().expect("open segment lock poisoned");
                            open.opened_at.is_some_and(|at| at + shared.config.flush_interval <= Instant::now())
                        };
                        if due {
                            seal_now(&shared, SealReason::Time);
                        }
                    }
                    () = shared.stopping.cancelled() => return,
                }
            }
        }
    }
}

/// Starts the upload and commit tasks.
pub(crate) fn start_pipeline(shared: &Arc<Shared>) -> Pipeline {
    let (sealed_tx, mut sealed_rx) = mpsc::unbounded_channel::<Sealed>();
    let (upload_tx, mut upload_rx) =
        mpsc::channel::<(Sealed, JoinHandle<Result<Uploaded, AgentError>>)>(shared.config.max_uploads_in_flight.max(1));

    let uploader = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some(sealed) = sealed_rx.recv().await {
                let parts: Vec<((TopicId, PartitionId), Vec<Bytes>)> =
                    sealed.parts.iter().map(|(k, p)| (*k, p.batches.clone())).collect();
                let task_shared = shared.clone();
                let seq = sealed.seq;
                let id = sealed.id;
                let handle = tokio::spawn(
                    async move { upload(&task_shared, parts, id).await }
                        .instrument(info_span!("upload", seq, segment = %id)),
                );
                // Bounded: at most `max_uploads_in_flight` uploads wait for the committer.
                if upload_tx.send((sealed, handle)).await.is_err() {
                    error!("committer stopped before the uploader");
                    return;
                }
            }
        })
    };

    let committer = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some((sealed, handle)) = upload_rx.recv().await {
                let uploaded = match handle.await {
                    Ok(result) => result,
                    Err(e) => Err(AgentError::Internal(format!("upload task failed: {e}"))),
                };
                let (seq, id) = (sealed.seq, sealed.id);
                commit_and_ack(&shared, sealed, uploaded)
                    .instrument(info_span!("commit", seq, segment = %id))
                    .await;
            }
        })
    };

    Pipeline {
        sealed_tx,
        tasks: vec![uploader, committer],
    }
}

/// What an upload produced.
pub(crate) struct Uploaded {
    key: String,
    size: u64,
    chunks: Vec<silt_segment::ChunkEntry>,
    upload_time: Duration,
}

async fn upload(
    shared: &Shared,
    parts: Vec<((TopicId, PartitionId), Vec<Bytes>)>,
    id: SegmentId,
) -> Result<Uploaded, AgentError> {
    let mut writer = SegmentWriter::new();
    for ((topic, partition), batches) in &parts {
        writer
            .add_chunk(*topic, *partition, batches)
            .map_err(|e| AgentError::Internal(format!("segment encode failed: {e}")))?;
    }
    let (bytes, chunks) = writer.finish();
    let key = shared.layout.segment_key(id);
    let size = bytes.len() as u64;
    // Stage in the local cache first: tail readers find it there.
    shared.cache.insert(key.as_ref(), bytes.clone());
    let started = Instant::now();
    if let Err(e) = shared.store.put_new(&key, bytes).await {
        shared.cache.remove(key.as_ref());
        warn!(key = %key, error = %e, "segment upload failed");
        shared.metrics.upload_failed();
        return Err(AgentError::UploadFailed(e.to_string()));
    }
    let upload_time = started.elapsed();
    shared.metrics.uploaded(size, upload_time);
    debug!(key = %key, size, "segment uploaded");
    Ok(Uploaded {
        key: key.to_string(),
        size,
        chunks,
        upload_time,
    })
}

async fn commit_and_ack(shared: &Shared, sealed: Sealed, uploaded: Result<Uploaded, AgentError>) {
    let uploaded = match uploaded {
        Ok(u) => u,
        Err(e) => {
            fail_waiters(sealed.waiters, e);
            return;
        }
    };
    let commit = SegmentCommit {
        object_key: uploaded.key.clone(),
        object_size: uploaded.size,
        chunks: uploaded
            .chunks
            .iter()
            .map(|c| ChunkCommit {
                topic: c.topic,
                partition: c.partition,
                record_count: c.record_count,
                byte_offset: c.byte_offset,
                byte_len: c.byte_len,
                max_timestamp_ms: c.max_timestamp_ms,
                producers: sealed
                    .parts
                    .get(&(c.topic, c.partition))
                    .map(|p| p.producers.clone())
                    .unwrap_or_default(),
            })
            .collect(),
    };
    let started = Instant::now();
    let outcomes = match shared.meta.commit_segment(commit.clone()).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            warn!(key = %uploaded.key, error = %e, "segment commit failed");
            shared.metrics.commit_failed();
            let error = match e {
                MetaError::Indeterminate(msg) | MetaError::Unavailable(msg) => AgentError::CommitIndeterminate(msg),
                other => AgentError::CommitFailed(other.to_string()),
            };
            fail_waiters(sealed.waiters, error);
            return;
        }
    };
    shared.metrics.committed(started.elapsed());
    shared
        .metrics
        .segment_committed(&shared.topic_names, &commit, &outcomes);
    debug!(key = %uploaded.key, chunks = outcomes.len(), upload_ms = uploaded.upload_time.as_millis() as u64, "segment committed");

    let mut results: HashMap<(TopicId, PartitionId), ChunkResult> = HashMap::with_capacity(outcomes.len());
    for (chunk, outcome) in commit.chunks.iter().zip(&outcomes) {
        let result = match outcome {
            ChunkOutcome::Committed { base_offset } => {
                let last = *base_offset + u64::from(chunk.record_count) - 1;
                shared.locations.insert(silt_meta::ChunkLocation {
                    topic: chunk.topic,
                    partition: chunk.partition,
                    base_offset: *base_offset,
                    last_offset: last,
                    object_key: uploaded.key.clone(),
                    object_size: uploaded.size,
                    byte_offset: chunk.byte_offset,
                    byte_len: chunk.byte_len,
                    max_timestamp_ms: chunk.max_timestamp_ms,
                    format: silt_meta::ChunkFormat::Segment,
                    footer_len: 0,
                });
                shared.hwm.advance(chunk.topic, chunk.partition, last + 1);
                ChunkResult::Base(*base_offset)
            }
            ChunkOutcome::TopicGone => {
                shared.topics.invalidate_id(chunk.topic);
                ChunkResult::Gone
            }
            ChunkOutcome::ProducerRejected(check) => {
                warn!(topic = %chunk.topic, partition = chunk.partition, ?check, "chunk rejected by producer state, its requests must retry");
                let single = match chunk.producers.as_slice() {
                    [one] => Some(*one),
                    _ => None,
                };
                ChunkResult::Rejected(*check, single)
            }
        };
        results.insert((chunk.topic, chunk.partition), result);
    }
    debug_assert_eq!(sealed.parts.len(), results.len());
    for waiter in sealed.waiters {
        let answer = waiter
            .slots
            .iter()
            .map(|(topic, partition, rel)| match results.get(&(*topic, *partition)) {
                Some(ChunkResult::Base(base)) => Ok(base + u64::from(*rel)),
                // The duplicate was this very request, retried: it already has offsets.
                Some(ChunkResult::Rejected(ProducerCheck::Duplicate { base_offset }, Some(append)))
                    if append.offset_in_chunk == *rel =>
                {
                    Ok(*base_offset)
                }
                Some(ChunkResult::Rejected(check, Some(append))) if append.offset_in_chunk == *rel => {
                    Err(Arc::new(producer_error(*check, append.producer_id)))
                }
                Some(ChunkResult::Rejected(..)) => Err(Arc::new(AgentError::CommitConflict)),
                Some(ChunkResult::Gone) | None => Err(Arc::new(AgentError::UnknownTopic(format!(
                    "id={topic} (deleted while producing)"
                )))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|offsets| (offsets, sealed.id));
        let _ = waiter.tx.send(answer);
    }
}

/// What one committed chunk means for the requests inside it.
enum ChunkResult {
    Base(Offset),
    Gone,
    /// Rejected by producer state; the append, if it was the chunk's only one.
    Rejected(ProducerCheck, Option<ProducerAppend>),
}

/// The client-facing error of a producer-state verdict on `producer_id`.
pub(crate) fn producer_error(check: ProducerCheck, producer_id: i64) -> AgentError {
    match check {
        ProducerCheck::Fenced { current_epoch } => AgentError::ProducerFenced { current_epoch },
        ProducerCheck::OutOfOrder { expected_sequence } => AgentError::OutOfOrderSequence {
            expected: expected_sequence,
        },
        ProducerCheck::UnknownProducer => AgentError::UnknownProducer(producer_id),
        ProducerCheck::Accept | ProducerCheck::Duplicate { .. } => AgentError::CommitConflict,
    }
}

/// Keeps the pipeline's sender so sealing can reach it; `None` once shut down.
pub(crate) type PipelineSender = Mutex<Option<mpsc::UnboundedSender<Sealed>>>;
