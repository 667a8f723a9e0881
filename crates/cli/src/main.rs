//! The `silt` binary: flags, configuration, tracing setup, signals and the
//! wiring of the crates below into running roles.
//!
//! May depend on every other Silt crate; nothing depends on it.

mod config;
mod serve;

use clap::{Parser, Subcommand};

/// Silt: a serverless event log whose source of truth is object storage.
#[derive(Debug, Parser)]
#[command(name = "silt", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a complete node in one process: agent, embedded SQLite metadata and a
    /// local-filesystem object store under --data-dir.
    Serve(Box<config::ServeArgs>),
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
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "silt failed");
            eprintln!("silt: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
