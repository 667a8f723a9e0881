//! Offsets under concurrent producers, and long-polling consumers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use silt_e2e::{Client, Silt, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_get_unique_contiguous_offsets() {
    let dir = TempDir::new("concurrent");
    let silt = Silt::start(dir.path(), &["--flush-interval-ms", "20"]).await;
    let client = Client::new(&silt);
    client.create_topic("c", 4).await;

    let producers = 8;
    let requests = 25;
    let mut tasks = Vec::new();
    for p in 0..producers {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked: Vec<(u64, u64, String)> = Vec::new();
            let mut last_per_partition: BTreeMap<u64, u64> = BTreeMap::new();
            for r in 0..requests {
                let records: Vec<_> = (0..10)
                    .map(|i| json!({"value": format!("p{p}-r{r}-i{i}"), "partition": (r + i) % 4}))
                    .collect();
                let reply = client.produce("c", json!({"records": records})).await.expect("produce");
                assert_eq!(reply.status, 200, "{:?}", reply.body);
                for (i, o) in reply.body["offsets"].as_array().expect("offsets").iter().enumerate() {
                    let partition = o["partition"].as_u64().expect("partition");
                    let offset = o["offset"].as_u64().expect("offset");
                    // One client's successive requests get increasing offsets.
                    if let Some(prev) = last_per_partition.insert(partition, offset) {
                        assert!(offset > prev, "offsets went backwards for producer {p}");
                    }
                    acked.push((partition, offset, format!("p{p}-r{r}-i{i}")));
                }
            }
            acked
        }));
    }
    let mut by_partition: BTreeMap<u64, BTreeMap<u64, String>> = BTreeMap::new();
    for task in tasks {
        for (partition, offset, value) in task.await.expect("producer task") {
            let previous = by_partition.entry(partition).or_default().insert(offset, value);
            assert!(
                previous.is_none(),
                "offset {offset} in partition {partition} acknowledged twice"
            );
        }
    }
    let total: usize = by_partition.values().map(BTreeMap::len).sum();
    assert_eq!(total, producers * requests * 10);
    for (partition, offsets) in &by_partition {
        // Contiguous from zero: the keys are exactly 0..n.
        let n = offsets.len() as u64;
        assert_eq!(offsets.keys().copied().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
        let read = client.read_all("c", *partition as u32, "utf8").await;
        assert_eq!(read.len() as u64, n);
        for record in read {
            let offset = record["offset"].as_u64().expect("offset");
            assert_eq!(record["value"].as_str(), offsets.get(&offset).map(String::as_str));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_on_new_data_and_times_out_empty() {
    let dir = TempDir::new("longpoll");
    let silt = Silt::start(dir.path(), &[]).await;
    let client = Client::new(&silt);
    client.create_topic("lp", 1).await;

    // Nothing arrives: the wait ends empty after wait_ms.
    let started = Instant::now();
    let r = client.read("lp", 0, "offset=0&wait_ms=300").await.expect("read");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["records"], json!([]));
    assert_eq!(r.body["next_offset"], 0);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A consumer waiting at the high watermark wakes when a record commits.
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = client.read("lp", 0, "offset=0&wait_ms=30000").await.expect("read");
            (r, started.elapsed())
        })
    };
    // Produce only once the consumer is parked at the high watermark.
    silt.wait_metric("silt_reads_waiting", |v| v >= 1.0).await;
    let r = client
        .produce("lp", json!({"records": [{"value": "wake up"}]}))
        .await
        .expect("produce");
    assert_eq!(r.status, 200);
    let (r, took) = waiter.await.expect("waiter");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["records"][0]["value"], "wake up");
    assert_eq!(r.body["next_offset"], 1);
    assert!(
        took < Duration::from_secs(20),
        "long poll did not wake promptly: {took:?}"
    );
}
