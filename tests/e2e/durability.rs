//! Restarts, crashes and corruption: nothing acknowledged is lost, nothing
//! corrupt is served.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use silt_e2e::{Client, Silt, TempDir};

fn segment_files(data_dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "seg") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&data_dir.join("objects"), &mut out);
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_topics_and_records_and_sigterm_flushes() {
    let dir = TempDir::new("restart");
    // A long flush interval: only the shutdown flush can seal the last segment in time.
    let mut silt = Silt::start(
        dir.path(),
        &[
            "--flush-interval-ms",
            "60000",
            "--segment-max-bytes",
            "4096",
            "--compression",
            "none",
        ],
    )
    .await;
    let client = Client::new(&silt);
    client.create_topic("keep", 3).await;
    // Big enough (uncompressed) to seal by size at once.
    let big: Vec<_> = (0..20)
        .map(|i| json!({"value": format!("{i:04}-{}", "x".repeat(300)), "partition": i % 3}))
        .collect();
    let r = client.produce("keep", json!({"records": big})).await.expect("produce");
    assert_eq!(r.status, 200, "{:?}", r.body);

    // This one waits for the flush interval; SIGTERM must flush it and answer.
    let pending = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .produce("keep", json!({"records": [{"value": "last words", "partition": 1}]}))
                .await
        })
    };
    // Wait until the record is buffered (the segment is open), then stop.
    silt.wait_metric("silt_unacked_bytes", |v| v > 0.0).await;
    let status = silt.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "silt exited with {status:?}");
    let reply = pending.await.expect("join").expect("pending produce answered");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let last_offset = reply.body["offsets"][0]["offset"].as_u64().expect("offset");

    silt.restart().await;
    let client = Client::new(&silt);
    let list = client.send("GET", "/v1/topics", None).await.expect("list");
    assert_eq!(list.body, json!({"topics": [{"name": "keep", "partitions": 3}]}));
    let p1 = client.read_all("keep", 1, "utf8").await;
    assert_eq!(p1.last().expect("records")["value"], "last words");
    assert_eq!(p1.last().expect("records")["offset"], last_offset);
    let total: usize = [
        client.read_all("keep", 0, "utf8").await.len(),
        p1.len(),
        client.read_all("keep", 2, "utf8").await.len(),
    ]
    .iter()
    .sum();
    assert_eq!(total, 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_record() {
    let dir = TempDir::new("crash");
    let mut silt = Silt::start(dir.path(), &["--flush-interval-ms", "10"]).await;
    let client = Client::new(&silt);
    client.create_topic("load", 4).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut producers = Vec::new();
    for p in 0..6 {
        let client = client.clone();
        let stop = stop.clone();
        let acked_count = acked_count.clone();
        producers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let records: Vec<_> = (0..5)
                    .map(|i| json!({"value": format!("p{p}-{n}-{i}"), "key": format!("k{}", n + i)}))
                    .collect();
                n += 1;
                match client.produce("load", json!({"records": records})).await {
                    Ok(r) if r.status == 200 => {
                        for (i, o) in r.body["offsets"].as_array().expect("offsets").iter().enumerate() {
                            acked.push((
                                o["partition"].as_u64().expect("partition"),
                                o["offset"].as_u64().expect("offset"),
                                format!("p{p}-{}-{i}", n - 1),
                            ));
                        }
                        acked_count.fetch_add(5, Ordering::Relaxed);
                    }
                    // The process died under us: no answer, no promise.
                    _ => break,
                }
            }
            acked
        }));
    }
    // Let a real load build up: wait for a few hundred acknowledged records.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while acked_count.load(Ordering::Relaxed) < 500 {
        assert!(std::time::Instant::now() < deadline, "load never built up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    silt.kill().await;
    stop.store(true, Ordering::Relaxed);
    let mut acked: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for p in producers {
        for (partition, offset, value) in p.await.expect("producer") {
            assert!(
                acked.insert((partition, offset), value).is_none(),
                "offset acknowledged twice"
            );
        }
    }
    assert!(acked.len() >= 500, "only {} acknowledged", acked.len());

    // Restart with the cache wiped: everything must come from the object store.
    let _ = std::fs::remove_dir_all(dir.path().join("cache"));
    silt.restart().await;
    let client = Client::new(&silt);
    for partition in 0..4u64 {
        let records = client.read_all("load", partition as u32, "utf8").await;
        let mut seen = std::collections::HashSet::new();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r["offset"], i as u64, "offsets must be contiguous");
            let value = r["value"].as_str().expect("value").to_owned();
            assert!(seen.insert(value.clone()), "record {value} stored twice");
        }
        for ((p, offset), value) in acked.range((partition, 0)..(partition + 1, 0)) {
            assert_eq!(*p, partition);
            let got = records
                .get(*offset as usize)
                .unwrap_or_else(|| panic!("acknowledged offset {offset} of partition {p} lost"));
            assert_eq!(
                got["value"].as_str(),
                Some(value.as_str()),
                "wrong record at {p}/{offset}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_in_a_stored_object_are_never_served() {
    let dir = TempDir::new("corrupt");
    let mut silt = Silt::start(dir.path(), &[]).await;
    let client = Client::new(&silt);
    client.create_topic("fragile", 1).await;
    let records: Vec<_> = (0..50)
        .map(|i| json!({"value": format!("precious record {i}")}))
        .collect();
    assert_eq!(
        client
            .produce("fragile", json!({"records": records}))
            .await
            .expect("produce")
            .status,
        200
    );
    assert!(silt.terminate(Duration::from_secs(30)).await.success());

    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1, "one produce, one segment: {files:?}");
    let mut bytes = std::fs::read(&files[0]).expect("read segment");
    // Flip a byte in the middle of the record data.
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&files[0], &bytes).expect("write segment");
    let _ = std::fs::remove_dir_all(dir.path().join("cache"));

    silt.restart().await;
    let client = Client::new(&silt);
    let r = client.read("fragile", 0, "offset=0").await.expect("read");
    assert_eq!(r.status, 500, "corrupt data must not be served: {:?}", r.body);
    assert_eq!(r.body["error"]["code"], "data_corrupt");
    assert!(r.body.get("records").is_none());
    assert!(silt.metric("silt_corrupt_chunks_total").await >= 1.0);
}
