//! Helpers for Silt's end-to-end tests: start the real `silt` binary on a
//! loopback port, talk to it over real HTTP, stop it with SIGTERM or kill it
//! with SIGKILL, and clean up its data directory.
//!
//! Tests never sleep to synchronise: they wait for conditions (a log line,
//! a ready endpoint, a process exit) with deadlines.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory under the system temp dir.
    pub fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "silt-e2e-{label}-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
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

/// The `silt` binary under test: `$SILT_BIN`, or the workspace's debug build,
/// (re)built once per test process so it is never stale.
pub fn silt_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SILT_BIN") {
            return PathBuf::from(bin);
        }
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "silt-cli", "--bin", "silt", "--manifest-path"])
            .arg(&manifest)
            .status()
            .expect("run cargo build for the silt binary");
        assert!(status.success(), "building the silt binary failed");
        // Test executables live in target/<profile>/deps; the binary one level up.
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target profile dir");
        let bin = profile_dir.join("silt");
        assert!(bin.exists(), "no silt binary at {}", bin.display());
        bin
    })
    .clone()
}

/// A running `silt` process (any role).
#[derive(Debug)]
pub struct Silt {
    child: Option<Child>,
    /// Address of its HTTP API.
    pub addr: SocketAddr,
    /// Its data directory (serve) or a scratch directory (other roles).
    pub data_dir: PathBuf,
    /// Subcommand and flags it was started with (reused by `restart`).
    pub args: Vec<String>,
    /// Extra environment it was started with.
    pub env: Vec<(String, String)>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Silt {
    /// Starts `silt serve --data-dir DIR --listen 127.0.0.1:0` plus `args`
    /// and waits until it is listening and ready.
    pub async fn start(data_dir: &Path, args: &[&str]) -> Self {
        let mut full = vec![
            "serve".to_owned(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
        ];
        full.extend(args.iter().map(|s| (*s).to_owned()));
        Self::spawn(data_dir.to_path_buf(), full, Vec::new(), "127.0.0.1:0").await
    }

    /// Starts `silt <args...>` with `env` on `listen` (e.g. `127.0.0.1:0`)
    /// and waits until it is listening and ready.
    pub async fn start_role(dir: &Path, args: Vec<String>, env: Vec<(String, String)>, listen: &str) -> Self {
        Self::spawn(dir.to_path_buf(), args, env, listen).await
    }

    async fn spawn(data_dir: PathBuf, args: Vec<String>, env: Vec<(String, String)>, listen: &str) -> Self {
        let mut child = Command::new(silt_binary())
            .args(&args)
            .args(["--listen", listen, "--log-format", "json"])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn silt");
        let stderr = child.stderr.take().expect("stderr piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let mut addr_tx = Some(addr_tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if addr_tx.is_some()
                        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && v["message"] == "listening"
                        && let Some(addr) = v["addr"].as_str().and_then(|a| a.parse::<SocketAddr>().ok())
                        && let Some(tx) = addr_tx.take()
                    {
                        let _ = tx.send(addr);
                    }
                    logs.lock().expect("log lock").push(line);
                }
            });
        }
        let addr = tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(60)))
            .await
            .expect("join")
            .unwrap_or_else(|_| {
                panic!(
                    "silt did not start; logs:\n{}",
                    logs.lock().expect("log lock").join("\n")
                )
            });
        let silt = Self {
            child: Some(child),
            addr,
            data_dir,
            args,
            env,
            logs,
        };
        silt.wait_ready().await;
        silt
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(self.url("/readyz")).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "silt never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Full URL of `path` on this node.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The whole `/metrics` exposition, for failure messages.
    pub async fn metrics_text(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .expect("scrape metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// Sum of every sample of a metric family in `/metrics` (0 when absent).
    /// `name` may carry a label prefix: `silt_x_total{source="replay"`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics_text().await;
        text.lines()
            .filter(|l| {
                l.strip_prefix(name).is_some_and(|rest| {
                    if name.contains('{') {
                        rest.starts_with('}') || rest.starts_with(',')
                    } else {
                        rest.starts_with(' ') || rest.starts_with('{')
                    }
                })
            })
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// Polls `/metrics` until `pred` holds for the metric, failing after 20 s.
    pub async fn wait_metric(&self, name: &str, pred: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let value = self.metric(name).await;
            if pred(value) {
                return value;
            }
            assert!(Instant::now() < deadline, "metric {name} stuck at {value}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Log lines printed so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }

    /// Process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(timeout).await
    }

    /// Kills the process with SIGKILL: no chance to flush anything.
    pub async fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(10)).await;
    }

    fn signal(&self, signal: i32) {
        let pid = self.pid();
        if pid > 0 {
            let rc = send_signal(pid, signal);
            assert!(rc == 0 || self.child.is_none(), "kill({pid}, {signal}) failed");
        }
    }

    async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("process already stopped");
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + timeout;
            loop {
                if let Some(status) = child.try_wait().expect("wait for silt") {
                    return status;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    panic!("silt did not exit within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .await
        .expect("join")
    }

    /// Starts a new process with the same flags, on the same address
    /// (so peers that know it find it again).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the old process first");
        let listen = if self.args.first().is_some_and(|a| a == "serve") {
            "127.0.0.1:0".to_owned()
        } else {
            self.addr.to_string()
        };
        let new = Self::spawn(self.data_dir.clone(), self.args.clone(), self.env.clone(), &listen).await;
        *self = new;
    }
}

fn send_signal(pid: i32, signal: i32) -> i32 {
    // The workspace forbids `unsafe`; the `kill` command does the same job.
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
    match status {
        Ok(s) if s.success() => 0,
        _ => -1,
    }
}

impl Drop for Silt {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A small JSON client for the v1 API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

/// Status and JSON body of a response.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Parsed body (`Null` when empty or not JSON).
    pub body: serde_json::Value,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Client {
    /// A client for the node at `silt`.
    pub fn new(silt: &Silt) -> Self {
        Self::for_addr(silt.addr)
    }

    /// A client for any address.
    pub fn for_addr(addr: SocketAddr) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("http client"),
            base: format!("http://{addr}"),
        }
    }

    /// Sends a request with an optional JSON body.
    pub async fn send(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> reqwest::Result<Reply> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body.to_string());
        }
        Self::reply(req.send().await?).await
    }

    /// Sends raw bytes with the given content type.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Result<Reply> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        Self::reply(resp).await
    }

    async fn reply(resp: reqwest::Response) -> reqwest::Result<Reply> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok(Reply { status, body, headers })
    }

    /// Creates a topic, asserting success.
    pub async fn create_topic(&self, name: &str, partitions: u32) {
        let r = self
            .send(
                "POST",
                "/v1/topics",
                Some(serde_json::json!({"name": name, "partitions": partitions})),
            )
            .await
            .expect("create topic");
        assert_eq!(r.status, 201, "create topic {name}: {:?}", r.body);
    }

    /// Produces a JSON body, returning the reply.
    pub async fn produce(&self, topic: &str, body: serde_json::Value) -> reqwest::Result<Reply> {
        self.send("POST", &format!("/v1/topics/{topic}/records"), Some(body))
            .await
    }

    /// Reads with a raw query string, returning the reply.
    pub async fn read(&self, topic: &str, partition: u32, query: &str) -> reqwest::Result<Reply> {
        self.send(
            "GET",
            &format!("/v1/topics/{topic}/partitions/{partition}/records?{query}"),
            None,
        )
        .await
    }

    /// Reads every record of a partition from offset 0 to its high
    /// watermark, following `next_offset`.
    pub async fn read_all(&self, topic: &str, partition: u32, encoding: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let r = self
                .read(
                    topic,
                    partition,
                    &format!("offset={offset}&max_records=10000&encoding={encoding}"),
                )
                .await
                .expect("read");
            assert_eq!(r.status, 200, "read {topic}/{partition}@{offset}: {:?}", r.body);
            let records = r.body["records"].as_array().cloned().unwrap_or_default();
            let next = r.body["next_offset"].as_u64().expect("next_offset");
            let hwm = r.body["high_watermark"].as_u64().expect("high_watermark");
            out.extend(records);
            if next >= hwm {
                return out;
            }
            assert!(next > offset, "read made no progress at offset {offset}");
            offset = next;
        }
    }
}
