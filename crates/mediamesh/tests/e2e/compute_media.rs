//! End to end for the edge's per-viewer media functions, on generated playlists and
//! segments from a small origin in this file: A/B watermark selection from signed
//! tokens (one manifest, different A/B sequences per viewer), server-side ad insertion
//! at SCTE-35 markers, and rendition filtering by CMCD top bit rate and device class.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use edge::media::watermark;

/// Serves a fixed set of paths, one request per connection.
struct FixedOrigin {
    port: u16,
    hits: Arc<std::sync::Mutex<HashMap<String, usize>>>,
}

impl FixedOrigin {
    fn start(objects: HashMap<String, Vec<u8>>) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let hits = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let h = hits.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let path = target.split('?').next().unwrap_or("/").to_string();
                *h.lock().expect("lock").entry(path.clone()).or_insert(0) += 1;
                let (status, body) = match objects.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(&body);
            }
        });
        Self { port, hits }
    }

    fn url(&self) -> &'static str {
        Box::leak(format!("http://127.0.0.1:{}", self.port).into_boxed_str())
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

const MULTIVARIANT: &str = "#EXTM3U\n#EXT-X-VERSION:7\n\
#EXT-X-STREAM-INF:BANDWIDTH=6000000,RESOLUTION=1920x1080\n1080p/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720\n720p/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=1200000,RESOLUTION=854x480\n480p/index.m3u8\n";

fn media_playlist() -> String {
    let mut p = String::from(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n",
    );
    for i in 0..8 {
        if i == 3 {
            p.push_str("#EXT-X-DATERANGE:ID=\"break-1\",START-DATE=\"2026-11-25T00:00:06Z\",PLANNED-DURATION=4.0,SCTE35-OUT=0xFC302F00\n");
        }
        p.push_str(&format!("#EXTINF:2.000,\nseg{i}.m4s\n"));
    }
    p.push_str("#EXT-X-ENDLIST\n");
    p
}

fn origin() -> FixedOrigin {
    let mut objects = HashMap::new();
    objects.insert(
        "/vod/m/index.m3u8".to_string(),
        MULTIVARIANT.as_bytes().to_vec(),
    );
    objects.insert(
        "/vod/m/1080p/index.m3u8".to_string(),
        media_playlist().into_bytes(),
    );
    for i in 0..8 {
        for v in ["A", "B"] {
            objects.insert(
                format!("/vod/m/1080p/{v}/seg{i}.m4s"),
                format!("{v}{i}").into_bytes(),
            );
        }
    }
    FixedOrigin::start(objects)
}

fn fetch(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut r = client.get(url);
    for (n, v) in headers {
        r = r.header(*n, *v);
    }
    let res = r.send().expect("request");
    let s = res.status().as_u16();
    (s, res.text().unwrap_or_default())
}

const KEY_HEX: &str = "00112233445566778899aabbccddeeff";

#[test]
fn ab_watermark_ads_and_renditions_per_viewer() {
    let origin = origin();
    let dir = tempfile::tempdir().expect("tempdir");
    let ads = dir.path().join("ad.m3u8");
    std::fs::write(
        &ads,
        "#EXTM3U\n#EXT-X-MAP:URI=\"ad-init.mp4\"\n#EXTINF:2.0,\nad0.m4s\n#EXTINF:2.0,\nad1.m4s\n#EXT-X-ENDLIST\n",
    )
    .expect("ad playlist");
    let ads_s = ads.display().to_string();
    let edge = Server::start_edge(&[
        "--origin",
        origin.url(),
        "--watermark-key",
        KEY_HEX,
        "--ad-playlist",
        &ads_s,
        "--ad-base-url",
        "http://ads.test/pod1/",
        "--device-rule",
        "SmartWatch=480",
    ]);
    let key = edge::token::parse_key(KEY_HEX).expect("key");
    let far = 4_000_000_000;
    let alice = watermark::mint(&key, &[0b1011_0010], far);
    let bob = watermark::mint(&key, &[0b0100_1101], far);

    // One manifest for every viewer, with the ad break filled.
    let (s1, m1) = fetch(
        &edge.url(&format!("/vod/m/1080p/index.m3u8?wm={alice}")),
        &[],
    );
    let (s2, m2) = fetch(&edge.url(&format!("/vod/m/1080p/index.m3u8?wm={bob}")), &[]);
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(m1, m2, "the manifest is identical for every viewer");
    let uris: Vec<&str> = m1
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert_eq!(
        uris,
        [
            "seg0.m4s",
            "seg1.m4s",
            "seg2.m4s",
            "http://ads.test/pod1/ad0.m4s",
            "http://ads.test/pod1/ad1.m4s",
            "seg5.m4s",
            "seg6.m4s",
            "seg7.m4s"
        ]
    );
    assert_eq!(m1.matches("#EXT-X-DISCONTINUITY\n").count(), 2);
    assert!(m1.contains("#EXT-X-MAP:URI=\"http://ads.test/pod1/ad-init.mp4\""));
    assert!(m1.contains("SCTE35-OUT"), "marker kept");

    // Each viewer's segments follow their bit pattern.
    let seq = |tok: &str| -> String {
        (0..8)
            .map(|i| {
                let (s, body) = fetch(&edge.url(&format!("/vod/m/1080p/seg{i}.m4s?wm={tok}")), &[]);
                assert_eq!(s, 200, "seg{i}");
                assert_eq!(&body[1..], i.to_string(), "right segment number");
                body[..1].to_string()
            })
            .collect()
    };
    let a = seq(&alice);
    let b = seq(&bob);
    assert_eq!(a, "BABBAABA");
    assert_eq!(b, "ABAABBAB");
    assert_ne!(a, b);
    // Variants are cached per variant: a second pass for alice reaches the origin no more.
    let before: usize = (0..8)
        .map(|i| {
            origin.hits(&format!("/vod/m/1080p/A/seg{i}.m4s"))
                + origin.hits(&format!("/vod/m/1080p/B/seg{i}.m4s"))
        })
        .sum();
    assert_eq!(seq(&alice), a);
    let after: usize = (0..8)
        .map(|i| {
            origin.hits(&format!("/vod/m/1080p/A/seg{i}.m4s"))
                + origin.hits(&format!("/vod/m/1080p/B/seg{i}.m4s"))
        })
        .sum();
    assert_eq!(before, after, "served from the cache");
    assert_eq!(before, 16, "each of the 16 variant objects fetched once");
    // Token header works too; a missing or forged token is refused.
    let (s, body) = fetch(
        &edge.url("/vod/m/1080p/seg0.m4s"),
        &[("x-watermark-token", &bob)],
    );
    assert_eq!((s, body.as_str()), (200, "A0"));
    assert_eq!(fetch(&edge.url("/vod/m/1080p/seg0.m4s"), &[]).0, 403);
    let forged = alice.replacen("b2", "b3", 1);
    assert_eq!(
        fetch(
            &edge.url(&format!("/vod/m/1080p/seg0.m4s?wm={forged}")),
            &[]
        )
        .0,
        403
    );

    // Renditions: CMCD top bit rate, device class, or the whole ladder.
    let mv = edge.url("/vod/m/index.m3u8");
    let (_, all) = fetch(&mv, &[]);
    assert_eq!(all.matches("#EXT-X-STREAM-INF").count(), 3);
    let (_, capped) = fetch(&mv, &[("cmcd-object", "tb=3500")]);
    assert_eq!(capped.matches("#EXT-X-STREAM-INF").count(), 2);
    assert!(!capped.contains("1080p/"));
    let (_, watch) = fetch(&mv, &[("user-agent", "Mozilla/5.0 (SmartWatch; rv:1)")]);
    assert_eq!(watch.matches("#EXT-X-STREAM-INF").count(), 1);
    assert!(watch.contains("480p/index.m3u8"));
    let (_, q) = fetch(&format!("{mv}?CMCD=tb%3D1500"), &[]);
    assert_eq!(q.matches("#EXT-X-STREAM-INF").count(), 1, "{q}");
}
