//! The `silt` binary: flags, configuration, tracing setup, signals and the
//! wiring of the crates below into running roles.
//!
//! May depend on every other Silt crate; nothing depends on it.

mod config;
mod meta;
mod node;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::LogFormat;

/// Silt: a serverless event log whose source of truth is object storage.
#[derive(Debug, Parser)]
#[command(name = "silt", version, about = "Silt: a serverless event log whose source of truth is object storage", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a complete node in one process: agent, embedded SQLite metadata and a
    /// local-filesystem object store under --data-dir.
    Serve(Box<config::NodeArgs>),
    /// Run a stateless agent of a fleet: the public HTTP API, talking to a
    /// metadata service (--meta) and an object store (--object-store).
    Agent(Box<config::NodeArgs>),
    /// Run the metadata service (sequencer and catalog) on SQLite or PostgreSQL.
    Meta(Box<config::MetaArgs>),
    #[command(flatten)]
    Client(silt_client::ClientCommand),
}

/// Why a role could not run.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Settings are unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A component failed to start.
    #[error("cannot start {component}: {reason}")]
    Startup {
        /// Which component.
        component: &'static str,
        /// Why.
        reason: String,
    },
}

pub(crate) fn startup(component: &'static str) -> impl FnOnce(String) -> CliError {
    move |reason| CliError::Startup { component, reason }
}

/// Installs the global tracing subscriber.
pub(crate) fn init_tracing(format: LogFormat, filter: &str) -> Result<(), CliError> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| CliError::Config(format!("log_level: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| CliError::Config(format!("cannot install logger: {e}")))
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
pub(crate) async fn wait_for_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => info!(signal = "SIGTERM", "shutting down"),
            _ = tokio::signal::ctrl_c() => info!(signal = "SIGINT", "shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        info!(signal = "ctrl-c", "shutting down");
    }
    shutdown.cancel();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("silt: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        // The client commands report their own errors and exit codes.
        Command::Client(cmd) => return runtime.block_on(silt_client::run(cmd)),
        Command::Serve(args) => runtime.block_on(node::run(node::Role::Serve, *args)),
        Command::Agent(args) => runtime.block_on(node::run(node::Role::Agent, *args)),
        Command::Meta(args) => runtime.block_on(meta::run(*args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "silt failed");
            eprintln!("silt: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
