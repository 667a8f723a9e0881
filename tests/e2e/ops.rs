//! Operational behaviour deployments rely on: readiness that tracks the
//! metadata service and the object store, settings from the environment and
//! a config file, JSON logs, prompt SIGTERM.

use std::time::{Duration, Instant};

use serde_json::json;
use silt_e2e::{Client, Silt, TempDir, silt_binary};
use silt_testkit::{MotoServer, require};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_metadata_service_and_the_object_store() {
    let moto = require!(MotoServer::start().await);
    let dir = TempDir::new("ready");
    let meta_port = require!(silt_testkit::free_port());
    let meta_addr = format!("127.0.0.1:{meta_port}");
    // The agent starts before its metadata service exists: alive, not ready.
    let agent = Silt::start_role_unready(
        dir.path(),
        vec![
            "agent".into(),
            "--meta".into(),
            format!("http://{meta_addr}"),
            "--object-store".into(),
            format!("s3://{}/ready", moto.bucket()),
            "--cache-dir".into(),
            dir.path().join("cache").display().to_string(),
        ],
        moto.env(),
        "127.0.0.1:0",
    )
    .await;
    let client = Client::new(&agent);
    assert_eq!(client.send("GET", "/healthz", None).await.expect("healthz").status, 200);
    let r = client.send("GET", "/readyz", None).await.expect("readyz");
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "not_ready");

    // The metadata service appears: ready.
    let db = dir.path().join("meta.sqlite");
    let mut meta = Silt::start_role(
        dir.path(),
        vec!["meta".into(), "--database".into(), format!("sqlite://{}", db.display())],
        Vec::new(),
        &meta_addr,
    )
    .await;
    agent.wait_ready_status(200).await;

    // It goes away: not ready; it comes back: ready again.
    meta.kill().await;
    agent.wait_ready_status(503).await;
    meta.restart().await;
    agent.wait_ready_status(200).await;

    // The object store goes away: not ready.
    drop(moto);
    agent.wait_ready_status(503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_env_and_config_file_env_winning() {
    let dir = TempDir::new("env");
    let port = require!(silt_testkit::free_port());
    let config = dir.path().join("silt.toml");
    std::fs::write(
        &config,
        "max_record_bytes = 50\nflush_interval_ms = 5\nmax_read_records = 2\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    // Only environment variables and the file: no flags at all.
    let child = std::process::Command::new(silt_binary())
        .arg("serve")
        .env("SILT_CONFIG", &config)
        .env("SILT_DATA_DIR", &data)
        .env("SILT_LISTEN", format!("127.0.0.1:{port}"))
        .env("SILT_LOG_FORMAT", "json")
        .env("SILT_MAX_RECORD_BYTES", "100")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let client = Client::for_addr(format!("127.0.0.1:{port}").parse().expect("addr"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.send("GET", "/readyz", None).await.map(|r| r.status).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "env-configured node never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.create_topic("e", 1).await;
    // The environment (100) beat the file (50).
    let ok = client
        .produce("e", json!({"records": [{"value": "v".repeat(80)}]}))
        .await
        .expect("produce");
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let too_big = client
        .produce("e", json!({"records": [{"value": "v".repeat(120)}]}))
        .await
        .expect("produce");
    assert_eq!(too_big.status, 413);
    // The file's cap on records per read applies.
    let more: Vec<_> = (0..5).map(|i| json!({"value": format!("{i}")})).collect();
    assert_eq!(
        client
            .produce("e", json!({"records": more}))
            .await
            .expect("produce")
            .status,
        200
    );
    let r = client.read("e", 0, "offset=0&max_records=100").await.expect("read");
    assert_eq!(r.body["records"].as_array().map(Vec::len), Some(2));

    // SIGTERM: exits 0 promptly, and every log line was JSON.
    let started = Instant::now();
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert!(output.status.success(), "exit {:?}", output.status);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.lines().count() > 3);
    for line in logs.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
    }

    // A bad setting is a clear startup error, not a panic.
    let bad = std::process::Command::new(silt_binary())
        .args(["serve", "--compression", "gzip9", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("compression must be none, lz4 or zstd"));
}
