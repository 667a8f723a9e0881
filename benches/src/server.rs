//! Starting and watching the processes under test: `silt serve`, `silt meta`,
//! `silt agent`, moto and PostgreSQL (the last two through silt-testkit).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use silt_testkit::{MotoServer, PostgresServer};

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory under `base` (or the system temp dir).
    pub fn new(base: Option<&Path>, label: &str) -> Result<Self, String> {
        let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let path = base.join(format!(
            "silt-bench-{label}-{}-{}",
            std::process::id(),
            silt_bench::body::now_micros()
        ));
        std::fs::create_dir_all(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok(Self(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `silt` binary: `--silt-bin`/`SILT_BIN`, else the workspace's release
/// build, built first when absent.
pub fn silt_binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = root.join("target/release/silt");
    if !bin.exists() {
        crate::say!("building the release silt binary (cargo build --release -p silt-cli)...");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "silt-cli",
                "--bin",
                "silt",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"))
            .status()
            .map_err(|e| format!("run cargo: {e}"))?;
        if !status.success() || !bin.exists() {
            return Err("building the release silt binary failed".into());
        }
    }
    Ok(bin)
}

/// A running child process of ours with an HTTP listener.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    /// Its HTTP address.
    pub addr: SocketAddr,
    logs: Arc<Mutex<VecDeque<String>>>,
}

impl Proc {
    /// Starts `bin role --listen 127.0.0.1:0 --log-format json ARGS` with
    /// extra environment, waits for its "listening" line and `/readyz`.
    pub async fn spawn(
        bin: &Path,
        name: &str,
        role: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<Self, String> {
        let mut child = Command::new(bin)
            .arg(role)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let logs = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if tx.is_some()
                        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && v["message"] == "listening"
                        && let Some(addr) = v["addr"].as_str().and_then(|a| a.parse::<SocketAddr>().ok())
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(addr);
                    }
                    if let Ok(mut l) = logs.lock() {
                        if l.len() >= 200 {
                            l.pop_front();
                        }
                        l.push_back(line);
                    }
                }
            });
        }
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .map_err(|e| e.to_string())?;
        let mut proc = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            logs,
        };
        match addr {
            Ok(addr) => proc.addr = addr,
            Err(_) => return Err(format!("{name} did not start; logs:\n{}", proc.tail_logs())),
        }
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(proc.url("/readyz")).send().await
                && r.status() == 200
            {
                return Ok(proc);
            }
            if Instant::now() > deadline {
                return Err(format!("{name} never became ready; logs:\n{}", proc.tail_logs()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last log lines.
    pub fn tail_logs(&self) -> String {
        self.logs
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `VmRSS` and `VmHWM` (bytes) of a process from /proc.
pub fn read_rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Polls the RSS of a process every 200 ms; keeps the largest seen.
#[derive(Debug)]
pub struct RssWatch {
    pid: u32,
    max_rss: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssWatch {
    /// Starts watching `pid`.
    pub fn start(pid: u32) -> Self {
        let max_rss = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (max_rss, stop) = (max_rss.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match read_rss(pid) {
                        Some((rss, _)) => {
                            max_rss.fetch_max(rss, Ordering::Relaxed);
                        }
                        None => break,
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
        Self { pid, max_rss, stop }
    }

    /// `(current RSS, largest sampled RSS, VmHWM)` in bytes.
    pub fn read(&self) -> (u64, u64, u64) {
        let (rss, hwm) = read_rss(self.pid).unwrap_or((0, 0));
        (rss, self.max_rss.load(Ordering::Relaxed).max(rss), hwm)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Which object store a spawned node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum S3Kind {
    /// The local filesystem under the data dir (`file://`).
    None,
    /// A throwaway moto S3 server on loopback.
    Moto,
}

/// Settings passed through to spawned agents.
#[derive(Debug, Clone, Default)]
pub struct NodeFlags {
    /// `--flush-interval-ms`.
    pub flush_interval_ms: Option<u64>,
    /// `--segment-max-bytes`.
    pub segment_max_bytes: Option<u64>,
    /// `--replay-lag-records`.
    pub replay_lag_records: Option<u64>,
    /// `--compression`.
    pub compression: Option<String>,
    /// `--inject-faults`.
    pub inject_faults: Option<String>,
    /// Anything else, verbatim.
    pub extra: Vec<String>,
}

impl NodeFlags {
    fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        let mut push = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(flag.to_owned());
                a.push(v);
            }
        };
        push("--flush-interval-ms", self.flush_interval_ms.map(|v| v.to_string()));
        push("--segment-max-bytes", self.segment_max_bytes.map(|v| v.to_string()));
        push("--replay-lag-records", self.replay_lag_records.map(|v| v.to_string()));
        push("--compression", self.compression.clone());
        push("--inject-faults", self.inject_faults.clone());
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// What is under test: an external URL or processes we started.
#[derive(Debug)]
pub struct Deployment {
    /// Base URLs of the agents, e.g. `http://127.0.0.1:8080`.
    pub agent_urls: Vec<String>,
    /// Agent processes we started, kept alive until the deployment is dropped.
    _agents: Vec<Proc>,
    /// A `silt meta` process we started.
    pub meta: Option<Proc>,
    /// Object store URL (for baselines) and the environment it needs.
    pub store: Option<(String, Vec<(String, String)>)>,
    /// RSS watchers of started agents.
    pub rss: Vec<RssWatch>,
    /// What the object store is, for the report.
    pub store_kind: String,
    _moto: Option<MotoServer>,
    _pg: Option<PostgresServer>,
    _dirs: Vec<TempDir>,
}

impl Deployment {
    /// An already running endpoint; `store` names its object store, if known, for baselines.
    pub fn external(url: &str, store: Option<String>) -> Self {
        Self {
            agent_urls: vec![url.trim_end_matches('/').to_owned()],
            _agents: Vec::new(),
            meta: None,
            store_kind: store.clone().unwrap_or_else(|| "unknown (external)".into()),
            store: store.map(|s| (s, Vec::new())),
            rss: Vec::new(),
            _moto: None,
            _pg: None,
            _dirs: Vec::new(),
        }
    }

    /// Starts one `silt serve` on a fresh data dir, on the filesystem or moto.
    pub async fn serve(bin: &Path, s3: S3Kind, flags: &NodeFlags, work_dir: Option<&Path>) -> Result<Self, String> {
        let dir = TempDir::new(work_dir, "serve")?;
        let mut args = flags.args();
        let (moto, store, env, kind) = match s3 {
            S3Kind::None => {
                let url = format!("file://{}/bench-baseline", dir.path().display());
                (None, url, Vec::new(), "local filesystem (file://)".to_owned())
            }
            S3Kind::Moto => {
                let moto = MotoServer::start().await.map_err(|e| e.to_string())?;
                args.push("--object-store".into());
                args.push(format!("s3://{}/silt", moto.bucket()));
                let url = format!("s3://{}/bench-baseline", moto.bucket());
                let env = moto.env();
                (Some(moto), url, env, "moto S3 on loopback".to_owned())
            }
        };
        args.push("--data-dir".into());
        args.push(dir.path().display().to_string());
        let proc = Proc::spawn(bin, "silt serve", "serve", &args, &env).await?;
        Ok(Self {
            agent_urls: vec![proc.url("")],
            rss: vec![RssWatch::start(proc.pid())],
            _agents: vec![proc],
            meta: None,
            store: Some((store, env)),
            store_kind: kind,
            _moto: moto,
            _pg: None,
            _dirs: vec![dir],
        })
    }

    /// Starts PostgreSQL, `silt meta` on it, moto and `agents` `silt agent`s.
    pub async fn fleet(bin: &Path, agents: usize, flags: &NodeFlags, work_dir: Option<&Path>) -> Result<Self, String> {
        let pg = PostgresServer::start_new().await.map_err(|e| e.to_string())?;
        let db = pg.fresh_database().await.map_err(|e| e.to_string())?;
        let meta = Proc::spawn(bin, "silt meta", "meta", &["--database".into(), db], &[]).await?;
        let moto = MotoServer::start().await.map_err(|e| e.to_string())?;
        let env = moto.env();
        let mut procs = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..agents {
            let dir = TempDir::new(work_dir, &format!("agent{i}"))?;
            let mut args = flags.args();
            args.extend([
                "--meta".into(),
                meta.url(""),
                "--object-store".into(),
                format!("s3://{}/silt", moto.bucket()),
                "--cache-dir".into(),
                dir.path().display().to_string(),
                "--node-id".into(),
                format!("bench-agent-{i}"),
            ]);
            procs.push(Proc::spawn(bin, &format!("silt agent {i}"), "agent", &args, &env).await?);
            dirs.push(dir);
        }
        Ok(Self {
            agent_urls: procs.iter().map(|p| p.url("")).collect(),
            rss: procs.iter().map(|p| RssWatch::start(p.pid())).collect(),
            _agents: procs,
            meta: Some(meta),
            store: Some((format!("s3://{}/bench-baseline", moto.bucket()), env)),
            store_kind: "moto S3 on loopback, PostgreSQL metadata".into(),
            _moto: Some(moto),
            _pg: Some(pg),
            _dirs: dirs,
        })
    }

    /// Peak memory of the agents we started: `(largest sampled RSS, largest VmHWM)`.
    pub fn peak_rss(&self) -> Option<(u64, u64)> {
        if self.rss.is_empty() {
            return None;
        }
        let (mut rss, mut hwm) = (0, 0);
        for w in &self.rss {
            let (_, r, h) = w.read();
            rss = rss.max(r);
            hwm = hwm.max(h);
        }
        Some((rss, hwm))
    }
}
