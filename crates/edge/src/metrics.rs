//! Edge metrics: counters are bumped in `proxy`; this adds the gauges computed at
//! scrape time (cache bytes per tier, hit ratio, upstream health, CMCD sessions) and
//! renders the process-wide Prometheus page.

use service::metrics::{StripedCounter, Stripes};

use crate::cmcd::Cmcd;
use crate::node::Edge;
use crate::sessions::Sessions;
use cache::CacheStatus;

/// For the hit ratio (striped: every hit on every core counts them).
static HITS: Stripes = Stripes::new();
static LOOKUPS: Stripes = Stripes::new();

/// Status codes with a counter handle made once; others are looked up per request.
const COMMON_STATUS: [u16; 12] = [200, 206, 304, 400, 403, 404, 405, 416, 429, 500, 502, 504];
const CACHE_LABELS: [&str; 5] = ["hit", "miss", "stale", "stale_if_error", "pass"];

/// `mediamesh_edge_requests_total` handles by (cache result, common status): a labelled
/// counter lookup allocates and hashes, which showed at 80k requests/s; striped, as
/// every core counts hits at once.
static REQUEST_COUNTERS: std::sync::OnceLock<Vec<&'static StripedCounter>> =
    std::sync::OnceLock::new();

fn cache_index(cache: CacheStatus) -> usize {
    match cache {
        CacheStatus::Hit => 0,
        CacheStatus::Miss => 1,
        CacheStatus::Stale => 2,
        CacheStatus::StaleIfError => 3,
        CacheStatus::Pass => 4,
    }
}

/// `mediamesh_edge_quick_answers_total`: answers of the quick path (`quick`), made once.
static QUICK: std::sync::OnceLock<&'static StripedCounter> = std::sync::OnceLock::new();

/// Counts one answer of the quick path (it is also counted as a request, a hit).
pub fn record_quick() {
    QUICK
        .get_or_init(|| {
            StripedCounter::new(::metrics::counter!("mediamesh_edge_quick_answers_total"))
        })
        .increment(1);
}

/// Counts one answer.
pub fn record_response(status: u16, cache: CacheStatus) {
    let ci = cache_index(cache);
    match COMMON_STATUS.iter().position(|s| *s == status) {
        Some(si) => {
            let counters = REQUEST_COUNTERS.get_or_init(|| {
                CACHE_LABELS
                    .iter()
                    .flat_map(|c| {
                        COMMON_STATUS.iter().map(move |s| {
                            StripedCounter::new(::metrics::counter!("mediamesh_edge_requests_total", "cache" => *c, "status" => s.to_string()))
                        })
                    })
                    .collect()
            });
            if let Some(c) = counters.get(ci * COMMON_STATUS.len() + si) {
                c.increment(1);
            }
        }
        None => ::metrics::counter!(
            "mediamesh_edge_requests_total",
            "cache" => CACHE_LABELS[ci],
            "status" => status.to_string()
        )
        .increment(1),
    }
    if cache != CacheStatus::Pass {
        LOOKUPS.add(1);
        if matches!(
            cache,
            CacheStatus::Hit | CacheStatus::Stale | CacheStatus::StaleIfError
        ) {
            HITS.add(1);
        }
    }
}

/// `mediamesh_edge_h3_requests_total`: requests that came over HTTP/3 (they are also
/// in `mediamesh_edge_requests_total`, with every other version).
static H3_REQUESTS: std::sync::OnceLock<::metrics::Counter> = std::sync::OnceLock::new();

/// Counts one request that came over HTTP/3.
pub fn record_h3_request() {
    H3_REQUESTS
        .get_or_init(|| ::metrics::counter!("mediamesh_edge_h3_requests_total"))
        .increment(1);
}

/// Aggregates what players report in CMCD (session ids into `sessions`).
pub fn record_cmcd(c: &Cmcd, sessions: &Sessions) {
    ::metrics::counter!("mediamesh_edge_cmcd_requests_total").increment(1);
    if c.bs {
        ::metrics::counter!("mediamesh_edge_cmcd_buffer_starvation_total").increment(1);
    }
    if let Some(br) = c.br {
        ::metrics::histogram!("mediamesh_edge_cmcd_requested_bitrate_kbps").record(br as f64);
    }
    if let Some(bl) = c.bl {
        ::metrics::histogram!("mediamesh_edge_cmcd_buffer_length_ms").record(bl as f64);
    }
    if let Some(sid) = &c.sid {
        sessions.record(sid);
    }
}

/// The `/metrics` page.
pub fn render(edge: &Edge) -> String {
    let (mem, disk) = edge.cache_bytes();
    ::metrics::gauge!("mediamesh_edge_cache_bytes", "tier" => "memory").set(mem as f64);
    ::metrics::gauge!("mediamesh_edge_cache_bytes", "tier" => "disk").set(disk as f64);
    // Large bodies in sealed memory files (`cache::sealed`): each holds a descriptor.
    ::metrics::gauge!("mediamesh_edge_cache_sealed_bodies")
        .set(cache::sealed::sealed_count() as f64);
    let lookups = LOOKUPS.total();
    if lookups > 0 {
        ::metrics::gauge!("mediamesh_edge_hit_ratio").set(HITS.total() as f64 / lookups as f64);
    }
    ::metrics::gauge!("mediamesh_edge_cmcd_sessions").set(edge.sessions.count() as f64);
    ::metrics::gauge!("mediamesh_edge_viewer_sessions").set(edge.viewers.held() as f64);
    crate::access_log::export_metrics(edge.access_log.as_ref());
    for s in edge.upstreams.status() {
        ::metrics::gauge!("mediamesh_edge_upstream_healthy", "upstream" => s.base.clone())
            .set(if s.healthy == Some(true) { 1.0 } else { 0.0 });
    }
    service::metrics::render()
}
