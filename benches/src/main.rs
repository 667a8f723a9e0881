//! `silt-bench`: load generator for Silt's HTTP API, with object-store
//! baselines measured in the same run and the scenarios of design §9.
//!
//! Every command prints a human summary; `--json FILE` writes the full
//! report and `--charts DIR` SVG charts. Run `silt-bench --help`.

mod baseline;
mod load;
mod scenarios;
mod server;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Prints a line on stdout (the summary is the program's output).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if !$crate::quiet() {
            let _ = writeln!(std::io::stdout().lock(), $($arg)*);
        }
    }};
}

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True when `--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// Load generator and benchmark scenarios for Silt.
#[derive(Debug, Parser)]
#[command(name = "silt-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Write the full report as JSON to this file ("-" for stdout).
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Write SVG charts into this directory.
    #[arg(long, global = true)]
    charts: Option<PathBuf>,
    /// Print no human summary.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce as fast as possible (or at --rate): throughput, ack latency, PUTs/GiB, idle PUTs.
    Produce(Opts),
    /// Produce at --rate and tail-consume every partition: produce→consume latency.
    Tail(Opts),
    /// Preload --preload-mib, then replay it from offset 0: replay throughput vs ranged GETs.
    Replay(Opts),
    /// Produce, tail-consume and replay at once.
    Mixed(Opts),
    /// OpenMessaging-like: 1 topic, 100 partitions, 1 KiB records; saturation then 50% rate with consumers.
    Omb(Opts),
    /// 1,000 topics: the segment shared by all topics keeps PUTs per GiB flat.
    ManyTopics(Opts),
    /// Injected object-store latency (50 and 100 ms): produce p99 − (flush interval + PUT p99).
    S3Latency(Opts),
    /// Tail latency with and without a large replay beside it; replay vs raw ranged GETs.
    Isolation(Opts),
    /// PostgreSQL metadata + 3 agents + moto: metadata commits per second and commit p99.
    MetaCommits(Opts),
    /// Raw object-store PUT and ranged-GET bandwidth only.
    Baseline(baseline::BaselineArgs),
}

/// Where to run and what load to offer. Unset load flags take each command's defaults.
#[derive(Debug, Clone, Args)]
struct Opts {
    /// Benchmark a running Silt HTTP endpoint instead of spawning one.
    #[arg(long, conflicts_with = "spawn")]
    url: Option<String>,
    /// Start a release `silt serve` on a temp data dir (the default when --url is absent).
    #[arg(long)]
    spawn: bool,
    /// Object store of spawned nodes.
    #[arg(long, value_enum, default_value = "none")]
    s3: server::S3Kind,
    /// The silt binary [default: target/release/silt, built if missing].
    #[arg(long, env = "SILT_BIN")]
    silt_bin: Option<PathBuf>,
    /// Parent directory for data dirs [default: system temp dir].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// With --url: the endpoint's object store URL, to measure baselines against it.
    #[arg(long)]
    store_url: Option<String>,
    /// Passed to spawned nodes: --flush-interval-ms.
    #[arg(long)]
    flush_interval_ms: Option<u64>,
    /// Passed to spawned nodes: --segment-max-bytes.
    #[arg(long)]
    segment_max_bytes: Option<u64>,
    /// Passed to spawned nodes: --replay-lag-records.
    #[arg(long)]
    replay_lag_records: Option<u64>,
    /// Passed to spawned nodes: --compression (none, lz4, zstd).
    #[arg(long)]
    compression: Option<String>,
    /// Passed to spawned nodes: --inject-faults (e.g. latency_ms=50).
    #[arg(long)]
    inject_faults: Option<String>,
    /// Any other flag for spawned nodes, e.g. --server-arg=--max-uploads-in-flight=8.
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
    /// Topics.
    #[arg(long)]
    topics: Option<usize>,
    /// Partitions per topic.
    #[arg(long)]
    partitions: Option<u32>,
    /// Value bytes per record.
    #[arg(long)]
    record_bytes: Option<usize>,
    /// Records per produce request.
    #[arg(long)]
    records_per_request: Option<usize>,
    /// Produce requests in flight.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Target records/s (0 = as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds per measured phase.
    #[arg(long)]
    duration_secs: Option<f64>,
    /// MiB of old data to write before a replay.
    #[arg(long)]
    preload_mib: Option<u64>,
    /// Concurrent replay readers (partitions read at once).
    #[arg(long)]
    replay_readers: Option<usize>,
    /// Nice value (0–19) of the replay readers' own runtime and connections:
    /// on one box they stand in for consumers on other machines, so they
    /// yield the CPU to the server and the tail's measurement; 0 = equals.
    #[arg(long, default_value_t = 10)]
    replay_client_nice: i32,
    /// Seconds of idleness over which PUTs are counted (should be zero).
    #[arg(long, default_value_t = 3.0)]
    idle_secs: f64,
    /// Seconds of each baseline (PUT and ranged GET).
    #[arg(long, default_value_t = 5.0)]
    baseline_secs: f64,
    /// Skip the object-store baselines.
    #[arg(long)]
    no_baseline: bool,
    /// s3-latency: injected per-request latencies, ms.
    #[arg(long, value_delimiter = ',', default_value = "50,100")]
    latencies_ms: Vec<u64>,
    /// meta-commits: number of agents.
    #[arg(long, default_value_t = 3)]
    agents: usize,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("silt-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let charts = cli.charts.clone();
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Baseline(args) => {
                let r = baseline::run(&args).await?;
                say!(
                    "baseline {}: PUT {:.1} MiB/s ({} x {} B, p50 {:.1} ms p99 {:.1} ms); ranged GET {:.1} MiB/s ({} x {} B, p99 {:.1} ms)",
                    r.store_url,
                    r.put_mib_per_sec,
                    r.puts,
                    r.put_bytes,
                    r.put_p50_ms,
                    r.put_p99_ms,
                    r.get_mib_per_sec,
                    r.gets,
                    r.range_bytes,
                    r.get_p99_ms
                );
                serde_json::to_value(r).map_err(|e| e.to_string())
            }
            Command::Produce(o) => scenarios::produce(o, scenarios::Kind::Produce, charts.as_deref()).await,
            Command::Tail(o) => scenarios::produce(o, scenarios::Kind::Tail, charts.as_deref()).await,
            Command::Replay(o) => scenarios::produce(o, scenarios::Kind::Replay, charts.as_deref()).await,
            Command::Mixed(o) => scenarios::produce(o, scenarios::Kind::Mixed, charts.as_deref()).await,
            Command::Omb(o) => scenarios::omb(o, charts.as_deref()).await,
            Command::ManyTopics(o) => scenarios::many_topics(o, charts.as_deref()).await,
            Command::S3Latency(o) => scenarios::s3_latency(o, charts.as_deref()).await,
            Command::Isolation(o) => scenarios::isolation(o, charts.as_deref()).await,
            Command::MetaCommits(o) => scenarios::meta_commits(o, charts.as_deref()).await,
        }
    });
    match result {
        Ok(report) => {
            if let Some(path) = &cli.json {
                let text = serde_json::to_string_pretty(&report).unwrap_or_default();
                if path.as_os_str() == "-" {
                    use std::io::Write as _;
                    let _ = writeln!(std::io::stdout().lock(), "{text}");
                } else if let Err(e) = std::fs::write(path, text + "\n") {
                    eprintln!("silt-bench: cannot write {}: {e}", path.display());
                    return std::process::ExitCode::FAILURE;
                }
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("silt-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
