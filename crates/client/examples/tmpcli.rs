//! Throwaway.
use clap::Parser;
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: silt_client::ClientCommand,
}
#[tokio::main]
async fn main() -> std::process::ExitCode {
    silt_client::run(Cli::parse().command).await
}
