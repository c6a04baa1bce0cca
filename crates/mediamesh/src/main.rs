//! The `mediamesh` binary: parses the command line and the optional TOML config file,
//! sets up logging, and starts the role asked for. All behaviour lives in the library
//! crates; this file is the edge where `anyhow` errors become exit codes.

mod cli;
mod edge_cli;
mod fleet_cli;
mod peer_cli;
mod sim_cli;

use anyhow::Result;
use clap::Parser;

fn main() -> Result<()> {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli::run(args))
}
