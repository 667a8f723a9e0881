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

/// Name and nice value of every thread of a process, from `/proc`.
#[cfg(target_os = "linux")]
fn threads(pid: i32) -> Vec<(i32, String, i64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let path = entry.expect("task entry").path();
        let tid: i32 = path
            .file_name()
            .and_then(|n| n.to_str()?.parse().ok())
            .expect("task dirs are thread ids");
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Fields after "(comm)": state is field 3, nice field 19.
        let rest = &stat[stat.rfind(')').expect("stat has a comm") + 1..];
        let nice = rest.split_whitespace().nth(16).expect("nice field");
        out.push((tid, comm.trim().to_owned(), nice.parse().expect("nice is a number")));
    }
    out
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_run_on_background_threads_at_the_configured_nice_value() {
    let dir = TempDir::new("lane");
    let silt = Silt::start(
        dir.path(),
        &[
            "--flush-interval-ms",
            "5",
            "--replay-lag-records",
            "10",
            "--background-threads",
            "2",
            "--background-nice",
            "12",
        ],
    )
    .await;
    let client = Client::new(&silt);
    client.create_topic("lane", 1).await;
    for batch in 0..5 {
        let records: Vec<_> = (0..20).map(|i| json!({"value": format!("{batch}-{i}")})).collect();
        let r = client
            .produce("lane", json!({"records": records}))
            .await
            .expect("produce");
        assert_eq!(r.status, 200);
    }
    // A replay (100 behind) runs on the lane, then the threads are inspected.
    let r = client.read("lane", 0, "offset=0&max_records=50").await.expect("read");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["records"].as_array().expect("records").len(), 50);

    let all = threads(silt.pid());
    let main_nice = all
        .iter()
        .find(|(tid, _, _)| *tid == silt.pid())
        .expect("the main thread")
        .2;
    let lane = all.iter().filter(|(_, name, _)| name == "silt-background").count();
    assert!(lane >= 2, "two lane workers expected: {all:?}");
    for (_, name, nice) in &all {
        if name == "silt-background" {
            assert_eq!(*nice, main_nice.max(12), "lane thread at nice {nice}: {all:?}");
        } else {
            assert_eq!(*nice, main_nice, "thread {name} left the main priority: {all:?}");
        }
    }
}
