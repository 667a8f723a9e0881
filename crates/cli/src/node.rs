//! `silt serve` (a complete node in one process) and `silt agent` (a
//! stateless agent of a fleet): the same write and read paths, wired to a
//! local SQLite catalog or to a remote metadata service.

use std::sync::Arc;
use std::time::Duration;

use silt_agent::{Agent, AgentConfig, AgentMetrics, AgentParts, BackgroundLane, Prices, ReplayLane};
use silt_cache::{CacheConfig, SegmentCache};
use silt_compactor::{Compactor, CompactorConfig, CompactorMetrics, L1Options};
use silt_http::{ApiLimits, AppState, HttpMetrics, ServerConfig};
use silt_meta::{AgentRegistration, Metadata, SqliteMetadata};
use silt_metasrv::RemoteMetadata;
use silt_storage::faults::{FaultPlan, FaultyStore};
use silt_storage::{ObjectStoreConfig, SegmentStore, StorageMetrics, build_object_store};
use silt_types::{Clock, IdGen, RandomIds, SystemClock};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{NodeArgs, NodeSettings};
use crate::{CliError, init_tracing, startup, wait_for_signal};

/// Which role the node plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything in one process, state under `--data-dir`.
    Serve,
    /// A stateless agent of a fleet.
    Agent,
}

/// How long an agent's registration lives without renewal.
const AGENT_LEASE: Duration = Duration::from_secs(15);

/// Runs the node until SIGTERM or Ctrl-C, then drains and exits.
pub async fn run(role: Role, args: NodeArgs) -> Result<(), CliError> {
    let s = args.resolve().map_err(CliError::Config)?;
    init_tracing(s.log_format, &s.log_level, &s.otlp_endpoint)?;
    let compression = s.compression.parse().map_err(|_| {
        CliError::Config(format!(
            "compression must be none, lz4 or zstd compression={}",
            s.compression
        ))
    })?;
    if s.segment_max_bytes == 0 || s.flush_interval_ms == 0 {
        return Err(CliError::Config(
            "segment_max_bytes and flush_interval_ms must be positive".into(),
        ));
    }

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ids: Arc<dyn IdGen> = Arc::new(RandomIds);
    let (meta, store_url, cache_dir): (Arc<dyn Metadata>, String, std::path::PathBuf) = match role {
        Role::Serve => {
            std::fs::create_dir_all(&s.data_dir)
                .map_err(|e| startup("data dir")(format!("{}: {e}", s.data_dir.display())))?;
            let data_dir = std::fs::canonicalize(&s.data_dir).map_err(|e| startup("data dir")(e.to_string()))?;
            let meta = SqliteMetadata::open(&data_dir.join("meta.sqlite"), clock.clone(), ids.clone())
                .map_err(|e| startup("metadata")(e.to_string()))?;
            let store_url = if s.object_store.is_empty() {
                format!("file://{}", data_dir.join("objects").display())
            } else {
                s.object_store.clone()
            };
            let cache_dir = if s.cache_dir.as_os_str().is_empty() {
                data_dir.join("cache")
            } else {
                s.cache_dir.clone()
            };
            (Arc::new(meta), store_url, cache_dir)
        }
        Role::Agent => {
            let missing = |flag: &str| CliError::Config(format!("silt agent needs --{flag}"));
            if s.meta.is_empty() {
                return Err(missing("meta"));
            }
            if s.object_store.is_empty() {
                return Err(missing("object-store"));
            }
            if s.cache_dir.as_os_str().is_empty() {
                return Err(missing("cache-dir"));
            }
            let meta = RemoteMetadata::new(&s.meta, Duration::from_secs(30))
                .map_err(|e| startup("metadata client")(e.to_string()))?;
            (Arc::new(meta), s.object_store.clone(), s.cache_dir.clone())
        }
    };

    let faults: Option<FaultPlan> = if s.inject_faults.is_empty() {
        None
    } else {
        let plan = s
            .inject_faults
            .parse()
            .map_err(|e| CliError::Config(format!("inject_faults: {e}")))?;
        warn!(?plan, "INJECTING OBJECT STORE FAULTS (testing only)");
        Some(plan)
    };
    // Two clients of one store: the tail's, and the background lane's (a
    // pooled connection is driven by the runtime that opened it, so the lane
    // gets connections of its own).
    let open_store = || {
        let mut store = build_object_store(&ObjectStoreConfig::new(store_url.clone()))
            .map_err(|e| startup("object store")(e.to_string()))?;
        if let Some(plan) = &faults {
            store = Arc::new(FaultyStore::new(store, plan.clone()));
        }
        Ok::<_, CliError>(store)
    };
    let store = open_store()?;
    let background_store = open_store()?;
    let lane_threads = match s.background_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        n => n,
    };
    let lane = BackgroundLane::start(lane_threads, s.background_nice)
        .map_err(|e| startup("background lane")(e.to_string()))?;
    info!(
        threads = lane_threads,
        nice = s.background_nice,
        "background lane for replays and compaction started"
    );
    let cache = SegmentCache::open(&CacheConfig {
        dir: Some(cache_dir),
        memory_bytes: s.cache_memory_bytes,
        disk_bytes: s.cache_disk_bytes,
        block_bytes: (s.segment_max_bytes * 2).max(16 << 20),
    })
    .await;

    let mut registry = prometheus_client::registry::Registry::default();
    let agent_metrics = AgentMetrics::new(
        &mut registry,
        Prices {
            put_per_1000: s.price_put_per_1000,
            get_per_1000: s.price_get_per_1000,
            gb_month: s.price_gb_month,
        },
    );
    silt_cache::register_metrics(&cache, &mut registry);
    let storage_metrics = StorageMetrics::new(&mut registry);
    let http_metrics = HttpMetrics::new(&mut registry);
    let compactor_metrics = CompactorMetrics::new(&mut registry);
    let segment_store = SegmentStore::new(store).with_metrics(storage_metrics.clone());
    let background_store = SegmentStore::new(background_store).with_metrics(storage_metrics);
    let agent = Agent::start(
        agent_config(&s, compression),
        AgentParts {
            meta: meta.clone(),
            store: segment_store.clone(),
            cache,
            clock: clock.clone(),
            ids,
            metrics: agent_metrics,
            replay_lane: Some(ReplayLane {
                runtime: lane.handle().clone(),
                store: background_store.clone(),
            }),
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
    info!(addr = %addr, object_store = %store_url, role = ?role, "listening");

    let shutdown = CancellationToken::new();
    let mut background = Vec::new();
    if role == Role::Agent {
        // Commits made through other agents wake this agent's long-polls.
        let hwm_agent = agent.clone();
        let stop = shutdown.clone();
        let meta_url = s.meta.clone();
        background.push(tokio::spawn(async move {
            silt_metasrv::watch_high_watermarks(&meta_url, stop, |topic, partition, hwm| {
                hwm_agent.hwm_watch().advance(topic, partition, hwm);
            })
            .await;
        }));
    }
    let registration = AgentRegistration {
        node_id: if s.node_id.is_empty() {
            format!("{}-{}", hostname(), addr.port())
        } else {
            s.node_id.clone()
        },
        address: if s.advertise.is_empty() {
            addr.to_string()
        } else {
            s.advertise.clone()
        },
        zone: (!s.zone.is_empty()).then(|| s.zone.clone()),
        lease_ms: AGENT_LEASE.as_millis() as i64,
    };
    if s.compaction {
        let compactor = Compactor::new(
            meta.clone(),
            background_store,
            clock,
            compactor_config(&s, &registration.node_id),
            compactor_metrics,
        );
        // Parquet encoding is CPU work the tail must not wait behind.
        background.push(lane.handle().spawn(compactor.run(shutdown.clone())));
    }
    background.push(tokio::spawn(keep_registered(meta, registration, shutdown.clone())));

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
    for task in background {
        task.abort();
    }
    signals.abort();
    drop(lane);
    info!("shutdown complete");
    Ok(())
}

fn agent_config(s: &NodeSettings, compression: silt_segment::Compression) -> AgentConfig {
    AgentConfig {
        segment_max_bytes: s.segment_max_bytes,
        flush_interval: s.flush_interval(),
        max_unacked_bytes: s.max_unacked_bytes,
        admission_wait: Duration::from_millis(s.admission_wait_ms),
        max_uploads_in_flight: s.max_uploads_in_flight,
        compression,
        max_wait: Duration::from_millis(s.max_wait_ms),
        replay_lag_records: s.replay_lag_records,
        replay_concurrency: s.replay_concurrency,
        replay_bytes_per_sec: s.replay_bytes_per_sec,
        readahead_chunks: s.readahead_chunks,
        ..AgentConfig::default()
    }
}

fn compactor_config(s: &NodeSettings, node_id: &str) -> CompactorConfig {
    let mut c = CompactorConfig::new(node_id);
    c.interval = Duration::from_millis(s.compaction_interval_ms.max(1));
    c.min_chunks = s.compaction_min_chunks;
    c.min_bytes = s.compaction_min_bytes;
    c.gc_grace = Duration::from_millis(s.gc_grace_ms);
    // List the bucket a few times per grace period, at most every 5 minutes.
    c.gc_interval = (c.gc_grace / 3).min(Duration::from_secs(300));
    c.l1 = L1Options {
        row_group_rows: s.compaction_row_group_rows.max(1),
        row_group_bytes: s.compaction_row_group_bytes.max(1),
        ..L1Options::default()
    };
    c
}

/// Renews the agent's registration at a third of its lease until shutdown.
async fn keep_registered(meta: Arc<dyn Metadata>, registration: AgentRegistration, stop: CancellationToken) {
    let mut failing = false;
    loop {
        match meta.register_agent(&registration).await {
            Ok(()) if failing => {
                info!(node_id = %registration.node_id, "agent registration renewed again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                if !failing {
                    warn!(node_id = %registration.node_id, error = %e, "agent registration failed, will retry");
                }
                failing = true;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(AGENT_LEASE / 3) => {}
            () = stop.cancelled() => return,
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "silt".to_owned())
}
