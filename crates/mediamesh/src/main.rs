//! The `mediamesh` binary: parses the command line and the optional TOML config file,
//! sets up logging, and starts the role asked for. All behaviour lives in the library
//! crates; this crate is where `anyhow` errors become exit codes.
//!
//! Modules: `access_log_cli` (the edge's access log settings and the stop signals),
//! `cli` (the subcommands) imports the role modules (`origin_cli` for serve
//! and origin, `edge_cli`, `tracker_cli`, `peer_cli`, `fleet_cli` for fleet membership
//! and the router, `sim_cli`); they share `layers` (flags = file = environment) and
//! none imports `cli` back. `console` (the operator console's page and JSON, with
//! `console_delivery`, its time series) is mounted by the serve, origin and router
//! roles. `fleet_state` wires viewer accounting and the fleet's shared operator state
//! (Redis) into the roles `fleet_cli` joins.

mod access_log_cli;
mod cli;
mod console;
mod console_delivery;
mod edge_cli;
mod fleet_cli;
mod fleet_state;
mod layers;
mod listen_cli;
mod origin_cli;
mod peer_cli;
mod ready;
mod sim_cli;
mod tracker_cli;
mod whep_cli;
mod whip_cli;

use anyhow::Result;

fn main() -> Result<()> {
    let cmd = cli::command();
    let matches = cmd.clone().get_matches();
    // turn-client-proto (the native peer's TURN client) logs every poll at INFO.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,turn_client_proto=warn")
            }),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let command = cli::layered(&cmd, &matches)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli::run(command))
}
