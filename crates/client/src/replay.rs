//! `silt replay TOPIC --out FILE`: streams a range of one partition (or of
//! every partition) to a file as JSON lines or raw values, one response
//! page at a time, with a progress bar on a terminal.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::consume::{PartitionReader, select_partitions};
use crate::error::{ClientError, Result};
use crate::wire::{OutputRecord, RecordJson};
use crate::{Api, Connection, format};

/// How replayed records are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayFormat {
    /// One JSON object per line: partition, offset, timestamp_ms, key,
    /// value, headers.
    #[default]
    Jsonl,
    /// The raw value bytes of each record followed by `\n` (an empty line
    /// for a null value).
    Raw,
}

/// `silt replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Where the agent is.
    #[command(flatten)]
    pub conn: Connection,
    /// Topic to read.
    pub topic: String,
    /// Replay only this partition (default: every partition, in order).
    #[arg(long, short = 'p')]
    pub partition: Option<u32>,
    /// First offset (default: each partition's log start).
    #[arg(long)]
    pub from_offset: Option<u64>,
    /// End offset, exclusive (default, and at most: each partition's high
    /// watermark when the replay starts).
    #[arg(long)]
    pub to_offset: Option<u64>,
    /// File to write (created or truncated; `-` for stdout).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReplayFormat::Jsonl)]
    pub format: ReplayFormat,
    /// In jsonl, write keys and values as base64 (needed for non-UTF-8
    /// data). The raw format is always byte-exact.
    #[arg(long)]
    pub binary: bool,
    /// Never draw the progress bar (a summary line is still printed).
    #[arg(long)]
    pub no_progress: bool,
    /// Records asked for per request.
    #[arg(long, default_value_t = 10_000, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub page_records: u64,
    /// Bytes asked for per request.
    #[arg(long, default_value_t = 4 << 20, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub page_bytes: u64,
}

/// What a replay wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Records written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Offsets covered (records plus gaps).
    pub offsets: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `silt replay` from a terminal: the bar is drawn on stderr only
/// when stderr is a terminal; a summary line always ends on stderr.
pub async fn replay_with_terminal(api: &Api, args: &ReplayArgs) -> Result<ReplaySummary> {
    let bar = !args.no_progress && std::io::stderr().is_terminal();
    replay_to_path(api, args, bar, &mut std::io::stderr()).await
}

/// Plans the replay (so an unknown topic fails before the file is
/// touched), opens `args.out`, replays into it and writes the summary
/// line to `log`.
pub async fn replay_to_path(api: &Api, args: &ReplayArgs, bar: bool, log: &mut impl Write) -> Result<ReplaySummary> {
    let started = Instant::now();
    let plan = plan(api, args).await?;
    let to_stdout = args.out.as_os_str() == "-";
    let sink: Box<dyn Write + Send> = if to_stdout {
        Box::new(std::io::stdout())
    } else {
        let file = File::create(&args.out)
            .map_err(|e| ClientError::Usage(format!("cannot create {}: {e}", args.out.display())))?;
        Box::new(file)
    };
    let mut sink = BufWriter::with_capacity(1 << 20, sink);
    let summary = write(plan, args, &mut sink, bar, started).await?;
    sink.flush()
        .map_err(|e| ClientError::output(&format!("cannot write {}", args.out.display()), e))?;
    let line = format!(
        "{} to {}\n",
        format::transfer_summary("replayed", summary.records, summary.bytes, summary.elapsed),
        if to_stdout {
            "stdout".to_owned()
        } else {
            args.out.display().to_string()
        }
    );
    // The summary is informational: failing to print it fails nothing.
    let _ = log.write_all(line.as_bytes());
    Ok(summary)
}

/// One page travelling from the reading task to the writer: partition,
/// records, offsets covered.
type Page = (u32, Vec<RecordJson>, u64);

/// What a replay will read: one reader per partition with a non-empty
/// range, and the number of offsets in all ranges.
#[derive(Debug)]
pub struct Plan {
    readers: Vec<PartitionReader>,
    total: u64,
    base64: bool,
}

/// Describes the topic and fixes each partition's range: from
/// `--from-offset` (default: log start) to `--to-offset` (default and at
/// most: the high watermark now).
pub async fn plan(api: &Api, args: &ReplayArgs) -> Result<Plan> {
    let topic = api.describe_topic(&args.topic).await?;
    let partitions = select_partitions(&topic, args.partition)?;
    let base64 = args.binary || args.format == ReplayFormat::Raw;
    let mut total = 0u64;
    let mut readers = Vec::with_capacity(partitions.len());
    for p in partitions {
        let from = args.from_offset.unwrap_or(p.log_start_offset);
        let to = args.to_offset.unwrap_or(p.high_watermark).min(p.high_watermark);
        if from >= to {
            continue;
        }
        total += to - from;
        let mut reader = PartitionReader::new(api, &args.topic, p.partition, from, Some(to));
        reader.page_records = args.page_records;
        reader.page_bytes = Some(args.page_bytes);
        reader.base64 = base64;
        readers.push(reader);
    }
    Ok(Plan { readers, total, base64 })
}

/// Carries out `plan` into `sink`. The next page is fetched while the
/// current one is written; at most a few pages are in memory at once.
pub async fn write<W: Write + Send>(
    plan: Plan,
    args: &ReplayArgs,
    sink: &mut W,
    bar: bool,
    started: Instant,
) -> Result<ReplaySummary> {
    let Plan { readers, total, base64 } = plan;
    let progress = progress_bar(bar, total);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Page>>(2);
    let mut task = tokio::task::JoinSet::new();
    task.spawn(async move {
        for mut reader in readers {
            loop {
                let before = reader.offset();
                let msg = match reader.next_page(u64::MAX).await {
                    Ok(None) => break,
                    Ok(Some(page)) => Ok((reader.partition(), page, reader.offset() - before)),
                    Err(e) => Err(e),
                };
                let failed = msg.is_err();
                if tx.send(msg).await.is_err() || failed {
                    return;
                }
            }
        }
    });
    let mut summary = ReplaySummary {
        records: 0,
        bytes: 0,
        offsets: 0,
        elapsed: Duration::ZERO,
    };
    let mut line = Vec::new();
    while let Some(msg) = rx.recv().await {
        let (partition, page, covered) = match msg {
            Ok(page) => page,
            Err(e) => {
                progress.abandon();
                return Err(e);
            }
        };
        for r in page {
            line.clear();
            encode_record(&mut line, partition, r, args.format, base64)?;
            sink.write_all(&line)
                .map_err(|e| ClientError::output(&format!("cannot write {}", args.out.display()), e))?;
            summary.records += 1;
            summary.bytes += line.len() as u64;
        }
        summary.offsets += covered;
        progress.set_position(summary.offsets);
        progress.set_message(format!(
            "{} records, {}, {}/s",
            summary.records,
            format::bytes(summary.bytes),
            format::bytes(format::per_second(summary.bytes, started.elapsed()) as u64)
        ));
    }
    progress.finish_and_clear();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Layout of the progress bar.
const BAR_TEMPLATE: &str = "[{elapsed_precise}] [{wide_bar}] {percent:>3}% {msg} ETA {eta}";

fn progress_bar(visible: bool, total: u64) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(BAR_TEMPLATE) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Appends one record to `buf` in `format` (`base64` says how the server
/// encoded keys and values).
pub fn encode_record(
    buf: &mut Vec<u8>,
    partition: u32,
    r: RecordJson,
    format: ReplayFormat,
    base64: bool,
) -> Result<()> {
    match format {
        ReplayFormat::Jsonl => {
            let offset = r.offset;
            serde_json::to_writer(&mut *buf, &OutputRecord::new(partition, r)).map_err(|e| {
                ClientError::Io(format!(
                    "cannot encode record at partition {partition} offset {offset}: {e}"
                ))
            })?;
        }
        ReplayFormat::Raw => {
            if let Some(value) = r.value {
                if base64 {
                    STANDARD.decode_vec(value.as_bytes(), buf).map_err(|e| {
                        ClientError::BadResponse(format!(
                            "value at partition {partition} offset {} is not valid base64: {e}",
                            r.offset
                        ))
                    })?;
                } else {
                    buf.extend_from_slice(value.as_bytes());
                }
            }
        }
    }
    buf.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientCommand;
    use crate::tests::parse;

    #[test]
    fn flags_parse() {
        let cmd = parse(&[
            "replay",
            "t",
            "-p",
            "1",
            "--from-offset",
            "5",
            "--to-offset",
            "9",
            "--out",
            "x.raw",
            "--format",
            "raw",
        ])
        .expect("parse");
        let ClientCommand::Replay(a) = cmd else {
            panic!("not replay")
        };
        assert_eq!(a.partition, Some(1));
        assert_eq!((a.from_offset, a.to_offset), (Some(5), Some(9)));
        assert_eq!(a.out, PathBuf::from("x.raw"));
        assert_eq!(a.format, ReplayFormat::Raw);
        assert!(parse(&["replay", "t"]).is_err(), "--out is required");
        assert!(parse(&["replay", "t", "--out", "f", "--format", "csv"]).is_err());
    }

    #[test]
    fn progress_template_is_valid() {
        assert!(ProgressStyle::with_template(BAR_TEMPLATE).is_ok());
        let hidden = progress_bar(false, 10);
        assert!(hidden.is_hidden());
    }

    #[test]
    fn records_encode() {
        let r = RecordJson {
            offset: 1,
            timestamp_ms: 2,
            key: None,
            value: Some("/wA=".into()),
            headers: vec![],
        };
        let mut buf = Vec::new();
        encode_record(&mut buf, 0, r.clone(), ReplayFormat::Raw, true).expect("raw");
        assert_eq!(buf, vec![0xff, 0x00, b'\n']);
        buf.clear();
        encode_record(&mut buf, 3, r.clone(), ReplayFormat::Jsonl, true).expect("jsonl");
        assert_eq!(
            String::from_utf8(buf.clone()).expect("utf8"),
            "{\"partition\":3,\"offset\":1,\"timestamp_ms\":2,\"key\":null,\"value\":\"/wA=\",\"headers\":[]}\n"
        );
        buf.clear();
        let null = RecordJson { value: None, ..r };
        encode_record(&mut buf, 0, null, ReplayFormat::Raw, true).expect("raw");
        assert_eq!(buf, b"\n");
    }
}
