//! One recording as it is kept: its folder on disk (`recording.json` for what it is,
//! `segments.jsonl` with one line per media segment, the init segments and the CMAF
//! segments themselves), the entry `GET /api/v1/recordings` lists, and its VOD
//! manifests (HLS media and multivariant playlists, a static DASH MPD) built from the
//! segment list. The media is the live packager's CMAF as it was (only shifted in time
//! after a reconnect, see `retime.rs`): nothing is re-encoded or re-muxed.
//!
//! Not here: the files' names (`files.rs`), deciding what to record or when a recording
//! ends (`recorder.rs`), which recordings exist and their retention (`mod.rs`), HTTP
//! (`http/recordings.rs`).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use media::dash::{self, AdaptationSet, Mpd, Period, Representation, SegmentTemplate};
use media::hls::{MediaPlaylist, MediaSegment, MultivariantPlaylist, PlaylistType, Variant};
use serde::{Deserialize, Serialize};

use super::files::{segment_file, INDEX_FILE, INIT_FILE, META_FILE};
use super::RecordError;
use crate::live::packager::VIDEO_TIMESCALE;

/// Longest recording name: a stream name (64), `-`, a UTC time (16), `-` and a counter.
pub const MAX_NAME_LEN: usize = 96;

/// Whether `name` may name a recording: 1 to [`MAX_NAME_LEN`] characters of
/// `A-Z a-z 0-9 _ - .`, not starting with a dot. Such a name is one plain path
/// segment: no `/`, no `..`, nothing a URL decoder or the file system reads as more.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Where a recording is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Segments are still being added; HLS lists them as an EVENT playlist.
    Recording,
    /// Complete: a VOD asset.
    Finished,
}

/// Why a recording finished.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The stream ended: its publisher left and did not come back within the
    /// reconnect grace time, or an operator kicked it.
    Ended,
    /// The recording reached `--record-split-minutes`; the next one continues.
    Split,
    /// Stopped through the write API.
    Stopped,
    /// Recording it further would pass `--record-max-bytes` with no finished
    /// recording left to delete.
    DiskLimit,
    /// The publisher came back with other codec settings; the next one continues.
    CodecChange,
    /// The server stopped while recording (found so at the next start).
    Interrupted,
    /// Writing to disk failed.
    WriteError,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Ended => "ended",
            EndReason::Split => "split",
            EndReason::Stopped => "stopped",
            EndReason::DiskLimit => "disk_limit",
            EndReason::CodecChange => "codec_change",
            EndReason::Interrupted => "interrupted",
            EndReason::WriteError => "write_error",
        }
    }
}

/// `recording.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Meta {
    pub name: String,
    pub stream: String,
    /// Wall clock when the first segment started, unix milliseconds.
    pub started_ms: u64,
    /// Wall clock when it finished, unix milliseconds.
    pub ended_ms: Option<u64>,
    pub state: State,
    pub reason: Option<EndReason>,
    /// RFC 6381 codec strings and video size, for the manifests.
    pub video_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub audio_codec: Option<String>,
    pub audio_sample_rate: Option<u32>,
}

/// One line of `segments.jsonl`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SegmentEntry {
    /// Seconds (video).
    pub duration: f64,
    pub bytes: u64,
    /// Decode time of the first video sample as written (after any shift), 90 kHz.
    pub start: u64,
    /// Wall clock of the first sample when it was live, unix milliseconds.
    pub pdt_ms: u64,
}

/// A recording: what it is, its segments, and its size on disk.
#[derive(Clone, Debug)]
pub struct Recording {
    pub meta: Meta,
    pub segments: Vec<SegmentEntry>,
    /// Bytes of its files (segments and init segments).
    pub bytes: u64,
    /// Its folder.
    pub dir: PathBuf,
    /// Its upload to object storage (`upload.json`), once planned.
    pub upload: Option<super::upload::Upload>,
    /// Its media files are on the local disk (false once deleted after an upload:
    /// it plays from S3).
    pub local: bool,
}

/// Unix milliseconds as RFC 3339 UTC (`2026-12-03T22:53:55.123Z`).
pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Unix milliseconds as `20261203T225355Z`, for recording names.
pub fn compact_utc(ms: u64) -> String {
    rfc3339(ms - ms % 1000)
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect()
}

impl Recording {
    /// Bytes it takes on the local disk.
    pub fn disk_bytes(&self) -> u64 {
        if self.local {
            self.bytes
        } else {
            0
        }
    }

    pub fn duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum()
    }

    /// Its entry in `GET /api/v1/recordings`.
    pub fn listing(&self) -> serde_json::Value {
        let m = &self.meta;
        let base = format!("/vod/recordings/{}", m.name);
        serde_json::json!({
            "name": m.name,
            "stream": m.stream,
            "state": m.state,
            "reason": m.reason,
            "started": rfc3339(m.started_ms),
            "started_ms": m.started_ms,
            "ended": m.ended_ms.map(rfc3339),
            "ended_ms": m.ended_ms,
            "duration_seconds": round3(self.duration()),
            "bytes": self.bytes,
            "segments": self.segments.len(),
            "url": format!("{base}/index.m3u8"),
            "dash_url": format!("{base}/index.mpd"),
            "local": self.local,
        })
    }

    /// (peak, average) bits per second over its segments.
    fn bitrate(&self) -> (u64, u64) {
        let peak = self
            .segments
            .iter()
            .filter(|s| s.duration > 0.0)
            .map(|s| (s.bytes as f64 * 8.0 / s.duration) as u64)
            .max()
            .unwrap_or(0);
        let d = self.duration();
        let total: u64 = self.segments.iter().map(|s| s.bytes).sum();
        let avg = if d > 0.0 {
            (total as f64 * 8.0 / d) as u64
        } else {
            0
        };
        (peak.max(1), avg.max(1))
    }

    fn codecs(&self) -> String {
        [&self.meta.video_codec, &self.meta.audio_codec]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `index.m3u8`: one variant, `media.m3u8`.
    pub fn multivariant(&self) -> MultivariantPlaylist {
        let (peak, avg) = self.bitrate();
        MultivariantPlaylist {
            version: 6,
            independent_segments: true,
            variants: vec![Variant {
                uri: "media.m3u8".into(),
                bandwidth: peak,
                average_bandwidth: Some(avg),
                codecs: Some(self.codecs()).filter(|c| !c.is_empty()),
                resolution: self.meta.width.zip(self.meta.height),
                ..Variant::default()
            }],
            ..MultivariantPlaylist::default()
        }
    }

    /// `media.m3u8`: VOD once finished, EVENT (no ENDLIST) while recording. One
    /// continuous timeline: no discontinuities (see the module docs of `recorder.rs`).
    pub fn media_playlist(&self) -> MediaPlaylist {
        let finished = self.meta.state == State::Finished;
        let longest = self
            .segments
            .iter()
            .map(|s| s.duration)
            .fold(0.0f64, f64::max);
        MediaPlaylist {
            version: 6,
            target_duration: longest.round().max(1.0) as u64,
            playlist_type: Some(if finished {
                PlaylistType::Vod
            } else {
                PlaylistType::Event
            }),
            independent_segments: true,
            map_uri: Some(INIT_FILE.into()),
            segments: self
                .segments
                .iter()
                .enumerate()
                .map(|(i, s)| MediaSegment {
                    uri: segment_file(i),
                    duration: s.duration,
                    program_date_time: (i == 0).then(|| rfc3339(s.pdt_ms)),
                    ..MediaSegment::default()
                })
                .collect(),
            ended: finished,
            ..MediaPlaylist::default()
        }
    }

    /// `index.mpd`: a static MPD (of what is written so far, while recording), one
    /// period, one adaptation set per track (`v-…`, `a-…`, split from the muxed
    /// segments on request), a SegmentTimeline in 90 kHz.
    pub fn mpd(&self) -> Mpd {
        let (peak, _) = self.bitrate();
        let start = self.segments.first().map_or(0, |s| s.start);
        let durations: Vec<u64> = self
            .segments
            .iter()
            .map(|s| (s.duration * f64::from(VIDEO_TIMESCALE)).round() as u64)
            .collect();
        let mut adaptation_sets = Vec::new();
        let m = &self.meta;
        let tracks = [
            m.video_codec.as_ref().map(|c| {
                (
                    "video",
                    "v",
                    Representation {
                        id: "v".into(),
                        codecs: c.clone(),
                        bandwidth: peak,
                        width: m.width,
                        height: m.height,
                        ..Representation::default()
                    },
                )
            }),
            m.audio_codec.as_ref().map(|c| {
                (
                    "audio",
                    "a",
                    Representation {
                        id: "a".into(),
                        codecs: c.clone(),
                        bandwidth: 128_000,
                        audio_sampling_rate: m.audio_sample_rate,
                        ..Representation::default()
                    },
                )
            }),
        ];
        for (kind, id, representation) in tracks.into_iter().flatten() {
            adaptation_sets.push(AdaptationSet {
                id: adaptation_sets.len() as u32,
                content_type: Some(kind.into()),
                mime_type: format!("{kind}/mp4"),
                segment_alignment: true,
                representations: vec![representation],
                segment_template: Some(SegmentTemplate {
                    timescale: VIDEO_TIMESCALE,
                    initialization: format!("{id}-init.mp4"),
                    media: format!("{id}-seg$Number$.m4s"),
                    start_number: 0,
                    presentation_time_offset: start,
                    duration: None,
                    timeline: dash::timeline_from_durations(start, &durations),
                    availability_time_offset: None,
                    availability_time_complete: None,
                }),
            });
        }
        Mpd {
            dynamic: false,
            media_presentation_duration: Some(round3(self.duration())),
            min_buffer_time: 2.0,
            max_segment_duration: self.segments.iter().map(|s| s.duration).reduce(f64::max),
            profiles: "urn:mpeg:dash:profile:isoff-live:2011".into(),
            periods: vec![Period {
                id: "0".into(),
                start: 0.0,
                adaptation_sets,
            }],
            ..Mpd::default()
        }
    }

    /// Reads the recording in `dir` (named as the folder). A torn last line of
    /// `segments.jsonl` (the server stopped while writing it) ends the list there.
    pub fn load(dir: &Path) -> Result<Recording, RecordError> {
        let io = |source| RecordError::Io {
            path: dir.display().to_string(),
            source,
        };
        let meta_path = dir.join(META_FILE);
        let text = std::fs::read(&meta_path).map_err(io)?;
        let meta: Meta = serde_json::from_slice(&text).map_err(|e| RecordError::Corrupt {
            path: meta_path.display().to_string(),
            problem: e.to_string(),
        })?;
        let folder = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if meta.name != folder || !valid_name(&meta.name) {
            return Err(RecordError::Corrupt {
                path: meta_path.display().to_string(),
                problem: format!("names recording {:?}, not its folder", meta.name),
            });
        }
        let mut segments = Vec::new();
        if let Ok(f) = std::fs::File::open(dir.join(INDEX_FILE)) {
            for line in std::io::BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                // A line is appended only after its segment file is written.
                match serde_json::from_str::<SegmentEntry>(&line) {
                    Ok(s) => segments.push(s),
                    Err(_) => break,
                }
            }
        }
        let upload = super::s3::load_state(dir);
        let local = !upload.as_ref().is_some_and(|u| u.local_deleted);
        let bytes = match &upload {
            Some(u) if !local => u.total_bytes(),
            _ => dir_bytes(dir),
        };
        Ok(Recording {
            meta,
            segments,
            bytes,
            dir: dir.to_path_buf(),
            upload,
            local,
        })
    }
}

/// Bytes of the files directly in `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_plain_path_segments() {
        assert!(valid_name("cam-20261203T225355Z"));
        assert!(valid_name("a.b_c-2"));
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "%2e%2e",
            "a%2Fb",
            ".hidden",
            "x y",
            "a\0b",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_338_435_123), "2026-12-03T22:53:55.123Z");
        assert_eq!(compact_utc(1_796_338_435_123), "20261203T225355Z");
    }

    fn recording(finished: bool) -> Recording {
        Recording {
            meta: Meta {
                name: "cam-1".into(),
                stream: "cam".into(),
                started_ms: 1000,
                ended_ms: finished.then_some(5000),
                state: if finished {
                    State::Finished
                } else {
                    State::Recording
                },
                reason: finished.then_some(EndReason::Ended),
                video_codec: Some("avc1.64001f".into()),
                width: Some(640),
                height: Some(360),
                audio_codec: Some("mp4a.40.2".into()),
                audio_sample_rate: Some(48_000),
            },
            segments: (0..3)
                .map(|i| SegmentEntry {
                    duration: 2.0,
                    bytes: 1000,
                    start: 90_000 + i * 180_000,
                    pdt_ms: 1000 + i * 2000,
                })
                .collect(),
            bytes: 3500,
            dir: PathBuf::from("/nowhere"),
            upload: None,
            local: true,
        }
    }

    #[test]
    fn manifests_list_every_segment_once_on_one_timeline() {
        let r = recording(true);
        let pl = r.media_playlist().write();
        assert!(pl.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{pl}");
        assert!(pl.contains("#EXT-X-ENDLIST"));
        assert!(!pl.contains("DISCONTINUITY"));
        assert_eq!(pl.matches("#EXTINF:").count(), 3);
        assert!(pl.contains("seg2.m4s"));
        let live = recording(false).media_playlist().write();
        assert!(live.contains("#EXT-X-PLAYLIST-TYPE:EVENT"));
        assert!(!live.contains("#EXT-X-ENDLIST"));
        let mpd = r.mpd().write();
        assert!(mpd.contains("type=\"static\""), "{mpd}");
        assert!(mpd.contains("presentationTimeOffset=\"90000\""), "{mpd}");
        assert!(mpd.contains("v-seg$Number$.m4s") && mpd.contains("a-init.mp4"));
        let listing = r.listing();
        assert_eq!(listing["duration_seconds"], 6.0);
        assert_eq!(listing["state"], "finished");
        assert_eq!(listing["url"], "/vod/recordings/cam-1/index.m3u8");
    }
}
