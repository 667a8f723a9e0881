//! Compaction into Parquet, retention and GC through the real binary: the
//! HTTP API and an independent Parquet reader (pyarrow) both see exactly
//! what was produced, and reads never fail while files move underneath.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use silt_e2e::{Client, Silt, TempDir};

/// One produced record as the API returns it with `encoding=base64`.
fn expected_record(offset: u64, r: &Value) -> Value {
    json!({
        "offset": offset,
        "timestamp_ms": r["timestamp_ms"],
        "key": r["key"],
        "value": r["value"],
        "headers": r["headers"],
    })
}

fn produced_record(i: u64, partition: u32) -> Value {
    let value: Vec<u8> = (0..(i % 40 + 1)).map(|b| ((b * 37 + i) % 256) as u8).collect();
    let key = (!i.is_multiple_of(3)).then(|| STANDARD.encode(format!("key-{i}")));
    let headers = match i % 3 {
        0 => json!([]),
        1 => json!([{"key": "h", "value": STANDARD.encode([0u8, 1, 255])}]),
        _ => json!([
            {"key": "dup", "value": STANDARD.encode("a")},
            {"key": "dup", "value": null},
            {"key": "dup", "value": STANDARD.encode("")},
        ]),
    };
    json!({
        "key": key,
        "value": STANDARD.encode(value),
        "headers": headers,
        "partition": partition,
        "timestamp_ms": 1_700_000_000_000i64 + i as i64,
    })
}

/// Reads every record with base64 encoding, failing on any non-200.
async fn read_all(client: &Client, topic: &str, partition: u32) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        let r = client
            .read(
                topic,
                partition,
                &format!("offset={offset}&max_records=37&encoding=base64"),
            )
            .await
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("read {topic}/{partition}@{offset}: {} {:?}", r.status, r.body));
        }
        for rec in r.body["records"].as_array().cloned().unwrap_or_default() {
            out.push(rec);
        }
        offset = r.body["next_offset"].as_u64().ok_or("next_offset")?;
        if offset >= r.body["high_watermark"].as_u64().ok_or("high_watermark")? {
            return Ok(out);
        }
    }
}

fn files_under(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p, ext));
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
    out.sort();
    out
}

const PYARROW_DUMP: &str = r#"
import base64, glob, json, sys
import pyarrow.parquet as pq
files = sorted(glob.glob(sys.argv[1] + "/*.parquet"))
for f in files:
    t = pq.read_table(f)
    ts = t.column("timestamp_ms").cast("int64").to_pylist()
    b64 = lambda b: None if b is None else base64.b64encode(b).decode()
    for i, row in enumerate(t.to_pylist()):
        print(json.dumps({
            "offset": row["offset"],
            "timestamp_ms": ts[i],
            "key": b64(row["key"]),
            "value": b64(row["value"]),
            "headers": [{"key": h["key"], "value": b64(h["value"])} for h in row["headers"]],
        }))
"#;

fn pyarrow_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import pyarrow.parquet"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_parquet_matches_what_was_produced_for_the_api_and_pyarrow() {
    let dir = TempDir::new("compaction");
    let silt = Silt::start(
        dir.path(),
        &[
            "--flush-interval-ms",
            "5",
            "--compaction-interval-ms",
            "200",
            // Each request seals its own segment with one chunk per
            // partition: one run per partition once all 30 are in.
            "--compaction-min-chunks",
            "30",
            "--compaction-row-group-rows",
            "50",
            "--gc-grace-ms",
            "1500",
        ],
    )
    .await;
    let client = Client::new(&silt);
    client.create_topic("c", 2).await;
    let mut expected: BTreeMap<u32, Vec<Value>> = BTreeMap::new();
    let mut i = 0u64;
    for _ in 0..30 {
        let records: Vec<Value> = (0..20)
            .map(|_| {
                i += 1;
                produced_record(i, (i % 2) as u32)
            })
            .collect();
        let r = client
            .produce("c", json!({"records": records, "encoding": "base64"}))
            .await
            .expect("produce");
        assert_eq!(r.status, 200, "{:?}", r.body);
        for (rec, o) in records.iter().zip(r.body["offsets"].as_array().expect("offsets")) {
            let p = o["partition"].as_u64().expect("partition") as u32;
            let offset = o["offset"].as_u64().expect("offset");
            let list = expected.entry(p).or_default();
            assert_eq!(offset, list.len() as u64);
            list.push(expected_record(offset, rec));
        }
    }
    let expected = Arc::new(expected);

    // Readers run all through compaction and GC; none may fail or disagree.
    let stop = Arc::new(AtomicBool::new(false));
    // Full read-backs completed, per partition.
    let rounds: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let mut readers = Vec::new();
    for partition in 0..2u32 {
        let (client, stop, rounds, expected) = (client.clone(), stop.clone(), rounds.clone(), expected.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let got = read_all(&client, "c", partition).await.expect("read during compaction");
                assert_eq!(&got, &expected[&partition], "partition {partition}");
                rounds[partition as usize].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    silt.wait_metric("silt_compaction_records_total", |v| v >= 600.0).await;
    // Every L0 segment becomes garbage once both partitions are in L1.
    let objects = dir.path().join("objects");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !files_under(&objects.join("segments"), "seg").is_empty() {
        assert!(Instant::now() < deadline, "L0 segments never collected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(silt.metric("silt_gc_deleted_objects_total").await >= 30.0);
    // Two more rounds per partition: at least one started after the L0
    // segments were gone, so it read L1 alone.
    let after_gc: Vec<u64> = rounds.iter().map(|r| r.load(Ordering::Relaxed)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while rounds
        .iter()
        .zip(&after_gc)
        .any(|(r, before)| r.load(Ordering::Relaxed) < before + 2)
    {
        assert!(Instant::now() < deadline, "readers made no progress after GC");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.expect("reader");
    }

    // Through the API, from L1 only now.
    for partition in 0..2u32 {
        assert_eq!(
            read_all(&client, "c", partition).await.expect("read"),
            expected[&partition]
        );
    }

    // The files are where docs/layout.md says, one per partition.
    let id = client.send("GET", "/v1/topics/c", None).await.expect("describe").body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for partition in 0..2u32 {
        let folder = objects.join("topics").join(&id).join(partition.to_string());
        let files = files_under(&folder, "parquet");
        assert!(!files.is_empty());
        // Named <base:020>-<last:020>.parquet, contiguous, sorting in offset order.
        let mut next = 0u64;
        for f in &files {
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            let (base, last) = name.trim_end_matches(".parquet").split_once('-').expect("base-last");
            assert_eq!((base.len(), last.len()), (20, 20), "{name}");
            assert_eq!(base.parse::<u64>().expect("base"), next, "{name}");
            next = last.parse::<u64>().expect("last") + 1;
        }
        assert_eq!(next, expected[&partition].len() as u64);

        if !pyarrow_available() {
            eprintln!("SKIP: pyarrow not installed (pip install pyarrow); Parquet checked through the API only");
            continue;
        }
        let out = std::process::Command::new("python3")
            .args(["-c", PYARROW_DUMP, folder.to_str().expect("utf-8 path")])
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "pyarrow: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<Value> = String::from_utf8(out.stdout)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(rows.len(), expected[&partition].len());
        for (got, want) in rows.iter().zip(expected[&partition].iter()) {
            assert_eq!(got, want);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_set_by_patch_moves_the_log_start_and_old_reads_get_410() {
    let dir = TempDir::new("retention");
    let silt = Silt::start(
        dir.path(),
        &[
            "--flush-interval-ms",
            "5",
            "--compaction-interval-ms",
            "200",
            "--gc-grace-ms",
            "1000",
        ],
    )
    .await;
    let client = Client::new(&silt);
    client.create_topic("r", 1).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    for (batch, ts) in [now - 7_200_000, now - 7_100_000, now - 7_000_000, now, now]
        .into_iter()
        .enumerate()
    {
        let records: Vec<Value> = (0..10)
            .map(|i| json!({"value": format!("{batch}-{i}"), "timestamp_ms": ts}))
            .collect();
        let r = client.produce("r", json!({"records": records})).await.expect("produce");
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    // Bad values are refused; good ones are applied and shown.
    let bad = client
        .send("PATCH", "/v1/topics/r", Some(json!({"config": {"retention_ms": 0}})))
        .await
        .expect("patch");
    assert_eq!(bad.status, 400);
    let missing = client
        .send("PATCH", "/v1/topics/nope", Some(json!({"config": {"retention_ms": 5}})))
        .await
        .expect("patch");
    assert_eq!(missing.status, 404);
    let r = client
        .send(
            "PATCH",
            "/v1/topics/r",
            Some(json!({"config": {"retention_ms": 3_600_000}})),
        )
        .await
        .expect("patch");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["config"]["retention_ms"], 3_600_000);

    let deadline = Instant::now() + Duration::from_secs(20);
    let start = loop {
        let d = client.send("GET", "/v1/topics/r", None).await.expect("describe");
        let start = d.body["partitions"][0]["log_start_offset"].as_u64().expect("start");
        if start > 0 {
            break start;
        }
        assert!(Instant::now() < deadline, "retention never moved the log start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(start, 30, "exactly the three expired segments");
    let gone = client.read("r", 0, "offset=0").await.expect("read");
    assert_eq!(gone.status, 410, "{:?}", gone.body);
    let message = gone.body["error"]["message"].as_str().expect("message");
    assert!(message.contains("log_start_offset=30"), "{message}");
    let rest = client.read("r", 0, "offset=30&max_records=100").await.expect("read");
    assert_eq!(rest.status, 200);
    let values: Vec<&str> = rest.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["value"].as_str().expect("value"))
        .collect();
    assert_eq!(values.len(), 20);
    assert_eq!(values[0], "3-0");
    // The expired segments are collected after the grace period.
    silt.wait_metric("silt_gc_deleted_objects_total", |v| v >= 3.0).await;
    assert_eq!(
        files_under(&dir.path().join("objects").join("segments"), "seg").len(),
        2
    );
}
