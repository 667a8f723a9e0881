//! `silt consume TOPIC`: prints records one per line, from one partition
//! or all of them, optionally following the log with long polls.

use std::io::Write;

use crate::api::ReadQuery;
use crate::error::{ClientError, Result};
use crate::wire::{PartitionDescription, RecordJson, TopicDescription};
use crate::{Api, Connection};

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Position {
    /// The partition's log start offset.
    Earliest,
    /// The partition's high watermark: only records produced from now on.
    Latest,
}

/// How `consume` prints a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RecordFormat {
    /// The value alone (raw bytes with `--binary`); an empty line for null.
    #[default]
    Value,
    /// The whole record as one JSON object: partition, offset,
    /// timestamp_ms, key, value, headers.
    Json,
}

/// `silt consume`.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// Where the agent is.
    #[command(flatten)]
    pub conn: Connection,
    /// Topic to read.
    pub topic: String,
    /// Read only this partition (default: all, one after another, or all
    /// at once with --follow).
    #[arg(long, short = 'p')]
    pub partition: Option<u32>,
    /// Start at this offset (in every partition read).
    #[arg(long, group = "start")]
    pub from_offset: Option<u64>,
    /// Start at the first record with a timestamp at or after MS
    /// (milliseconds since the epoch).
    #[arg(long, group = "start", value_name = "MS", allow_negative_numbers = true)]
    pub from_timestamp: Option<i64>,
    /// Start at the earliest or latest offset [default: earliest].
    #[arg(long, group = "start", value_enum)]
    pub from: Option<Position>,
    /// Stop after this many records in total.
    #[arg(long, short = 'n')]
    pub max: Option<u64>,
    /// Keep waiting for new records until interrupted (Ctrl-C); without
    /// it, stop at the high watermark seen at the start.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RecordFormat::Value)]
    pub format: RecordFormat,
    /// Read keys and values as base64 (needed for non-UTF-8 data): the
    /// value format prints the raw bytes, the JSON format base64 strings.
    #[arg(long)]
    pub binary: bool,
    /// Records asked for per request.
    #[arg(long, default_value_t = 1000, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub page_records: u64,
    /// Long-poll time per request with --follow, in milliseconds.
    #[arg(long, default_value_t = 30_000, hide = true)]
    pub wait_ms: u64,
}

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// An explicit offset.
    Offset(u64),
    /// The first offset at or after a timestamp.
    Timestamp(i64),
    /// The log start.
    Earliest,
    /// The high watermark.
    Latest,
}

impl ConsumeArgs {
    /// The start position the flags ask for.
    pub fn start(&self) -> Start {
        match (self.from_offset, self.from_timestamp, self.from) {
            (Some(o), _, _) => Start::Offset(o),
            (_, Some(ts), _) => Start::Timestamp(ts),
            (_, _, Some(Position::Latest)) => Start::Latest,
            _ => Start::Earliest,
        }
    }
}

/// Resolves `start` to an offset of partition `p`.
pub async fn resolve_start(api: &Api, topic: &str, p: PartitionDescription, start: Start) -> Result<u64> {
    match start {
        Start::Offset(o) => Ok(o),
        Start::Earliest => Ok(p.log_start_offset),
        Start::Latest => Ok(p.high_watermark),
        Start::Timestamp(ts) => api.offset_for_timestamp(topic, p.partition, ts).await,
    }
}

/// The partitions of `topic` a command reads: `only`, or all of them.
pub fn select_partitions(topic: &TopicDescription, only: Option<u32>) -> Result<Vec<PartitionDescription>> {
    match only {
        Some(p) => topic.partition(p).map(|d| vec![d]).ok_or_else(|| ClientError::Server {
            status: 404,
            code: "unknown_partition".into(),
            message: format!(
                "topic {} has {} partitions; there is no partition {p}",
                topic.name,
                topic.partitions.len()
            ),
        }),
        None => {
            let mut all = topic.partitions.clone();
            all.sort_by_key(|p| p.partition);
            Ok(all)
        }
    }
}

/// Reads one partition page by page from an offset, up to an optional
/// end (exclusive), checking that every page makes progress.
#[derive(Debug, Clone)]
pub struct PartitionReader {
    api: Api,
    topic: String,
    partition: u32,
    offset: u64,
    end: Option<u64>,
    /// Records per request.
    pub page_records: u64,
    /// Bytes per request (server default when unset).
    pub page_bytes: Option<u64>,
    /// Long-poll time when nothing is there yet.
    pub wait_ms: u64,
    /// Ask for base64 keys and values.
    pub base64: bool,
}

impl PartitionReader {
    /// A reader of `topic`/`partition` from `offset` to `end` (none: forever).
    pub fn new(api: &Api, topic: &str, partition: u32, offset: u64, end: Option<u64>) -> Self {
        Self {
            api: api.clone(),
            topic: topic.to_owned(),
            partition,
            offset,
            end,
            page_records: 1000,
            page_bytes: None,
            wait_ms: 0,
            base64: false,
        }
    }

    /// The partition read.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The next offset to read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next page of at most `cap` records: `None` once the end is
    /// reached; possibly empty when following and nothing arrived in time.
    pub async fn next_page(&mut self, cap: u64) -> Result<Option<Vec<RecordJson>>> {
        let mut max_records = self.page_records.min(cap).max(1);
        if let Some(end) = self.end {
            if self.offset >= end {
                return Ok(None);
            }
            max_records = max_records.min(end - self.offset);
        }
        let query = ReadQuery {
            offset: self.offset,
            max_records,
            max_bytes: self.page_bytes,
            wait_ms: self.wait_ms,
            base64: self.base64,
        };
        let resp = self.api.read(&self.topic, self.partition, &query).await?;
        let from = self.offset;
        let end = self.end.unwrap_or(u64::MAX);
        let mut records = resp.records;
        let mut expected = from;
        for r in &records {
            if r.offset < expected {
                return Err(ClientError::BadResponse(format!(
                    "partition {} read at offset {from} returned offset {} out of order",
                    self.partition, r.offset
                )));
            }
            expected = r.offset.saturating_add(1);
        }
        records.retain(|r| r.offset < end);
        let next = resp.next_offset.max(expected);
        if next <= from && records.is_empty() {
            if self.end.is_some() && self.wait_ms == 0 {
                return Err(ClientError::BadResponse(format!(
                    "partition {} read made no progress at offset {from} (high watermark {})",
                    self.partition, resp.high_watermark
                )));
            }
            return Ok(Some(records));
        }
        self.offset = next.min(end);
        Ok(Some(records))
    }
}

/// Writes one record in `format`, as `silt replay` would (`base64` says how
/// the server encoded keys and values).
pub fn write_record(
    out: &mut impl Write,
    partition: u32,
    r: RecordJson,
    format: RecordFormat,
    base64: bool,
) -> Result<()> {
    let format = match format {
        RecordFormat::Json => crate::replay::ReplayFormat::Jsonl,
        RecordFormat::Value => crate::replay::ReplayFormat::Raw,
    };
    let mut line = Vec::new();
    crate::replay::encode_record(&mut line, partition, r, format, base64)?;
    out.write_all(&line)
        .map_err(|e| ClientError::output("cannot write output", e))
}

/// What a consume run printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumeSummary {
    /// Records printed.
    pub records: u64,
}

/// Runs `silt consume`, printing records to `out` (flushed after every
/// page). Without `--follow` partitions are read one after another up to
/// the high watermarks seen at the start; with it all selected partitions
/// are long-polled at once and pages printed as they arrive.
pub async fn consume<W: Write + Send>(api: &Api, args: &ConsumeArgs, out: &mut W) -> Result<ConsumeSummary> {
    let topic = api.describe_topic(&args.topic).await?;
    let partitions = select_partitions(&topic, args.partition)?;
    let start = args.start();
    let mut readers = Vec::with_capacity(partitions.len());
    for p in partitions {
        let offset = resolve_start(api, &args.topic, p, start).await?;
        let end = (!args.follow).then_some(p.high_watermark);
        let mut reader = PartitionReader::new(api, &args.topic, p.partition, offset, end);
        reader.page_records = args.page_records;
        reader.base64 = args.binary;
        reader.wait_ms = if args.follow { args.wait_ms } else { 0 };
        readers.push(reader);
    }
    let limit = args.max.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    if !args.follow {
        for mut reader in readers {
            while printed < limit {
                let Some(page) = reader.next_page(limit - printed).await? else {
                    break;
                };
                printed += print_page(out, reader.partition(), page, limit - printed, args)?;
            }
        }
        return Ok(ConsumeSummary { records: printed });
    }
    if limit == 0 {
        return Ok(ConsumeSummary { records: 0 });
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<(u32, Vec<RecordJson>)>>(readers.len().max(1) * 2);
    let mut tasks = tokio::task::JoinSet::new();
    for mut reader in readers {
        let tx = tx.clone();
        tasks.spawn(async move {
            loop {
                match reader.next_page(limit).await {
                    Ok(Some(page)) if page.is_empty() => continue,
                    Ok(Some(page)) => {
                        if tx.send(Ok((reader.partition(), page))).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    while let Some(msg) = rx.recv().await {
        let (partition, page) = msg?;
        printed += print_page(out, partition, page, limit - printed, args)?;
        if printed >= limit {
            break;
        }
    }
    tasks.abort_all();
    Ok(ConsumeSummary { records: printed })
}

fn print_page(
    out: &mut impl Write,
    partition: u32,
    page: Vec<RecordJson>,
    room: u64,
    args: &ConsumeArgs,
) -> Result<u64> {
    let mut printed = 0u64;
    for r in page.into_iter().take(usize::try_from(room).unwrap_or(usize::MAX)) {
        write_record(out, partition, r, args.format, args.binary)?;
        printed += 1;
    }
    out.flush().map_err(|e| ClientError::output("cannot write output", e))?;
    Ok(printed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientCommand;
    use crate::tests::parse;
    use crate::wire::Header;

    fn args(extra: &[&str]) -> Result<ConsumeArgs, clap::Error> {
        let mut all = vec!["consume", "t"];
        all.extend_from_slice(extra);
        match parse(&all)? {
            ClientCommand::Consume(a) => Ok(a),
            other => panic!("not consume: {other:?}"),
        }
    }

    #[test]
    fn start_flags_are_exclusive() {
        assert_eq!(args(&[]).expect("parse").start(), Start::Earliest);
        assert_eq!(args(&["--from", "latest"]).expect("parse").start(), Start::Latest);
        assert_eq!(args(&["--from", "earliest"]).expect("parse").start(), Start::Earliest);
        assert_eq!(args(&["--from-offset", "7"]).expect("parse").start(), Start::Offset(7));
        assert_eq!(
            args(&["--from-timestamp", "1700000000000"]).expect("parse").start(),
            Start::Timestamp(1_700_000_000_000)
        );
        assert!(args(&["--from-offset", "1", "--from", "latest"]).is_err());
        assert!(args(&["--from-offset", "1", "--from-timestamp", "5"]).is_err());
        assert!(args(&["--from", "middle"]).is_err());
        let a = args(&["-p", "3", "-n", "10", "-f", "--format", "json", "--binary"]).expect("parse");
        assert_eq!(
            (a.partition, a.max, a.follow, a.binary),
            (Some(3), Some(10), true, true)
        );
        assert_eq!(a.format, RecordFormat::Json);
    }

    fn record() -> RecordJson {
        RecordJson {
            offset: 4,
            timestamp_ms: 99,
            key: Some("k".into()),
            value: Some("hello".into()),
            headers: vec![Header {
                key: "h".into(),
                value: None,
            }],
        }
    }

    #[test]
    fn records_print_as_values_or_json() {
        let mut out = Vec::new();
        write_record(&mut out, 1, record(), RecordFormat::Value, false).expect("write");
        let mut null = record();
        null.value = None;
        write_record(&mut out, 1, null, RecordFormat::Value, false).expect("write");
        write_record(&mut out, 1, record(), RecordFormat::Json, false).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "hello\n\n{\"partition\":1,\"offset\":4,\"timestamp_ms\":99,\"key\":\"k\",\"value\":\"hello\",\
             \"headers\":[{\"key\":\"h\",\"value\":null}]}\n"
        );
    }

    #[test]
    fn binary_values_are_decoded() {
        let mut r = record();
        r.value = Some("/wA=".into());
        r.key = Some("YQ==".into());
        let mut out = Vec::new();
        write_record(&mut out, 0, r.clone(), RecordFormat::Value, true).expect("write");
        assert_eq!(out, vec![0xff, 0x00, b'\n']);
        r.value = Some("!!".into());
        let e = write_record(&mut out, 0, r, RecordFormat::Value, true).expect_err("bad base64");
        assert!(matches!(e, ClientError::BadResponse(_)));
    }

    #[test]
    fn partitions_are_selected() {
        let topic = TopicDescription {
            name: "t".into(),
            id: None,
            config: serde_json::Map::new(),
            partitions: (0..3)
                .rev()
                .map(|partition| PartitionDescription {
                    partition,
                    log_start_offset: 0,
                    high_watermark: 1,
                })
                .collect(),
        };
        let all: Vec<u32> = select_partitions(&topic, None)
            .expect("all")
            .iter()
            .map(|p| p.partition)
            .collect();
        assert_eq!(all, vec![0, 1, 2]);
        assert_eq!(select_partitions(&topic, Some(2)).expect("one").len(), 1);
        let e = select_partitions(&topic, Some(3)).expect_err("missing");
        assert_eq!(e.code(), Some("unknown_partition"));
    }
}
