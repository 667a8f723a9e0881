//! Bounded resources: admission, slow clients, idle agents.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;
use silt_e2e::{Client, Silt, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_buffer_answers_503_with_retry_after() {
    let dir = TempDir::new("admission");
    let silt = Silt::start(
        dir.path(),
        &[
            "--max-unacked-bytes",
            "10000",
            "--flush-interval-ms",
            "3000",
            "--admission-wait-ms",
            "100",
        ],
    )
    .await;
    let client = Client::new(&silt);
    client.create_topic("a", 1).await;
    // The first request takes almost all of the budget and waits for its flush.
    let first = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .produce("a", json!({"records": [{"value": "x".repeat(9000)}]}))
                .await
        })
    };
    // Once it is admitted, the next request cannot fit.
    silt.wait_metric("silt_unacked_bytes", |v| v >= 9000.0).await;
    let rejected = client
        .produce("a", json!({"records": [{"value": "y".repeat(2000)}]}))
        .await
        .expect("produce");
    assert_eq!(rejected.status, 503, "{:?}", rejected.body);
    assert_eq!(rejected.body["error"]["code"], "overloaded");
    let retry_after: u64 = rejected.headers["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    assert_eq!(first.await.expect("join").expect("first").status, 200);
    assert_eq!(silt.metric("silt_admission_rejections_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_client_is_disconnected() {
    let dir = TempDir::new("slowloris");
    let silt = Silt::start(dir.path(), &["--header-read-timeout-ms", "300"]).await;
    let addr = silt.addr;
    let outcome = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .expect("partial headers");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let started = Instant::now();
        let mut buf = [0u8; 512];
        // The server must close (or answer 408) instead of holding the connection.
        let n = stream.read(&mut buf).unwrap_or(0);
        (started.elapsed(), String::from_utf8_lossy(&buf[..n]).to_string())
    })
    .await
    .expect("join");
    assert!(
        outcome.0 < Duration::from_secs(5),
        "connection held for {:?}",
        outcome.0
    );
    assert!(
        outcome.1.is_empty() || outcome.1.contains("408"),
        "unexpected answer {}",
        outcome.1
    );
    // The node still serves others.
    assert_eq!(
        Client::new(&silt)
            .send("GET", "/healthz", None)
            .await
            .expect("health")
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_node_writes_no_objects() {
    let dir = TempDir::new("idle");
    let silt = Silt::start(dir.path(), &["--flush-interval-ms", "10"]).await;
    let client = Client::new(&silt);
    client.create_topic("quiet", 1).await;
    // A long-poll spans many flush intervals with nothing produced.
    let r = client.read("quiet", 0, "offset=0&wait_ms=500").await.expect("read");
    assert_eq!(r.body["records"], json!([]));
    let metrics = reqwest::get(silt.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        !metrics.contains("silt_segment_uploads_total{"),
        "an idle node uploaded:\n{metrics}"
    );
    let objects = dir.path().join("objects");
    let count = walk_count(&objects);
    assert_eq!(count, 0, "idle node wrote {count} objects");
}

fn walk_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| if e.path().is_dir() { walk_count(&e.path()) } else { 1 })
            .sum()
    })
}
