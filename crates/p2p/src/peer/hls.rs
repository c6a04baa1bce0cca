//! The playlist side of a headless viewer: picks a rendition from the multivariant
//! playlist, reloads the media playlist, and places every segment on a media
//! timeline (start and duration in ms) for the scheduler.
//!
//! Not a full HLS client: one rendition, whole segments (no LL-HLS parts, no byte
//! ranges), no key rotation. That is what a P2P viewer needs; parts are too small
//! and too short-lived to be worth sharing.

use std::collections::BTreeMap;
use std::time::Duration;

use media::hls::{MediaPlaylist, MultivariantPlaylist};
use reqwest::{Client, Url};

use super::PeerError;
use crate::scheduler::{SegmentId, SegmentInfo};

/// Largest playlist accepted.
const MAX_PLAYLIST_BYTES: usize = 4 << 20;

/// Which rendition of a multivariant playlist to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RenditionChoice {
    /// The highest BANDWIDTH (a player on a fast link).
    #[default]
    Highest,
    Lowest,
    /// By position in the multivariant playlist.
    Index(usize),
}

impl std::str::FromStr for RenditionChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "highest" | "top" => Ok(RenditionChoice::Highest),
            "lowest" => Ok(RenditionChoice::Lowest),
            n => n
                .parse()
                .map(RenditionChoice::Index)
                .map_err(|_| format!("want highest, lowest or an index, got {n:?}")),
        }
    }
}

/// A segment as listed, with its absolute URL.
#[derive(Debug, Clone)]
pub struct ListedSegment {
    pub info: SegmentInfo,
    pub url: Url,
    /// File name in the digest list (`seg12.m4s`).
    pub name: String,
}

/// Follows one rendition's media playlist.
#[derive(Debug)]
pub struct Follower {
    client: Client,
    /// The media playlist.
    pub media_url: Url,
    /// Position of the chosen rendition in the multivariant playlist (0 without one).
    pub variant_index: usize,
    /// The rendition's stream index as p2p-media-loader 2.3 computes it (its swarm
    /// is `v2-{swarmId}-main-{index}`).
    pub stream_index: String,
    pub init_url: Option<Url>,
    pub target_duration_ms: u64,
    pub ended: bool,
    segments: BTreeMap<SegmentId, ListedSegment>,
}

pub(crate) async fn get_text(client: &Client, url: &Url) -> Result<String, PeerError> {
    let bytes = get_bytes(client, url, MAX_PLAYLIST_BYTES).await?;
    String::from_utf8(bytes.to_vec()).map_err(|_| PeerError::Playlist {
        url: url.to_string(),
        reason: "not UTF-8".into(),
    })
}

/// GET with a size limit; any status other than 200 is an error.
pub(crate) async fn get_bytes(
    client: &Client,
    url: &Url,
    limit: usize,
) -> Result<bytes::Bytes, PeerError> {
    let http = |e: reqwest::Error| PeerError::Http {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let mut resp = client.get(url.clone()).send().await.map_err(http)?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(PeerError::Http {
            url: url.to_string(),
            reason: format!("status {}", resp.status()),
        });
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(http)? {
        if body.len() + chunk.len() > limit {
            return Err(PeerError::Http {
                url: url.to_string(),
                reason: format!("larger than {limit} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

impl Follower {
    /// Loads `url` (multivariant or media playlist) and the first media playlist.
    pub async fn open(
        client: Client,
        url: &Url,
        choice: RenditionChoice,
    ) -> Result<Self, PeerError> {
        let text = get_text(&client, url).await?;
        let (media_url, variant_index, stream_index) = if text.contains("#EXT-X-STREAM-INF") {
            let mv = MultivariantPlaylist::parse(&text).map_err(|e| PeerError::Playlist {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
            let index = pick(&mv, choice).ok_or_else(|| PeerError::Playlist {
                url: url.to_string(),
                reason: "no such rendition".into(),
            })?;
            let variant = &mv.variants[index];
            (join(url, &variant.uri)?, index, stream_index(variant))
        } else {
            (url.clone(), 0, stream_index_without_variant())
        };
        let mut f = Follower {
            client,
            media_url,
            variant_index,
            stream_index,
            init_url: None,
            target_duration_ms: 2_000,
            ended: false,
            segments: BTreeMap::new(),
        };
        f.reload().await?;
        Ok(f)
    }

    /// Reloads the media playlist; returns the segments not listed before.
    pub async fn reload(&mut self) -> Result<Vec<ListedSegment>, PeerError> {
        let text = get_text(&self.client, &self.media_url).await?;
        let pl = MediaPlaylist::parse(&text).map_err(|e| PeerError::Playlist {
            url: self.media_url.to_string(),
            reason: e.to_string(),
        })?;
        self.apply(&pl)
    }

    fn apply(&mut self, pl: &MediaPlaylist) -> Result<Vec<ListedSegment>, PeerError> {
        self.target_duration_ms = pl.target_duration.max(1) * 1000;
        self.ended = pl.ended;
        if let Some(map) = &pl.map_uri {
            self.init_url = Some(join(&self.media_url, map)?);
        }
        let first = pl.media_sequence + pl.skipped_segments;
        let mut fresh = Vec::new();
        for (i, seg) in pl.segments.iter().enumerate() {
            let id = SegmentId(first + i as u64);
            if self.segments.contains_key(&id) {
                continue;
            }
            let duration_ms = (seg.duration * 1000.0).round().max(1.0) as u64;
            // Place it right after the segment before it; a first segment (or one after
            // a gap in what we saw) is placed by sequence number and target duration.
            let start_ms = match self.segments.get(&SegmentId(id.0.wrapping_sub(1))) {
                Some(prev) => prev.info.start_ms + prev.info.duration_ms,
                None => match self.segments.range(..id).next_back() {
                    Some((pid, prev)) => {
                        prev.info.start_ms
                            + prev.info.duration_ms
                            + (id.0 - pid.0 - 1) * self.target_duration_ms
                    }
                    None => match self.segments.iter().next() {
                        Some((nid, next)) if nid.0 > id.0 => next
                            .info
                            .start_ms
                            .saturating_sub((nid.0 - id.0) * self.target_duration_ms),
                        _ => 0,
                    },
                },
            };
            let url = join(&self.media_url, &seg.uri)?;
            let name = url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default()
                .to_string();
            let listed = ListedSegment {
                info: SegmentInfo {
                    id,
                    start_ms,
                    duration_ms,
                },
                url,
                name,
            };
            self.segments.insert(id, listed.clone());
            fresh.push(listed);
        }
        Ok(fresh)
    }

    /// Listed segments that end after media time `ms`, in order.
    pub fn segments_from(&self, ms: u64) -> impl Iterator<Item = &ListedSegment> {
        self.segments
            .values()
            .filter(move |s| s.info.start_ms + s.info.duration_ms > ms)
    }

    pub fn segment(&self, id: SegmentId) -> Option<&ListedSegment> {
        self.segments.get(&id)
    }

    /// Media time at the end of the last listed segment (the live edge).
    pub fn edge_ms(&self) -> u64 {
        self.segments
            .values()
            .next_back()
            .map_or(0, |s| s.info.start_ms + s.info.duration_ms)
    }

    /// Media time of the first listed segment.
    pub fn first_ms(&self) -> u64 {
        self.segments.values().next().map_or(0, |s| s.info.start_ms)
    }

    /// How long to wait before the next reload of a live playlist.
    pub fn reload_interval(&self) -> Duration {
        Duration::from_millis((self.target_duration_ms / 2).max(250))
    }

    /// Forgets segments that end before `ms`.
    pub fn forget_before(&mut self, ms: u64) {
        self.segments
            .retain(|_, s| s.info.start_ms + s.info.duration_ms >= ms);
    }
}

/// The tracker info hashes of every rendition's swarm of the multivariant playlist at
/// `url`, as browsers and native peers compute them (for refusing those swarms).
pub async fn swarm_info_hashes(client: &Client, url: &Url) -> Result<Vec<[u8; 20]>, PeerError> {
    let text = get_text(client, url).await?;
    let mv = MultivariantPlaylist::parse(&text).map_err(|e| PeerError::Playlist {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let swarm = super::swarm_id(url);
    Ok(mv
        .variants
        .iter()
        .map(|v| {
            let id = crate::proto::stream_swarm_id(
                &swarm,
                crate::proto::StreamKind::Main,
                &stream_index(v),
            );
            crate::proto::info_hash(&id)
        })
        .collect())
}

/// p2p-media-loader-hlsjs 2.3's stream index of a variant: the short id of its
/// BANDWIDTH, video codec, RESOLUTION and FRAME-RATE as hls.js reports them.
pub fn stream_index(v: &media::hls::Variant) -> String {
    if v.bandwidth == 0 {
        return stream_index_without_variant();
    }
    let video_codec = v.codecs.as_deref().and_then(|c| {
        c.split(',').map(str::trim).find(|c| {
            ["avc", "hvc", "hev", "vp0", "vp8", "vp9", "av01", "dvh"]
                .iter()
                .any(|p| c.starts_with(p))
        })
    });
    // FRAME-RATE as JavaScript's Number(text).toString() prints it.
    let fps = v.frame_rate.map(|f| {
        if f.fract() == 0.0 {
            format!("{}", f as i64)
        } else {
            format!("{f}")
        }
    });
    let props = crate::proto::StreamProps {
        bitrate: Some(v.bandwidth),
        codecs: video_codec,
        width: v.resolution.map(|r| r.0),
        height: v.resolution.map(|r| r.1),
        frame_rate: fps.as_deref(),
        ..Default::default()
    };
    crate::proto::stream_short_id(&props)
}

/// The stream index hls.js gives a media playlist loaded on its own (no BANDWIDTH).
pub fn stream_index_without_variant() -> String {
    crate::proto::stream_short_id(&crate::proto::StreamProps {
        bitrate: Some(0),
        ..Default::default()
    })
}

fn pick(mv: &MultivariantPlaylist, choice: RenditionChoice) -> Option<usize> {
    let by_bw = mv
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| (v.bandwidth, i));
    match choice {
        RenditionChoice::Highest => by_bw.max().map(|(_, i)| i),
        RenditionChoice::Lowest => by_bw.min().map(|(_, i)| i),
        RenditionChoice::Index(i) => (i < mv.variants.len()).then_some(i),
    }
}

fn join(base: &Url, uri: &str) -> Result<Url, PeerError> {
    base.join(uri).map_err(|_| PeerError::Playlist {
        url: base.to_string(),
        reason: format!("bad URI {uri:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follower() -> Follower {
        Follower {
            client: Client::new(),
            media_url: Url::parse("http://127.0.0.1:1/live/demo/src/index.m3u8").expect("url"),
            variant_index: 0,
            stream_index: String::new(),
            init_url: None,
            target_duration_ms: 2_000,
            ended: false,
            segments: BTreeMap::new(),
        }
    }

    fn playlist(first: u64, n: usize) -> MediaPlaylist {
        let mut text = format!(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"
        );
        for i in 0..n {
            text.push_str(&format!("#EXTINF:2.000,\nseg{}.m4s\n", first + i as u64));
        }
        MediaPlaylist::parse(&text).expect("playlist")
    }

    #[test]
    fn segments_are_placed_back_to_back_across_reloads() {
        let mut f = follower();
        let a = f.apply(&playlist(100, 3)).expect("apply");
        assert_eq!(a.len(), 3);
        assert_eq!(a[2].info.start_ms, 4_000);
        assert_eq!(a[2].name, "seg102.m4s");
        let b = f.apply(&playlist(101, 4)).expect("apply");
        assert_eq!(b.len(), 2);
        assert_eq!(b[1].info.id, SegmentId(104));
        assert_eq!(b[1].info.start_ms, 8_000);
        assert_eq!(f.edge_ms(), 10_000);
        assert_eq!(
            f.init_url.as_ref().map(|u| u.path().to_string()),
            Some("/live/demo/src/init-1.mp4".into())
        );
        // A jump over unseen segments keeps the timeline by target duration.
        let c = f.apply(&playlist(110, 1)).expect("apply");
        assert_eq!(c[0].info.start_ms, 10_000 + 5 * 2_000);
    }
}
