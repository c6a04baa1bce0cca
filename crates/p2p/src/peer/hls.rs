//! The playlist side of a headless viewer: picks a rendition from the multivariant
//! playlist, reloads the media playlist, and places every segment on a media
//! timeline (start and duration in ms) for the scheduler.
//!
//! With `--latency low|balanced` it also lists the LL-HLS parts (`EXT-X-PART`, the
//! `EXT-X-PRELOAD-HINT` part) on the same timeline, builds blocking-reload URLs
//! (`_HLS_msn`/`_HLS_part`), and keeps each segment's `EXT-X-PROGRAM-DATE-TIME` to
//! measure latency to live.
//!
//! Not a full HLS client: one rendition, no byte ranges, no key rotation.

use std::collections::BTreeMap;

use media::hls::PreloadHintType;
use std::time::Duration;

use media::hls::{MediaPlaylist, MultivariantPlaylist};
use reqwest::{Client, Url};

use super::PeerError;
use crate::scheduler::{PartInfo, PartKey, SegmentId, SegmentInfo};

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
    /// Parts the playlist listed for it (0 when listed without parts).
    pub parts: u32,
}

/// An LL-HLS part as listed.
#[derive(Debug, Clone)]
pub struct ListedPart {
    pub info: PartInfo,
    pub url: Url,
    /// File name in the digest list (`part12.3.m4s`).
    pub name: String,
    /// `false` for the preload-hinted part that does not exist yet.
    pub complete: bool,
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
    /// `EXT-X-PART-INF:PART-TARGET`, when the playlist has parts.
    pub part_target_ms: Option<u64>,
    /// `PART-HOLD-BACK` of `EXT-X-SERVER-CONTROL`.
    pub part_hold_back_ms: Option<u64>,
    segments: BTreeMap<SegmentId, ListedSegment>,
    parts: BTreeMap<PartKey, ListedPart>,
    /// Media time → wall clock (unix ms) from EXT-X-PROGRAM-DATE-TIME.
    anchors: BTreeMap<u64, u64>,
    /// The part a blocking reload waits for.
    next_part: Option<(u64, u32)>,
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
    get_object(client, url, limit).await.map(|(body, _)| body)
}

/// GETs a media object (at most `limit` bytes) with the origin's object signature
/// (`mediamesh-signature` header, not checked here) if the answer carried one.
pub(crate) async fn get_object(
    client: &Client,
    url: &Url,
    limit: usize,
) -> Result<(bytes::Bytes, Option<String>), PeerError> {
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
    let signature = resp
        .headers()
        .get(integrity::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= crate::proto::MAX_PART_SIGNATURE)
        .map(str::to_string);
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
    Ok((body.freeze(), signature))
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
            part_target_ms: None,
            part_hold_back_ms: None,
            segments: BTreeMap::new(),
            parts: BTreeMap::new(),
            anchors: BTreeMap::new(),
            next_part: None,
        };
        f.reload().await?;
        Ok(f)
    }

    /// Reloads the media playlist; returns the segments not listed before.
    pub async fn reload(&mut self) -> Result<Vec<ListedSegment>, PeerError> {
        let text = get_text(&self.client, &self.media_url).await?;
        self.apply_text(&text)
    }

    /// Applies a playlist fetched elsewhere (e.g. by a blocking reload task).
    pub fn apply_text(&mut self, text: &str) -> Result<Vec<ListedSegment>, PeerError> {
        let pl = MediaPlaylist::parse(text).map_err(|e| PeerError::Playlist {
            url: self.media_url.to_string(),
            reason: e.to_string(),
        })?;
        self.apply(&pl)
    }

    /// The URL of the next reload: blocking (`_HLS_msn`, `_HLS_part`) on the part
    /// after the last one listed, when the playlist has parts.
    pub fn reload_url(&self) -> Url {
        let mut u = self.media_url.clone();
        if let Some((msn, part)) = self.next_part {
            u.query_pairs_mut()
                .append_pair("_HLS_msn", &msn.to_string())
                .append_pair("_HLS_part", &part.to_string());
        }
        u
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Listed parts that end after media time `ms`, in order.
    pub fn parts_from(&self, ms: u64) -> impl Iterator<Item = &ListedPart> {
        self.parts
            .values()
            .filter(move |p| p.info.start_ms + p.info.duration_ms > ms)
    }

    pub fn part(&self, key: PartKey) -> Option<&ListedPart> {
        self.parts.get(&key)
    }

    /// Media time at the end of the last complete part (the live edge at part
    /// granularity), or of the last segment without parts.
    pub fn part_edge_ms(&self) -> u64 {
        let parts = self
            .parts
            .values()
            .filter(|p| p.complete)
            .map(|p| p.info.start_ms + p.info.duration_ms)
            .max()
            .unwrap_or(0);
        parts.max(self.edge_ms())
    }

    /// Wall clock (unix ms) at which media time `ms` was captured, from the nearest
    /// program date time at or before it.
    pub fn wall_ms_at(&self, ms: u64) -> Option<u64> {
        self.anchors
            .range(..=ms)
            .next_back()
            .map(|(start, pdt)| pdt + (ms - start))
    }

    fn place_parts(
        &mut self,
        msn: u64,
        start_ms: u64,
        end_ms: Option<u64>,
        parts: &[media::hls::Part],
    ) -> Result<(), PeerError> {
        let mut at = start_ms;
        for (i, part) in parts.iter().enumerate() {
            let Ok(index) = u32::try_from(i) else { break };
            // A part is never longer than a day, whatever the playlist says.
            let mut duration_ms = (part.duration * 1000.0).round().clamp(1.0, 86_400_000.0) as u64;
            if i + 1 == parts.len() {
                if let Some(end) = end_ms {
                    // Line the last part up with the segment's end.
                    duration_ms = end.saturating_sub(at).max(1);
                }
            }
            let url = join(&self.media_url, &part.uri)?;
            let name = file_name(&url);
            let key = PartKey {
                segment: msn,
                index,
            };
            self.parts.insert(
                key,
                ListedPart {
                    info: PartInfo {
                        key,
                        start_ms: at,
                        duration_ms,
                    },
                    url,
                    name,
                    complete: true,
                },
            );
            at = at.saturating_add(duration_ms);
        }
        Ok(())
    }

    fn apply(&mut self, pl: &MediaPlaylist) -> Result<Vec<ListedSegment>, PeerError> {
        self.target_duration_ms = pl.target_duration.max(1) * 1000;
        self.ended = pl.ended;
        self.part_target_ms = pl.part_inf.map(|p| (p * 1000.0).round().max(1.0) as u64);
        self.part_hold_back_ms = pl
            .server_control
            .as_ref()
            .and_then(|c| c.part_hold_back)
            .map(|p| (p * 1000.0).round() as u64);
        if let Some(map) = &pl.map_uri {
            self.init_url = Some(join(&self.media_url, map)?);
        }
        let first = pl.media_sequence + pl.skipped_segments;
        let mut fresh = Vec::new();
        for (i, seg) in pl.segments.iter().enumerate() {
            let id = SegmentId(first + i as u64);
            if let Some(known) = self.segments.get(&id) {
                // Parts listed after the segment was first seen (rare) still count.
                if known.parts == 0 && !seg.parts.is_empty() {
                    let (start, end) = (
                        known.info.start_ms,
                        known.info.start_ms + known.info.duration_ms,
                    );
                    self.place_parts(id.0, start, Some(end), &seg.parts)?;
                    if let Some(k) = self.segments.get_mut(&id) {
                        k.parts = seg.parts.len() as u32;
                    }
                }
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
            let name = file_name(&url);
            if let Some(pdt) = seg.program_date_time.as_deref().and_then(parse_pdt) {
                self.anchors.insert(start_ms, pdt);
            }
            self.place_parts(id.0, start_ms, Some(start_ms + duration_ms), &seg.parts)?;
            let listed = ListedSegment {
                info: SegmentInfo {
                    id,
                    start_ms,
                    duration_ms,
                },
                url,
                name,
                parts: seg.parts.len() as u32,
            };
            self.segments.insert(id, listed.clone());
            fresh.push(listed);
        }
        // The open segment: its finished parts and the preload-hinted next part.
        let open = first + pl.segments.len() as u64;
        let open_start = self
            .segments
            .get(&SegmentId(open.wrapping_sub(1)))
            .map(|s| s.info.start_ms + s.info.duration_ms);
        self.next_part = None;
        // The hint of the last playlist is replaced by this one's.
        self.parts.retain(|_, p| p.complete);
        if let (Some(start), false) = (open_start, pl.ended) {
            if let Some(pdt) = pl.trailing_program_date_time.as_deref().and_then(parse_pdt) {
                self.anchors.insert(start, pdt);
            }
            self.place_parts(open, start, None, &pl.trailing_parts)?;
            let index = pl.trailing_parts.len() as u32;
            self.next_part = pl.part_inf.map(|_| (open, index));
            let hint = pl
                .preload_hints
                .iter()
                .find(|h| h.hint_type == PreloadHintType::Part && h.byterange_start.is_none());
            if let (Some(h), Some(target)) = (hint, self.part_target_ms) {
                // The hint names its part (`part{msn}.{i}.m4s`): after a segment's
                // last part it is part 0 of the next segment.
                let key = parse_part_name(&h.uri).unwrap_or(PartKey {
                    segment: open,
                    index,
                });
                if key.segment != open && key.segment != open + 1 {
                    return Ok(fresh);
                }
                let at = pl.trailing_parts.iter().fold(start, |at, p| {
                    at.saturating_add((p.duration * 1000.0).round().clamp(1.0, 86_400_000.0) as u64)
                });
                let url = join(&self.media_url, &h.uri)?;
                let name = file_name(&url);
                self.parts.entry(key).or_insert(ListedPart {
                    info: PartInfo {
                        key,
                        start_ms: at,
                        duration_ms: target,
                    },
                    url,
                    name,
                    complete: false,
                });
            }
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
        self.parts
            .retain(|_, p| p.info.start_ms + p.info.duration_ms >= ms);
        let keep = self.anchors.range(..=ms).next_back().map(|(k, _)| *k);
        if let Some(k) = keep {
            self.anchors = self.anchors.split_off(&k);
        }
    }
}

/// `part{msn}.{index}.m4s` (any directory before it) as a part key.
fn parse_part_name(uri: &str) -> Option<PartKey> {
    let name = uri.rsplit('/').next()?.split('?').next()?;
    let (msn, index) = name
        .strip_prefix("part")?
        .strip_suffix(".m4s")?
        .split_once('.')?;
    Some(PartKey {
        segment: msn.parse().ok()?,
        index: index.parse().ok()?,
    })
}

fn file_name(url: &Url) -> String {
    url.path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default()
        .to_string()
}

/// `EXT-X-PROGRAM-DATE-TIME` (ISO 8601, `Z` or `±hh:mm`) as unix milliseconds.
pub fn parse_pdt(s: &str) -> Option<u64> {
    let s = s.trim();
    let (date, rest) = s.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let y: i64 = d.next()?.parse().ok()?;
    let mo: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        (
            t,
            sign * (i64::from(h.parse::<u16>().ok()?) * 60 + i64::from(m.parse::<u16>().ok()?)),
        )
    } else {
        (rest, 0)
    };
    let mut t = time.splitn(3, ':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let sec: f64 = t.next()?.parse().ok()?;
    // Bounds keep the arithmetic below far from overflow, whatever the playlist says.
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&day)
        || !(0..=23).contains(&h)
        || !(0..=59).contains(&mi)
        || !(0.0..61.0).contains(&sec)
        || offset_min.abs() > 24 * 60
    {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = (days * 86_400 + h * 3_600 + mi * 60 - offset_min * 60) * 1000
        + (sec * 1000.0).round() as i64;
    u64::try_from(ms).ok()
}

/// The tracker info hashes of every rendition's swarm of the multivariant playlist at
/// `url`, as browsers and native peers compute them (for refusing those swarms).
pub async fn swarm_info_hashes(client: &Client, url: &Url) -> Result<Vec<[u8; 20]>, PeerError> {
    let text = get_text(client, url).await?;
    let mv = MultivariantPlaylist::parse(&text).map_err(|e| PeerError::Playlist {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    Ok(info_hashes(&super::swarm_id(url), &mv))
}

/// [`info_hashes`] of a multivariant playlist's text; `None` when it is not one.
pub fn info_hashes_of_text(swarm: &str, text: &str) -> Option<Vec<[u8; 20]>> {
    MultivariantPlaylist::parse(text)
        .ok()
        .map(|mv| info_hashes(swarm, &mv))
}

/// The tracker info hashes of every rendition's swarm of multivariant playlist `mv`
/// served at path `swarm` (e.g. `/live/cam/index.m3u8`), as browsers and native peers
/// compute them. Pure: the origin maps trackers' swarms to its streams with it.
pub fn info_hashes(swarm: &str, mv: &MultivariantPlaylist) -> Vec<[u8; 20]> {
    mv.variants
        .iter()
        .map(|v| {
            let id = crate::proto::stream_swarm_id(
                swarm,
                crate::proto::StreamKind::Main,
                &stream_index(v),
            );
            crate::proto::info_hash(&id)
        })
        .collect()
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
            part_target_ms: None,
            part_hold_back_ms: None,
            segments: BTreeMap::new(),
            parts: BTreeMap::new(),
            anchors: BTreeMap::new(),
            next_part: None,
        }
    }

    #[test]
    fn program_date_time() {
        assert_eq!(parse_pdt("1970-01-01T00:00:01.500Z"), Some(1_500));
        assert_eq!(
            parse_pdt("2026-12-03T15:10:52.000Z"),
            Some(1_796_310_652_000)
        );
        assert_eq!(
            parse_pdt("2026-12-03T16:10:52.000+01:00"),
            Some(1_796_310_652_000)
        );
        assert_eq!(parse_pdt("garbage"), None);
        assert_eq!(parse_pdt("2026-12-03T15:10:inf"), None);
        assert_eq!(parse_pdt("2026-12-03T15:10:NaN"), None);
        assert_eq!(parse_pdt("99999999999-12-03T15:10:00Z"), None);
        assert_eq!(parse_pdt("2026-12-03T15:10:00+99999999:00"), None);
        assert_eq!(parse_pdt("2026-13-03T15:10:52Z"), None);
    }

    #[test]
    fn parts_and_preload_hint_are_listed() {
        let mut f = follower();
        let text = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5\n#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:10.000Z\n#EXT-X-PART:DURATION=1.0,URI=\"part10.0.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=1.0,URI=\"part10.1.m4s\"\n#EXTINF:2.000,\nseg10.m4s\n#EXT-X-PART:DURATION=0.5,URI=\"part11.0.m4s\",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part11.1.m4s\"\n";
        f.apply_text(text).expect("apply");
        assert_eq!(f.segment(SegmentId(10)).map(|s| s.parts), Some(2));
        let parts: Vec<_> = f
            .parts_from(0)
            .map(|p| (p.name.clone(), p.info.start_ms, p.complete))
            .collect();
        assert_eq!(
            parts,
            vec![
                ("part10.0.m4s".to_string(), 0, true),
                ("part10.1.m4s".to_string(), 1_000, true),
                ("part11.0.m4s".to_string(), 2_000, true),
                ("part11.1.m4s".to_string(), 2_500, false),
            ]
        );
        assert_eq!(f.part_edge_ms(), 2_500);
        assert_eq!(f.part_hold_back_ms, Some(1_500));
        assert_eq!(f.wall_ms_at(1_000), Some(11_000));
        assert!(f
            .reload_url()
            .as_str()
            .ends_with("?_HLS_msn=11&_HLS_part=1"));
        // After the last part of a segment the hint names part 0 of the next one.
        assert_eq!(
            parse_part_name("part12.0.m4s"),
            Some(PartKey {
                segment: 12,
                index: 0
            })
        );
        assert_eq!(parse_part_name("seg12.m4s"), None);
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
