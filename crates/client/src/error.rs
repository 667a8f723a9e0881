//! The client's error type and its mapping to exit codes and messages.

use std::fmt;
use std::process::ExitCode;

/// Everything that can make a command fail.
#[derive(Debug)]
pub enum ClientError {
    /// A mistake on the caller's side: bad flags, unreadable input file,
    /// non-UTF-8 input without `--binary`. Exit code 2.
    Usage(String),
    /// The server answered with an error status. Exit code 1.
    Server {
        /// HTTP status.
        status: u16,
        /// The contract's machine-readable code (or `http_<status>` when the
        /// body was not the contract's error body).
        code: String,
        /// Human-readable message.
        message: String,
    },
    /// The request never got an answer (connect, timeout, reset). Exit code 1.
    Transport(String),
    /// The server answered 2xx with a body we could not understand. Exit code 1.
    BadResponse(String),
    /// Writing the output failed (disk full, closed terminal). Exit code 1.
    Io(String),
    /// Standard output was closed by the reader (`silt consume | head`):
    /// not an error, the command simply stops. Exit code 0.
    BrokenPipe,
}

impl ClientError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            Self::BrokenPipe => ExitCode::SUCCESS,
            Self::Server { .. } | Self::Transport(_) | Self::BadResponse(_) | Self::Io(_) => ExitCode::from(1),
        }
    }

    /// The numeric exit code (for tests and callers that need a number).
    pub fn exit_status(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::BrokenPipe => 0,
            Self::Server { .. } | Self::Transport(_) | Self::BadResponse(_) | Self::Io(_) => 1,
        }
    }

    /// The server's error code, when this is a server error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Wraps an I/O error on the output side, recognising a closed pipe.
    pub fn output(context: &str, e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Self::BrokenPipe
        } else {
            Self::Io(format!("{context}: {e}"))
        }
    }
}

impl fmt::Display for ClientError {
    /// The text after `error: ` on stderr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) => write!(f, "usage: {m}"),
            Self::Server { code, message, .. } => write!(f, "{code}: {message}"),
            Self::Transport(m) => write!(f, "transport: {m}"),
            Self::BadResponse(m) => write!(f, "bad_response: {m}"),
            Self::Io(m) => write!(f, "io: {m}"),
            Self::BrokenPipe => write!(f, "broken pipe"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Shorthand for the client's results.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_messages() {
        let usage = ClientError::Usage("bad flag".into());
        assert_eq!(usage.exit_status(), 2);
        assert_eq!(usage.to_string(), "usage: bad flag");
        let server = ClientError::Server {
            status: 404,
            code: "unknown_topic".into(),
            message: "no such topic".into(),
        };
        assert_eq!(server.exit_status(), 1);
        assert_eq!(server.code(), Some("unknown_topic"));
        assert_eq!(server.to_string(), "unknown_topic: no such topic");
        assert_eq!(ClientError::Transport("refused".into()).exit_status(), 1);
        let pipe = ClientError::output("stdout", std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(matches!(pipe, ClientError::BrokenPipe));
        assert_eq!(pipe.exit_status(), 0);
    }
}
