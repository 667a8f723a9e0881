//! Streaming consume: the records endpoint with `Accept: text/event-stream`
//! (Server-Sent Events: one event per batch, `id:` the next offset, resumable
//! with `Last-Event-ID`, a ping at least every 15 s) or
//! `Accept: application/x-ndjson` (one JSON record per line). Both follow the
//! tail until the client goes away or the node shuts down.
//!
//! Memory per connection is bounded: one read of at most `max_bytes` is in
//! flight and the channel to the socket holds one encoded batch, so a slow
//! client slows its own reads instead of buffering without limit.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use silt_agent::{Agent, ReadRequest};
use silt_types::TopicName;
use tokio::sync::mpsc;

use crate::ApiError;
use crate::wire::{Encoding, ReadResponse};

/// Longest silence on an SSE stream before a ping comment.
pub(crate) const PING_EVERY: Duration = Duration::from_secs(15);

/// Shortest long-poll of a stream at the high watermark.
const MIN_POLL: Duration = Duration::from_secs(1);

/// How the client asked to be streamed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamFormat {
    /// `text/event-stream`.
    Sse,
    /// `application/x-ndjson`.
    Ndjson,
}

impl StreamFormat {
    /// The streaming format named by an `Accept` header, if any.
    pub(crate) fn from_accept(accept: Option<&HeaderValue>) -> Option<Self> {
        let accept = accept?.to_str().ok()?;
        accept.split(',').find_map(|part| {
            let mime = part.split(';').next().unwrap_or("").trim();
            if mime.eq_ignore_ascii_case("text/event-stream") {
                Some(Self::Sse)
            } else if mime.eq_ignore_ascii_case("application/x-ndjson") {
                Some(Self::Ndjson)
            } else {
                None
            }
        })
    }
}

/// Parameters of one streaming read.
pub(crate) struct StreamParams {
    pub(crate) topic: TopicName,
    pub(crate) first: ReadRequest,
    pub(crate) encoding: Encoding,
    pub(crate) format: StreamFormat,
}

/// Starts a streaming response. The first read happens before the response
/// is sent, so a bad offset or topic still gets a normal error status.
pub(crate) async fn stream_records(agent: Agent, params: StreamParams) -> Result<Response, ApiError> {
    let StreamParams {
        topic,
        first,
        encoding,
        format,
    } = params;
    let mut req = first;
    // Each long-poll waits at least a second: a client's `wait_ms=0` must not
    // turn an idle stream into a loop of metadata reads (and SSE pings).
    let wait = req.wait.clamp(MIN_POLL, PING_EVERY);
    req.wait = Duration::ZERO;
    let (next_offset, first_chunk) = agent
        .read_map(&topic, req.clone(), move |r| encode_result(format, r, encoding))
        .await?;
    let first_chunk = first_chunk?;
    req.offset = next_offset;

    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let stopping = agent.stopping().clone();
    tokio::spawn(async move {
        if let Some(chunk) = first_chunk
            && tx.send(chunk).await.is_err()
        {
            return;
        }
        loop {
            let read = ReadRequest { wait, ..req.clone() };
            let outcome = tokio::select! {
                r = agent.read_map(&topic, read, move |r| encode_result(format, r, encoding)) => r,
                () = tx.closed() => return,
                () = stopping.cancelled() => return,
            };
            let chunk = match outcome.map_err(ApiError::from).and_then(|(next_offset, encoded)| {
                req.offset = next_offset;
                encoded
            }) {
                Ok(Some(chunk)) => chunk,
                Ok(None) if format == StreamFormat::Sse => Bytes::from_static(b": ping\n\n"),
                Ok(None) => continue,
                Err(e) => {
                    let _ = tx.send(error_chunk(format, &e)).await;
                    return;
                }
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });

    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let content_type = match format {
        StreamFormat::Sse => "text/event-stream",
        StreamFormat::Ndjson => "application/x-ndjson",
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A read's next offset and its encoded batch; runs where the read ran (on
/// the replay lane for a replay), so encoding a replay never takes the tail's CPU.
fn encode_result(
    format: StreamFormat,
    result: silt_agent::ReadResult,
    encoding: Encoding,
) -> (u64, Result<Option<Bytes>, ApiError>) {
    let next_offset = result.next_offset;
    let encoded = crate::api::read_response(result, encoding).and_then(|body| encode(format, &body));
    (next_offset, encoded)
}

/// Encodes one batch; `None` for an empty batch (nothing to send).
fn encode(format: StreamFormat, body: &ReadResponse) -> Result<Option<Bytes>, ApiError> {
    if body.records.is_empty() {
        return Ok(None);
    }
    let internal = |e: serde_json::Error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string());
    let mut out = Vec::new();
    match format {
        StreamFormat::Sse => {
            out.extend_from_slice(format!("id: {}\nevent: records\ndata: ", body.next_offset).as_bytes());
            serde_json::to_writer(&mut out, body).map_err(internal)?;
            out.extend_from_slice(b"\n\n");
        }
        StreamFormat::Ndjson => {
            for record in &body.records {
                serde_json::to_writer(&mut out, record).map_err(internal)?;
                out.push(b'\n');
            }
        }
    }
    Ok(Some(Bytes::from(out)))
}

fn error_chunk(format: StreamFormat, e: &ApiError) -> Bytes {
    let body = serde_json::json!({"error": {"code": e.code(), "message": e.message()}});
    match format {
        StreamFormat::Sse => Bytes::from(format!("event: error\ndata: {body}\n\n")),
        StreamFormat::Ndjson => Bytes::from(format!("{body}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_selects_format() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(
            StreamFormat::from_accept(Some(&h("text/event-stream"))),
            Some(StreamFormat::Sse)
        );
        assert_eq!(
            StreamFormat::from_accept(Some(&h("application/json, application/x-ndjson;q=0.9"))),
            Some(StreamFormat::Ndjson)
        );
        assert_eq!(StreamFormat::from_accept(Some(&h("application/json"))), None);
        assert_eq!(StreamFormat::from_accept(None), None);
    }
}
