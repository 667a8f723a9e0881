//! The client against a real `silt serve` node: every command driven
//! through the same parser and entry point the binary uses, output
//! captured.

use std::io::Write as _;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use silt_client::{ClientCommand, ClientError};
use silt_e2e::{Client, Silt, TempDir};

/// The binary's top level as main.rs wires it.
#[derive(Debug, Parser)]
#[command(name = "silt")]
struct Cli {
    #[command(subcommand)]
    command: ClientCommand,
}

struct Node {
    silt: Silt,
    _dir: TempDir,
}

impl Node {
    async fn start(label: &str) -> Self {
        let dir = TempDir::new(label);
        let silt = Silt::start(dir.path(), &[]).await;
        Self { silt, _dir: dir }
    }

    fn url(&self) -> String {
        format!("http://{}", self.silt.addr)
    }

    fn parse(&self, args: &[&str]) -> ClientCommand {
        let url = self.url();
        let argv = ["silt"]
            .into_iter()
            .chain(args.iter().copied())
            .chain(["--url", url.as_str()]);
        Cli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("parse {args:?}: {e}"))
            .command
    }

    /// Runs a command; stdout as a string, or the error.
    async fn run(&self, args: &[&str]) -> Result<String, ClientError> {
        let bytes = self.run_bytes(args).await?;
        Ok(String::from_utf8(bytes).expect("utf-8 output"))
    }

    async fn run_bytes(&self, args: &[&str]) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        silt_client::execute(self.parse(args), &mut out).await?;
        Ok(out)
    }

    async fn ok(&self, args: &[&str]) -> String {
        self.run(args)
            .await
            .unwrap_or_else(|e| panic!("silt {args:?} failed: error: {e}"))
    }

    async fn json(&self, args: &[&str]) -> serde_json::Value {
        let text = self.ok(args).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("silt {args:?} printed no JSON ({e}): {text}"))
    }
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn write_file(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).expect("create input");
    f.write_all(bytes).expect("write input");
}

#[tokio::test]
async fn topic_create_list_describe_delete() {
    let node = Node::start("client-topic").await;
    let out = node
        .ok(&[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--retention-ms",
            "86400000",
        ])
        .await;
    assert!(out.starts_with("created topic orders with 3 partitions"), "{out}");
    assert!(out.contains("retention_ms=86400000"), "{out}");

    let created = node.json(&["topic", "create", "events", "--output", "json"]).await;
    assert_eq!(created["name"], "events");
    assert_eq!(created["partitions"].as_array().map(Vec::len), Some(1));

    let table = node.ok(&["topic", "list"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["NAME", "PARTITIONS"]);
    assert!(
        lines.iter().any(|l| l.split_whitespace().eq(["orders", "3"])),
        "{table}"
    );
    assert!(
        lines.iter().any(|l| l.split_whitespace().eq(["events", "1"])),
        "{table}"
    );

    let list = node.json(&["topic", "list", "-o", "json"]).await;
    let mut names: Vec<&str> = list["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["events", "orders"]);

    let described = node.json(&["topic", "describe", "orders", "--output", "json"]).await;
    assert_eq!(described["config"]["retention_ms"], 86_400_000);
    let partitions = described["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 3);
    assert!(partitions.iter().all(|p| p["high_watermark"] == 0));
    let text = node.ok(&["topic", "describe", "orders"]).await;
    assert!(text.starts_with("name:    orders\n"), "{text}");
    assert!(text.contains("PARTITION  LOG_START  HIGH_WATERMARK  RECORDS"), "{text}");
    assert_eq!(text.lines().count(), 3 + 1 + 3, "{text}");

    let dup = node.run(&["topic", "create", "orders"]).await.expect_err("exists");
    assert_eq!(dup.code(), Some("topic_exists"));
    assert_eq!(dup.exit_status(), 1);

    assert_eq!(node.ok(&["topic", "delete", "orders"]).await, "deleted topic orders\n");
    let table = node.ok(&["topic", "list"]).await;
    assert!(!table.contains("orders"), "{table}");
    let gone = node.run(&["topic", "describe", "orders"]).await.expect_err("deleted");
    assert_eq!(gone.code(), Some("unknown_topic"));
}

#[tokio::test]
async fn produce_lines_with_key_and_headers_then_consume_them_back() {
    let node = Node::start("client-produce").await;
    node.ok(&["topic", "create", "lines", "--partitions", "4"]).await;
    let dir = TempDir::new("client-produce-input");
    let lines: Vec<String> = (0..23)
        .map(|i| match i {
            5 => String::new(),
            7 => "ünïcødé ✓ \"quoted\" \\ back".to_owned(),
            11 => "  spaces  \t tab".to_owned(),
            _ => format!("line {i} {}", "x".repeat(i * 3)),
        })
        .collect();
    let a = dir.path().join("a.txt");
    let b = dir.path().join("b.txt");
    write_file(&a, format!("{}\n", lines[..10].join("\n")).as_bytes());
    // The last file has no final newline: its last line is still a record.
    write_file(&b, lines[10..].join("\n").as_bytes());
    let (a, b) = (a.to_string_lossy().into_owned(), b.to_string_lossy().into_owned());

    let summary = node
        .ok(&[
            "produce",
            "lines",
            &a,
            &b,
            "--key",
            "user-7",
            "--header",
            "source=cli",
            "--header",
            "trace=a=b",
            "--batch",
            "4",
        ])
        .await;
    assert!(summary.starts_with("produced 23 records ("), "{summary}");
    assert!(summary.contains("records/s"), "{summary}");

    // One key: one partition, in input order.
    let described = node.json(&["topic", "describe", "lines", "-o", "json"]).await;
    let filled: Vec<&serde_json::Value> = described["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .filter(|p| p["high_watermark"] != 0)
        .collect();
    assert_eq!(filled.len(), 1, "{described}");
    assert_eq!(filled[0]["high_watermark"], 23);
    let partition = filled[0]["partition"].as_u64().expect("partition");

    let out = node.ok(&["consume", "lines", "--format", "json"]).await;
    let records = json_lines(&out);
    assert_eq!(records.len(), lines.len());
    for (i, (r, line)) in records.iter().zip(&lines).enumerate() {
        assert_eq!(r["partition"], partition);
        assert_eq!(r["offset"], i as u64);
        assert_eq!(r["key"], "user-7");
        assert_eq!(r["value"], line.as_str());
        assert_eq!(
            r["headers"],
            serde_json::json!([{"key": "source", "value": "cli"}, {"key": "trace", "value": "a=b"}])
        );
        assert!(r["timestamp_ms"].as_i64().is_some_and(|t| t > 0));
    }

    let values = node.ok(&["consume", "lines"]).await;
    assert_eq!(values, format!("{}\n", lines.join("\n")));

    let p = partition.to_string();
    let some = node
        .ok(&["consume", "lines", "-p", &p, "--from-offset", "20", "--format", "json"])
        .await;
    let offsets: Vec<u64> = json_lines(&some).iter().filter_map(|r| r["offset"].as_u64()).collect();
    assert_eq!(offsets, [20, 21, 22]);
    let first = node
        .ok(&["consume", "lines", "--max", "2", "--page-records", "1"])
        .await;
    assert_eq!(first, format!("{}\n{}\n", lines[0], lines[1]));
    let latest = node.ok(&["consume", "lines", "--from", "latest"]).await;
    assert_eq!(latest, "");

    // --follow ends by itself once --max records have arrived.
    let followed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        node.run(&["consume", "lines", "--follow", "--max", "23", "--wait-ms", "500"]),
    )
    .await
    .expect("follow with --max stops")
    .expect("follow");
    assert_eq!(followed, values);
}

#[tokio::test]
async fn produce_binary_round_trips_through_consume() {
    let node = Node::start("client-binary").await;
    node.ok(&["topic", "create", "bin"]).await;
    let dir = TempDir::new("client-binary-input");
    let input: Vec<u8> = (0u8..=255)
        .filter(|b| *b != b'\n')
        .chain([b'\n', 0xff, 0xfe, b'\n'])
        .collect();
    let path = dir.path().join("bin.dat");
    write_file(&path, &input);
    let path = path.to_string_lossy().into_owned();

    let e = node.run(&["produce", "bin", &path]).await.expect_err("not utf-8");
    assert_eq!(e.exit_status(), 2);
    assert!(e.to_string().contains("--binary"), "{e}");

    node.ok(&["produce", "bin", &path, "--binary"]).await;
    assert_eq!(
        node.run_bytes(&["consume", "bin", "--binary"]).await.expect("consume"),
        input
    );
    let json = node.ok(&["consume", "bin", "--binary", "--format", "json"]).await;
    let records = json_lines(&json);
    assert_eq!(records[1]["value"], STANDARD.encode([0xff, 0xfe]));
}

#[tokio::test]
async fn consume_from_timestamp() {
    let node = Node::start("client-ts").await;
    node.ok(&["topic", "create", "ts", "--partitions", "2"]).await;
    let client = Client::new(&node.silt);
    for partition in 0..2u32 {
        let records: Vec<serde_json::Value> = (0..10)
            .map(|i| {
                serde_json::json!({
                    "value": format!("p{partition}-r{i}"),
                    "partition": partition,
                    "timestamp_ms": 1_000_000 + i * 1000,
                })
            })
            .collect();
        let r = client
            .produce("ts", serde_json::json!({"records": records}))
            .await
            .expect("produce");
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let out = node
        .ok(&[
            "consume",
            "ts",
            "--partition",
            "1",
            "--from-timestamp",
            "1006500",
            "--format",
            "json",
        ])
        .await;
    let records = json_lines(&out);
    let got: Vec<(&str, i64)> = records
        .iter()
        .map(|r| {
            (
                r["value"].as_str().unwrap_or(""),
                r["timestamp_ms"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got, [("p1-r7", 1_007_000), ("p1-r8", 1_008_000), ("p1-r9", 1_009_000)]);

    let both = node.ok(&["consume", "ts", "--from-timestamp", "1009000"]).await;
    assert_eq!(both, "p0-r9\np1-r9\n");
    let none = node.ok(&["consume", "ts", "--from-timestamp", "2000000"]).await;
    assert_eq!(none, "");
}

#[tokio::test]
async fn replay_ranges_to_files_byte_exact() {
    let node = Node::start("client-replay").await;
    node.ok(&["topic", "create", "big"]).await;
    let dir = TempDir::new("client-replay-files");
    let lines: Vec<String> = (0..2500)
        .map(|i| format!("record {i:05} {}", "y".repeat(i % 97)))
        .collect();
    let input = dir.path().join("in.txt");
    write_file(&input, format!("{}\n", lines.join("\n")).as_bytes());
    let input = input.to_string_lossy().into_owned();
    let summary = node.ok(&["produce", "big", &input, "--batch", "300"]).await;
    assert!(summary.starts_with("produced 2500 records"), "{summary}");

    // Everything, raw: the file is the input file, byte for byte.
    let raw = dir.path().join("all.raw");
    let raw_s = raw.to_string_lossy().into_owned();
    node.ok(&[
        "replay",
        "big",
        "--out",
        &raw_s,
        "--format",
        "raw",
        "--no-progress",
        "--page-records",
        "333",
    ])
    .await;
    assert_eq!(
        std::fs::read(&raw).expect("read raw"),
        std::fs::read(&input).expect("read input")
    );

    // A range, raw.
    node.ok(&[
        "replay",
        "big",
        "-p",
        "0",
        "--from-offset",
        "100",
        "--to-offset",
        "1100",
        "--out",
        &raw_s,
        "--format",
        "raw",
        "--page-records",
        "64",
    ])
    .await;
    let expected = format!("{}\n", lines[100..1100].join("\n"));
    assert_eq!(std::fs::read_to_string(&raw).expect("read raw"), expected);

    // The same range as JSON lines.
    let jsonl = dir.path().join("range.jsonl");
    let jsonl_s = jsonl.to_string_lossy().into_owned();
    node.ok(&[
        "replay",
        "big",
        "--from-offset",
        "100",
        "--to-offset",
        "1100",
        "--out",
        &jsonl_s,
        "--page-records",
        "64",
    ])
    .await;
    let text = std::fs::read_to_string(&jsonl).expect("read jsonl");
    let records = json_lines(&text);
    assert_eq!(records.len(), 1000);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["partition"], 0);
        assert_eq!(r["offset"], 100 + i as u64);
        assert_eq!(r["value"], lines[100 + i].as_str());
        assert_eq!(r["key"], serde_json::Value::Null);
        assert_eq!(r["headers"], serde_json::json!([]));
    }
    // Byte-exact against the canonical encoding of what consume prints.
    let consumed = node
        .ok(&[
            "consume",
            "big",
            "--from-offset",
            "100",
            "--max",
            "1000",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(text, consumed);

    // jsonl with --binary: values in base64.
    node.ok(&["replay", "big", "--to-offset", "3", "--binary", "--out", &jsonl_s])
        .await;
    let records = json_lines(&std::fs::read_to_string(&jsonl).expect("read jsonl"));
    let values: Vec<Vec<u8>> = records
        .iter()
        .map(|r| STANDARD.decode(r["value"].as_str().unwrap_or("")).expect("base64"))
        .collect();
    assert_eq!(
        values,
        lines[..3].iter().map(|l| l.as_bytes().to_vec()).collect::<Vec<_>>()
    );

    // An empty range writes an empty file.
    node.ok(&[
        "replay",
        "big",
        "--from-offset",
        "9999",
        "--out",
        &raw_s,
        "--format",
        "raw",
    ])
    .await;
    assert_eq!(std::fs::read(&raw).expect("read raw"), b"");

    // An unknown topic fails before the output file is touched.
    write_file(&raw, b"keep me");
    let e = node
        .run(&["replay", "nope", "--out", &raw_s])
        .await
        .expect_err("unknown topic");
    assert_eq!(e.code(), Some("unknown_topic"));
    assert_eq!(std::fs::read(&raw).expect("read raw"), b"keep me");
}

#[tokio::test]
async fn replay_all_partitions_in_partition_order() {
    let node = Node::start("client-replay-all").await;
    node.ok(&["topic", "create", "spread", "--partitions", "3"]).await;
    let dir = TempDir::new("client-replay-all-files");
    let input = dir.path().join("in.txt");
    let lines: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
    write_file(&input, format!("{}\n", lines.join("\n")).as_bytes());
    node.ok(&["produce", "spread", &input.to_string_lossy(), "--batch", "7"])
        .await;

    let out = dir.path().join("all.jsonl");
    node.ok(&[
        "replay",
        "spread",
        "--out",
        &out.to_string_lossy(),
        "--page-records",
        "10",
    ])
    .await;
    let records = json_lines(&std::fs::read_to_string(&out).expect("read"));
    assert_eq!(records.len(), 300);
    let keys: Vec<(u64, u64)> = records
        .iter()
        .map(|r| (r["partition"].as_u64().unwrap_or(9), r["offset"].as_u64().unwrap_or(0)))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted, "partition by partition, offsets ascending");
    let mut values: Vec<&str> = records.iter().filter_map(|r| r["value"].as_str()).collect();
    values.sort_unstable();
    let mut expected: Vec<&str> = lines.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(values, expected);
}

#[tokio::test]
async fn group_commit_and_show() {
    let node = Node::start("client-group").await;
    node.ok(&["topic", "create", "g-topic", "--partitions", "2"]).await;
    let dir = TempDir::new("client-group-input");
    let input = dir.path().join("in.txt");
    write_file(&input, b"a\nb\nc\nd\ne\n");
    node.ok(&["produce", "g-topic", &input.to_string_lossy(), "--partition", "1"])
        .await;

    let out = node
        .ok(&[
            "group",
            "commit",
            "readers",
            "--topic",
            "g-topic",
            "--partition",
            "1",
            "--offset",
            "2",
        ])
        .await;
    assert_eq!(out, "committed group readers: g-topic/1 offset 2\n");
    node.ok(&[
        "group", "commit", "readers", "-t", "g-topic", "-p", "0", "--offset", "0",
    ])
    .await;

    let shown = node.json(&["group", "show", "readers", "--output", "json"]).await;
    let mut offsets = shown["offsets"].as_array().expect("offsets").clone();
    offsets.sort_by_key(|o| o["partition"].as_u64());
    assert_eq!(
        serde_json::Value::Array(offsets),
        serde_json::json!([
            {"topic": "g-topic", "partition": 0, "offset": 0},
            {"topic": "g-topic", "partition": 1, "offset": 2},
        ])
    );
    let table = node.ok(&["group", "show", "readers"]).await;
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq(["g-topic", "1", "2", "5", "3"])),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().eq(["g-topic", "0", "0", "0", "0"])),
        "{table}"
    );

    // Generation and reset travel in the body; a server without them may
    // refuse, but only with its own error, never a client failure.
    match node
        .run(&[
            "group",
            "commit",
            "readers",
            "-t",
            "g-topic",
            "-p",
            "1",
            "--offset",
            "1",
            "--generation",
            "4",
            "--reset",
        ])
        .await
    {
        Ok(_) => {}
        Err(e) => assert!(matches!(e, ClientError::Server { .. }), "{e:?}"),
    }

    let empty = node.json(&["group", "show", "nobody", "-o", "json"]).await;
    assert_eq!(empty["offsets"], serde_json::json!([]));
}

#[tokio::test]
async fn errors_carry_the_server_code_and_exit_non_zero() {
    let node = Node::start("client-errors").await;
    let e = node.run(&["consume", "missing"]).await.expect_err("unknown topic");
    assert_eq!(e.code(), Some("unknown_topic"));
    assert_eq!(e.exit_status(), 1);
    let message = format!("error: {e}");
    assert!(message.starts_with("error: unknown_topic: "), "{message}");

    let e = node
        .run(&["produce", "missing", "/definitely/not/here.txt"])
        .await
        .expect_err("no file");
    assert_eq!(e.exit_status(), 2, "{e}");

    node.ok(&["topic", "create", "small"]).await;
    let e = node
        .run(&["consume", "small", "--partition", "5"])
        .await
        .expect_err("no partition");
    assert_eq!(e.code(), Some("unknown_partition"));
    let e = node.run(&["topic", "create", "bad name!"]).await.expect_err("bad name");
    assert_eq!(e.code(), Some("invalid_topic_name"));
    assert_eq!(e.exit_status(), 1);

    // The real entry point returns a failing exit code without panicking.
    let code = silt_client::run(node.parse(&["consume", "missing"])).await;
    assert_eq!(code, std::process::ExitCode::from(1));
    let code = silt_client::run(node.parse(&["topic", "list"])).await;
    assert_eq!(code, std::process::ExitCode::SUCCESS);
}
