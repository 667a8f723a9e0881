//! `silt serve`: a complete node in one process.

use std::sync::Arc;
use std::time::Duration;

use silt_agent::{Agent, AgentConfig, AgentMetrics, AgentParts};
use silt_cache::{CacheConfig, SegmentCache};
use silt_http::{ApiLimits, AppState, HttpMetrics, ServerConfig};
use silt_meta::SqliteMetadata;
use silt_storage::{ObjectStoreConfig, SegmentStore, build_object_store};
use silt_types::{Clock, IdGen, RandomIds, SystemClock};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::{LogFormat, ServeArgs};

/// Why `silt serve` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Settings are unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A component failed to start.
    #[error("cannot start {component}: {reason}")]
    Startup {
        /// Which component.
        component: &'static str,
        /// Why.
        reason: String,
    },
}

fn startup(component: &'static str) -> impl FnOnce(String) -> ServeError {
    move |reason| ServeError::Startup { component, reason }
}

/// Installs the global tracing subscriber.
pub fn init_tracing(format: LogFormat, filter: &str) -> Result<(), ServeError> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| ServeError::Config(format!("log_level: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| ServeError::Config(format!("cannot install logger: {e}")))
}

/// Runs `silt serve` until SIGTERM or Ctrl-C, then drains and exits.
pub async fn run(args: ServeArgs) -> Result<(), ServeError> {
    let s = args.resolve().map_err(ServeError::Config)?;
    init_tracing(s.log_format, &s.log_level)?;

    std::fs::create_dir_all(&s.data_dir).map_err(|e| startup("data dir")(format!("{}: {e}", s.data_dir.display())))?;
    let data_dir = std::fs::canonicalize(&s.data_dir).map_err(|e| startup("data dir")(e.to_string()))?;
    let compression = s.compression.parse().map_err(|_| {
        ServeError::Config(format!(
            "compression must be none, lz4 or zstd compression={}",
            s.compression
        ))
    })?;
    if s.segment_max_bytes == 0
        || s.flush_interval_ms == 0
        || s.max_unacked_bytes < s.max_request_bytes.min(s.max_unacked_bytes)
    {
        return Err(ServeError::Config(
            "segment_max_bytes and flush_interval_ms must be positive".into(),
        ));
    }

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ids: Arc<dyn IdGen> = Arc::new(RandomIds);
    let meta = SqliteMetadata::open(&data_dir.join("meta.sqlite"), clock.clone(), ids.clone())
        .map_err(|e| startup("metadata")(e.to_string()))?;
    let store_url = if s.object_store.is_empty() {
        format!("file://{}", data_dir.join("objects").display())
    } else {
        s.object_store.clone()
    };
    let store = build_object_store(&ObjectStoreConfig::new(store_url.clone()))
        .map_err(|e| startup("object store")(e.to_string()))?;
    let cache_dir = if s.cache_dir.as_os_str().is_empty() {
        data_dir.join("cache")
    } else {
        s.cache_dir.clone()
    };
    let cache = SegmentCache::open(&CacheConfig {
        dir: Some(cache_dir),
        memory_bytes: s.cache_memory_bytes,
        disk_bytes: s.cache_disk_bytes,
        block_bytes: (s.segment_max_bytes * 2).max(16 << 20),
    })
    .await;

    let mut registry = prometheus_client::registry::Registry::default();
    let agent_metrics = AgentMetrics::new(&mut registry);
    let http_metrics = HttpMetrics::new(&mut registry);
    let agent = Agent::start(
        AgentConfig {
            segment_max_bytes: s.segment_max_bytes,
            flush_interval: s.flush_interval(),
            max_unacked_bytes: s.max_unacked_bytes,
            admission_wait: Duration::from_millis(s.admission_wait_ms),
            max_uploads_in_flight: s.max_uploads_in_flight,
            compression,
            max_wait: Duration::from_millis(s.max_wait_ms),
            ..AgentConfig::default()
        },
        AgentParts {
            meta: Arc::new(meta),
            store: SegmentStore::new(store),
            cache,
            clock,
            ids,
            metrics: agent_metrics,
        },
    );
    let state = AppState {
        agent: agent.clone(),
        limits: Arc::new(ApiLimits {
            max_record_bytes: s.max_record_bytes,
            max_request_bytes: s.max_request_bytes,
            max_records_per_request: s.max_records_per_request,
            max_read_records: s.max_read_records,
            max_read_bytes: s.max_read_bytes,
            max_wait: Duration::from_millis(s.max_wait_ms),
        }),
        registry: Arc::new(registry),
        metrics: http_metrics,
    };

    let listener = tokio::net::TcpListener::bind(s.listen)
        .await
        .map_err(|e| startup("listener")(format!("{}: {e}", s.listen)))?;
    let addr = listener.local_addr().map_err(|e| startup("listener")(e.to_string()))?;
    info!(addr = %addr, data_dir = %data_dir.display(), object_store = %store_url, "listening");

    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
    let server_config = ServerConfig {
        header_read_timeout: Duration::from_millis(s.header_read_timeout_ms),
        request_timeout: Duration::from_millis(s.request_timeout_ms),
        max_connections: s.max_connections,
        drain_timeout: Duration::from_millis(s.drain_timeout_ms),
    };
    let server_shutdown = shutdown.clone();
    let drain_agent = agent.clone();
    let on_signal = tokio::spawn(async move {
        server_shutdown.cancelled().await;
        // Refuse new records and seal what is buffered so waiting producers get answers.
        drain_agent.begin_shutdown();
    });
    silt_http::serve(listener, silt_http::router(state), server_config, shutdown.clone()).await;
    let _ = on_signal.await;
    agent.shutdown().await;
    signals.abort();
    info!("shutdown complete");
    Ok(())
}

async fn wait_for_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => info!(signal = "SIGTERM", "shutting down"),
            _ = tokio::signal::ctrl_c() => info!(signal = "SIGINT", "shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        info!(signal = "ctrl-c", "shutting down");
    }
    shutdown.cancel();
}
