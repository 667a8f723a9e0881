//! Fleet mode on loopback: `silt meta` on PostgreSQL, three `silt agent`s,
//! a real S3-compatible server (moto). Skips with a message when PostgreSQL
//! or moto_server is not installed; CI provides both.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use silt_e2e::{Client, Silt, TempDir};
use silt_testkit::{MotoServer, PostgresServer, require};

struct Fleet {
    dir: TempDir,
    moto: MotoServer,
    meta: Silt,
    agents: Vec<Silt>,
}

impl Fleet {
    async fn start(database_url: String, moto: MotoServer, agents: usize) -> Self {
        let dir = TempDir::new("fleet");
        let meta = Silt::start_role(
            dir.path(),
            vec!["meta".into(), "--database".into(), database_url],
            Vec::new(),
            "127.0.0.1:0",
        )
        .await;
        let mut fleet = Self {
            dir,
            moto,
            meta,
            agents: Vec::new(),
        };
        for i in 0..agents {
            let agent = fleet.spawn_agent(i).await;
            fleet.agents.push(agent);
        }
        fleet
    }

    async fn spawn_agent(&self, i: usize) -> Silt {
        let args = vec![
            "agent".to_owned(),
            "--meta".to_owned(),
            format!("http://{}", self.meta.addr),
            "--object-store".to_owned(),
            format!("s3://{}/silt", self.moto.bucket()),
            "--cache-dir".to_owned(),
            self.dir.path().join(format!("cache-{i}")).display().to_string(),
            "--node-id".to_owned(),
            format!("agent-{i}"),
            "--zone".to_owned(),
            format!("zone-{}", i % 2),
            "--flush-interval-ms".to_owned(),
            "20".to_owned(),
        ];
        Silt::start_role(self.dir.path(), args, self.moto.env(), "127.0.0.1:0").await
    }

    fn client(&self, i: usize) -> Client {
        Client::new(&self.agents[i])
    }
}

async fn components() -> Result<(String, MotoServer), silt_testkit::Unavailable> {
    let pg = PostgresServer::shared().await?;
    let url = pg.fresh_database().await?;
    let moto = MotoServer::start().await?;
    Ok((url, moto))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_service_reaches_postgresql_over_verified_tls() {
    let (pg, ca) = require!(PostgresServer::start_new_tls().await);
    let moto = require!(MotoServer::start().await);
    // The cluster admits this role over TLS only, so a ready fleet proves TLS.
    pg.execute("CREATE ROLE silt_tls LOGIN SUPERUSER")
        .await
        .expect("create role");
    let port = pg.port().expect("a local cluster");
    let url = format!(
        "postgres://silt_tls@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        ca.display()
    );
    let fleet = Fleet::start(url, moto, 1).await;
    let client = fleet.client(0);
    client.create_topic("tls", 1).await;
    let r = client
        .produce("tls", json!({"records": [{"value": "over tls"}]}))
        .await
        .expect("produce");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let records = client.read_all("tls", 0, "utf8").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["value"], "over tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_assigns_contiguous_offsets_and_wakes_consumers_on_other_agents() {
    let (url, moto) = require!(components().await);
    let fleet = Fleet::start(url, moto, 3).await;
    fleet.client(0).create_topic("fleet", 4).await;

    // The registry lists the live fleet.
    let agents = fleet.client(2).send("GET", "/v1/agents", None).await.expect("agents");
    let ids: Vec<_> = agents.body["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| a["node_id"].as_str().expect("node id").to_owned())
        .collect();
    assert_eq!(ids, ["agent-0", "agent-1", "agent-2"]);
    assert_eq!(agents.body["agents"][1]["zone"], "zone-1");

    // A consumer parked on agent 2 wakes when agent 0 commits.
    let waiter = {
        let c = fleet.client(2);
        tokio::spawn(async move {
            let started = Instant::now();
            let r = c.read("fleet", 0, "offset=0&wait_ms=30000").await.expect("read");
            (r, started.elapsed())
        })
    };
    fleet.agents[2].wait_metric("silt_reads_waiting", |v| v >= 1.0).await;
    let r = fleet
        .client(0)
        .produce(
            "fleet",
            json!({"records": [{"value": "hello from agent 0", "partition": 0}]}),
        )
        .await
        .expect("produce");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (r, took) = waiter.await.expect("waiter");
    assert_eq!(r.body["records"][0]["value"], "hello from agent 0");
    assert!(took < Duration::from_secs(10), "cross-agent wake took {took:?}");

    // Concurrent producers through every agent into the same partitions.
    let mut tasks = Vec::new();
    for p in 0..6usize {
        let c = fleet.client(p % 3);
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for r in 0..15usize {
                let records: Vec<_> = (0..5)
                    .map(|i| json!({"value": format!("p{p}-{r}-{i}"), "partition": (r + i) % 4}))
                    .collect();
                let reply = c.produce("fleet", json!({"records": records})).await.expect("produce");
                assert_eq!(reply.status, 200, "{:?}", reply.body);
                for (i, o) in reply.body["offsets"].as_array().expect("offsets").iter().enumerate() {
                    acked.push((
                        o["partition"].as_u64().expect("p"),
                        o["offset"].as_u64().expect("o"),
                        format!("p{p}-{r}-{i}"),
                    ));
                }
            }
            acked
        }));
    }
    let mut by_partition: BTreeMap<u64, BTreeMap<u64, String>> = BTreeMap::new();
    by_partition
        .entry(0)
        .or_default()
        .insert(0, "hello from agent 0".into());
    for t in tasks {
        for (p, o, v) in t.await.expect("producer") {
            assert!(
                by_partition.entry(p).or_default().insert(o, v).is_none(),
                "offset {p}/{o} given twice"
            );
        }
    }
    for (p, offsets) in &by_partition {
        let n = offsets.len() as u64;
        assert_eq!(
            offsets.keys().copied().collect::<Vec<_>>(),
            (0..n).collect::<Vec<_>>(),
            "partition {p} has gaps"
        );
        let read = fleet.client(1).read_all("fleet", *p as u32, "utf8").await;
        let values: Vec<_> = read
            .iter()
            .map(|r| r["value"].as_str().expect("value").to_owned())
            .collect();
        assert_eq!(values, offsets.values().cloned().collect::<Vec<_>>(), "partition {p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry_through_another_agent_after_a_crash_does_not_duplicate() {
    let (url, moto) = require!(components().await);
    let mut fleet = Fleet::start(url, moto, 2).await;
    let a = fleet.client(0);
    let b = fleet.client(1);
    a.create_topic("idem", 2).await;
    let init = a.send("POST", "/v1/producers", None).await.expect("init producer");
    assert_eq!(init.status, 200, "{:?}", init.body);
    let pid = init.body["producer_id"].as_i64().expect("producer id");
    assert_eq!(init.body["producer_epoch"], 0);

    let http = reqwest::Client::new();
    let send = |silt: &Silt, epoch: i16, seq: i32, body: serde_json::Value| {
        http.post(silt.url("/v1/topics/idem/records"))
            .header("content-type", "application/json")
            .header("producer-id", pid.to_string())
            .header("producer-epoch", epoch.to_string())
            .header("producer-seq", seq.to_string())
            .body(body.to_string())
            .send()
    };
    let batch = json!({"records": [{"value": "a", "partition": 1}, {"value": "b", "partition": 1}, {"value": "c", "partition": 1}]});
    let first = send(&fleet.agents[0], 0, 0, batch.clone()).await.expect("first send");
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.expect("json");
    // Agent A dies; the producer retries the same batch through agent B.
    fleet.agents[0].kill().await;
    let retry = send(&fleet.agents[1], 0, 0, batch.clone()).await.expect("retry");
    assert_eq!(retry.status(), 200);
    let retry: serde_json::Value = retry.json().await.expect("json");
    assert_eq!(
        retry["offsets"], first["offsets"],
        "a retry returns the original offsets"
    );
    let values: Vec<_> = b
        .read_all("idem", 1, "utf8")
        .await
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(values, [json!("a"), json!("b"), json!("c")], "the retry wrote nothing");

    // The next sequence continues; a gap names the expected sequence.
    let next = send(
        &fleet.agents[1],
        0,
        3,
        json!({"records": [{"value": "d", "partition": 1}]}),
    )
    .await
    .expect("next");
    assert_eq!(next.status(), 200);
    let gap = send(
        &fleet.agents[1],
        0,
        9,
        json!({"records": [{"value": "x", "partition": 1}]}),
    )
    .await
    .expect("gap");
    assert_eq!(gap.status(), 409);
    let gap: serde_json::Value = gap.json().await.expect("json");
    assert_eq!(gap["error"]["code"], "out_of_order_sequence");
    assert!(
        gap["error"]["message"]
            .as_str()
            .expect("message")
            .contains("expected_sequence=4"),
        "{gap}"
    );

    // A new epoch fences the old one.
    let bumped = b
        .send("POST", "/v1/producers", Some(json!({"producer_id": pid})))
        .await
        .expect("bump");
    assert_eq!(bumped.body["producer_epoch"], 1);
    let fenced = send(
        &fleet.agents[1],
        0,
        4,
        json!({"records": [{"value": "y", "partition": 1}]}),
    )
    .await
    .expect("fenced");
    assert_eq!(fenced.status(), 409);
    let fenced: serde_json::Value = fenced.json().await.expect("json");
    assert_eq!(fenced["error"]["code"], "producer_fenced");
    let fresh = send(
        &fleet.agents[1],
        1,
        0,
        json!({"records": [{"value": "e", "partition": 1}]}),
    )
    .await
    .expect("new epoch");
    assert_eq!(fresh.status(), 200);
    // Idempotent requests name one partition.
    let spread = send(
        &fleet.agents[1],
        1,
        1,
        json!({"records": [{"value": "1", "partition": 0}, {"value": "2", "partition": 1}]}),
    )
    .await
    .expect("spread");
    assert_eq!(spread.status(), 400);
    let values: Vec<_> = b
        .read_all("idem", 1, "utf8")
        .await
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(values, [json!("a"), json!("b"), json!("c"), json!("d"), json!("e")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_survives_agent_kill_and_metadata_and_postgres_restarts_under_load() {
    let pg = require!(PostgresServer::start_new().await);
    let url = require!(pg.fresh_database().await);
    let moto = require!(MotoServer::start().await);
    let mut fleet = Fleet::start(url, moto, 3).await;
    fleet.client(0).create_topic("load", 3).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let addrs: Vec<_> = fleet.agents.iter().map(|a| a.addr).collect();
    let mut producers = Vec::new();
    for p in 0..6usize {
        let stop = stop.clone();
        let acked_count = acked_count.clone();
        let clients: Vec<Client> = addrs.iter().map(|a| Client::for_addr(*a)).collect();
        producers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let c = &clients[(p + n) % clients.len()];
                let records: Vec<_> = (0..4)
                    .map(|i| json!({"value": format!("p{p}-{n}-{i}"), "partition": (n + i) % 3}))
                    .collect();
                if let Ok(r) = c.produce("load", json!({"records": records})).await
                    && r.status == 200
                {
                    for (i, o) in r.body["offsets"].as_array().expect("offsets").iter().enumerate() {
                        acked.push((
                            o["partition"].as_u64().expect("p"),
                            o["offset"].as_u64().expect("o"),
                            format!("p{p}-{n}-{i}"),
                        ));
                    }
                    acked_count.fetch_add(4, Ordering::Relaxed);
                } else {
                    // Outage: the request failed (or its outcome is unknown); back off briefly.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                n += 1;
            }
            acked
        }));
    }
    let wait_for_more = |more: usize| {
        let acked_count = acked_count.clone();
        async move {
            let target = acked_count.load(Ordering::Relaxed) + more;
            let deadline = Instant::now() + Duration::from_secs(60);
            while acked_count.load(Ordering::Relaxed) < target {
                assert!(Instant::now() < deadline, "the fleet stopped making progress");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for_more(200).await;

    // 1. SIGKILL an agent mid-load, keep going without it, bring it back.
    fleet.agents[1].kill().await;
    wait_for_more(100).await;
    fleet.agents[1].restart().await;
    wait_for_more(100).await;

    // 2. Kill the metadata service and start it again on the same address.
    fleet.meta.kill().await;
    fleet.meta.restart().await;
    wait_for_more(100).await;

    // 3. Restart PostgreSQL itself under load.
    require!(pg.stop().await);
    require!(pg.start().await);
    wait_for_more(100).await;

    stop.store(true, Ordering::Relaxed);
    let mut acked: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for p in producers {
        for (part, o, v) in p.await.expect("producer") {
            assert!(
                acked.insert((part, o), v).is_none(),
                "offset {part}/{o} acknowledged twice"
            );
        }
    }
    // Every acknowledged record is there, at its offset, once; read through a
    // fresh agent whose cache is empty, so bytes come from the object store.
    let fresh = fleet.spawn_agent(9).await;
    let reader = Client::new(&fresh);
    for partition in 0..3u64 {
        let records = reader.read_all("load", partition as u32, "utf8").await;
        let mut seen = std::collections::HashSet::new();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r["offset"], i as u64);
            assert!(
                seen.insert(r["value"].as_str().expect("value").to_owned()),
                "duplicate {}",
                r["value"]
            );
        }
        for ((p, o), v) in acked.range((partition, 0)..(partition + 1, 0)) {
            let got = records
                .get(*o as usize)
                .unwrap_or_else(|| panic!("acknowledged {p}/{o} lost"));
            assert_eq!(got["value"].as_str(), Some(v.as_str()), "wrong record at {p}/{o}");
        }
    }
}
