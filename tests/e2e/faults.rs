//! The write and read paths under injected object-store faults: nothing
//! acknowledged is lost, retries create no duplicates, corrupt bytes are
//! never served.

use std::collections::BTreeMap;

use serde_json::json;
use silt_e2e::{Client, Silt, TempDir};

const FAULTS: &str =
    "slowdown=0.15,server_error=0.1,reset=0.1,truncate=0.15,put_lost=0.2,bitflip=0.1,latency_ms=2,seed=42";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_hold_under_every_fault_kind() {
    let dir = TempDir::new("faults");
    let mut silt = Silt::start(dir.path(), &["--flush-interval-ms", "10", "--inject-faults", FAULTS]).await;
    let client = Client::new(&silt);
    client.create_topic("f", 3).await;

    let mut tasks = Vec::new();
    for p in 0..4 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..30 {
                let records: Vec<_> = (0..4)
                    .map(|i| json!({"value": format!("p{p}-{n}-{i}"), "partition": (n + i) % 3}))
                    .collect();
                let r = client.produce("f", json!({"records": records})).await.expect("produce");
                // Transient faults are retried inside; a definite failure is allowed, a lie is not.
                if r.status == 200 {
                    for (i, o) in r.body["offsets"].as_array().expect("offsets").iter().enumerate() {
                        acked.push((
                            o["partition"].as_u64().expect("p"),
                            o["offset"].as_u64().expect("o"),
                            format!("p{p}-{n}-{i}"),
                        ));
                    }
                } else {
                    assert_eq!(r.status, 503, "{:?}", r.body);
                }
            }
            acked
        }));
    }
    let mut acked: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for t in tasks {
        for (p, o, v) in t.await.expect("producer") {
            assert!(acked.insert((p, o), v).is_none(), "offset acknowledged twice");
        }
    }
    assert!(acked.len() > 300, "too few writes survived the faults: {}", acked.len());
    assert!(
        silt.metric("silt_object_store_requests_total{operation=\"put\",outcome=\"error\"")
            .await
            > 0.0,
        "no PUT faults were injected"
    );

    // Read everything back through faulty reads, caches wiped: every read is
    // either correct or a clear error, never wrong data.
    assert!(silt.terminate(std::time::Duration::from_secs(30)).await.success());
    let _ = std::fs::remove_dir_all(dir.path().join("cache"));
    silt.restart().await;
    let client = Client::new(&silt);
    let mut corrupt_errors = 0;
    for partition in 0..3u64 {
        let mut offset = 0u64;
        let mut seen = std::collections::HashSet::new();
        loop {
            let r = client
                .read("f", partition as u32, &format!("offset={offset}&max_records=7"))
                .await
                .expect("read");
            if r.status != 200 {
                // A re-fetch that was also corrupted or cut: a clear error, then the client retries.
                assert!(r.status == 500 || r.status == 503, "{:?}", r.body);
                corrupt_errors += 1;
                assert!(corrupt_errors < 200, "reads keep failing");
                continue;
            }
            for rec in r.body["records"].as_array().expect("records") {
                let o = rec["offset"].as_u64().expect("offset");
                assert_eq!(o, offset, "reads never skip");
                let value = rec["value"].as_str().expect("value").to_owned();
                assert!(seen.insert(value.clone()), "duplicate record {value}");
                if let Some(expected) = acked.get(&(partition, o)) {
                    assert_eq!(&value, expected, "wrong data at {partition}/{o}");
                } else {
                    assert!(value.starts_with('p'), "garbage record {value}");
                }
                offset += 1;
            }
            if offset >= r.body["high_watermark"].as_u64().expect("hwm") {
                break;
            }
        }
        let acked_here = acked.range((partition, 0)..(partition + 1, 0)).count() as u64;
        assert!(offset >= acked_here);
    }
}

/// One fault kind at a time, each at a high rate: the same invariants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_hold_under_each_fault_kind_alone() {
    let kinds = [
        "latency_ms=30",
        "slowdown=0.4",
        "server_error=0.4",
        "reset=0.4",
        "truncate=0.4",
        "put_lost=0.5",
        "bitflip=0.3",
    ];
    for (n, kind) in kinds.iter().enumerate() {
        let plan = format!("{kind},seed={}", 100 + n);
        let dir = TempDir::new("fault-kind");
        let mut silt = Silt::start(dir.path(), &["--flush-interval-ms", "5", "--inject-faults", &plan]).await;
        let client = Client::new(&silt);
        client.create_topic("k", 1).await;
        let mut acked: Vec<(u64, String)> = Vec::new();
        for r in 0..12 {
            let records: Vec<_> = (0..3).map(|i| json!({"value": format!("{r}-{i}")})).collect();
            let reply = client.produce("k", json!({"records": records})).await.expect("produce");
            if reply.status == 200 {
                for (i, o) in reply.body["offsets"].as_array().expect("offsets").iter().enumerate() {
                    acked.push((o["offset"].as_u64().expect("offset"), format!("{r}-{i}")));
                }
            } else {
                assert_eq!(reply.status, 503, "{kind}: {:?}", reply.body);
            }
        }
        assert!(!acked.is_empty(), "{kind}: nothing was acknowledged");
        assert!(silt.terminate(std::time::Duration::from_secs(30)).await.success());
        let _ = std::fs::remove_dir_all(dir.path().join("cache"));
        silt.restart().await;
        let client = Client::new(&silt);
        // Read until every acknowledged record has been seen intact.
        let mut offset = 0u64;
        let mut seen: BTreeMap<u64, String> = BTreeMap::new();
        let mut errors = 0;
        loop {
            let r = client
                .read("k", 0, &format!("offset={offset}&max_records=5"))
                .await
                .expect("read");
            if r.status != 200 {
                assert!(r.status == 500 || r.status == 503, "{kind}: {:?}", r.body);
                errors += 1;
                assert!(errors < 100, "{kind}: reads keep failing");
                continue;
            }
            for rec in r.body["records"].as_array().expect("records") {
                assert_eq!(rec["offset"], offset, "{kind}: reads never skip");
                let value = rec["value"].as_str().expect("value").to_owned();
                assert!(!seen.values().any(|v| *v == value), "{kind}: duplicate {value}");
                seen.insert(offset, value);
                offset += 1;
            }
            if offset >= r.body["high_watermark"].as_u64().expect("hwm") {
                break;
            }
        }
        for (o, v) in &acked {
            assert_eq!(seen.get(o), Some(v), "{kind}: acknowledged record at {o} lost or wrong");
        }
    }
}
