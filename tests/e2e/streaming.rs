//! Streaming consume over SSE and NDJSON.

use std::time::Duration;

use serde_json::json;
use silt_e2e::{Client, Silt, TempDir};

/// Reads from a streaming body until `done` says the collected text suffices.
async fn read_until(resp: &mut reqwest::Response, text: &mut String, done: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done(text) {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("stream stalled")
            .expect("stream error")
            .expect("stream ended early");
        text.push_str(std::str::from_utf8(&chunk).expect("utf8"));
    }
}

fn sse_events(text: &str) -> Vec<(u64, serde_json::Value)> {
    text.split("\n\n")
        .filter(|e| e.contains("event: records"))
        .map(|e| {
            let id = e
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .expect("id")
                .parse()
                .expect("numeric id");
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).expect("data");
            (id, serde_json::from_str(data).expect("json data"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_follows_the_tail_and_resumes_from_last_event_id() {
    let dir = TempDir::new("sse");
    let silt = Silt::start(dir.path(), &[]).await;
    let client = Client::new(&silt);
    client.create_topic("s", 1).await;
    let first: Vec<_> = (0..10).map(|i| json!({"value": format!("a{i}")})).collect();
    assert_eq!(
        client
            .produce("s", json!({"records": first}))
            .await
            .expect("produce")
            .status,
        200
    );

    let http = reqwest::Client::new();
    let mut resp = http
        .get(silt.url("/v1/topics/s/partitions/0/records?offset=0"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("open stream");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    read_until(&mut resp, &mut text, |t| {
        sse_events(t).iter().map(|(id, _)| *id).max() == Some(10)
    })
    .await;
    let events = sse_events(&text);
    let values: Vec<_> = events
        .iter()
        .flat_map(|(_, d)| d["records"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(values.len(), 10);
    assert_eq!(values[0]["value"], "a0");

    // The stream follows the tail: new records arrive as new events.
    let more: Vec<_> = (0..5).map(|i| json!({"value": format!("b{i}")})).collect();
    assert_eq!(
        client
            .produce("s", json!({"records": more}))
            .await
            .expect("produce")
            .status,
        200
    );
    read_until(&mut resp, &mut text, |t| {
        sse_events(t).iter().map(|(id, _)| *id).max() == Some(15)
    })
    .await;
    let (_, last) = sse_events(&text).pop().expect("event");
    assert_eq!(
        last["records"].as_array().expect("records").last().expect("record")["value"],
        "b4"
    );
    drop(resp);

    // Resume: Last-Event-ID is the next offset to deliver.
    let extra: Vec<_> = (0..3).map(|i| json!({"value": format!("c{i}")})).collect();
    assert_eq!(
        client
            .produce("s", json!({"records": extra}))
            .await
            .expect("produce")
            .status,
        200
    );
    let mut resp = http
        .get(silt.url("/v1/topics/s/partitions/0/records?offset=0"))
        .header("accept", "text/event-stream")
        .header("last-event-id", "15")
        .send()
        .await
        .expect("resume stream");
    let mut text = String::new();
    read_until(&mut resp, &mut text, |t| {
        sse_events(t).iter().map(|(id, _)| *id).max() == Some(18)
    })
    .await;
    let values: Vec<_> = sse_events(&text)
        .iter()
        .flat_map(|(_, d)| d["records"].as_array().cloned().unwrap_or_default())
        .map(|r| r["value"].as_str().expect("value").to_owned())
        .collect();
    assert_eq!(values, ["c0", "c1", "c2"]);

    // Errors before the stream starts are ordinary statuses.
    let r = http
        .get(silt.url("/v1/topics/s/partitions/0/records?offset=999"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("bad offset");
    assert_eq!(r.status(), 416);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_streams_one_record_per_line() {
    let dir = TempDir::new("ndjson");
    let silt = Silt::start(dir.path(), &[]).await;
    let client = Client::new(&silt);
    client.create_topic("n", 1).await;
    let records: Vec<_> = (0..20)
        .map(|i| json!({"value": format!("v{i}"), "key": format!("k{i}")}))
        .collect();
    assert_eq!(
        client
            .produce("n", json!({"records": records}))
            .await
            .expect("produce")
            .status,
        200
    );
    let mut resp = reqwest::Client::new()
        .get(silt.url("/v1/topics/n/partitions/0/records?offset=5&max_records=4"))
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .expect("open stream");
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let mut text = String::new();
    read_until(&mut resp, &mut text, |t| t.lines().count() >= 15).await;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["offset"], 5 + i as u64);
        assert_eq!(line["value"], format!("v{}", 5 + i));
    }
    assert_eq!(
        client
            .produce("n", json!({"records": [{"value": "tail"}]}))
            .await
            .expect("produce")
            .status,
        200
    );
    read_until(&mut resp, &mut text, |t| t.lines().count() >= 16).await;
    let last: serde_json::Value = serde_json::from_str(text.lines().last().expect("line")).expect("json");
    assert_eq!(last["value"], "tail");
    assert_eq!(last["offset"], 20);
}
