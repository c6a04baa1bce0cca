//! `mediamesh sim`: a discrete-event simulator of a live or on-demand event delivered
//! by CDN edges, by peers, or both, at audience sizes no test machine can hold.
//!
//! It shares its decisions with the real system rather than copying them: every
//! simulated viewer runs the segment scheduler, player clock and upload gate of
//! `mediamesh peer` (`p2p::scheduler`), and every simulated edge keeps segments in the
//! edge's S3-FIFO memory tier with lifetimes from the edge's freshness policy
//! (crate `cache`). What is modelled here is only the world around them: arrivals and
//! departures, links, round trips, capacities, prices and failures.
//!
//! Layout: [`scenario`] (TOML input, presets, latency targets), [`population`] (who
//! watches, swarms, sampling), [`net`] (sizes and transfer times), [`units`] (segments
//! or LL-HLS parts on the media timeline), [`player`] (the real segment or part
//! scheduler behind one interface), [`edge`] (CDN tier), [`swarm`] (one swarm's
//! events), [`engine`] (epochs, threads), [`tally`], [`report`] and [`html`]
//! (outputs), [`curve`] (latency to live against P2P share over several latency
//! targets).
//!
//! Part mode (`peers.latency = "low" | "balanced"`, `mediamesh sim --latency`):
//! viewers play LL-HLS parts at the part hold-back and share parts with the real
//! `p2p::scheduler::PartScheduler` — an elected fetcher per part takes it from the
//! edge as soon as the preload hint names it, the others pull it from a holder over
//! one link slot, a part due within the urgent window comes over HTTP. What the
//! model leaves out is listed in the crate's README ("Part mode").
//!
//! Not here: the command line (`mediamesh sim` in the binary crate) and any real
//! network I/O.

pub mod curve;
pub mod edge;
pub mod engine;
pub mod html;
pub mod net;
pub mod player;
pub mod population;
pub mod report;
pub mod scenario;
pub mod swarm;
pub mod tally;
pub mod units;

pub use engine::{run, Outcome, RunOptions};
pub use report::{Report, Series};
pub use scenario::{Latency, Preset, Scenario, ScenarioError};
