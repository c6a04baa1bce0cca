//! The router: sends each viewer to an edge of its region. Plain requests for
//! `/live/…` and `/vod/…` get a 302; multivariant playlists and MPDs fetched through
//! it come back with Content Steering (one pathway per edge) and the router serves the
//! steering manifests. Edges come from the registry ([`crate::registry`]) or a fixed
//! `--edge` list, filtered by the router's own health probes.
//!
//! Layout: [`region`] (client address → region), [`pick`] (which edge),
//! [`steering`] (playlist/MPD rewrites, manifests) are pure; [`health`] and
//! [`server`] are the async shell.

pub mod health;
pub mod pick;
pub mod region;
pub mod server;
pub mod steering;

pub use server::{RouterConfig, RouterServer, StartError};
