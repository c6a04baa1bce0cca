//! End to end in a real browser: `mediamesh serve --demo`, the player page at `/`, and
//! hls.js (embedded in the binary) in headless Chromium; the video element must play
//! (currentTime advancing). Needs Chromium and `web/node_modules` (`bash .ci/run`
//! installs both).

use std::process::Command;
use std::time::Duration;

use crate::common::*;

#[test]
fn player_page_plays_the_demo_channel_in_chromium() {
    let _turn = browser_turn();
    let web = browser_ready();
    let server = Server::start("serve", &["--demo"]);
    wait_for_200(
        &server.url("/live/demo/index.m3u8"),
        Duration::from_secs(15),
    );
    let (status, page) = get_text(&server.url("/"));
    assert_eq!(status, 200);
    assert!(page.contains("/static/hls.min.js"));
    assert!(
        !page.contains("://cdn"),
        "the page loads nothing from the internet"
    );

    let out = run(
        Command::new("node")
            .arg(web.join("tests/play.mjs"))
            .arg(server.url("/?stream=demo"))
            .arg("45"),
        Duration::from_secs(90),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "video did not play: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json line");
    assert_eq!(seen["ok"], true);
    assert!(seen["http_bytes"].as_u64().unwrap_or(0) > 0);
}
