//! Errors of the storage layer, in the few kinds callers act on.

/// What can go wrong talking to the object store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object store URL cannot be used.
    #[error("invalid object store url={url}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The object does not exist (deleted by compaction or GC, or never written).
    #[error("object not found key={0}")]
    NotFound(String),
    /// A create-only put found the key taken by different bytes.
    #[error("object already exists with other content key={0}")]
    Conflict(String),
    /// The object came back shorter or longer than asked for.
    #[error("object truncated key={key} expected={expected} actual={actual}")]
    Truncated {
        /// Object key.
        key: String,
        /// Bytes asked for.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// One attempt took longer than its timeout.
    #[error("object store request timed out op={op} key={key} after={after:?}")]
    Timeout {
        /// Operation that timed out.
        op: &'static str,
        /// Object key.
        key: String,
        /// The per-attempt timeout.
        after: std::time::Duration,
    },
    /// The store refused the request for a reason retrying cannot fix.
    #[error("object store refused op={op} key={key}: {source}")]
    Permanent {
        /// Operation that failed.
        op: &'static str,
        /// Object key.
        key: String,
        /// Underlying error.
        #[source]
        source: object_store::Error,
    },
    /// The store failed or is unreachable; retrying later may succeed.
    #[error("object store unavailable op={op} key={key}: {source}")]
    Unavailable {
        /// Operation that failed.
        op: &'static str,
        /// Object key.
        key: String,
        /// Underlying error.
        #[source]
        source: object_store::Error,
    },
}

impl StorageError {
    /// Whether repeating the request may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Truncated { .. } | Self::Timeout { .. } | Self::Unavailable { .. } => true,
            Self::InvalidUrl { .. } | Self::NotFound(_) | Self::Conflict(_) | Self::Permanent { .. } => false,
        }
    }

    /// Classifies an `object_store` error of operation `op` on `key`.
    pub fn from_store(op: &'static str, key: &str, source: object_store::Error) -> Self {
        use object_store::Error as E;
        match source {
            E::NotFound { .. } => Self::NotFound(key.to_owned()),
            source @ (E::AlreadyExists { .. }
            | E::Precondition { .. }
            | E::NotModified { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::InvalidPath { .. }
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::UnknownConfigurationKey { .. }) => Self::Permanent {
                op,
                key: key.to_owned(),
                source,
            },
            source => Self::Unavailable {
                op,
                key: key.to_owned(),
                source,
            },
        }
    }
}
