//! Prometheus metrics: the exposition parses, and the numbers move with traffic.

use std::collections::HashMap;

use serde_json::json;
use silt_e2e::{Client, Silt, TempDir};

/// Parses the text exposition strictly: every line is a comment or `name{labels} value`.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line.starts_with("# UNIT ") || line == "# EOF"
        {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("malformed sample: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("malformed value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels: {line}");
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate series: {line}"
        );
    }
    samples
}

fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("missing series {series}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_traffic() {
    let dir = TempDir::new("metrics");
    let silt = Silt::start(dir.path(), &["--price-put-per-1000", "5"]).await;
    let client = Client::new(&silt);
    let before = parse(&silt.metrics_text().await);
    assert_eq!(get(&before, "silt_unacked_bytes"), 0.0);

    client.create_topic("m", 2).await;
    let records: Vec<_> = (0..10)
        .map(|i| json!({"value": format!("v{i}"), "partition": 0}))
        .collect();
    assert_eq!(
        client
            .produce("m", json!({"records": records}))
            .await
            .expect("produce")
            .status,
        200
    );
    assert_eq!(client.read_all("m", 0, "utf8").await.len(), 10);
    let commit = json!({"offsets": [{"topic": "m", "partition": 0, "offset": 4}]});
    assert_eq!(
        client
            .send("POST", "/v1/groups/g/offsets", Some(commit))
            .await
            .expect("commit")
            .status,
        204
    );

    let after = parse(&silt.metrics_text().await);
    assert_eq!(get(&after, "silt_produced_records_total{topic=\"m\"}"), 10.0);
    assert!(get(&after, "silt_produced_bytes_total{topic=\"m\"}") >= 20.0);
    assert_eq!(get(&after, "silt_consumed_records_total{topic=\"m\"}"), 10.0);
    assert_eq!(get(&after, "silt_segments_sealed_total{reason=\"time\"}"), 1.0);
    assert_eq!(get(&after, "silt_segment_size_bytes_count"), 1.0);
    assert_eq!(get(&after, "silt_segment_upload_seconds_count"), 1.0);
    assert_eq!(get(&after, "silt_segment_commit_seconds_count"), 1.0);
    assert_eq!(get(&after, "silt_produce_ack_seconds_count"), 1.0);
    assert_eq!(
        get(
            &after,
            "silt_object_store_requests_total{operation=\"put\",outcome=\"ok\"}"
        ),
        1.0
    );
    assert!(get(&after, "silt_object_store_bytes_total{direction=\"written\"}") > 0.0);
    // One PUT at $5 per 1,000, all of it this topic's.
    let put_cost = get(&after, "silt_object_store_cost_dollars_total{topic=\"m\",kind=\"put\"}");
    assert!((put_cost - 0.005).abs() < 1e-9, "put cost {put_cost}");
    assert!(get(&after, "silt_topic_stored_bytes{topic=\"m\"}") > 0.0);
    assert_eq!(
        get(&after, "silt_consumer_group_lag_records{group=\"g\",topic=\"m\"}"),
        6.0
    );
    assert!(get(&after, "silt_cache_lookups_total{tier=\"memory\",result=\"hit\"}") >= 1.0);
    let produce_route =
        "silt_http_request_seconds_count{method=\"POST\",route=\"/v1/topics/{topic}/records\",status=\"200\"}";
    assert_eq!(get(&after, produce_route), 1.0);
    assert_eq!(get(&after, "silt_admission_rejections_total"), 0.0);

    // Every metric the Grafana dashboard queries exists.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/silt-dashboard.json"
    ))
    .expect("dashboard json");
    let series: Vec<&String> = after.keys().collect();
    let mut rest = dashboard.as_str();
    while let Some(start) = rest.find("silt_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[start + name.len()..];
        if name == "silt_overview" {
            continue;
        }
        assert!(
            series.iter().any(|s| s.starts_with(&name)),
            "dashboard queries missing metric {name}"
        );
    }
}
