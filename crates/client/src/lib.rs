//! The command-line client: talks to any agent over the public HTTP API
//! (design §7) to manage topics, produce lines, consume, replay ranges to
//! files and manage consumer-group offsets.
//!
//! Depends only on an HTTP client (`reqwest`), `clap`, `serde`, `tokio`,
//! `base64` and `indicatif`; no server crate. The JSON bodies are this
//! crate's own small serde types ([`wire`]), lenient when reading, so the
//! client keeps working against newer servers.
//!
//! The `silt` binary dispatches its client subcommands to [`run`]. Every
//! command is also a function that writes to a `Write` given by the
//! caller and returns what it did, so tests can capture the output.

// Printing results to standard output is the whole point of this crate.
#![allow(clippy::print_stdout)]

pub mod api;
pub mod consume;
pub mod error;
pub mod format;
pub mod group;
pub mod produce;
pub mod replay;
pub mod topic;
pub mod wire;

use std::io::Write;
use std::process::ExitCode;

pub use api::Api;
pub use consume::ConsumeArgs;
pub use error::ClientError;
pub use group::GroupArgs;
pub use produce::ProduceArgs;
pub use replay::ReplayArgs;
pub use topic::TopicArgs;

/// Where to find the agent; flattened into every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Base URL of any agent's HTTP API.
    #[arg(
        long,
        env = "SILT_URL",
        default_value = "http://127.0.0.1:8080",
        global = true,
        value_name = "URL"
    )]
    pub url: String,
}

/// How `topic` and `group` commands print their results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    #[default]
    Table,
    /// One JSON document, for scripts.
    Json,
}

/// The client subcommands of the `silt` binary.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Create, list, describe or delete topics.
    Topic(TopicArgs),
    /// Send lines of stdin or files as records, one record per line.
    Produce(ProduceArgs),
    /// Print records of a topic, one per line.
    Consume(ConsumeArgs),
    /// Copy a range of a topic to a file, with progress.
    Replay(ReplayArgs),
    /// Commit or show consumer-group offsets.
    Group(GroupArgs),
}

impl ClientCommand {
    /// The `--url` of this command.
    pub fn url(&self) -> &str {
        match self {
            Self::Topic(a) => &a.conn.url,
            Self::Produce(a) => &a.conn.url,
            Self::Consume(a) => &a.conn.url,
            Self::Replay(a) => &a.conn.url,
            Self::Group(a) => &a.conn.url,
        }
    }
}

/// Exit code of a command stopped by Ctrl-C (128 + SIGINT).
const INTERRUPTED: u8 = 130;

/// Runs one client command against its `--url`: results go to stdout,
/// progress and errors to stderr (`error: <code>: <message>`). Exit code 0
/// on success, 2 for usage or client-side mistakes, 1 for server and
/// transport errors, 130 when interrupted by Ctrl-C. Never panics on bad
/// server output.
pub async fn run(cmd: ClientCommand) -> ExitCode {
    let mut stdout = std::io::BufWriter::new(std::io::stdout());
    let result = tokio::select! {
        r = execute(cmd, &mut stdout) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    let flushed = stdout.flush().map_err(|e| ClientError::output("stdout", e));
    let result = match result {
        None => return ExitCode::from(INTERRUPTED),
        Some(r) => r.and(flushed),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(ClientError::BrokenPipe) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Runs one command, writing its results to `out` (stdin, stderr and the
/// terminal are used for produce input and replay progress).
pub async fn execute<W: Write + Send>(cmd: ClientCommand, out: &mut W) -> Result<(), ClientError> {
    let api = Api::new(cmd.url())?;
    match cmd {
        ClientCommand::Topic(args) => topic::topic(&api, args, out).await,
        ClientCommand::Produce(args) => produce::produce_from_stdin_or_files(&api, args, out).await.map(|_| ()),
        ClientCommand::Consume(args) => consume::consume(&api, &args, out).await.map(|_| ()),
        ClientCommand::Replay(args) => replay::replay_with_terminal(&api, &args).await.map(|_| ()),
        ClientCommand::Group(args) => group::group(&api, args, out).await,
    }
}

/// Writes `text` to `out`, mapping failures to [`ClientError`].
pub(crate) fn emit(out: &mut impl Write, text: &str) -> Result<(), ClientError> {
    out.write_all(text.as_bytes())
        .map_err(|e| ClientError::output("cannot write output", e))
}

/// Writes `value` as one line of compact JSON.
pub(crate) fn emit_json<T: serde::Serialize>(out: &mut impl Write, value: &T) -> Result<(), ClientError> {
    let mut line = serde_json::to_vec(value).map_err(|e| ClientError::Io(format!("cannot encode JSON: {e}")))?;
    line.push(b'\n');
    out.write_all(&line)
        .map_err(|e| ClientError::output("cannot write output", e))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// Stand-in for the binary's top level, wired as main.rs should be.
    #[derive(Debug, Parser)]
    #[command(name = "silt")]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Top {
        /// Another subcommand of the binary, to prove flattening works.
        Serve,
        #[command(flatten)]
        Client(ClientCommand),
    }

    pub(crate) fn parse(args: &[&str]) -> Result<ClientCommand, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("silt").chain(args.iter().copied()))?;
        match cli.command {
            Top::Client(c) => Ok(c),
            Top::Serve => Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn url_defaults_and_flag_overrides() {
        // SILT_URL may be set by whoever runs the tests; only check the flag.
        let cmd = parse(&["topic", "list", "--url", "http://10.0.0.1:9"]).expect("parse");
        assert_eq!(cmd.url(), "http://10.0.0.1:9");
        let cmd = parse(&["topic", "--url", "http://10.0.0.2:9", "list"]).expect("parse");
        assert_eq!(cmd.url(), "http://10.0.0.2:9");
        let cmd = parse(&["group", "show", "g", "--url", "http://h:1"]).expect("parse");
        assert_eq!(cmd.url(), "http://h:1");
        let cmd = parse(&["consume", "t", "--url", "http://h:2"]).expect("parse");
        assert_eq!(cmd.url(), "http://h:2");
    }

    #[test]
    fn serve_still_parses_beside_client_commands() {
        let cli = Cli::try_parse_from(["silt", "serve"]).expect("parse");
        assert!(matches!(cli.command, Top::Serve));
    }

    #[tokio::test]
    async fn bad_url_is_a_usage_error() {
        let cmd = parse(&["topic", "list", "--url", "nope"]).expect("parse");
        let mut out = Vec::new();
        let e = execute(cmd, &mut out).await.expect_err("bad url");
        assert_eq!(e.exit_status(), 2);
    }

    #[tokio::test]
    async fn unreachable_server_is_a_transport_error() {
        // Port 9 on loopback (discard) is essentially never listening.
        let cmd = parse(&["topic", "list", "--url", "http://127.0.0.1:9"]).expect("parse");
        let mut out = Vec::new();
        let e = execute(cmd, &mut out).await.expect_err("no server");
        assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
        assert_eq!(e.exit_status(), 1);
    }
}
