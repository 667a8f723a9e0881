//! The load engine: producers, tail consumers and replay readers over the
//! v1 HTTP API, and before/after scrapes of the servers' `/metrics`.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use silt_bench::body::{ValuePool, now_micros, produce_body, stamp_of};
use silt_bench::hist::{LatencySummary, new_histogram, record};
use silt_bench::prom::Scrape;

/// One HTTP client shared by every task.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(2048)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default()
}

/// Creates topics (8 at a time); an existing topic is fine.
pub async fn create_topics(http: &reqwest::Client, url: &str, names: &[String], partitions: u32) -> Result<(), String> {
    use futures::StreamExt;
    let results: Vec<Result<(), String>> = futures::stream::iter(names.iter().cloned())
        .map(|name| async move {
            let r = http
                .post(format!("{url}/v1/topics"))
                .json(&serde_json::json!({"name": name, "partitions": partitions}))
                .send()
                .await
                .map_err(|e| format!("create topic {name}: {e}"))?;
            match r.status().as_u16() {
                201 | 409 => Ok(()),
                s => Err(format!(
                    "create topic {name}: {s} {}",
                    r.text().await.unwrap_or_default()
                )),
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

/// High watermarks of every partition of `topic`.
pub async fn high_watermarks(http: &reqwest::Client, url: &str, topic: &str) -> Result<Vec<u64>, String> {
    let v: serde_json::Value = http
        .get(format!("{url}/v1/topics/{topic}"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let parts = v["partitions"]
        .as_array()
        .ok_or_else(|| format!("describe {topic}: {v}"))?;
    Ok(parts
        .iter()
        .map(|p| p["high_watermark"].as_u64().unwrap_or(0))
        .collect())
}

/// One scrape of `/metrics` of every URL, merged (sums add up across nodes).
pub async fn scrape(http: &reqwest::Client, urls: &[String]) -> Scrape {
    let mut all = Scrape::default();
    for url in urls {
        if let Ok(r) = http.get(format!("{url}/metrics")).send().await
            && let Ok(text) = r.text().await
        {
            all.samples.extend(Scrape::parse(&text).samples);
        }
    }
    all
}

/// What producers send.
#[derive(Debug, Clone)]
pub struct ProduceSpec {
    /// Agents to spread requests over.
    pub urls: Vec<String>,
    /// Topics to rotate through, one per request.
    pub topics: Vec<String>,
    /// Partitions per topic (used when `explicit_partitions`).
    pub partitions: u32,
    /// Name each record's partition (spread over all) instead of keyless round-robin.
    pub explicit_partitions: bool,
    /// Value bytes per record.
    pub record_bytes: usize,
    /// Records per request.
    pub records_per_request: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Target records/s over all producers; `None` is as fast as possible.
    pub rate: Option<f64>,
    /// Stop after this many records in total, if set.
    pub limit_records: Option<u64>,
}

/// What producers achieved.
#[derive(Debug)]
pub struct ProduceStats {
    /// Records acknowledged.
    pub records: u64,
    /// Value bytes acknowledged.
    pub bytes: u64,
    /// Requests acknowledged.
    pub requests: u64,
    /// 429/503 answers.
    pub rejected: u64,
    /// Other failures.
    pub errors: u64,
    /// First error text seen.
    pub first_error: Option<String>,
    /// Wall time from start until every producer stopped.
    pub elapsed: Duration,
    /// Request → acknowledgement latency, µs (from the scheduled send time when paced).
    pub ack: Histogram<u64>,
}

/// Summary of produce results for reports.
#[derive(Debug, Clone, Serialize)]
pub struct ProduceReport {
    /// Records acknowledged.
    pub records: u64,
    /// Value MiB acknowledged.
    pub mib: f64,
    /// Seconds.
    pub seconds: f64,
    /// Records per second.
    pub records_per_sec: f64,
    /// Value MiB per second.
    pub mib_per_sec: f64,
    /// Requests refused with 429/503.
    pub rejected: u64,
    /// Failed requests.
    pub errors: u64,
    /// First failure.
    pub first_error: Option<String>,
    /// Produce acknowledgement latency seen by the client.
    pub ack_latency: LatencySummary,
}

impl ProduceStats {
    /// The report form.
    pub fn report(&self) -> ProduceReport {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mib = self.bytes as f64 / (1u64 << 20) as f64;
        ProduceReport {
            records: self.records,
            mib,
            seconds: secs,
            records_per_sec: self.records as f64 / secs,
            mib_per_sec: mib / secs,
            rejected: self.rejected,
            errors: self.errors,
            first_error: self.first_error.clone(),
            ack_latency: LatencySummary::of(&self.ack),
        }
    }
}

/// Runs producers until `duration` passes (or the record limit is reached).
pub async fn run_producers(http: &reqwest::Client, spec: &ProduceSpec, duration: Duration) -> ProduceStats {
    let spec = Arc::new(spec.clone());
    let pool = Arc::new(ValuePool::new(4 << 20, now_micros()));
    let budget = Arc::new(AtomicU64::new(spec.limit_records.unwrap_or(u64::MAX)));
    let start = Instant::now();
    let deadline = start + duration;
    let concurrency = spec.concurrency.max(1);
    let interval = spec
        .rate
        .filter(|r| *r > 0.0)
        .map(|rate| Duration::from_secs_f64(concurrency as f64 * spec.records_per_request as f64 / rate));
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let (spec, pool, budget, http) = (spec.clone(), pool.clone(), budget.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let mut stats = ProduceStats {
                records: 0,
                bytes: 0,
                requests: 0,
                rejected: 0,
                errors: 0,
                first_error: None,
                elapsed: Duration::ZERO,
                ack: new_histogram(),
            };
            let url = &spec.urls[i % spec.urls.len()];
            let mut next = interval.map(|iv| start + iv.mul_f64(i as f64 / concurrency as f64));
            let mut n: usize = i;
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let want = spec.records_per_request as u64;
                let got = budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(want)))
                    .unwrap_or(0)
                    .min(want);
                if got == 0 {
                    break;
                }
                if let Some(at) = next {
                    if at > Instant::now() {
                        tokio::time::sleep_until(at.into()).await;
                    }
                    next = interval.map(|iv| at + iv);
                }
                let topic = &spec.topics[n % spec.topics.len()];
                n = n.wrapping_add(concurrency);
                let partitions = spec.explicit_partitions.then(|| {
                    (
                        (n / spec.topics.len()) as u32 * 7 % spec.partitions.max(1),
                        spec.partitions,
                    )
                });
                let sent = next
                    .zip(interval)
                    .map_or_else(Instant::now, |(n, iv)| (n - iv).min(Instant::now()));
                let body = produce_body(&pool, got as usize, spec.record_bytes, partitions, now_micros(), n);
                let result = http
                    .post(format!("{url}/v1/topics/{topic}/records"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match result {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        record(&mut stats.ack, sent.elapsed().as_micros() as u64);
                        stats.records += got;
                        stats.bytes += got * spec.record_bytes as u64;
                        stats.requests += 1;
                    }
                    Ok(r) if matches!(r.status().as_u16(), 429 | 503) => {
                        stats.rejected += 1;
                        budget.fetch_add(got, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Ok(r) => {
                        stats.errors += 1;
                        if stats.first_error.is_none() {
                            let status = r.status();
                            stats.first_error = Some(format!("{status} {}", r.text().await.unwrap_or_default()));
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => {
                        stats.errors += 1;
                        stats.first_error.get_or_insert_with(|| e.to_string());
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            stats
        }));
    }
    let mut total = ProduceStats {
        records: 0,
        bytes: 0,
        requests: 0,
        rejected: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        ack: new_histogram(),
    };
    for t in tasks {
        if let Ok(s) = t.await {
            total.records += s.records;
            total.bytes += s.bytes;
            total.requests += s.requests;
            total.rejected += s.rejected;
            total.errors += s.errors;
            if total.first_error.is_none() {
                total.first_error = s.first_error;
            }
            let _ = total.ack.add(&s.ack);
        }
    }
    total.elapsed = start.elapsed();
    total
}

#[derive(Deserialize)]
struct ReadResp<'a> {
    #[serde(borrow)]
    records: Vec<ReadRec<'a>>,
    next_offset: u64,
    high_watermark: u64,
}

#[derive(Deserialize)]
struct ReadRec<'a> {
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
}

/// One partition a consumer follows or replays.
#[derive(Debug, Clone)]
pub struct PartitionCursor {
    /// Agent to read from.
    pub url: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// First offset to read.
    pub from: u64,
    /// Stop before this offset (replays); `u64::MAX` to follow the tail.
    pub to: u64,
    /// A replay that reaches `to` starts over here instead of ending, so it
    /// lasts as long as the phase measured beside it.
    pub restart_at: Option<u64>,
}

/// What consumers saw.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumeReport {
    /// Records read.
    pub records: u64,
    /// Value MiB read.
    pub mib: f64,
    /// Seconds.
    pub seconds: f64,
    /// Value MiB per second.
    pub mib_per_sec: f64,
    /// Records per second.
    pub records_per_sec: f64,
    /// Failed reads.
    pub errors: u64,
    /// First failure.
    pub first_error: Option<String>,
    /// Tail: produce→consume latency of records produced in the phase;
    /// replay: latency of each read request.
    pub latency: LatencySummary,
}

struct ConsumeStats {
    records: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    hist: Histogram<u64>,
}

/// Follows partitions at the tail (long-polling) until `stop`, measuring
/// produce→consume latency of records stamped at or after `measure_from` µs.
/// Replays (`to` set) read as fast as possible and record request latency;
/// `readers` tasks share the cursors.
pub async fn run_consumers(
    http: &reqwest::Client,
    cursors: Vec<PartitionCursor>,
    readers: usize,
    tail: bool,
    measure_from: u64,
    stop: Arc<AtomicBool>,
) -> ConsumeReport {
    let start = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(cursors));
    let readers = readers.max(1);
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let (queue, stop, http) = (queue.clone(), stop.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = ConsumeStats {
                records: 0,
                bytes: 0,
                errors: 0,
                first_error: None,
                hist: new_histogram(),
            };
            loop {
                let cursor = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(mut c) = cursor else { break };
                while c.from < c.to && !stop.load(Ordering::Relaxed) {
                    let url = if tail {
                        format!(
                            "{}/v1/topics/{}/partitions/{}/records?offset={}&max_records=2000&wait_ms=200",
                            c.url, c.topic, c.partition, c.from
                        )
                    } else {
                        format!(
                            "{}/v1/topics/{}/partitions/{}/records?offset={}&max_records=10000&max_bytes=16777216",
                            c.url, c.topic, c.partition, c.from
                        )
                    };
                    let t0 = Instant::now();
                    let body = match http.get(&url).send().await {
                        Ok(r) if r.status().is_success() => r.bytes().await.map_err(|e| e.to_string()),
                        Ok(r) => Err(format!("{} {}", r.status(), r.text().await.unwrap_or_default())),
                        Err(e) => Err(e.to_string()),
                    };
                    let parsed = body.and_then(|b| {
                        let resp: ReadResp<'_> = serde_json::from_slice(&b).map_err(|e| e.to_string())?;
                        let now = now_micros();
                        for r in &resp.records {
                            let Some(v) = &r.value else { continue };
                            s.bytes += v.len() as u64;
                            if tail
                                && let Some(stamp) = stamp_of(v)
                                && stamp >= measure_from
                            {
                                record(&mut s.hist, now.saturating_sub(stamp));
                            }
                        }
                        s.records += resp.records.len() as u64;
                        Ok((resp.next_offset, resp.high_watermark))
                    });
                    match parsed {
                        Ok((next, hwm)) => {
                            c.from = next;
                            if !tail {
                                record(&mut s.hist, t0.elapsed().as_micros() as u64);
                                if next >= hwm.min(c.to) {
                                    match c.restart_at {
                                        Some(first) => c.from = first,
                                        None => break,
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            s.errors += 1;
                            s.first_error.get_or_insert(e);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                if tail {
                    // Tail cursors are owned by one task each: nothing to hand back.
                    continue;
                }
            }
            s
        }));
    }
    let mut total = ConsumeStats {
        records: 0,
        bytes: 0,
        errors: 0,
        first_error: None,
        hist: new_histogram(),
    };
    for t in tasks {
        if let Ok(s) = t.await {
            total.records += s.records;
            total.bytes += s.bytes;
            total.errors += s.errors;
            if total.first_error.is_none() {
                total.first_error = s.first_error;
            }
            let _ = total.hist.add(&s.hist);
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let mib = total.bytes as f64 / (1u64 << 20) as f64;
    ConsumeReport {
        records: total.records,
        mib,
        seconds: secs,
        mib_per_sec: mib / secs,
        records_per_sec: total.records as f64 / secs,
        errors: total.errors,
        first_error: total.first_error,
        latency: LatencySummary::of(&total.hist),
    }
}

/// Server-side view of a phase, from `/metrics` before and after.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerDelta {
    /// Successful PUTs.
    pub puts: f64,
    /// GETs and ranged GETs.
    pub gets: f64,
    /// Bytes written to the object store.
    pub bytes_written: f64,
    /// Bytes read from the object store.
    pub bytes_read: f64,
    /// PUTs per GiB written to the object store.
    pub puts_per_gib_written: f64,
    /// GETs per GiB read from the object store.
    pub gets_per_gib_read: f64,
    /// Mean sealed segment size, bytes.
    pub mean_segment_bytes: f64,
    /// Segment upload p50/p99, seconds (bucket estimates).
    pub upload_p50_s: f64,
    /// Segment upload p99, seconds.
    pub upload_p99_s: f64,
    /// Segment commit p50, seconds.
    pub commit_p50_s: f64,
    /// Segment commit p99, seconds.
    pub commit_p99_s: f64,
    /// Commits observed.
    pub commits: f64,
    /// Server-side produce ack p99, seconds.
    pub ack_p99_s: f64,
    /// Chunk reads by source (cache, object store, replay...).
    pub chunk_reads: Vec<(String, f64)>,
    /// Bytes read by the replay path.
    pub replay_bytes: f64,
}

/// Differences of the interesting metrics between two scrapes.
pub fn server_delta(before: &Scrape, after: &Scrape) -> ServerDelta {
    let d = |name: &str, f: &[(&str, &str)]| after.sum(name, f) - before.sum(name, f);
    let puts = d(
        "silt_object_store_requests_total",
        &[("operation", "put"), ("outcome", "ok")],
    );
    let gets = d("silt_object_store_requests_total", &[("operation", "get")])
        + d("silt_object_store_requests_total", &[("operation", "get_range")]);
    let written = d("silt_object_store_bytes_total", &[("direction", "written")]);
    let read = d("silt_object_store_bytes_total", &[("direction", "read")]);
    let gib = (1u64 << 30) as f64;
    let per = |n: f64, bytes: f64| if bytes > 0.0 { n / (bytes / gib) } else { 0.0 };
    let upload = after.histogram_delta(before, "silt_segment_upload_seconds", &[]);
    let commit = after.histogram_delta(before, "silt_segment_commit_seconds", &[]);
    let ack = after.histogram_delta(before, "silt_produce_ack_seconds", &[]);
    let seg = after.histogram_delta(before, "silt_segment_size_bytes", &[]);
    let mut sources: Vec<String> = after
        .samples
        .iter()
        .filter(|s| s.name == "silt_chunk_reads_total")
        .filter_map(|s| s.labels.iter().find(|(k, _)| k == "source").map(|(_, v)| v.clone()))
        .collect();
    sources.sort();
    sources.dedup();
    ServerDelta {
        puts,
        gets,
        bytes_written: written,
        bytes_read: read,
        puts_per_gib_written: per(puts, written),
        gets_per_gib_read: per(gets, read),
        mean_segment_bytes: seg.mean(),
        upload_p50_s: upload.quantile(0.5),
        upload_p99_s: upload.quantile(0.99),
        commit_p50_s: commit.quantile(0.5),
        commit_p99_s: commit.quantile(0.99),
        commits: commit.count,
        ack_p99_s: ack.quantile(0.99),
        chunk_reads: sources
            .into_iter()
            .map(|src| {
                let v = d("silt_chunk_reads_total", &[("source", &src)]);
                (src, v)
            })
            .collect(),
        replay_bytes: d("silt_replay_bytes_total", &[]),
    }
}
