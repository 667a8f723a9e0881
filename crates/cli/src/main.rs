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

/// Installs the global tracing subscriber: text or JSON lines on stderr, plus
/// OTLP span export when `otlp_endpoint` is set (needs the `otlp` feature).
pub(crate) fn init_tracing(format: LogFormat, filter: &str, otlp_endpoint: &str) -> Result<(), CliError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| CliError::Config(format!("log_level: {e}")))?;
    let (text, json) = match format {
        LogFormat::Text => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::io::stderr),
            ),
            None,
        ),
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    let registry = tracing_subscriber::registry().with(filter).with(text).with(json);
    let result = if otlp_endpoint.is_empty() {
        registry.try_init()
    } else {
        registry.with(otlp::layer(otlp_endpoint)?).try_init()
    };
    result.map_err(|e| CliError::Config(format!("cannot install logger: {e}")))
}

#[cfg(feature = "otlp")]
mod otlp {
    //! OTLP/HTTP span export, compiled in with `--features otlp`.

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;

    use crate::CliError;

    /// A tracing layer exporting spans to the OTLP/HTTP collector at `endpoint`.
    pub(crate) fn layer<S>(endpoint: &str) -> Result<impl tracing_subscriber::Layer<S>, CliError>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| CliError::Config(format!("otlp_endpoint: {e}")))?;
        let resource = opentelemetry_sdk::Resource::builder().with_service_name("silt").build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("silt");
        opentelemetry::global::set_tracer_provider(provider);
        Ok(tracing_opentelemetry::layer().with_tracer(tracer))
    }
}

#[cfg(not(feature = "otlp"))]
mod otlp {
    //! Builds without the `otlp` feature refuse an OTLP endpoint clearly.

    use crate::CliError;

    /// Always an error: this build cannot export OTLP.
    pub(crate) fn layer(_endpoint: &str) -> Result<tracing_subscriber::layer::Identity, CliError> {
        Err(CliError::Config(
            "otlp_endpoint is set but this silt was built without OTLP support; rebuild with `cargo build --features otlp`"
                .into(),
        ))
    }
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
