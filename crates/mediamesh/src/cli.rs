//! The command line: one subcommand per role. Each role's settings are read once, as
//! flags, `MEDIAMESH_*` variables and the `--config` TOML file in one layer (see
//! `layers`), then handed to the role's module.
//!
//! Not here: any role's settings or start-up (the `*_cli` modules).

use anyhow::{Context, Result};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "mediamesh",
    version,
    about = "Live and on-demand video delivery: origin, CDN edge, P2P and edge compute in one binary.",
    after_help = "Every flag can also be set as a key of the --config file (named like the flag, `_` for `-`) or as the environment variable MEDIAMESH_<FLAG> (e.g. MEDIAMESH_MAX_STREAMS); a flag beats the variable, which beats the file."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Everything in one process: origin, edge facing the viewers, tracker and web player.
    Serve(crate::origin_cli::OriginArgs),
    /// The origin alone: RTMP ingest, packaging, LL-HLS/DASH, VOD.
    Origin(crate::origin_cli::OriginArgs),
    /// One edge cache in front of HTTP origins (ours or any HLS/DASH server).
    Edge(crate::edge_cli::EdgeArgs),
    /// Mint an EdgeAuth token for edges started with --token-key.
    Token(crate::edge_cli::TokenArgs),
    /// The P2P tracker alone (WebTorrent protocol over WebSocket at /tracker).
    Tracker(crate::tracker_cli::TrackerArgs),
    /// Headless viewers that play a stream and share segments in a P2P swarm.
    Peer(crate::peer_cli::PeerArgs),
    /// Sends viewers to an edge of their region (302 and HLS/DASH Content Steering).
    Router(crate::fleet_cli::RouterArgs),
    /// Simulate an event at internet scale under CDN, P2P, hybrid and edge-transcode delivery.
    Sim(crate::sim_cli::SimArgs),
}

/// The command line as clap sees it, with an environment variable on every flag.
pub fn command() -> clap::Command {
    crate::layers::with_env(Cli::command())
}

/// The role asked for, its settings layered over its config file (read once).
pub fn layered(cmd: &clap::Command, matches: &ArgMatches) -> Result<Command> {
    let (name, m) = matches
        .subcommand()
        .context("a subcommand is required (see --help)")?;
    let sub = cmd
        .find_subcommand(name)
        .with_context(|| format!("no subcommand {name}"))?;
    let aliases = crate::origin_cli::ALIASES;
    use crate::layers::role;
    Ok(match name {
        "serve" => Command::Serve(role(sub, m, aliases)?),
        "origin" => Command::Origin(role(sub, m, aliases)?),
        "edge" => Command::Edge(role(sub, m, &[])?),
        "tracker" => Command::Tracker(role(sub, m, &[])?),
        "peer" => Command::Peer(role(sub, m, &[])?),
        "router" => Command::Router(role(sub, m, &[])?),
        // No settings file: the scenario file is the simulator's, a token has none.
        _ => Cli::from_arg_matches(matches)?.command,
    })
}

/// Runs the role.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => crate::origin_cli::run_serve(args).await,
        Command::Origin(args) => crate::origin_cli::run_origin(args).await,
        Command::Edge(args) => crate::edge_cli::run(args).await,
        Command::Tracker(args) => crate::tracker_cli::run(args).await,
        Command::Peer(args) => crate::peer_cli::run(args).await,
        Command::Router(args) => crate::fleet_cli::run_router(args).await,
        Command::Sim(args) => {
            tokio::task::spawn_blocking(move || crate::sim_cli::run(args)).await?
        }
        Command::Token(args) => {
            println!("{}", crate::edge_cli::mint(&args)?);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn every_role_with_a_file_reads_it_once_through_the_layer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "http = \"127.0.0.1:9999\"\n").expect("write");
        let p = path.to_str().expect("utf-8");
        let cmd = command();
        for (name, extra) in [
            ("serve", vec![]),
            ("origin", vec![]),
            ("tracker", vec![]),
            ("router", vec!["--edge", "http://127.0.0.1:1"]),
            ("edge", vec!["--origin", "http://127.0.0.1:1"]),
        ] {
            let mut argv = vec!["mediamesh", name, "--config", p];
            argv.extend(extra);
            let m = cmd.clone().try_get_matches_from(argv).expect("parses");
            let c = layered(&cmd, &m).expect("layers");
            let http = match c {
                Command::Serve(a) | Command::Origin(a) => a.http,
                Command::Edge(a) => a.http,
                Command::Tracker(a) => a.http,
                Command::Router(a) => a.http,
                _ => unreachable!(),
            };
            assert_eq!(http.port(), 9999, "{name}");
        }
    }
}
