//! The workloads and scenarios: each sets up a deployment, runs phases of
//! load, measures baselines in the same run and prints and returns a report.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use silt_agent::BackgroundLane;
use silt_bench::body::now_micros;
use silt_bench::hist::LatencySummary;
use silt_bench::svg::BarChart;

use crate::baseline::{BaselineArgs, BaselineReport};
use crate::load::{self, ConsumeReport, PartitionCursor, ProduceReport, ProduceSpec, ServerDelta};
use crate::server::{Deployment, NodeFlags};
use crate::{Opts, say};

const MIB: f64 = (1u64 << 20) as f64;

/// Which generic workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Produce only.
    Produce,
    /// Produce at a rate and tail-consume.
    Tail,
    /// Preload then replay.
    Replay,
    /// Produce + tail + replay together.
    Mixed,
}

fn flags(o: &Opts) -> NodeFlags {
    NodeFlags {
        flush_interval_ms: o.flush_interval_ms,
        segment_max_bytes: o.segment_max_bytes,
        replay_lag_records: o.replay_lag_records,
        compression: o.compression.clone(),
        inject_faults: o.inject_faults.clone(),
        extra: o.server_arg.clone(),
    }
}

async fn deploy(o: &Opts, flags: &NodeFlags) -> Result<Deployment, String> {
    if let Some(url) = &o.url {
        return Ok(Deployment::external(url, o.store_url.clone()));
    }
    let bin = crate::server::silt_binary(o.silt_bin.as_deref())?;
    let d = Deployment::serve(&bin, o.s3, flags, o.work_dir.as_deref()).await?;
    say!(
        "spawned silt serve at {} (object store: {})",
        d.agent_urls[0],
        d.store_kind
    );
    Ok(d)
}

fn baseline_args(o: &Opts, store: &str) -> BaselineArgs {
    BaselineArgs {
        store_url: store.to_owned(),
        put_bytes: 8 << 20,
        put_concurrency: 4,
        put_secs: o.baseline_secs,
        range_bytes: 1 << 20,
        get_concurrency: 8,
        get_secs: o.baseline_secs,
        inject_faults: None,
    }
}

async fn baseline(o: &Opts, d: &Deployment) -> Option<BaselineReport> {
    if o.no_baseline {
        return None;
    }
    let (store, env) = d.store.as_ref()?;
    match crate::baseline::run_child(&baseline_args(o, store), env).await {
        Ok(b) => {
            say!(
                "baseline ({}): PUT 8 MiB x{} {:.1} MiB/s (p99 {:.1} ms); ranged GET 1 MiB x{} {:.1} MiB/s (p99 {:.1} ms)",
                d.store_kind,
                b.puts,
                b.put_mib_per_sec,
                b.put_p99_ms,
                b.gets,
                b.get_mib_per_sec,
                b.get_p99_ms
            );
            Some(b)
        }
        Err(e) => {
            say!("baseline failed: {e}");
            None
        }
    }
}

/// Results of one phase of load.
#[derive(Debug, Default)]
struct Phase {
    produce: Option<ProduceReport>,
    tail: Option<ConsumeReport>,
    replay: Option<ConsumeReport>,
    server: ServerDelta,
}

impl Phase {
    fn json(&self) -> Value {
        json!({"produce": self.produce, "tail": self.tail, "replay": self.replay, "server": self.server})
    }

    fn print(&self, name: &str) {
        say!("== {name}");
        if let Some(p) = &self.produce {
            say!(
                "  produce: {:.1} MiB/s, {:.0} records/s over {:.1} s ({} rejected, {} errors{})",
                p.mib_per_sec,
                p.records_per_sec,
                p.seconds,
                p.rejected,
                p.errors,
                p.first_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            );
            say!("  produce ack latency: {}", p.ack_latency.line());
        }
        if let Some(t) = &self.tail {
            say!(
                "  tail consume: {:.1} MiB/s; produce→consume latency: {}{}",
                t.mib_per_sec,
                t.latency.line(),
                if t.errors > 0 {
                    format!(" ({} errors: {:?})", t.errors, t.first_error)
                } else {
                    String::new()
                }
            );
        }
        if let Some(r) = &self.replay {
            say!(
                "  replay: {:.1} MiB/s of values ({} records in {:.1} s); read request latency {}{}",
                r.mib_per_sec,
                r.records,
                r.seconds,
                r.latency.line(),
                if r.errors > 0 {
                    format!(" ({} errors: {:?})", r.errors, r.first_error)
                } else {
                    String::new()
                }
            );
        }
        let s = &self.server;
        say!(
            "  server: {:.0} PUTs for {:.1} MiB written = {:.1} PUTs/GiB; {:.0} GETs for {:.1} MiB read = {:.1} GETs/GiB",
            s.puts,
            s.bytes_written / MIB,
            s.puts_per_gib_written,
            s.gets,
            s.bytes_read / MIB,
            s.gets_per_gib_read
        );
        say!(
            "  server: mean segment {:.0} KiB; upload p50/p99 {:.0}/{:.0} ms; commit p50/p99 {:.1}/{:.1} ms; ack p99 {:.0} ms; replay path {:.1} MiB; chunk reads {:?}",
            s.mean_segment_bytes / 1024.0,
            s.upload_p50_s * 1e3,
            s.upload_p99_s * 1e3,
            s.commit_p50_s * 1e3,
            s.commit_p99_s * 1e3,
            s.ack_p99_s * 1e3,
            s.replay_bytes / MIB,
            s.chunk_reads
        );
    }
}

/// What to run in a phase besides producers.
struct PhasePlan {
    produce: Option<ProduceSpec>,
    duration: Duration,
    tail: Vec<PartitionCursor>,
    replay: Vec<PartitionCursor>,
    replay_readers: usize,
    /// Nice value of the replay readers' runtime (see `--replay-client-nice`).
    replay_nice: i32,
    /// Stop the replay when producers stop (else let it finish).
    replay_bounded: bool,
}

async fn run_phase(http: &reqwest::Client, d: &Deployment, plan: PhasePlan) -> Phase {
    let before = load::scrape(http, &d.agent_urls).await;
    let measure_from = now_micros();
    let tail_stop = Arc::new(AtomicBool::new(false));
    let replay_stop = Arc::new(AtomicBool::new(false));
    let tail = (!plan.tail.is_empty()).then(|| {
        let (http, stop, n) = (http.clone(), tail_stop.clone(), plan.tail.len());
        tokio::spawn(async move { load::run_consumers(&http, plan.tail, n, true, measure_from, stop).await })
    });
    // Replay readers get a runtime and connections of their own, at a lower
    // priority: on one machine they stand in for consumers elsewhere.
    let mut replay_lane = None;
    let replay = (!plan.replay.is_empty()).then(|| {
        let (stop, n) = (replay_stop.clone(), plan.replay_readers);
        let readers = async move { load::run_consumers(&load::http(), plan.replay, n, false, 0, stop).await };
        match BackgroundLane::start(2, plan.replay_nice) {
            Ok(lane) => replay_lane.insert(lane).handle().spawn(readers),
            Err(e) => {
                say!("cannot start the replay readers' runtime ({e}); they share the tail's");
                tokio::spawn(readers)
            }
        }
    });
    let produce = match &plan.produce {
        Some(spec) => Some(load::run_producers(http, spec, plan.duration).await.report()),
        None => {
            if replay.is_none() {
                tokio::time::sleep(plan.duration).await;
            }
            None
        }
    };
    // Let the last produced records reach the consumers.
    if tail.is_some() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tail_stop.store(true, Ordering::Relaxed);
    if plan.replay_bounded {
        replay_stop.store(true, Ordering::Relaxed);
    }
    let tail = match tail {
        Some(t) => t.await.ok(),
        None => None,
    };
    let replay = match replay {
        Some(t) => t.await.ok(),
        None => None,
    };
    drop(replay_lane);
    let after = load::scrape(http, &d.agent_urls).await;
    Phase {
        produce,
        tail,
        replay,
        server: load::server_delta(&before, &after),
    }
}

/// PUTs made while no load is offered (after a flush interval's grace).
async fn idle_puts(http: &reqwest::Client, d: &Deployment, secs: f64) -> f64 {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = load::scrape(http, &d.agent_urls).await;
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let after = load::scrape(http, &d.agent_urls).await;
    let puts = load::server_delta(&before, &after).puts;
    say!("idle: {puts} PUTs in {secs:.0} s without load");
    puts
}

fn topic_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

async fn tail_cursors(
    http: &reqwest::Client,
    d: &Deployment,
    topics: &[String],
    limit: usize,
) -> Result<Vec<PartitionCursor>, String> {
    let mut out = Vec::new();
    for (ti, topic) in topics.iter().enumerate() {
        let hwms = load::high_watermarks(http, &d.agent_urls[0], topic).await?;
        for (p, hwm) in hwms.into_iter().enumerate() {
            if out.len() >= limit {
                return Ok(out);
            }
            out.push(PartitionCursor {
                url: d.agent_urls[(ti + p) % d.agent_urls.len()].clone(),
                topic: topic.clone(),
                partition: p as u32,
                from: hwm,
                to: u64::MAX,
                restart_at: None,
            });
        }
    }
    Ok(out)
}

/// Cursors over every partition's history; `repeat` starts each over at its end.
async fn replay_cursors(
    http: &reqwest::Client,
    d: &Deployment,
    topics: &[String],
    repeat: bool,
) -> Result<Vec<PartitionCursor>, String> {
    let mut out = Vec::new();
    for topic in topics {
        let hwms = load::high_watermarks(http, &d.agent_urls[0], topic).await?;
        for (p, hwm) in hwms.into_iter().enumerate() {
            out.push(PartitionCursor {
                url: d.agent_urls[p % d.agent_urls.len()].clone(),
                topic: topic.clone(),
                partition: p as u32,
                from: 0,
                to: hwm,
                restart_at: repeat.then_some(0),
            });
        }
    }
    Ok(out)
}

fn spec(o: &Opts, d: &Deployment, topics: &[String], partitions: u32, defaults: (usize, usize, f64)) -> ProduceSpec {
    ProduceSpec {
        urls: d.agent_urls.clone(),
        topics: topics.to_vec(),
        partitions,
        explicit_partitions: true,
        record_bytes: o.record_bytes.unwrap_or(1024),
        records_per_request: o.records_per_request.unwrap_or(defaults.0),
        concurrency: o.concurrency.unwrap_or(defaults.1),
        rate: Some(o.rate.unwrap_or(defaults.2)).filter(|r| *r > 0.0),
        limit_records: None,
    }
}

async fn preload(
    http: &reqwest::Client,
    d: &Deployment,
    o: &Opts,
    topics: &[String],
    partitions: u32,
    default_mib: u64,
) -> Result<Phase, String> {
    let mib = o.preload_mib.unwrap_or(default_mib);
    let mut s = spec(o, d, topics, partitions, (500, 32, 0.0));
    s.rate = None;
    s.limit_records = Some(mib * (1 << 20) / s.record_bytes.max(1) as u64);
    say!("preloading {mib} MiB into {topics:?}...");
    let phase = run_phase(
        http,
        d,
        PhasePlan {
            produce: Some(s),
            duration: Duration::from_secs(3600),
            tail: Vec::new(),
            replay: Vec::new(),
            replay_readers: 0,
            replay_nice: 0,
            replay_bounded: true,
        },
    )
    .await;
    phase.print("preload");
    Ok(phase)
}

fn ratio(a: f64, b: Option<f64>) -> Option<f64> {
    b.filter(|b| *b > 0.0).map(|b| a / b)
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{:.1}%", r * 100.0))
}

fn rss_json(d: &Deployment) -> Value {
    match d.peak_rss() {
        Some((rss, hwm)) => {
            say!(
                "agent memory: peak sampled RSS {:.0} MiB, VmHWM {:.0} MiB (target <= 512 MiB)",
                rss as f64 / MIB,
                hwm as f64 / MIB
            );
            json!({"peak_rss_mib": rss as f64 / MIB, "vm_hwm_mib": hwm as f64 / MIB})
        }
        None => Value::Null,
    }
}

fn write_chart(dir: Option<&Path>, name: &str, chart: &BarChart) {
    let Some(dir) = dir else { return };
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join(format!("{name}.svg"));
    match std::fs::write(&path, chart.render()) {
        Ok(()) => say!("chart: {}", path.display()),
        Err(e) => say!("cannot write {}: {e}", path.display()),
    }
}

fn latency_chart(title: &str, series: Vec<(String, LatencySummary)>) -> BarChart {
    BarChart {
        title: title.into(),
        unit: "ms".into(),
        categories: vec!["p50".into(), "p99".into(), "p999".into(), "max".into()],
        series: series
            .into_iter()
            .map(|(n, l)| (n, vec![l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms]))
            .collect(),
        reference: None,
    }
}

fn throughput_chart(title: &str, silt: (f64, f64), raw: (f64, f64)) -> BarChart {
    BarChart {
        title: title.into(),
        unit: "MiB/s".into(),
        categories: vec!["write (produce vs PUT)".into(), "read (replay vs ranged GET)".into()],
        series: vec![
            ("Silt".into(), vec![silt.0, silt.1]),
            ("raw object store".into(), vec![raw.0, raw.1]),
        ],
        reference: None,
    }
}

/// `produce`, `tail`, `replay` and `mixed`.
pub async fn produce(o: Opts, kind: Kind, charts: Option<&Path>) -> Result<Value, String> {
    let http = load::http();
    let d = deploy(&o, &flags(&o)).await?;
    let base = baseline(&o, &d).await;
    let partitions = o.partitions.unwrap_or(8);
    let topics = topic_names("bench", o.topics.unwrap_or(1));
    load::create_topics(&http, &d.agent_urls[0], &topics, partitions).await?;
    let duration = Duration::from_secs_f64(o.duration_secs.unwrap_or(15.0));
    let mut report =
        json!({"command": format!("{kind:?}").to_lowercase(), "object_store": d.store_kind, "baseline": base});
    let old = topic_names("history", 1);
    let mut replay = Vec::new();
    if matches!(kind, Kind::Replay | Kind::Mixed) {
        load::create_topics(&http, &d.agent_urls[0], &old, partitions).await?;
        let p = preload(
            &http,
            &d,
            &o,
            &old,
            partitions,
            if kind == Kind::Replay { 512 } else { 256 },
        )
        .await?;
        report["preload"] = p.json();
        replay = replay_cursors(&http, &d, &old, false).await?;
    }
    let defaults = match kind {
        Kind::Produce => (500, 64, 0.0),
        _ => (100, 32, 5000.0),
    };
    let plan = PhasePlan {
        produce: (kind != Kind::Replay).then(|| spec(&o, &d, &topics, partitions, defaults)),
        duration,
        tail: if matches!(kind, Kind::Tail | Kind::Mixed) {
            tail_cursors(&http, &d, &topics, 256).await?
        } else {
            Vec::new()
        },
        replay,
        replay_readers: o.replay_readers.unwrap_or(8),
        replay_nice: o.replay_client_nice,
        replay_bounded: kind == Kind::Mixed,
    };
    let phase = run_phase(&http, &d, plan).await;
    phase.print(&format!("{kind:?}"));
    report["phase"] = phase.json();
    if kind == Kind::Produce {
        report["idle_puts"] = json!(idle_puts(&http, &d, o.idle_secs).await);
    }
    let produce_mib = phase.produce.as_ref().map_or(0.0, |p| p.mib_per_sec);
    let replay_mib = phase.replay.as_ref().map_or(0.0, |r| r.mib_per_sec);
    let put = base.as_ref().map(|b| b.put_mib_per_sec);
    let get = base.as_ref().map(|b| b.get_mib_per_sec);
    say!(
        "produce / raw PUT bandwidth: {}; replay / raw ranged GET bandwidth: {}",
        pct(ratio(produce_mib, put)),
        pct(ratio(replay_mib, get))
    );
    report["produce_fraction_of_put"] = json!(ratio(produce_mib, put));
    report["replay_fraction_of_get"] = json!(ratio(replay_mib, get));
    report["agent_memory"] = rss_json(&d);
    let name = format!("{kind:?}").to_lowercase();
    if let Some(b) = &base {
        write_chart(
            charts,
            &format!("{name}-throughput"),
            &throughput_chart(
                &format!("{name}: Silt vs raw object store"),
                (produce_mib, replay_mib),
                (b.put_mib_per_sec, b.get_mib_per_sec),
            ),
        );
    }
    let mut lat = Vec::new();
    if let Some(p) = &phase.produce {
        lat.push(("produce ack".into(), p.ack_latency));
    }
    if let Some(t) = &phase.tail {
        lat.push(("produce→consume".into(), t.latency));
    }
    write_chart(
        charts,
        &format!("{name}-latency"),
        &latency_chart(&format!("{name}: latency"), lat),
    );
    Ok(report)
}

/// `omb`: 1 topic, 100 partitions, 1 KiB records.
pub async fn omb(o: Opts, charts: Option<&Path>) -> Result<Value, String> {
    let http = load::http();
    let d = deploy(&o, &flags(&o)).await?;
    let base = baseline(&o, &d).await;
    let tag = if o.s3 == crate::server::S3Kind::Moto {
        "omb-moto"
    } else {
        "omb-file"
    };
    let partitions = o.partitions.unwrap_or(100);
    let topics = topic_names("omb", o.topics.unwrap_or(1));
    load::create_topics(&http, &d.agent_urls[0], &topics, partitions).await?;
    let duration = Duration::from_secs_f64(o.duration_secs.unwrap_or(15.0));
    let mut sat_spec = spec(&o, &d, &topics, partitions, (500, 64, 0.0));
    sat_spec.rate = None;
    let saturation = run_phase(
        &http,
        &d,
        PhasePlan {
            produce: Some(sat_spec),
            duration,
            tail: Vec::new(),
            replay: Vec::new(),
            replay_readers: 0,
            replay_nice: 0,
            replay_bounded: true,
        },
    )
    .await;
    saturation.print("omb saturation (produce only, unbounded)");
    let idle = idle_puts(&http, &d, o.idle_secs).await;
    let max_rate = saturation.produce.as_ref().map_or(1000.0, |p| p.records_per_sec);
    let rate = o.rate.filter(|r| *r > 0.0).unwrap_or((max_rate * 0.5).max(100.0));
    let mut tail_spec = spec(&o, &d, &topics, partitions, (500, 64, rate));
    tail_spec.rate = Some(rate);
    let tail = run_phase(
        &http,
        &d,
        PhasePlan {
            produce: Some(tail_spec),
            duration,
            tail: tail_cursors(&http, &d, &topics, 1000).await?,
            replay: Vec::new(),
            replay_readers: 0,
            replay_nice: 0,
            replay_bounded: true,
        },
    )
    .await;
    tail.print(&format!(
        "omb at 50% of saturation ({rate:.0} records/s) with tail consumers"
    ));
    let produce_mib = saturation.produce.as_ref().map_or(0.0, |p| p.mib_per_sec);
    let put = base.as_ref().map(|b| b.put_mib_per_sec);
    say!(
        "omb: produce {:.1} MiB/s = {} of raw PUT bandwidth (target: >= 150 MiB/s); {:.1} PUTs/GiB at saturation (target <= 128), {idle} PUTs idle",
        produce_mib,
        pct(ratio(produce_mib, put)),
        saturation.server.puts_per_gib_written
    );
    let mem = rss_json(&d);
    if let Some(b) = &base {
        write_chart(
            charts,
            &format!("{tag}-throughput"),
            &BarChart {
                title: format!("{tag}: produce throughput vs raw PUT (8 MiB objects)"),
                unit: "MiB/s".into(),
                categories: vec!["write".into()],
                series: vec![
                    ("Silt produce (1 KiB records)".into(), vec![produce_mib]),
                    ("raw PUT".into(), vec![b.put_mib_per_sec]),
                ],
                reference: Some(("target 150 MiB/s".into(), 150.0)),
            },
        );
    }
    let mut lat = Vec::new();
    if let Some(p) = &saturation.produce {
        lat.push(("ack @ saturation".into(), p.ack_latency));
    }
    if let Some(p) = &tail.produce {
        lat.push(("ack @ 50%".into(), p.ack_latency));
    }
    if let Some(t) = &tail.tail {
        lat.push(("produce→consume @ 50%".into(), t.latency));
    }
    write_chart(
        charts,
        &format!("{tag}-latency"),
        &latency_chart(&format!("{tag}: latency percentiles"), lat),
    );
    Ok(json!({
        "command": "omb", "object_store": d.store_kind, "baseline": base,
        "saturation": saturation.json(), "idle_puts": idle, "tail_at_half_rate": tail.json(),
        "produce_fraction_of_put": ratio(produce_mib, put), "agent_memory": mem,
    }))
}

/// `many-topics`: 1,000 topics.
pub async fn many_topics(o: Opts, charts: Option<&Path>) -> Result<Value, String> {
    let http = load::http();
    let d = deploy(&o, &flags(&o)).await?;
    let base = baseline(&o, &d).await;
    let n = o.topics.unwrap_or(1000);
    let partitions = o.partitions.unwrap_or(1);
    let topics = topic_names("t", n);
    let t0 = std::time::Instant::now();
    load::create_topics(&http, &d.agent_urls[0], &topics, partitions).await?;
    let create_secs = t0.elapsed().as_secs_f64();
    say!("created {n} topics in {create_secs:.1} s");
    let mut s = spec(&o, &d, &topics, partitions, (100, 64, 0.0));
    s.rate = o.rate.filter(|r| *r > 0.0);
    let phase = run_phase(
        &http,
        &d,
        PhasePlan {
            produce: Some(s),
            duration: Duration::from_secs_f64(o.duration_secs.unwrap_or(15.0)),
            tail: tail_cursors(&http, &d, &topics, 50).await?,
            replay: Vec::new(),
            replay_readers: 0,
            replay_nice: 0,
            replay_bounded: true,
        },
    )
    .await;
    phase.print(&format!(
        "many-topics ({n} topics, consumers on the first 50 partitions)"
    ));
    let idle = idle_puts(&http, &d, o.idle_secs).await;
    let produce_mib = phase.produce.as_ref().map_or(0.0, |p| p.mib_per_sec);
    let put = base.as_ref().map(|b| b.put_mib_per_sec);
    say!(
        "many-topics: produce {:.1} MiB/s = {} of raw PUT; {:.1} PUTs/GiB; {idle} PUTs idle",
        produce_mib,
        pct(ratio(produce_mib, put)),
        phase.server.puts_per_gib_written
    );
    let mem = rss_json(&d);
    let mut lat = Vec::new();
    if let Some(p) = &phase.produce {
        lat.push(("produce ack".into(), p.ack_latency));
    }
    if let Some(t) = &phase.tail {
        lat.push(("produce→consume".into(), t.latency));
    }
    write_chart(
        charts,
        "many-topics-latency",
        &latency_chart(&format!("many-topics ({n}): latency"), lat),
    );
    Ok(json!({
        "command": "many-topics", "object_store": d.store_kind, "topics": n, "create_topics_secs": create_secs,
        "baseline": base, "phase": phase.json(), "idle_puts": idle,
        "produce_fraction_of_put": ratio(produce_mib, put), "agent_memory": mem,
    }))
}

/// `s3-latency`: injected per-request latency.
pub async fn s3_latency(o: Opts, charts: Option<&Path>) -> Result<Value, String> {
    let http = load::http();
    let flush_ms = o.flush_interval_ms.unwrap_or(100);
    let mut rows = Vec::new();
    let mut chart_series = Vec::new();
    for &lat in &o.latencies_ms {
        let mut f = flags(&o);
        f.inject_faults = Some(match &o.inject_faults {
            Some(extra) => format!("latency_ms={lat},{extra}"),
            None => format!("latency_ms={lat}"),
        });
        let bin = crate::server::silt_binary(o.silt_bin.as_deref())?;
        let d = Deployment::serve(&bin, o.s3, &f, o.work_dir.as_deref()).await?;
        say!(
            "spawned silt serve with {} ({})",
            f.inject_faults.as_deref().unwrap_or(""),
            d.store_kind
        );
        let partitions = o.partitions.unwrap_or(8);
        let topics = topic_names("lat", o.topics.unwrap_or(1));
        load::create_topics(&http, &d.agent_urls[0], &topics, partitions).await?;
        let phase = run_phase(
            &http,
            &d,
            PhasePlan {
                produce: Some(spec(&o, &d, &topics, partitions, (10, 128, 2000.0))),
                duration: Duration::from_secs_f64(o.duration_secs.unwrap_or(15.0)),
                tail: Vec::new(),
                replay: Vec::new(),
                replay_readers: 0,
                replay_nice: 0,
                replay_bounded: true,
            },
        )
        .await;
        phase.print(&format!("s3-latency {lat} ms"));
        let seg = phase.server.mean_segment_bytes.max(4096.0) as usize;
        let mut b = baseline_args(&o, &d.store.as_ref().map(|s| s.0.clone()).unwrap_or_default());
        b.put_bytes = seg;
        b.get_secs = 0.0;
        b.inject_faults = f.inject_faults.clone();
        let env = d.store.as_ref().map(|s| s.1.clone()).unwrap_or_default();
        let base = crate::baseline::run_child(&b, &env).await?;
        let ack = phase.produce.as_ref().map(|p| p.ack_latency).unwrap_or_default();
        let overhead = ack.p99_ms - (flush_ms as f64 + base.put_p99_ms);
        say!(
            "s3-latency {lat} ms: produce p99 {:.1} ms − (flush {flush_ms} ms + PUT p99 {:.1} ms of {} KiB objects) = {:.1} ms (target <= 20 ms)",
            ack.p99_ms,
            base.put_p99_ms,
            seg / 1024,
            overhead
        );
        chart_series.push((
            format!("{lat} ms injected"),
            vec![ack.p50_ms, ack.p99_ms, base.put_p99_ms, overhead],
        ));
        rows.push(json!({
            "injected_latency_ms": lat, "flush_interval_ms": flush_ms, "phase": phase.json(),
            "put_baseline": base, "produce_p99_ms": ack.p99_ms,
            "produce_p99_minus_flush_and_put_p99_ms": overhead, "agent_memory": rss_json(&d),
        }));
    }
    write_chart(
        charts,
        "s3-latency",
        &BarChart {
            title: "s3-latency: produce latency vs flush + PUT p99".into(),
            unit: "ms".into(),
            categories: vec![
                "produce p50".into(),
                "produce p99".into(),
                "PUT p99".into(),
                "p99 − (flush+PUT p99)".into(),
            ],
            series: chart_series,
            reference: Some(("target overhead 20 ms".into(), 20.0)),
        },
    );
    Ok(json!({"command": "s3-latency", "runs": rows}))
}

/// `isolation`: tail latency with and without a replay beside it.
pub async fn isolation(o: Opts, charts: Option<&Path>) -> Result<Value, String> {
    let http = load::http();
    let mut f = flags(&o);
    f.replay_lag_records = Some(o.replay_lag_records.unwrap_or(1000));
    // Old data must not sit in the agent's cache, or the replay never
    // reaches the object store: a small memory tier and no disk tier, unless
    // the caller chose otherwise.
    // Compaction off: both phases must see the same background work (it
    // would start on the preloaded history part-way through the run).
    for (flag, value) in [
        ("--cache-memory-bytes", "67108864"),
        ("--cache-disk-bytes", "0"),
        ("--compaction", "false"),
    ] {
        if !f.extra.iter().any(|a| a == flag || a.starts_with(&format!("{flag}="))) {
            f.extra.push(format!("{flag}={value}"));
        }
    }
    let d = deploy(&o, &f).await?;
    let partitions = o.partitions.unwrap_or(8);
    let live = topic_names("live", 1);
    let old = topic_names("history", 1);
    load::create_topics(&http, &d.agent_urls[0], &live, partitions).await?;
    load::create_topics(&http, &d.agent_urls[0], &old, partitions).await?;
    let pre = preload(&http, &d, &o, &old, partitions, 512).await?;
    let duration = Duration::from_secs_f64(o.duration_secs.unwrap_or(15.0));
    let live_spec = spec(&o, &d, &live, partitions, (20, 64, 2000.0));
    // A file store leaves the preload as dirty pages; their writeback would
    // stall the catalog's fsyncs in whichever phase it happened to hit.
    match std::process::Command::new("sync").status() {
        Ok(status) if status.success() => {}
        other => say!("isolation: sync after the preload failed ({other:?}); phases may see its writeback"),
    }
    // Unmeasured warm-up: the preload's last uploads and commits must not
    // land in the first phase.
    let warmup = run_phase(
        &http,
        &d,
        PhasePlan {
            produce: Some(live_spec.clone()),
            duration: Duration::from_secs(3),
            tail: Vec::new(),
            replay: Vec::new(),
            replay_readers: 0,
            replay_nice: 0,
            replay_bounded: true,
        },
    )
    .await;
    say!(
        "isolation: warm-up done (commit p99 {:.1} ms)",
        warmup.server.commit_p99_s * 1e3
    );
    let quiet = run_phase(
        &http,
        &d,
        PhasePlan {
            produce: Some(live_spec.clone()),
            duration,
            tail: tail_cursors(&http, &d, &live, 256).await?,
            replay: Vec::new(),
            replay_readers: 0,
            replay_nice: 0,
            replay_bounded: true,
        },
    )
    .await;
    quiet.print("isolation: tail load alone");
    let busy = run_phase(
        &http,
        &d,
        PhasePlan {
            produce: Some(live_spec),
            duration,
            tail: tail_cursors(&http, &d, &live, 256).await?,
            replay: replay_cursors(&http, &d, &old, true).await?,
            replay_readers: o.replay_readers.unwrap_or(8),
            replay_nice: o.replay_client_nice,
            replay_bounded: true,
        },
    )
    .await;
    busy.print("isolation: tail load + replay of history");
    // Last, so its gigabytes of PUTs and deletes cannot disturb the phases.
    let base = baseline(&o, &d).await;
    let q = quiet.tail.as_ref().map(|t| t.latency).unwrap_or_default();
    let b = busy.tail.as_ref().map(|t| t.latency).unwrap_or_default();
    let replay_mib = busy.replay.as_ref().map_or(0.0, |r| r.mib_per_sec);
    let replay_secs = busy
        .replay
        .as_ref()
        .map_or(duration.as_secs_f64(), |r| r.seconds.max(1e-9));
    let replay_store_mib = busy.server.replay_bytes / MIB / replay_secs;
    let get = base.as_ref().map(|x| x.get_mib_per_sec);
    say!(
        "isolation: tail p50/p99 {:.1}/{:.1} ms alone vs {:.1}/{:.1} ms beside the replay; replay {:.1} MiB/s of values = {} of raw ranged GET (replay path read {:.1} MiB/s from the store = {})",
        q.p50_ms,
        q.p99_ms,
        b.p50_ms,
        b.p99_ms,
        replay_mib,
        pct(ratio(replay_mib, get)),
        replay_store_mib,
        pct(ratio(replay_store_mib, get))
    );
    let mem = rss_json(&d);
    // Charts of a run on local files do not overwrite those of a run on moto.
    let chart_tag = if o.url.is_none() && matches!(o.s3, crate::server::S3Kind::None) {
        "-file"
    } else {
        ""
    };
    write_chart(
        charts,
        &format!("isolation{chart_tag}-tail-latency"),
        &latency_chart(
            "isolation: produce→consume latency of the tail",
            vec![("tail alone".into(), q), ("tail + replay".into(), b)],
        ),
    );
    if let Some(x) = &base {
        write_chart(
            charts,
            &format!("isolation{chart_tag}-replay"),
            &BarChart {
                title: "isolation: replay throughput vs raw ranged GET (1 MiB)".into(),
                unit: "MiB/s".into(),
                categories: vec!["read".into()],
                series: vec![
                    ("replay (record values via HTTP)".into(), vec![replay_mib]),
                    ("replay path object-store reads".into(), vec![replay_store_mib]),
                    ("raw ranged GET".into(), vec![x.get_mib_per_sec]),
                ],
                reference: Some(("80% of raw".into(), 0.8 * x.get_mib_per_sec)),
            },
        );
    }
    Ok(json!({
        "command": "isolation", "object_store": d.store_kind, "baseline": base, "preload": pre.json(),
        "tail_alone": quiet.json(), "tail_with_replay": busy.json(),
        "replay_fraction_of_get": ratio(replay_mib, get),
        "replay_store_fraction_of_get": ratio(replay_store_mib, get), "agent_memory": mem,
    }))
}

/// `meta-commits`: PostgreSQL metadata service, 3 agents, moto.
pub async fn meta_commits(o: Opts, charts: Option<&Path>) -> Result<Value, String> {
    let http = load::http();
    let mut f = flags(&o);
    f.flush_interval_ms = Some(o.flush_interval_ms.unwrap_or(20));
    let bin = crate::server::silt_binary(o.silt_bin.as_deref())?;
    let d = Deployment::fleet(&bin, o.agents.max(1), &f, o.work_dir.as_deref()).await?;
    let meta_url = d.meta.as_ref().map(|m| m.url("")).unwrap_or_default();
    say!(
        "spawned silt meta (PostgreSQL) at {meta_url} and agents {:?} on moto",
        d.agent_urls
    );
    let partitions = o.partitions.unwrap_or(12);
    let topics = topic_names("commits", o.topics.unwrap_or(1));
    load::create_topics(&http, &d.agent_urls[0], &topics, partitions).await?;
    let duration = Duration::from_secs_f64(o.duration_secs.unwrap_or(15.0));
    let meta_before = load::scrape(&http, std::slice::from_ref(&meta_url)).await;
    let mut s = spec(&o, &d, &topics, partitions, (10, 96, 0.0));
    s.rate = o.rate.filter(|r| *r > 0.0);
    let phase = run_phase(
        &http,
        &d,
        PhasePlan {
            produce: Some(s),
            duration,
            tail: Vec::new(),
            replay: Vec::new(),
            replay_readers: 0,
            replay_nice: 0,
            replay_bounded: true,
        },
    )
    .await;
    let meta_after = load::scrape(&http, std::slice::from_ref(&meta_url)).await;
    phase.print(&format!(
        "meta-commits ({} agents, flush {} ms)",
        d.agent_urls.len(),
        f.flush_interval_ms.unwrap_or(0)
    ));
    let calls = meta_after.histogram_delta(&meta_before, "silt_meta_call_seconds", &[("op", "commit_segment")]);
    let secs = phase.produce.as_ref().map_or(duration.as_secs_f64(), |p| p.seconds);
    let commits_per_sec = calls.count / secs;
    say!(
        "meta-commits: {:.0} commit_segment calls/s at the metadata service (p50 {:.1} ms, p99 {:.1} ms); agents' segment commit p99 {:.1} ms",
        commits_per_sec,
        calls.quantile(0.5) * 1e3,
        calls.quantile(0.99) * 1e3,
        phase.server.commit_p99_s * 1e3
    );
    let mem = rss_json(&d);
    write_chart(
        charts,
        "meta-commits",
        &BarChart {
            title: format!("meta-commits: {commits_per_sec:.0} commits/s on PostgreSQL"),
            unit: "ms".into(),
            categories: vec!["p50".into(), "p99".into()],
            series: vec![
                (
                    "silt_meta_call_seconds{op=commit_segment}".into(),
                    vec![calls.quantile(0.5) * 1e3, calls.quantile(0.99) * 1e3],
                ),
                (
                    "silt_segment_commit_seconds (agents)".into(),
                    vec![phase.server.commit_p50_s * 1e3, phase.server.commit_p99_s * 1e3],
                ),
            ],
            reference: None,
        },
    );
    Ok(json!({
        "command": "meta-commits", "agents": d.agent_urls.len(), "flush_interval_ms": f.flush_interval_ms,
        "phase": phase.json(), "meta_commits_per_sec": commits_per_sec,
        "meta_commit_p50_ms": calls.quantile(0.5) * 1e3, "meta_commit_p99_ms": calls.quantile(0.99) * 1e3,
        "meta_commit_mean_ms": calls.mean() * 1e3, "agent_commit_p99_ms": phase.server.commit_p99_s * 1e3,
        "agent_memory": mem,
    }))
}
