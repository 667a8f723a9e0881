//! Settings of `silt serve`: flags, environment variables and a TOML file,
//! in that order of precedence (flags win), with documented defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

macro_rules! settings {
    ($args:ident, $file:ident, $resolved:ident, $what:literal;
     $( $(#[doc = $doc:literal])* $field:ident : $ty:ty = $default:expr, env = $env:literal; )*) => {
        #[doc = concat!("Flags of ", $what, ". Every flag also reads `SILT_<NAME>` from the environment and `<name>` from the `--config` TOML file.")]
        #[derive(Debug, Args)]
        pub struct $args {
            /// TOML file with any of the settings below (keys in snake_case).
            #[arg(long, env = "SILT_CONFIG")]
            pub config: Option<PathBuf>,
            $(
                $(#[doc = $doc])*
                #[arg(long, env = $env)]
                pub $field: Option<$ty>,
            )*
        }

        /// The same settings as read from a TOML file.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $file {
            $( $field: Option<$ty>, )*
        }

        /// Settings after merging flags, environment, file and defaults.
        #[derive(Debug, Clone)]
        pub struct $resolved {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl $args {
            /// Merges flags/env (already merged by clap) over the file over defaults.
            pub fn resolve(self) -> Result<$resolved, String> {
                let file: $file = match &self.config {
                    Some(path) => read_file(path)?,
                    None => $file::default(),
                };
                Ok($resolved {
                    $( $field: self.$field.or(file.$field).unwrap_or_else(|| $default), )*
                })
            }
        }
    };
}

settings! { NodeArgs, NodeFile, NodeSettings, "`silt serve` and `silt agent`";
    /// (agent) URL of the metadata service, e.g. http://meta:8081 [required for agent].
    meta: String = String::new(), env = "SILT_META";
    /// (agent) Stable id of this agent in the registry [default: host name and port].
    node_id: String = String::new(), env = "SILT_NODE_ID";
    /// (agent) Address clients reach this agent at [default: the listen address].
    advertise: String = String::new(), env = "SILT_ADVERTISE";
    /// (agent) Availability zone, for zone-aware routing [default: none].
    zone: String = String::new(), env = "SILT_ZONE";
    /// (serve) Directory for the SQLite catalog, the local object store and the cache [default: ./silt-data].
    data_dir: PathBuf = PathBuf::from("silt-data"), env = "SILT_DATA_DIR";
    /// Address of the HTTP API [default: 127.0.0.1:8080].
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)), env = "SILT_LISTEN";
    /// Object store URL: file:///path, memory:// or s3://bucket/prefix [default: file://<data-dir>/objects].
    object_store: String = String::new(), env = "SILT_OBJECT_STORE";
    /// Seal the open segment at this many bytes [default: 8388608].
    segment_max_bytes: usize = 8 << 20, env = "SILT_SEGMENT_MAX_BYTES";
    /// Seal the open segment when its oldest record has waited this long, in ms [default: 100].
    flush_interval_ms: u64 = 100, env = "SILT_FLUSH_INTERVAL_MS";
    /// Bound on produced bytes not yet acknowledged; beyond it produce answers 503 [default: 268435456].
    max_unacked_bytes: usize = 256 << 20, env = "SILT_MAX_UNACKED_BYTES";
    /// How long a produce waits for room before answering 503, in ms [default: 5000].
    admission_wait_ms: u64 = 5000, env = "SILT_ADMISSION_WAIT_MS";
    /// Segments uploading at once [default: 4].
    max_uploads_in_flight: usize = 4, env = "SILT_MAX_UPLOADS_IN_FLIGHT";
    /// Record batch compression: none, lz4 or zstd [default: measured choice, see docs/decisions].
    compression: String = silt_segment::Compression::DEFAULT.to_string(), env = "SILT_COMPRESSION";
    /// Memory tier of the segment cache, in bytes [default: 268435456].
    cache_memory_bytes: usize = 256 << 20, env = "SILT_CACHE_MEMORY_BYTES";
    /// Disk tier of the segment cache, in bytes; 0 disables it [default: 2147483648].
    cache_disk_bytes: usize = 2 << 30, env = "SILT_CACHE_DISK_BYTES";
    /// Directory of the disk cache tier [default: <data-dir>/cache].
    cache_dir: PathBuf = PathBuf::new(), env = "SILT_CACHE_DIR";
    /// Largest record (key + value + headers), in bytes [default: 1048576].
    max_record_bytes: usize = 1 << 20, env = "SILT_MAX_RECORD_BYTES";
    /// Largest request body, in bytes [default: 16777216].
    max_request_bytes: usize = 16 << 20, env = "SILT_MAX_REQUEST_BYTES";
    /// Most records in one produce request [default: 50000].
    max_records_per_request: usize = 50_000, env = "SILT_MAX_RECORDS_PER_REQUEST";
    /// Cap on a read's max_records [default: 10000].
    max_read_records: usize = 10_000, env = "SILT_MAX_READ_RECORDS";
    /// Cap on a read's max_bytes [default: 16777216].
    max_read_bytes: usize = 16 << 20, env = "SILT_MAX_READ_BYTES";
    /// Cap on a read's wait_ms [default: 60000].
    max_wait_ms: u64 = 60_000, env = "SILT_MAX_WAIT_MS";
    /// Connections served at once [default: 4096].
    max_connections: usize = 4096, env = "SILT_MAX_CONNECTIONS";
    /// Time a client has to send request headers, in ms [default: 10000].
    header_read_timeout_ms: u64 = 10_000, env = "SILT_HEADER_READ_TIMEOUT_MS";
    /// Time a whole request may take, in ms [default: 90000].
    request_timeout_ms: u64 = 90_000, env = "SILT_REQUEST_TIMEOUT_MS";
    /// Time shutdown waits for in-flight requests, in ms [default: 30000].
    drain_timeout_ms: u64 = 30_000, env = "SILT_DRAIN_TIMEOUT_MS";
    /// Reads further than this many records behind the high watermark are replays: ranged GETs on the replay budget, never admitted to the cache [default: 10000].
    replay_lag_records: u64 = 10_000, env = "SILT_REPLAY_LAG_RECORDS";
    /// Ranged GETs all replays together may have in flight [default: 8].
    replay_concurrency: usize = 8, env = "SILT_REPLAY_CONCURRENCY";
    /// Object-store bandwidth all replays together may use, bytes/s; 0 = unlimited [default: 0].
    replay_bytes_per_sec: u64 = 0, env = "SILT_REPLAY_BYTES_PER_SEC";
    /// Chunks a replay fetches ahead of its reader [default: 4].
    readahead_chunks: usize = 4, env = "SILT_READAHEAD_CHUNKS";
    /// Threads of the background lane that runs replay reads and compaction; 0 = half the cores, at least one [default: 0].
    background_threads: usize = 0, env = "SILT_BACKGROUND_THREADS";
    /// Nice value (0–19) of the background lane's threads, so replays and compaction yield the CPU to the tail; 0 = equal priority [default: 10].
    background_nice: i32 = 10, env = "SILT_BACKGROUND_NICE";
    /// Price of 1,000 object-store PUTs in dollars, for the per-topic cost estimate [default: 0.005].
    price_put_per_1000: f64 = 0.005, env = "SILT_PRICE_PUT_PER_1000";
    /// Price of 1,000 object-store GETs in dollars [default: 0.0004].
    price_get_per_1000: f64 = 0.0004, env = "SILT_PRICE_GET_PER_1000";
    /// Price of storing 1 GB for a month in dollars [default: 0.023].
    price_gb_month: f64 = 0.023, env = "SILT_PRICE_GB_MONTH";
    /// Run the compactor (L0 segments into per-partition Parquet, retention, garbage collection); partitions are leased, so every node may run it [default: true].
    compaction: bool = true, env = "SILT_COMPACTION";
    /// Pause between compaction passes, in ms [default: 30000].
    compaction_interval_ms: u64 = 30_000, env = "SILT_COMPACTION_INTERVAL_MS";
    /// Compact a partition once this many L0 chunks wait [default: 16].
    compaction_min_chunks: usize = 16, env = "SILT_COMPACTION_MIN_CHUNKS";
    /// ...or once this many L0 bytes wait [default: 8388608].
    compaction_min_bytes: u64 = 8 << 20, env = "SILT_COMPACTION_MIN_BYTES";
    /// Rows per Parquet row group at most [default: 8192].
    compaction_row_group_rows: usize = 8192, env = "SILT_COMPACTION_ROW_GROUP_ROWS";
    /// Uncompressed bytes per Parquet row group, about [default: 4194304].
    compaction_row_group_bytes: usize = 4 << 20, env = "SILT_COMPACTION_ROW_GROUP_BYTES";
    /// Unreferenced objects are deleted only when older than this, in ms; must outlive any read and any upload-to-commit window [default: 900000].
    gc_grace_ms: u64 = 900_000, env = "SILT_GC_GRACE_MS";
    /// TESTING ONLY: inject object-store faults, e.g. "slowdown=0.1,put_lost=0.05,seed=7" [default: none].
    inject_faults: String = String::new(), env = "SILT_INJECT_FAULTS";
    /// Log format: text or json [default: text].
    log_format: LogFormat = LogFormat::Text, env = "SILT_LOG_FORMAT";
    /// Log filter in tracing's EnvFilter syntax [default: info].
    log_level: String = "info".to_owned(), env = "SILT_LOG_LEVEL";
    /// OTLP/HTTP endpoint to export trace spans to, e.g. http://otel-collector:4318/v1/traces (needs a build with `--features otlp`) [default: none].
    otlp_endpoint: String = String::new(), env = "SILT_OTLP_ENDPOINT";
}

settings! { MetaArgs, MetaFile, MetaSettings, "`silt meta`";
    /// Metadata database: sqlite:///path/meta.sqlite or postgres://user:pass@host:5432/db [required].
    database: String = String::new(), env = "SILT_DATABASE";
    /// Address of the internal API [default: 127.0.0.1:8081].
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8081)), env = "SILT_LISTEN";
    /// Time shutdown waits for in-flight requests, in ms [default: 30000].
    drain_timeout_ms: u64 = 30_000, env = "SILT_DRAIN_TIMEOUT_MS";
    /// Log format: text or json [default: text].
    log_format: LogFormat = LogFormat::Text, env = "SILT_LOG_FORMAT";
    /// Log filter in tracing's EnvFilter syntax [default: info].
    log_level: String = "info".to_owned(), env = "SILT_LOG_LEVEL";
    /// OTLP/HTTP endpoint to export trace spans to, e.g. http://otel-collector:4318/v1/traces (needs a build with `--features otlp`) [default: none].
    otlp_endpoint: String = String::new(), env = "SILT_OTLP_ENDPOINT";
}

fn read_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
}

impl NodeSettings {
    /// The flush interval as a duration.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}
