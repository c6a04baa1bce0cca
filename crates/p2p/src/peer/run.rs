//! One viewer from start to end: plays whole segments (`viewer`) or LL-HLS parts
//! (`viewer_parts`) by its latency setting, and reports what happened, errors
//! included. Kept apart so neither player module needs the other.

use reqwest::Client;

use super::stats::ViewerStats;
use super::viewer::ViewerParams;

/// Runs a session to its end and reports what happened, errors included.
pub(crate) async fn run_viewer(client: Client, p: ViewerParams) -> ViewerStats {
    let mut stats = ViewerStats {
        viewer: p.index,
        corrupting: p.corrupt_uploads,
        ..ViewerStats::default()
    };
    let r = if p.latency.parts() {
        super::viewer_parts::play(&client, &p, &mut stats).await
    } else {
        super::viewer::play(&client, &p, &mut stats).await
    };
    stats.finish_latency();
    if let Err(e) = r {
        tracing::warn!(viewer = p.index, error = %e, "viewer failed");
        stats.error = Some(e.to_string());
    }
    stats
}
