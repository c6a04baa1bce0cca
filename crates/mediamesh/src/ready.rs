//! The one log line each role writes once it listens: `listening role=… http=ADDR
//! [rtmp=ADDR] [srt=ADDR] [admin=ADDR]`, with the addresses actually bound, so `--http 127.0.0.1:0` works
//! for tests and supervisors that read the port from the log.
//!
//! Not here: the listeners themselves.

use std::net::SocketAddr;

/// Logs where `role` listens.
pub fn listening(
    role: &str,
    http: SocketAddr,
    rtmp: Option<SocketAddr>,
    admin: Option<SocketAddr>,
) {
    let show = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    match (rtmp, admin) {
        (None, None) => tracing::info!(role, %http, "listening"),
        _ => tracing::info!(role, %http, rtmp = %show(rtmp), admin = %show(admin), "listening"),
    }
}

/// Logs where `role` listens, with its SRT address (`srt=` appears only when SRT
/// ingest is on, so the line of an origin without SRT stays as it was).
pub fn listening_ingest(
    role: &str,
    http: SocketAddr,
    rtmp: Option<SocketAddr>,
    srt: Option<SocketAddr>,
    admin: Option<SocketAddr>,
) {
    let Some(srt) = srt else {
        return listening(role, http, rtmp, admin);
    };
    let show = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(role, %http, rtmp = %show(rtmp), %srt, admin = %show(admin), "listening");
}
