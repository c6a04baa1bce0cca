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
//! Layout: [`scenario`] (TOML input and presets), [`population`] (who watches, swarms,
//! sampling), [`net`] (sizes and transfer times), [`edge`] (CDN tier), [`swarm`] (one
//! swarm's events), [`engine`] (epochs, threads), [`tally`], [`report`] and [`html`]
//! (outputs).
//!
//! Not here: the command line (`mediamesh sim` in the binary crate) and any real
//! network I/O.

pub mod edge;
pub mod engine;
pub mod html;
pub mod net;
pub mod population;
pub mod report;
pub mod scenario;
pub mod swarm;
pub mod tally;

pub use engine::{run, Outcome, RunOptions};
pub use report::{Report, Series};
pub use scenario::{Preset, Scenario, ScenarioError};
