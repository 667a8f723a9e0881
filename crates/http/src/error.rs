//! The one mapping from errors to HTTP statuses and the contract's error body
//! `{"error": {"code", "message"}}`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use silt_agent::AgentError;
use silt_storage::StorageError;

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// A client mistake or other error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The status this error is sent with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn retry(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        Self::from_agent(&e)
    }
}

impl ApiError {
    fn from_agent(e: &AgentError) -> Self {
        let message = e.to_string();
        // Exhaustive on purpose: a new error kind must choose its status here.
        match e {
            AgentError::Shared(inner) => Self::from_agent(inner),
            AgentError::Invalid(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_request", message),
            AgentError::UnknownTopic(_) => Self::new(StatusCode::NOT_FOUND, "unknown_topic", message),
            AgentError::UnknownPartition { .. } => Self::new(StatusCode::NOT_FOUND, "unknown_partition", message),
            AgentError::TopicExists(_) => Self::new(StatusCode::CONFLICT, "topic_exists", message),
            AgentError::BelowLogStart { .. } => Self::new(StatusCode::GONE, "offset_below_log_start", message),
            AgentError::PastHighWatermark { .. } => {
                Self::new(StatusCode::RANGE_NOT_SATISFIABLE, "offset_out_of_range", message)
            }
            AgentError::Overloaded { retry_after } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message).retry(*retry_after)
            }
            AgentError::ShuttingDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message).retry(Duration::from_secs(1))
            }
            AgentError::UploadFailed(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", message).retry(Duration::from_secs(1))
            }
            AgentError::CommitFailed(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "commit_failed", message).retry(Duration::from_secs(1))
            }
            AgentError::CommitIndeterminate(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "commit_indeterminate", message)
                    .retry(Duration::from_secs(1))
            }
            AgentError::Corrupt(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "data_corrupt", message),
            AgentError::Storage(StorageError::NotFound(_)) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "object_missing", message).retry(Duration::from_secs(1))
            }
            AgentError::Storage(
                StorageError::InvalidUrl { .. }
                | StorageError::Conflict(_)
                | StorageError::Truncated { .. }
                | StorageError::Timeout { .. }
                | StorageError::Permanent { .. }
                | StorageError::Unavailable { .. },
            ) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", message).retry(Duration::from_secs(1))
            }
            AgentError::MetaUnavailable(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "metadata_unavailable", message)
                    .retry(Duration::from_secs(1))
            }
            AgentError::Internal(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
            AgentError::StaleGeneration { .. } => Self::new(StatusCode::CONFLICT, "stale_generation", message),
            AgentError::OffsetRegression { .. } => Self::new(StatusCode::CONFLICT, "offset_regression", message),
            AgentError::UnknownProducer(_) => Self::new(StatusCode::NOT_FOUND, "unknown_producer", message),
            AgentError::ProducerFenced { .. } => Self::new(StatusCode::CONFLICT, "producer_fenced", message),
            AgentError::OutOfOrderSequence { .. } => Self::new(StatusCode::CONFLICT, "out_of_order_sequence", message),
            AgentError::CommitConflict => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "commit_conflict", message).retry(Duration::from_secs(1))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = self.code, message = %self.message, "request failed");
        }
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.code == "request_too_large" {
            // The body was not read to its end: the connection cannot carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(after) = self.retry_after {
            let secs = after.as_secs().max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
