//! Replays far behind the tail use ranged GETs and read-ahead, not the tail cache.

use serde_json::json;
use silt_e2e::{Client, Silt, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_data_replays_through_ranged_gets_without_touching_the_cache() {
    let dir = TempDir::new("replay");
    let mut silt = Silt::start(dir.path(), &["--flush-interval-ms", "5", "--replay-lag-records", "100"]).await;
    let client = Client::new(&silt);
    client.create_topic("r", 2).await;
    // Many small segments: each request seals on its own.
    for batch in 0..40 {
        let records: Vec<_> = (0..25)
            .map(|i| json!({"value": format!("{batch}-{i}"), "partition": i % 2}))
            .collect();
        let r = client.produce("r", json!({"records": records})).await.expect("produce");
        assert_eq!(r.status, 200);
    }
    // A fresh process: empty caches, so reads must come from the object store.
    assert!(silt.terminate(std::time::Duration::from_secs(30)).await.success());
    let _ = std::fs::remove_dir_all(dir.path().join("cache"));
    silt.restart().await;
    let client = Client::new(&silt);
    for partition in 0..2u32 {
        let expected: Vec<String> = (0..40)
            .flat_map(|batch| {
                (0..25)
                    .filter(move |i| i % 2 == partition)
                    .map(move |i| format!("{batch}-{i}"))
            })
            .collect();
        let mut offset = 0u64;
        let mut got = Vec::new();
        loop {
            let r = client
                .read("r", partition, &format!("offset={offset}&max_records=30"))
                .await
                .expect("read");
            assert_eq!(r.status, 200, "{:?}", r.body);
            for rec in r.body["records"].as_array().expect("records") {
                assert_eq!(rec["offset"], got.len() as u64, "reads must not skip");
                got.push(rec["value"].as_str().expect("value").to_owned());
            }
            offset = r.body["next_offset"].as_u64().expect("next");
            if offset >= r.body["high_watermark"].as_u64().expect("hwm") {
                break;
            }
        }
        assert_eq!(got, expected);
    }
    let replay = silt.metric("silt_chunk_reads_total{source=\"replay\"").await;
    let readahead = silt.metric("silt_chunk_reads_total{source=\"readahead\"").await;
    let tail_fetch = silt.metric("silt_chunk_reads_total{source=\"tail_fetch\"").await;
    assert!(
        replay + readahead > 0.0,
        "no replay reads: {}",
        silt.metrics_text().await
    );
    assert!(readahead > 0.0, "read-ahead never served a chunk");
    // Only the last stretch (within --replay-lag-records of the tail) used the tail path.
    assert!(
        tail_fetch < replay + readahead,
        "tail_fetch={tail_fetch} replay={replay} readahead={readahead}"
    );
    let ranged = silt
        .metric("silt_object_store_requests_total{operation=\"get_range\"")
        .await;
    assert!(ranged > 0.0);
}
