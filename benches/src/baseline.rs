//! Raw object-store bandwidth, measured with the same store builder Silt
//! uses (`silt_storage::build_object_store`): PUTs of whole objects and
//! ranged GETs. Run in a child process (`silt-bench baseline`) so the
//! store's `AWS_*` environment can be set for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use silt_bench::hist::{LatencySummary, new_histogram, record};
use silt_storage::faults::{FaultPlan, FaultyStore};
use silt_storage::{ObjectStoreConfig, build_object_store};

/// Parameters of one baseline run.
#[derive(Debug, Clone, clap::Args)]
pub struct BaselineArgs {
    /// Object store URL (file:///path, s3://bucket/prefix, memory://).
    #[arg(long)]
    pub store_url: String,
    /// Size of each PUT object.
    #[arg(long, default_value_t = 8 << 20)]
    pub put_bytes: usize,
    /// PUTs in flight (Silt uploads up to 4 segments at once).
    #[arg(long, default_value_t = 4)]
    pub put_concurrency: usize,
    /// Seconds of PUTs.
    #[arg(long, default_value_t = 5.0)]
    pub put_secs: f64,
    /// Size of each ranged GET.
    #[arg(long, default_value_t = 1 << 20)]
    pub range_bytes: u64,
    /// Ranged GETs in flight (Silt's default replay concurrency is 8).
    #[arg(long, default_value_t = 8)]
    pub get_concurrency: usize,
    /// Seconds of ranged GETs (0 skips them).
    #[arg(long, default_value_t = 5.0)]
    pub get_secs: f64,
    /// Wrap the store in the same fault layer `silt serve --inject-faults` uses, e.g. latency_ms=50.
    #[arg(long)]
    pub inject_faults: Option<String>,
}

/// Result of one baseline run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BaselineReport {
    /// Store URL.
    pub store_url: String,
    /// Object size of the PUTs.
    pub put_bytes: usize,
    /// PUTs done.
    pub puts: u64,
    /// PUT bandwidth, MiB/s.
    pub put_mib_per_sec: f64,
    /// PUT latency, ms: p50.
    pub put_p50_ms: f64,
    /// PUT p99, ms.
    pub put_p99_ms: f64,
    /// PUT max, ms.
    pub put_max_ms: f64,
    /// Range size of the GETs.
    pub range_bytes: u64,
    /// Ranged GETs done.
    pub gets: u64,
    /// Ranged GET bandwidth, MiB/s.
    pub get_mib_per_sec: f64,
    /// GET p50, ms.
    pub get_p50_ms: f64,
    /// GET p99, ms.
    pub get_p99_ms: f64,
}

/// Runs the baseline in this process.
pub async fn run(args: &BaselineArgs) -> Result<BaselineReport, String> {
    let mut store: Arc<dyn ObjectStore> =
        build_object_store(&ObjectStoreConfig::new(args.store_url.clone())).map_err(|e| e.to_string())?;
    if let Some(plan) = &args.inject_faults {
        let plan: FaultPlan = plan.parse().map_err(|e| format!("inject_faults: {e}"))?;
        store = Arc::new(FaultyStore::new(store, plan));
    }
    let payload = Bytes::from(
        silt_bench::body::ValuePool::new(args.put_bytes.max(1), 99)
            .slice(0, args.put_bytes)
            .to_vec(),
    );
    let run_id = silt_bench::body::now_micros();
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.put_secs);
    let mut tasks = Vec::new();
    for _ in 0..args.put_concurrency.max(1) {
        let (store, payload, counter) = (store.clone(), payload.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = new_histogram();
            let mut keys = Vec::new();
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let key = ObjectPath::from(format!("baseline-{run_id}/{i:08}"));
                let t0 = Instant::now();
                let opts = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                store
                    .put_opts(&key, PutPayload::from_bytes(payload.clone()), opts)
                    .await
                    .map_err(|e| format!("put {key}: {e}"))?;
                record(&mut h, t0.elapsed().as_micros() as u64);
                keys.push(key);
            }
            Ok::<_, String>((h, keys))
        }));
    }
    let mut put_hist = new_histogram();
    let mut keys = Vec::new();
    for t in tasks {
        let (h, k) = t.await.map_err(|e| e.to_string())??;
        let _ = put_hist.add(&h);
        keys.extend(k);
    }
    let put_secs = start.elapsed().as_secs_f64();
    let put = LatencySummary::of(&put_hist);
    let mib = |bytes: f64| bytes / (1u64 << 20) as f64;
    let mut report = BaselineReport {
        store_url: args.store_url.clone(),
        put_bytes: args.put_bytes,
        puts: keys.len() as u64,
        put_mib_per_sec: mib((keys.len() * args.put_bytes) as f64) / put_secs,
        put_p50_ms: put.p50_ms,
        put_p99_ms: put.p99_ms,
        put_max_ms: put.max_ms,
        range_bytes: args.range_bytes,
        ..Default::default()
    };

    if args.get_secs > 0.0 && !keys.is_empty() {
        let keys = Arc::new(keys);
        let ranges_per_object = (args.put_bytes as u64 / args.range_bytes.max(1)).max(1);
        let range = args.range_bytes.min(args.put_bytes as u64);
        let counter = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(args.get_secs);
        let mut tasks = Vec::new();
        for _ in 0..args.get_concurrency.max(1) {
            let (store, keys, counter) = (store.clone(), keys.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                let mut h = new_histogram();
                let mut bytes = 0u64;
                while Instant::now() < deadline {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    // Walk objects in order and ranges within them, as a replay does.
                    let key = &keys[(i / ranges_per_object) as usize % keys.len()];
                    let off = (i % ranges_per_object) * range;
                    let t0 = Instant::now();
                    let got = store
                        .get_range(key, off..off + range)
                        .await
                        .map_err(|e| format!("get_range {key}: {e}"))?;
                    record(&mut h, t0.elapsed().as_micros() as u64);
                    bytes += got.len() as u64;
                }
                Ok::<_, String>((h, bytes))
            }));
        }
        let mut get_hist = new_histogram();
        let mut bytes = 0u64;
        for t in tasks {
            let (h, b) = t.await.map_err(|e| e.to_string())??;
            let _ = get_hist.add(&h);
            bytes += b;
        }
        let secs = start.elapsed().as_secs_f64();
        let get = LatencySummary::of(&get_hist);
        report.gets = get.count;
        report.get_mib_per_sec = mib(bytes as f64) / secs;
        report.get_p50_ms = get.p50_ms;
        report.get_p99_ms = get.p99_ms;
        let _ = futures::stream::iter(keys.iter().cloned())
            .map(|k| {
                let store = store.clone();
                async move { store.delete(&k).await }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }
    Ok(report)
}

/// Runs the baseline in a child `silt-bench baseline` with `env` set.
pub async fn run_child(args: &BaselineArgs, env: &[(String, String)]) -> Result<BaselineReport, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("baseline")
        .args(["--store-url", &args.store_url])
        .args(["--put-bytes", &args.put_bytes.to_string()])
        .args(["--put-concurrency", &args.put_concurrency.to_string()])
        .args(["--put-secs", &args.put_secs.to_string()])
        .args(["--range-bytes", &args.range_bytes.to_string()])
        .args(["--get-concurrency", &args.get_concurrency.to_string()])
        .args(["--get-secs", &args.get_secs.to_string()])
        .args(["--json", "-", "--quiet"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some(f) = &args.inject_faults {
        cmd.args(["--inject-faults", f]);
    }
    let out = cmd.output().await.map_err(|e| format!("run baseline: {e}"))?;
    if !out.status.success() {
        return Err(format!("baseline failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("baseline output: {e}"))
}
