//! The mediamesh edge: an HTTP cache near the viewers in front of any HTTP origin that
//! serves HLS or DASH (ours, nginx serving files, a third party).
//!
//! What it adds over a generic cache: request coalescing that streams one upstream
//! body to every waiter as it arrives (so a preload-hinted LL-HLS part reaches all
//! viewers while the origin still produces it), LL-HLS blocking reloads collapsed per
//! (playlist, msn, part), media-aware freshness, a shield tier chosen per object by
//! rendezvous hashing, origin failover with a circuit breaker, stale-if-error, Akamai
//! EdgeAuth tokens and CMCD/CMSD.
//!
//! Built on hyper and tokio rather than Pingora: the proxy logic here is small and
//! media-specific (coalescing with streaming fan-out, LL-HLS holds), Pingora's cache
//! and its build (BoringSSL/OpenSSL, its own runtime) would be more code to bend than
//! this, and hyper is what the origin already runs on, so both roles share one accept
//! loop (`service`) and one metrics recorder.
//!
//! Layout: `access_log` is the production access log (JSON lines, its own writer
//! thread); `canonical` makes the one request path everything else uses; `node` is
//! one edge and what it holds; `phase` names the request path's phases and the
//! `Hook`s that plug into them, and `proxy` runs them (sans-IO cache decisions in
//! crate `cache`, `decide`); `quick` answers fresh memory hits of plain GETs as
//! `proxy` would, without hyper (service's quick path); `response` makes the HTTP answers; `coalesce` shares
//! in-flight fetches; crate `cache` holds objects (memory S3-FIFO tier, disk tier,
//! freshness policy, keys); `upstream` picks and calls origins and parents, and sends
//! filter call-outs (`upstream::Callouts`, the client crate `compute` is given);
//! `token` and `cmcd` parse what clients send (`sessions` and `limit` are the bounded
//! tables keyed by client input). The hooks: `filter` runs the Proxy-Wasm filters of
//! crate `compute`; `media` holds the built-in media functions (A/B watermark, ads,
//! renditions, the ladder's playlists and MP4 walking) and applies them per viewer;
//! `ladder` makes the lower renditions of the edge ABR ladder by transcoding.

pub mod access_log;
pub mod canonical;
pub mod cmcd;
pub mod coalesce;
pub mod config;
pub mod filter;
pub mod ladder;
pub mod limit;
pub mod media;
pub mod memo;
pub mod metrics;
pub mod node;
pub mod phase;
pub mod proxy;
pub mod quick;
pub mod response;
pub mod server;
pub mod sessions;
pub mod token;
pub mod upstream;
pub mod viewers;
