//! The HTTP contract: round trips, partitioning, errors.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use silt_e2e::{Client, Silt, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_round_trip_across_many_partitions() {
    let dir = TempDir::new("roundtrip");
    let silt = Silt::start(dir.path(), &[]).await;
    let client = Client::new(&silt);
    client.create_topic("bin", 16).await;

    // Binary keys, values and header values, with nulls and duplicate header keys.
    let mut sent = Vec::new();
    for i in 0..400u32 {
        let value: Vec<u8> = (0..(i % 97 + 1)).map(|j| ((i * 31 + j * 7) % 256) as u8).collect();
        let key: Option<Vec<u8>> = (i % 3 != 0).then(|| vec![0xff, (i % 256) as u8, 0x00]);
        let headers = json!([
            {"key": "dup", "value": STANDARD.encode([1u8, 2, 3])},
            {"key": "dup", "value": null},
            {"key": "i", "value": STANDARD.encode(i.to_be_bytes())},
        ]);
        let mut rec = json!({
            "value": STANDARD.encode(&value),
            "headers": headers,
            "partition": i % 16,
            "timestamp_ms": 1_700_000_000_000i64 + i64::from(i),
        });
        if let Some(k) = &key {
            rec["key"] = json!(STANDARD.encode(k));
        }
        sent.push(rec);
    }
    for chunk in sent.chunks(50) {
        let r = client
            .produce("bin", json!({"records": chunk, "encoding": "base64"}))
            .await
            .expect("produce");
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["offsets"].as_array().map(Vec::len), Some(chunk.len()));
        for (o, rec) in r.body["offsets"].as_array().expect("offsets").iter().zip(chunk) {
            assert_eq!(o["partition"], rec["partition"]);
        }
    }
    for p in 0..16u32 {
        let got = client.read_all("bin", p, "base64").await;
        let expected: Vec<&serde_json::Value> = sent.iter().filter(|r| r["partition"] == p).collect();
        assert_eq!(got.len(), expected.len(), "partition {p}");
        for (offset, (g, e)) in got.iter().zip(expected).enumerate() {
            assert_eq!(g["offset"], offset as u64);
            assert_eq!(g["value"], e["value"]);
            assert_eq!(g["key"], e.get("key").cloned().unwrap_or(json!(null)));
            assert_eq!(g["headers"], e["headers"]);
            assert_eq!(g["timestamp_ms"], e["timestamp_ms"]);
        }
    }
    // The topic description agrees.
    let d = client.send("GET", "/v1/topics/bin", None).await.expect("describe");
    assert_eq!(d.status, 200);
    let total: u64 = d.body["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["high_watermark"].as_u64().expect("hwm"))
        .sum();
    assert_eq!(total, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_where_kafka_puts_them_and_keyless_records_spread() {
    let dir = TempDir::new("partitioning");
    let silt = Silt::start(dir.path(), &[]).await;
    let client = Client::new(&silt);
    client.create_topic("keys", 50).await;
    // toPositive(murmur2("foobar")) % 50 == 16 in Kafka's Java client.
    let r = client
        .produce(
            "keys",
            json!({"records": [{"key": "foobar", "value": "v"}, {"key": "foobar", "value": "w"}]}),
        )
        .await
        .expect("produce");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["offsets"],
        json!([{"partition": 16, "offset": 0}, {"partition": 16, "offset": 1}])
    );

    let records: Vec<_> = (0..100).map(|i| json!({"value": format!("v{i}")})).collect();
    let r = client
        .produce("keys", json!({"records": records}))
        .await
        .expect("produce");
    assert_eq!(r.status, 200);
    let mut partitions: Vec<u64> = r.body["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| o["partition"].as_u64().expect("partition"))
        .collect();
    partitions.sort_unstable();
    partitions.dedup();
    assert_eq!(partitions.len(), 50, "round-robin should touch every partition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_lifecycle_timestamps_and_groups() {
    let dir = TempDir::new("lifecycle");
    let silt = Silt::start(dir.path(), &[]).await;
    let client = Client::new(&silt);
    let r = client
        .send(
            "POST",
            "/v1/topics",
            Some(json!({"name": "t1", "partitions": 2, "config": {"retention_ms": 3600000}})),
        )
        .await
        .expect("create");
    assert_eq!(r.status, 201);
    let first_id = r.body["id"].clone();
    assert_eq!(r.body["config"]["retention_ms"], 3_600_000);

    let list = client.send("GET", "/v1/topics", None).await.expect("list");
    assert_eq!(list.body, json!({"topics": [{"name": "t1", "partitions": 2}]}));

    // Non-monotonic timestamps: the first offset with ts >= T.
    let ts = [1000, 5000, 3000, 7000, 2000];
    let records: Vec<_> = ts
        .iter()
        .map(|t| json!({"value": "x", "partition": 0, "timestamp_ms": t}))
        .collect();
    assert_eq!(
        client
            .produce("t1", json!({"records": records}))
            .await
            .expect("produce")
            .status,
        200
    );
    for (t, expected) in [(0, 0), (1000, 0), (1001, 1), (4000, 1), (5001, 3), (7000, 3), (7001, 5)] {
        let r = client
            .send(
                "GET",
                &format!("/v1/topics/t1/partitions/0/offsets?timestamp_ms={t}"),
                None,
            )
            .await
            .expect("offsets");
        assert_eq!(r.status, 200);
        assert_eq!(r.body["offset"], expected, "timestamp {t}");
    }

    // Group offsets.
    let commit = json!({"offsets": [{"topic": "t1", "partition": 0, "offset": 3}, {"topic": "t1", "partition": 1, "offset": 0}]});
    let r = client
        .send("POST", "/v1/groups/g1/offsets", Some(commit.clone()))
        .await
        .expect("commit");
    assert_eq!(r.status, 204);
    let r = client
        .send("GET", "/v1/groups/g1/offsets", None)
        .await
        .expect("get group");
    assert_eq!(r.body["offsets"], commit["offsets"]);
    assert_eq!(r.body["generation"], 0);

    // Generations fence stale members; offsets never move backwards without reset.
    let join = client.send("POST", "/v1/groups/g1/join", None).await.expect("join");
    assert_eq!(join.body["generation"], 1);
    let join = client.send("POST", "/v1/groups/g1/join", None).await.expect("join");
    assert_eq!(join.body["generation"], 2);
    let stale = json!({"generation": 1, "offsets": [{"topic": "t1", "partition": 0, "offset": 4}]});
    let r = client
        .send("POST", "/v1/groups/g1/offsets", Some(stale))
        .await
        .expect("stale commit");
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error"]["code"], "stale_generation");
    let back = json!({"generation": 2, "offsets": [{"topic": "t1", "partition": 0, "offset": 1}]});
    let r = client
        .send("POST", "/v1/groups/g1/offsets", Some(back))
        .await
        .expect("backwards commit");
    assert_eq!(r.status, 409);
    assert_eq!(r.body["error"]["code"], "offset_regression");
    let reset = json!({"generation": 2, "reset": true, "offsets": [{"topic": "t1", "partition": 0, "offset": 1}]});
    assert_eq!(
        client
            .send("POST", "/v1/groups/g1/offsets", Some(reset))
            .await
            .expect("reset")
            .status,
        204
    );
    let r = client
        .send("GET", "/v1/groups/g1/offsets", None)
        .await
        .expect("get group");
    assert_eq!(r.body["offsets"][0]["offset"], 1);
    assert_eq!(r.body["generation"], 2);

    // Delete and re-create: a new id and an empty log.
    assert_eq!(
        client
            .send("DELETE", "/v1/topics/t1", None)
            .await
            .expect("delete")
            .status,
        204
    );
    assert_eq!(
        client.send("GET", "/v1/topics/t1", None).await.expect("get").status,
        404
    );
    client.create_topic("t1", 2).await;
    let d = client.send("GET", "/v1/topics/t1", None).await.expect("describe");
    assert_ne!(d.body["id"], first_id);
    assert_eq!(d.body["partitions"][0]["high_watermark"], 0);
    let r = client.read("t1", 0, "offset=0").await.expect("read");
    assert_eq!(r.body["records"], json!([]));
}

fn assert_error(r: &silt_e2e::Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "expected {status} {code}, got {:?}", r.body);
    assert_eq!(r.body["error"]["code"], code, "body {:?}", r.body);
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_mistake_gets_its_documented_status() {
    let dir = TempDir::new("badinput");
    let silt = Silt::start(
        dir.path(),
        &["--max-record-bytes", "1000", "--max-request-bytes", "100000"],
    )
    .await;
    let c = Client::new(&silt);
    c.create_topic("ok", 2).await;

    let create = |body: serde_json::Value| c.send("POST", "/v1/topics", Some(body));
    assert_error(
        &create(json!({"name": "bad name", "partitions": 1})).await.expect("req"),
        400,
        "invalid_topic_name",
    );
    assert_error(
        &create(json!({"name": "x".repeat(250), "partitions": 1}))
            .await
            .expect("req"),
        400,
        "invalid_topic_name",
    );
    assert_error(
        &create(json!({"name": "z", "partitions": 0})).await.expect("req"),
        400,
        "invalid_partitions",
    );
    assert_error(
        &create(json!({"name": "z", "partitions": -1})).await.expect("req"),
        400,
        "invalid_json",
    );
    assert_error(
        &create(json!({"name": "z", "bogus": 1})).await.expect("req"),
        400,
        "invalid_json",
    );
    assert_error(
        &create(json!({"name": "z", "config": {"retention_ms": 0}}))
            .await
            .expect("req"),
        400,
        "invalid_config",
    );
    assert_error(
        &create(json!({"name": "ok", "partitions": 1})).await.expect("req"),
        409,
        "topic_exists",
    );
    let r = c
        .send_raw("POST", "/v1/topics", "text/plain", b"{}".to_vec())
        .await
        .expect("req");
    assert_error(&r, 415, "unsupported_media_type");
    let r = c
        .send_raw("POST", "/v1/topics", "application/json", b"{not json".to_vec())
        .await
        .expect("req");
    assert_error(&r, 400, "invalid_json");

    let produce = |topic: &str, body: serde_json::Value| {
        let c = c.clone();
        let topic = topic.to_owned();
        async move { c.produce(&topic, body).await.expect("req") }
    };
    assert_error(
        &produce("nope", json!({"records": [{"value": "a"}]})).await,
        404,
        "unknown_topic",
    );
    assert_error(
        &produce("bad$", json!({"records": [{"value": "a"}]})).await,
        400,
        "invalid_topic_name",
    );
    assert_error(
        &produce("ok", json!({"records": [{"value": "a", "partition": 2}]})).await,
        404,
        "unknown_partition",
    );
    assert_error(&produce("ok", json!({"records": []})).await, 400, "invalid_request");
    assert_error(
        &produce("ok", json!({"records": [{"value": "a", "timestamp_ms": -5}]})).await,
        400,
        "invalid_timestamp",
    );
    assert_error(
        &produce("ok", json!({"records": [{"value": "a"}], "encoding": "base64"})).await,
        400,
        "invalid_base64",
    );
    assert_error(
        &produce("ok", json!({"records": [{"value": "a"}], "encoding": "rot13"})).await,
        400,
        "invalid_json",
    );
    assert_error(
        &produce("ok", json!({"records": [{"value": 5}]})).await,
        400,
        "invalid_json",
    );
    assert_error(
        &produce("ok", json!({"records": [{"value": "a".repeat(1001)}]})).await,
        413,
        "record_too_large",
    );
    let big: Vec<_> = (0..200).map(|_| json!({"value": "b".repeat(900)})).collect();
    let r = produce("ok", json!({"records": big})).await;
    assert_eq!(r.status, 413, "request body over the limit: {:?}", r.body);
    assert_eq!(r.body["error"]["code"], "request_too_large");

    let read = |q: &'static str| c.read("ok", 0, q);
    assert_error(&read("").await.expect("req"), 400, "invalid_query");
    assert_error(&read("offset=-1").await.expect("req"), 400, "invalid_query");
    assert_error(&read("offset=abc").await.expect("req"), 400, "invalid_query");
    assert_error(
        &read("offset=0&max_records=0").await.expect("req"),
        400,
        "invalid_query",
    );
    assert_error(
        &read("offset=0&encoding=hex").await.expect("req"),
        400,
        "invalid_encoding",
    );
    assert_error(&read("offset=0&colour=blue").await.expect("req"), 400, "invalid_query");
    assert_error(&read("offset=5").await.expect("req"), 416, "offset_out_of_range");
    let r = c
        .send("GET", "/v1/topics/ok/partitions/9/records?offset=0", None)
        .await
        .expect("req");
    assert_error(&r, 404, "unknown_partition");
    let r = c
        .send("GET", "/v1/topics/ok/partitions/x/records?offset=0", None)
        .await
        .expect("req");
    assert_error(&r, 400, "invalid_partition");
    let r = c
        .send("GET", "/v1/topics/none/partitions/0/records?offset=0", None)
        .await
        .expect("req");
    assert_error(&r, 404, "unknown_topic");
    let r = c
        .send("GET", "/v1/topics/ok/partitions/0/offsets", None)
        .await
        .expect("req");
    assert_error(&r, 400, "invalid_query");

    // Non-UTF-8 data read as UTF-8 is refused with a hint, not mangled.
    let r = produce(
        "ok",
        json!({"records": [{"value": "//79", "partition": 1}], "encoding": "base64"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_error(&c.read("ok", 1, "offset=0").await.expect("req"), 400, "not_utf8");

    let r = c
        .send("POST", "/v1/groups/bad%20group/offsets", Some(json!({"offsets": []})))
        .await
        .expect("req");
    assert_error(&r, 400, "invalid_group_name");
    let r = c
        .send(
            "POST",
            "/v1/groups/g/offsets",
            Some(json!({"offsets": [{"topic": "nope", "partition": 0, "offset": 1}]})),
        )
        .await
        .expect("req");
    assert_error(&r, 404, "unknown_topic");
    assert_error(
        &c.send("DELETE", "/v1/topics/nope", None).await.expect("req"),
        404,
        "unknown_topic",
    );
    assert_error(
        &c.send("GET", "/v2/nothing", None).await.expect("req"),
        404,
        "not_found",
    );
    assert_error(
        &c.send("PUT", "/v1/topics", None).await.expect("req"),
        405,
        "method_not_allowed",
    );

    // None of this hurt the node.
    assert_eq!(c.send("GET", "/healthz", None).await.expect("health").status, 200);
    let logs = silt.logs().join("\n");
    assert!(!logs.contains("panicked"), "a request caused a panic:\n{logs}");
}
