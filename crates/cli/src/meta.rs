//! `silt meta`: the metadata service in front of SQLite or PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use silt_http::ServerConfig;
use silt_meta::{Metadata, PostgresMetadata, SqliteMetadata};
use silt_metasrv::MetaServiceState;
use silt_types::{Clock, IdGen, RandomIds, SystemClock};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::MetaArgs;
use crate::{CliError, init_tracing, startup, wait_for_signal};

/// Runs the metadata service until SIGTERM or Ctrl-C.
pub async fn run(args: MetaArgs) -> Result<(), CliError> {
    let s = args.resolve().map_err(CliError::Config)?;
    init_tracing(s.log_format, &s.log_level, &s.otlp_endpoint)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ids: Arc<dyn IdGen> = Arc::new(RandomIds);
    let backend: Arc<dyn Metadata> = if let Some(path) = s.database.strip_prefix("sqlite://") {
        let path = std::path::Path::new(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| startup("metadata")(format!("{}: {e}", dir.display())))?;
        }
        Arc::new(SqliteMetadata::open(path, clock, ids).map_err(|e| startup("metadata")(e.to_string()))?)
    } else if s.database.starts_with("postgres://") || s.database.starts_with("postgresql://") {
        Arc::new(
            PostgresMetadata::connect(&s.database, clock, ids)
                .await
                .map_err(|e| startup("metadata")(e.to_string()))?,
        )
    } else {
        return Err(CliError::Config(
            "--database must be sqlite:///path/file.sqlite or postgres://user@host:port/db".into(),
        ));
    };
    let state = MetaServiceState::new(backend, prometheus_client::registry::Registry::default());
    let listener = tokio::net::TcpListener::bind(s.listen)
        .await
        .map_err(|e| startup("listener")(format!("{}: {e}", s.listen)))?;
    let addr = listener.local_addr().map_err(|e| startup("listener")(e.to_string()))?;
    info!(addr = %addr, role = "meta", "listening");
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
    let config = ServerConfig {
        // Watchers long-poll for up to a minute.
        request_timeout: Duration::from_secs(90),
        drain_timeout: Duration::from_millis(s.drain_timeout_ms),
        ..ServerConfig::default()
    };
    silt_http::serve(listener, silt_metasrv::router(state), config, shutdown).await;
    signals.abort();
    info!("shutdown complete");
    Ok(())
}
