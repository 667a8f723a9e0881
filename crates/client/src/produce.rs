//! `silt produce TOPIC [FILE...]`: one record per input line, sent in
//! order in batches, with a summary at the end.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{ClientError, Result};
use crate::wire::{Header, ProduceRecord, ProduceRequest};
use crate::{Api, Connection, emit, format};

/// `silt produce`.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// Where the agent is.
    #[command(flatten)]
    pub conn: Connection,
    /// Topic to write to.
    pub topic: String,
    /// Files to read lines from, in order (`-` is stdin); stdin when none.
    /// Each line (without its `\n`) is one record's value.
    pub files: Vec<PathBuf>,
    /// Fixed key of every record.
    #[arg(long, short = 'k', conflicts_with = "key_separator")]
    pub key: Option<String>,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Header added to every record, in order (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = header_flag)]
    pub headers: Vec<(String, String)>,
    /// Send every record to this partition (default: by key, round-robin
    /// without one).
    #[arg(long, short = 'p')]
    pub partition: Option<u32>,
    /// Records per request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub batch: u32,
    /// Send a request early once its records add up to this many bytes.
    #[arg(long, default_value_t = 4 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_bytes: u64,
    /// Send keys, values and header values base64-encoded, so input lines
    /// need not be UTF-8.
    #[arg(long)]
    pub binary: bool,
    /// Most attempts of one request when the server is overloaded (429/503).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: u32,
}

fn header_flag(raw: &str) -> std::result::Result<(String, String), String> {
    format::parse_header(raw)
}

/// What a produce run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceSummary {
    /// Records produced.
    pub records: u64,
    /// Bytes of keys, values and headers produced (before encoding).
    pub bytes: u64,
    /// Requests sent (not counting retries).
    pub requests: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// One named source of lines.
pub struct Input {
    /// Name used in messages (`-` for stdin).
    pub name: String,
    /// The lines.
    pub reader: Box<dyn BufRead + Send>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Opens the inputs named by `args` (all of them up front, so a missing
/// file is reported before anything is sent).
pub fn open_inputs(args: &ProduceArgs) -> Result<Vec<Input>> {
    let stdin = || Input {
        name: "-".into(),
        reader: Box::new(BufReader::new(std::io::stdin())),
    };
    if args.files.is_empty() {
        return Ok(vec![stdin()]);
    }
    args.files
        .iter()
        .map(|path| {
            if path.as_os_str() == "-" {
                return Ok(stdin());
            }
            let file =
                File::open(path).map_err(|e| ClientError::Usage(format!("cannot open {}: {e}", path.display())))?;
            Ok(Input {
                name: path.display().to_string(),
                reader: Box::new(BufReader::with_capacity(256 << 10, file)),
            })
        })
        .collect()
}

/// Reads the files of `args` (or stdin) and produces them, printing the
/// summary to `out`. Lines typed at a terminal are sent one by one.
pub async fn produce_from_stdin_or_files(api: &Api, args: ProduceArgs, out: &mut impl Write) -> Result<ProduceSummary> {
    let inputs = open_inputs(&args)?;
    let reads_stdin = args.files.is_empty() || args.files.iter().any(|f| f.as_os_str() == "-");
    let interactive = reads_stdin && std::io::stdin().is_terminal();
    produce(api, &args, inputs, interactive, out).await
}

/// Turns one line into a record.
pub fn line_to_record(args: &ProduceArgs, line: &[u8], source: &str, line_no: u64) -> Result<(ProduceRecord, u64)> {
    let text = |bytes: &[u8], what: &str| -> Result<String> {
        if args.binary {
            Ok(STANDARD.encode(bytes))
        } else {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| ClientError::Usage(format!("{source}:{line_no}: {what} is not valid UTF-8; use --binary")))
        }
    };
    let (key, value) = match (&args.key, &args.key_separator) {
        (Some(k), _) => (Some(k.as_bytes()), line),
        (None, Some(sep)) => {
            let sep = sep.as_bytes();
            let at = find(line, sep).ok_or_else(|| {
                ClientError::Usage(format!(
                    "{source}:{line_no}: no key separator {:?} in the line",
                    String::from_utf8_lossy(sep)
                ))
            })?;
            (Some(&line[..at]), &line[at + sep.len()..])
        }
        (None, None) => (None, line),
    };
    let mut size = value.len() as u64 + key.map_or(0, |k| k.len() as u64);
    let headers = args
        .headers
        .iter()
        .map(|(k, v)| {
            size += (k.len() + v.len()) as u64;
            Ok(Header {
                key: k.clone(),
                value: Some(text(v.as_bytes(), "a header value")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let record = ProduceRecord {
        key: key.map(|k| text(k, "the key")).transpose()?,
        value: Some(text(value, "the line")?),
        headers,
        partition: args.partition,
    };
    Ok((record, size))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Produces every line of `inputs` in order and prints a summary to `out`.
/// With `interactive`, every line is sent as soon as it is read.
pub async fn produce(
    api: &Api,
    args: &ProduceArgs,
    inputs: Vec<Input>,
    interactive: bool,
    out: &mut impl Write,
) -> Result<ProduceSummary> {
    if args.key_separator.as_deref() == Some("") {
        return Err(ClientError::Usage("--key-separator must not be empty".into()));
    }
    let api = api.clone().with_attempts(args.attempts);
    let started = Instant::now();
    let mut summary = ProduceSummary {
        records: 0,
        bytes: 0,
        requests: 0,
        elapsed: Duration::ZERO,
    };
    let mut batch = Vec::new();
    let mut batch_bytes = 0u64;
    let mut line = Vec::new();
    for mut input in inputs {
        let mut line_no = 0u64;
        loop {
            line.clear();
            let n = input
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", input.name)))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let (record, size) = line_to_record(args, &line, &input.name, line_no)?;
            batch.push(record);
            batch_bytes += size;
            if interactive || batch.len() >= args.batch as usize || batch_bytes >= args.batch_bytes {
                send(&api, args, &mut batch, &mut batch_bytes, &mut summary).await?;
            }
        }
    }
    send(&api, args, &mut batch, &mut batch_bytes, &mut summary).await?;
    summary.elapsed = started.elapsed();
    emit(
        out,
        &format!(
            "{}\n",
            format::transfer_summary("produced", summary.records, summary.bytes, summary.elapsed)
        ),
    )?;
    Ok(summary)
}

async fn send(
    api: &Api,
    args: &ProduceArgs,
    batch: &mut Vec<ProduceRecord>,
    batch_bytes: &mut u64,
    summary: &mut ProduceSummary,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let req = ProduceRequest {
        records: batch,
        encoding: args.binary.then_some("base64"),
    };
    let resp = api
        .produce(&args.topic, &req)
        .await
        .map_err(|e| after_partial_success(e, summary.records))?;
    if resp.offsets.len() != batch.len() {
        return Err(ClientError::BadResponse(format!(
            "the server acknowledged {} offsets for {} records",
            resp.offsets.len(),
            batch.len()
        )));
    }
    summary.records += batch.len() as u64;
    summary.bytes += *batch_bytes;
    summary.requests += 1;
    batch.clear();
    *batch_bytes = 0;
    Ok(())
}

/// Says in the message how much was produced before a failure, so the
/// caller knows where to resume.
fn after_partial_success(e: ClientError, produced: u64) -> ClientError {
    if produced == 0 {
        return e;
    }
    let note = format!(" ({produced} records before this request were produced)");
    match e {
        ClientError::Server { status, code, message } => ClientError::Server {
            status,
            code,
            message: message + &note,
        },
        ClientError::Transport(m) => ClientError::Transport(m + &note),
        ClientError::BadResponse(m) => ClientError::BadResponse(m + &note),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientCommand;
    use crate::tests::parse;

    fn args(extra: &[&str]) -> ProduceArgs {
        let mut all = vec!["produce", "t"];
        all.extend_from_slice(extra);
        match parse(&all).expect("parse") {
            ClientCommand::Produce(a) => a,
            other => panic!("not produce: {other:?}"),
        }
    }

    #[test]
    fn flags_parse() {
        let a = args(&[
            "a.txt", "b.txt", "-k", "K", "-H", "x=1", "--header", "y=2=3", "--batch", "10",
        ]);
        assert_eq!(a.files, vec![PathBuf::from("a.txt"), PathBuf::from("b.txt")]);
        assert_eq!(a.key.as_deref(), Some("K"));
        assert_eq!(a.headers, vec![("x".into(), "1".into()), ("y".into(), "2=3".into())]);
        assert_eq!(a.batch, 10);
        assert_eq!(args(&[]).batch, 500);
        assert!(parse(&["produce", "t", "--batch", "0"]).is_err());
        assert!(parse(&["produce", "t", "--header", "novalue"]).is_err());
        assert!(parse(&["produce", "t", "--key", "k", "--key-separator", ":"]).is_err());
        assert!(parse(&["produce"]).is_err());
    }

    #[test]
    fn lines_become_records() {
        let a = args(&["-k", "K", "-H", "h=v", "-p", "2"]);
        let (r, size) = line_to_record(&a, b"hello", "-", 1).expect("record");
        assert_eq!(r.key.as_deref(), Some("K"));
        assert_eq!(r.value.as_deref(), Some("hello"));
        assert_eq!(r.partition, Some(2));
        assert_eq!(
            r.headers,
            vec![Header {
                key: "h".into(),
                value: Some("v".into())
            }]
        );
        assert_eq!(size, 5 + 1 + 2);

        let a = args(&["--key-separator", "::"]);
        let (r, _) = line_to_record(&a, b"k1::v::1", "-", 1).expect("record");
        assert_eq!(r.key.as_deref(), Some("k1"));
        assert_eq!(r.value.as_deref(), Some("v::1"));
        let e = line_to_record(&a, b"nosep", "f.txt", 7).expect_err("no separator");
        assert_eq!(e.exit_status(), 2);
        assert!(e.to_string().contains("f.txt:7"), "{e}");
    }

    #[test]
    fn binary_lines_need_binary() {
        let a = args(&[]);
        let e = line_to_record(&a, &[0xff, 0x00], "-", 3).expect_err("not utf8");
        assert!(e.to_string().contains("--binary"), "{e}");
        let a = args(&["--binary", "-k", "é", "-H", "a=b"]);
        let (r, _) = line_to_record(&a, &[0xff, 0x00], "-", 3).expect("record");
        assert_eq!(r.value.as_deref(), Some("/wA="));
        assert_eq!(r.key.as_deref(), Some("w6k="));
        assert_eq!(r.headers[0].value.as_deref(), Some("Yg=="));
    }

    #[test]
    fn partial_success_is_reported() {
        let e = ClientError::Server {
            status: 503,
            code: "overloaded".into(),
            message: "busy".into(),
        };
        assert_eq!(
            after_partial_success(e, 1000).to_string(),
            "overloaded: busy (1000 records before this request were produced)"
        );
    }
}
