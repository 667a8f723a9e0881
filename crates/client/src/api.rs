//! A small typed client for the v1 HTTP API, with bounded retries of
//! overload answers (429 and 503 with `Retry-After`).

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ClientError, Result};
use crate::wire::*;

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of a request that does not long-poll.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest honoured `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Largest error body kept for the message.
const MAX_ERROR_TEXT: usize = 300;

/// Error codes after which a produce must not be sent again: the records
/// may already be visible, and a retry could write them twice.
const NOT_RETRYABLE_PRODUCE: &[&str] = &["commit_indeterminate"];

/// A handle on one agent's HTTP API.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Url,
    attempts: u32,
}

/// Parses and checks a base URL such as `http://127.0.0.1:8080`.
pub fn parse_base_url(raw: &str) -> Result<Url> {
    let url = Url::parse(raw).map_err(|e| ClientError::Usage(format!("invalid --url {raw:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(ClientError::Usage(format!(
            "invalid --url {raw:?}: expected http://HOST:PORT"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::Usage(format!(
            "invalid --url {raw:?}: no query or fragment allowed"
        )));
    }
    Ok(url)
}

/// Seconds to wait from a `Retry-After` header (delay-seconds form only),
/// capped so a confused server cannot park the client for hours.
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: u64 = value?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Backoff when the server gave no `Retry-After`: 250 ms doubling, at most 5 s.
fn backoff(attempt: u32) -> Duration {
    let ms = 250u64.saturating_mul(1u64 << attempt.min(5));
    Duration::from_millis(ms.min(5_000))
}

/// Builds the client error for a non-2xx answer.
pub fn server_error(status: u16, body: &[u8]) -> ClientError {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return ClientError::Server {
            status,
            code: e.error.code.unwrap_or_else(|| format!("http_{status}")),
            message: e.error.message.unwrap_or_default(),
        };
    }
    let text = String::from_utf8_lossy(body);
    let mut message: String = text.trim().chars().take(MAX_ERROR_TEXT).collect();
    if message.is_empty() {
        message = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error")
            .to_owned();
    }
    ClientError::Server {
        status,
        code: format!("http_{status}"),
        message,
    }
}

fn transport(url: &Url, e: &reqwest::Error) -> ClientError {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if !text.contains(url.host_str().unwrap_or("")) {
        let mut shown = url.clone();
        shown.set_query(None);
        text = format!("{shown}: {text}");
    }
    ClientError::Transport(text)
}

/// A request to send, possibly several times.
struct Call<'a> {
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    timeout: Duration,
    no_retry_codes: &'a [&'a str],
}

impl Api {
    /// A client for the agent at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Result<Self> {
        let base = parse_base_url(base)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            attempts: 8,
        })
    }

    /// Sets how many times a request is sent at most (at least once).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of `segments` below the base, each segment percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn call(&self, call: Call<'_>) -> Result<(u16, Vec<u8>)> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(call.method.clone(), call.url.clone())
                .timeout(call.timeout);
            if let Some(body) = &call.body {
                req = req.header("content-type", "application/json").body(body.clone());
            }
            let resp = req.send().await.map_err(|e| transport(&call.url, &e))?;
            let status = resp.status();
            let wait = retry_after(
                resp.headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
            );
            let body = resp.bytes().await.map_err(|e| transport(&call.url, &e))?;
            if status.is_success() {
                return Ok((status.as_u16(), body.to_vec()));
            }
            let err = server_error(status.as_u16(), &body);
            let overloaded = matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE);
            let forbidden = err.code().is_some_and(|c| call.no_retry_codes.contains(&c));
            if !overloaded || forbidden || attempt >= self.attempts {
                return Err(err);
            }
            tokio::time::sleep(wait.unwrap_or_else(|| backoff(attempt))).await;
        }
    }

    async fn json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        let what = format!("{} {}", call.method, call.url.path());
        let (_, body) = self.call(call).await?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::BadResponse(format!("cannot parse the answer to {what}: {e}")))
    }

    fn get(&self, url: Url) -> Call<'static> {
        Call {
            method: Method::GET,
            url,
            body: None,
            timeout: REQUEST_TIMEOUT,
            no_retry_codes: &[],
        }
    }

    fn post<B: Serialize>(&self, url: Url, body: &B) -> Result<Call<'static>> {
        let body =
            serde_json::to_vec(body).map_err(|e| ClientError::Usage(format!("cannot encode the request body: {e}")))?;
        Ok(Call {
            method: Method::POST,
            url,
            body: Some(body),
            timeout: REQUEST_TIMEOUT,
            no_retry_codes: &[],
        })
    }

    /// `POST /v1/topics`.
    pub async fn create_topic(&self, req: &CreateTopic) -> Result<TopicDescription> {
        self.json(self.post(self.url(&["v1", "topics"]), req)?).await
    }

    /// `GET /v1/topics`.
    pub async fn list_topics(&self) -> Result<TopicList> {
        self.json(self.get(self.url(&["v1", "topics"]))).await
    }

    /// `GET /v1/topics/{topic}`.
    pub async fn describe_topic(&self, topic: &str) -> Result<TopicDescription> {
        self.json(self.get(self.url(&["v1", "topics", topic]))).await
    }

    /// `DELETE /v1/topics/{topic}`.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let mut call = self.get(self.url(&["v1", "topics", topic]));
        call.method = Method::DELETE;
        self.call(call).await.map(|_| ())
    }

    /// `POST /v1/topics/{topic}/records`; never retried after an
    /// indeterminate commit.
    pub async fn produce(&self, topic: &str, req: &ProduceRequest<'_>) -> Result<ProduceResponse> {
        let mut call = self.post(self.url(&["v1", "topics", topic, "records"]), req)?;
        call.no_retry_codes = NOT_RETRYABLE_PRODUCE;
        self.json(call).await
    }

    /// `GET /v1/topics/{topic}/partitions/{p}/records`.
    pub async fn read(&self, topic: &str, partition: u32, query: &ReadQuery) -> Result<ReadResponse> {
        let p = partition.to_string();
        let mut url = self.url(&["v1", "topics", topic, "partitions", &p, "records"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("offset", &query.offset.to_string());
            q.append_pair("max_records", &query.max_records.to_string());
            if let Some(max_bytes) = query.max_bytes {
                q.append_pair("max_bytes", &max_bytes.to_string());
            }
            if query.wait_ms > 0 {
                q.append_pair("wait_ms", &query.wait_ms.to_string());
            }
            if query.base64 {
                q.append_pair("encoding", "base64");
            }
        }
        let mut call = self.get(url);
        call.timeout = REQUEST_TIMEOUT + Duration::from_millis(query.wait_ms);
        self.json(call).await
    }

    /// `GET /v1/topics/{topic}/partitions/{p}/offsets?timestamp_ms=`.
    pub async fn offset_for_timestamp(&self, topic: &str, partition: u32, timestamp_ms: i64) -> Result<u64> {
        let p = partition.to_string();
        let mut url = self.url(&["v1", "topics", topic, "partitions", &p, "offsets"]);
        url.query_pairs_mut()
            .append_pair("timestamp_ms", &timestamp_ms.to_string());
        let r: OffsetResponse = self.json(self.get(url)).await?;
        Ok(r.offset)
    }

    /// `POST /v1/groups/{group}/offsets`.
    pub async fn commit_group(&self, group: &str, req: &CommitRequest) -> Result<()> {
        let call = self.post(self.url(&["v1", "groups", group, "offsets"]), req)?;
        self.call(call).await.map(|_| ())
    }

    /// `GET /v1/groups/{group}/offsets`.
    pub async fn group_offsets(&self, group: &str) -> Result<GroupOffsets> {
        self.json(self.get(self.url(&["v1", "groups", group, "offsets"]))).await
    }
}

/// Parameters of one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadQuery {
    /// First offset wanted.
    pub offset: u64,
    /// Most records.
    pub max_records: u64,
    /// Most bytes (server default when unset).
    pub max_bytes: Option<u64>,
    /// Long-poll time when nothing is there yet.
    pub wait_ms: u64,
    /// Ask for base64 keys and values.
    pub base64: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_from_encoded_segments() {
        let api = Api::new("http://127.0.0.1:8080").expect("api");
        assert_eq!(
            api.url(&["v1", "topics", "a b/c"]).as_str(),
            "http://127.0.0.1:8080/v1/topics/a%20b%2Fc"
        );
        let api = Api::new("http://host:1/prefix/").expect("api");
        assert_eq!(api.url(&["v1", "topics"]).as_str(), "http://host:1/prefix/v1/topics");
    }

    #[test]
    fn bad_base_urls_are_usage_errors() {
        for bad in ["127.0.0.1:8080", "ftp://x", "not a url", "http://x/?a=b", "mailto:x@y"] {
            let e = Api::new(bad).expect_err(bad);
            assert_eq!(e.exit_status(), 2, "{bad}");
        }
    }

    #[test]
    fn retry_after_is_parsed_and_capped() {
        assert_eq!(retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some(" 1 ")), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(Some("99999")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
        assert!(backoff(30) <= Duration::from_secs(5));
        assert!(backoff(1) < backoff(2));
    }

    #[test]
    fn error_bodies_become_client_errors() {
        let e = server_error(404, br#"{"error":{"code":"unknown_topic","message":"no topic x"}}"#);
        assert_eq!(e.to_string(), "unknown_topic: no topic x");
        let e = server_error(502, b"<html>bad gateway</html>");
        assert_eq!(e.to_string(), "http_502: <html>bad gateway</html>");
        let e = server_error(500, b"");
        assert_eq!(e.to_string(), "http_500: Internal Server Error");
        let e = server_error(400, br#"{"error":{}}"#);
        assert_eq!(e.code(), Some("http_400"));
        let long = vec![b'x'; 10_000];
        assert!(server_error(500, &long).to_string().len() < 400);
    }
}
