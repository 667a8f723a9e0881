//! Real components for tests; never used by production code.
//!
//! Tests of several crates need the real thing rather than a fake: a
//! PostgreSQL server for the fleet metadata backend, an S3-compatible server
//! (moto) for the object store. This crate starts throwaway instances of
//! them, or uses one that CI started. A component that cannot be had is a
//! [`Unavailable`] error, which a test turns into a printed `SKIP: <reason>`
//! and an early return (see [`skip`]); set `SILT_TEST_REQUIRE_COMPONENTS=1`
//! to make such a test fail instead. Readiness is always polled with a
//! deadline, never assumed after a fixed sleep.

mod moto;
mod postgres;

use std::fmt;
use std::time::Duration;

pub use moto::MotoServer;
pub use postgres::PostgresServer;

/// Why a component could not be had; tests skip on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// Shorthand for results of this crate.
pub type Result<T, E = Unavailable> = std::result::Result<T, E>;

/// Reports a skipped test on stderr as `SKIP: <reason>`; panics instead if
/// `SILT_TEST_REQUIRE_COMPONENTS` is set to anything but `0` or empty.
pub fn skip(reason: &dyn fmt::Display) {
    let required = std::env::var("SILT_TEST_REQUIRE_COMPONENTS").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(!required, "required test component unavailable: {reason}");
    eprintln!("SKIP: {reason}");
}

/// Unwraps a component or skips the test: `let pg = require!(PostgresServer::shared().await);`.
#[macro_export]
macro_rules! require {
    ($component:expr) => {
        match $component {
            Ok(c) => c,
            Err(e) => {
                $crate::skip(&e);
                return;
            }
        }
    };
}

/// A free TCP port on 127.0.0.1, as the OS hands one out.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Unavailable(format!("bind: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Unavailable(format!("local addr: {e}")))?
        .port();
    Ok(port)
}

/// Polls `probe` every `every` until it returns `Ok`, or fails with the last
/// error once `deadline` has passed.
pub(crate) async fn poll_until<T, F, Fut>(what: &str, deadline: Duration, every: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        match probe().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() >= end => {
                return Err(Unavailable(format!("{what} not ready after {deadline:?}: {e}")));
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// A unique, lowercase, identifier-safe name with `prefix`.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..16])
}
