//! The edge ABR ladder, as pure functions: which lower renditions ("rungs") an edge
//! adds to a stream whose origin publishes only its top rendition, the multivariant
//! playlist that advertises them, a rung's media playlist derived from the source
//! rendition's, the object names of a rung, the ffmpeg command that makes a rung
//! segment from a source segment, and the few fMP4 facts the transcoder needs (source
//! picture size, splitting ffmpeg's output into init and media segment), read with
//! the box layer every MP4 reader shares (`media::bmff`).
//!
//! Rungs are **regular HLS**: their playlists have the source's media sequence
//! numbers, durations, discontinuities, program date times and init version, but no
//! LL-HLS tags (no parts, preload hints, blocking reload or rendition reports),
//! because a rung segment can only be made once its whole source segment exists.
//!
//! Not here: fetching, caching and running ffmpeg (the edge's `ladder` module does).

use ::media::bmff::{u32_at, BoxError, BoxRef, Boxes};
use ::media::hls::{MediaPlaylist, MultivariantPlaylist, PlaylistError, Variant};
use bytes::Bytes;

/// Bits per second a rung's variant reserves for the audio, which is copied from
/// the source (its real rate is not known from the multivariant playlist).
pub const AUDIO_ALLOWANCE_BPS: u64 = 160_000;
/// Largest rung side in pixels.
pub const MAX_SIDE: u32 = 8192;

/// Why a ladder setting or an fMP4 object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LadderError {
    #[error("ladder rung {0:?}: write NAME=WIDTHxHEIGHT@KBPS, e.g. 480p=854x480@1200")]
    Syntax(String),
    #[error("ladder rung name {0:?}: use 1-32 characters of A-Z a-z 0-9 _ - . (not the source rendition's name)")]
    Name(String),
    #[error("ladder rung {0:?}: width and height must be even, 2..={MAX_SIDE}, and the bit rate 1..=100000 kbit/s")]
    Range(String),
    #[error("ladder rung {0:?} is listed twice")]
    Duplicate(String),
    #[error("fMP4: {0}")]
    Mp4(String),
}

/// One rung: a name (the rendition folder), the box the picture is scaled into, and
/// the video bit rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
}

impl std::str::FromStr for Rung {
    type Err = LadderError;

    /// `NAME=WxH@KBPS`.
    fn from_str(s: &str) -> Result<Self, LadderError> {
        let syntax = || LadderError::Syntax(s.to_string());
        let (name, rest) = s.trim().split_once('=').ok_or_else(syntax)?;
        let (size, kbps) = rest.split_once('@').ok_or_else(syntax)?;
        let (w, h) = size.split_once(['x', 'X']).ok_or_else(syntax)?;
        let rung = Rung {
            name: name.trim().to_string(),
            width: w.trim().parse().map_err(|_| syntax())?,
            height: h.trim().parse().map_err(|_| syntax())?,
            video_kbps: kbps.trim().parse().map_err(|_| syntax())?,
        };
        rung.check()?;
        Ok(rung)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl Rung {
    fn check(&self) -> Result<(), LadderError> {
        if !valid_name(&self.name) {
            return Err(LadderError::Name(self.name.clone()));
        }
        let side = |v: u32| (2..=MAX_SIDE).contains(&v) && v.is_multiple_of(2);
        if !side(self.width) || !side(self.height) || !(1..=100_000).contains(&self.video_kbps) {
            return Err(LadderError::Range(self.name.clone()));
        }
        Ok(())
    }

    /// The picture size of this rung for a `source` picture: the source scaled to fit
    /// the rung's box, aspect kept, even sides. `None` when the rung is taller than
    /// the source (never upscale).
    pub fn output_size(&self, source: (u32, u32)) -> Option<(u32, u32)> {
        let (sw, sh) = source;
        if sw == 0 || sh == 0 || self.height > sh {
            return None;
        }
        let scale =
            (f64::from(self.width) / f64::from(sw)).min(f64::from(self.height) / f64::from(sh));
        let even = |v: f64| ((v / 2.0).round() as u32 * 2).max(2);
        Some((even(f64::from(sw) * scale), even(f64::from(sh) * scale)))
    }

    /// BANDWIDTH advertised for this rung: the video rate with 25 % headroom for the
    /// segment-to-segment peaks the rate control allows, plus the audio allowance.
    pub fn bandwidth(&self) -> u64 {
        u64::from(self.video_kbps) * 1250 + AUDIO_ALLOWANCE_BPS
    }
}

/// The H.264 level (`level_idc`, e.g. 31 for 3.1) that holds a `w`×`h` picture at up
/// to 60 frames per second (Table A-1 of ITU-T H.264: frame size and macroblock
/// rate). The transcoder writes this level, and the multivariant playlist advertises
/// it, so both agree without knowing the source's frame rate.
pub fn h264_level(w: u32, h: u32) -> u8 {
    let mbs = u64::from(w.div_ceil(16)) * u64::from(h.div_ceil(16));
    let rate = mbs * 60;
    const LEVELS: [(u8, u64, u64); 9] = [
        (21, 792, 20_250),
        (30, 1_620, 40_500),
        (31, 3_600, 108_000),
        (32, 5_120, 216_000),
        (40, 8_192, 245_760),
        (42, 8_704, 522_240),
        (50, 22_080, 589_824),
        (51, 36_864, 983_040),
        (52, 36_864, 2_073_600),
    ];
    LEVELS
        .iter()
        .find(|(_, frame, per_sec)| mbs <= *frame && rate <= *per_sec)
        .map_or(52, |(l, _, _)| *l)
}

/// A rung's `CODECS`: High-profile H.264 at [`h264_level`], then the source's
/// non-video codecs (the audio is copied).
pub fn rung_codecs(size: (u32, u32), source_codecs: Option<&str>) -> String {
    let mut out = format!("avc1.6400{:02x}", h264_level(size.0, size.1));
    for c in source_codecs.unwrap_or("").split(',') {
        let c = c.trim();
        let video = [
            "avc1", "avc3", "hvc1", "hev1", "av01", "vp09", "vp8", "dvh1",
        ]
        .iter()
        .any(|v| c.starts_with(v));
        if !c.is_empty() && !video {
            out.push(',');
            out.push_str(c);
        }
    }
    out
}

/// What a request inside a stream's folder asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RungObject {
    /// `index.m3u8`.
    Playlist,
    /// `init.mp4` (`None`, the latest) or `init-{v}.mp4`.
    Init(Option<u64>),
    /// `seg{msn}.m4s`.
    Segment(u64),
}

/// A request for an object of a rung: `/live/{stream}/{rung}/{object}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RungPath<'a> {
    pub stream: &'a str,
    pub rung: &'a Rung,
    pub object: RungObject,
}

/// A configured ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    pub rungs: Vec<Rung>,
    /// The rendition the rungs are made from (`src` for the mediamesh origin).
    pub source: String,
}

impl Ladder {
    /// Checks names (unique, not the source's) and sizes; rungs are kept tallest first.
    pub fn new(mut rungs: Vec<Rung>, source: &str) -> Result<Self, LadderError> {
        for (i, r) in rungs.iter().enumerate() {
            r.check()?;
            if r.name == source {
                return Err(LadderError::Name(r.name.clone()));
            }
            if rungs[..i].iter().any(|o| o.name == r.name) {
                return Err(LadderError::Duplicate(r.name.clone()));
            }
        }
        rungs.sort_by(|a, b| {
            b.height
                .cmp(&a.height)
                .then(b.video_kbps.cmp(&a.video_kbps))
        });
        Ok(Self {
            rungs,
            source: source.to_string(),
        })
    }

    pub fn rung(&self, name: &str) -> Option<&Rung> {
        self.rungs.iter().find(|r| r.name == name)
    }

    /// `Some(stream)` when `path` is a live stream's multivariant playlist.
    pub fn multivariant_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix("/live/")?;
        let (stream, file) = rest.split_once('/')?;
        (file == "index.m3u8" && !stream.is_empty()).then_some(stream)
    }

    /// Classifies a request path; `None` when it is not an object of a rung.
    pub fn rung_path<'a>(&'a self, path: &'a str) -> Option<RungPath<'a>> {
        let rest = path.strip_prefix("/live/")?;
        let mut it = rest.split('/');
        let (stream, rung, file) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || stream.is_empty() {
            return None;
        }
        let rung = self.rung(rung)?;
        let object = if file == "index.m3u8" {
            RungObject::Playlist
        } else if file == "init.mp4" {
            RungObject::Init(None)
        } else if let Some(v) = file
            .strip_prefix("init-")
            .and_then(|f| f.strip_suffix(".mp4"))
        {
            RungObject::Init(Some(digits(v)?))
        } else if let Some(n) = file
            .strip_prefix("seg")
            .and_then(|f| f.strip_suffix(".m4s"))
        {
            RungObject::Segment(digits(n)?)
        } else {
            return None;
        };
        Some(RungPath {
            stream,
            rung,
            object,
        })
    }

    /// The source variant of a multivariant playlist (URI `{source}/index.m3u8`).
    pub fn source_variant<'a>(&self, pl: &'a MultivariantPlaylist) -> Option<&'a Variant> {
        let want = format!("{}/index.m3u8", self.source);
        pl.variants.iter().find(|v| v.uri == want)
    }

    /// The rungs a source of this picture size gets (none taller than the source),
    /// with their output sizes. Without a known size every rung is kept as
    /// configured.
    pub fn rungs_for(&self, source: Option<(u32, u32)>) -> Vec<(&Rung, (u32, u32))> {
        self.rungs
            .iter()
            .filter_map(|r| match source {
                Some(s) => r.output_size(s).map(|size| (r, size)),
                None => Some((r, (r.width, r.height))),
            })
            .collect()
    }

    /// Adds one variant per rung after the source's. `Ok(None)`: no source variant
    /// (another origin layout), leave the playlist alone. Rungs whose name the origin
    /// already lists are not added twice.
    pub fn rewrite_multivariant(&self, text: &str) -> Result<Option<String>, PlaylistError> {
        let mut pl = MultivariantPlaylist::parse(text)?;
        let Some(src) = self.source_variant(&pl).cloned() else {
            return Ok(None);
        };
        let mut added = Vec::new();
        for (rung, size) in self.rungs_for(src.resolution) {
            let uri = format!("{}/index.m3u8", rung.name);
            if pl.variants.iter().any(|v| v.uri == uri) {
                continue;
            }
            added.push(Variant {
                uri,
                bandwidth: rung.bandwidth(),
                average_bandwidth: Some(
                    u64::from(rung.video_kbps) * 1000 + AUDIO_ALLOWANCE_BPS * 4 / 5,
                ),
                codecs: Some(rung_codecs(size, src.codecs.as_deref())),
                resolution: Some(size),
                frame_rate: src.frame_rate,
                pathway_id: src.pathway_id.clone(),
            });
        }
        pl.variants.extend(added);
        Ok(Some(pl.write()))
    }

    /// A rung's media playlist from the source rendition's: same segments (MSNs,
    /// durations, discontinuities, program date times, init version), no LL-HLS tags.
    pub fn rung_playlist(&self, source_text: &str) -> Result<String, PlaylistError> {
        let src = MediaPlaylist::parse(source_text)?;
        if src.skipped_segments > 0 {
            return Err(PlaylistError::Invalid {
                line: 0,
                tag: "EXT-X-SKIP",
                reason: "the source playlist must be complete (no delta update)".into(),
            });
        }
        let mut pl = MediaPlaylist {
            version: 6,
            target_duration: src.target_duration,
            media_sequence: src.media_sequence,
            discontinuity_sequence: src.discontinuity_sequence,
            independent_segments: true,
            playlist_type: src.playlist_type,
            map_uri: src.map_uri,
            ended: src.ended,
            ..MediaPlaylist::default()
        };
        pl.segments = src
            .segments
            .into_iter()
            .map(|mut s| {
                s.parts.clear();
                s
            })
            .collect();
        Ok(pl.write())
    }
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// ffmpeg arguments that turn a source init + segment (fMP4 on stdin) into a rung's
/// fragmented MP4 on stdout: scaled, re-encoded with libx264 (High profile at the
/// advertised level, closed GOP, one IDR at the start, no B-frames so the output's
/// decode and presentation times are equal), audio copied, timestamps kept
/// (`-copyts`; `frag_discont` with an edit list makes the fragment's `tfdt` the
/// source's presentation time, so consecutive rung segments continue one timeline),
/// and a `moov` written before any sample (`empty_moov`) that does not depend on the
/// segment, so one init fits every segment.
pub fn ffmpeg_args(rung: &Rung, size: (u32, u32), threads: u32) -> Vec<String> {
    let k = rung.video_kbps;
    let level = h264_level(size.0, size.1);
    let args = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-copyts",
        "-f",
        "mp4",
        "-i",
        "pipe:0",
        "-map",
        "0:v:0",
        "-map",
        "0:a?",
        "-vf",
        &format!("scale={}:{}:flags=bicubic,setsar=1", size.0, size.1),
        "-fps_mode",
        "passthrough",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-profile:v",
        "high",
        "-level:v",
        &format!("{}.{}", level / 10, level % 10),
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        &format!("{k}k"),
        "-maxrate",
        &format!("{k}k"),
        "-bufsize",
        &format!("{}k", k * 2),
        "-g",
        "100000",
        "-keyint_min",
        "100000",
        "-sc_threshold",
        "0",
        "-bf",
        "0",
        "-x264-params",
        "open-gop=0",
        "-threads",
        &threads.max(1).to_string(),
        "-c:a",
        "copy",
        "-video_track_timescale",
        "90000",
        "-use_editlist",
        "1",
        "-movflags",
        "+empty_moov+default_base_moof+frag_keyframe+frag_discont",
        "-f",
        "mp4",
        "pipe:1",
    ];
    args.iter().map(|s| s.to_string()).collect()
}

impl From<BoxError> for LadderError {
    fn from(e: BoxError) -> Self {
        LadderError::Mp4(e.to_string())
    }
}

/// Most boxes read at one level of an init segment, and of ffmpeg's whole output.
const MAX_INIT_BOXES: u64 = 256;
const MAX_OUTPUT_BOXES: u64 = 4096;

/// The `trak` boxes of an init segment's `moov`; `None` without a `moov`. Both
/// levels are read whole first: a broken box anywhere is an error.
fn traks(init: &[u8]) -> Result<Option<Vec<BoxRef<'_>>>, LadderError> {
    let Some(moov) = Boxes::new(init).limit(MAX_INIT_BOXES).find(b"moov")? else {
        return Ok(None);
    };
    let mut boxes = moov
        .children()
        .limit(MAX_INIT_BOXES)
        .collect::<Result<Vec<_>, _>>()?;
    boxes.retain(|b| &b.kind == b"trak");
    Ok(Some(boxes))
}

/// The picture size (from `tkhd`) of the first video track of an init segment.
pub fn video_size(init: &[u8]) -> Result<(u32, u32), LadderError> {
    let traks = traks(init)?.ok_or_else(|| LadderError::Mp4("no moov".into()))?;
    for trak in traks {
        let handler = trak
            .children()
            .limit(MAX_INIT_BOXES)
            .find_path(&[b"mdia", b"hdlr"])?;
        if handler.and_then(|h| h.payload().get(8..12)) != Some(b"vide") {
            continue;
        }
        let tkhd = trak
            .children()
            .limit(MAX_INIT_BOXES)
            .find(b"tkhd")?
            .ok_or_else(|| LadderError::Mp4("no tkhd".into()))?;
        let tkhd = tkhd.payload();
        // version 1 has 64-bit times: width/height sit 12 bytes later.
        let at = if tkhd.first() == Some(&1) { 88 } else { 76 };
        let read = |o: usize| u32_at(tkhd, o).map(|v| v >> 16);
        return match (read(at), read(at + 4)) {
            (Some(w), Some(h)) if w > 0 && h > 0 => Ok((w, h)),
            _ => Err(LadderError::Mp4("video tkhd without a picture size".into())),
        };
    }
    Err(LadderError::Mp4("no video track".into()))
}

/// Splits ffmpeg's fragmented MP4 into the init segment (everything before the first
/// `moof`: `ftyp` + `moov`) and the media segment (the `moof` + `mdat` pairs).
pub fn split_output(out: &Bytes) -> Result<(Bytes, Bytes), LadderError> {
    let list = Boxes::new(out)
        .limit(MAX_OUTPUT_BOXES)
        .collect::<Result<Vec<_>, _>>()?;
    let first_moof = list
        .iter()
        .position(|b| &b.kind == b"moof")
        .ok_or_else(|| LadderError::Mp4("no moof in the transcoder's output".into()))?;
    let (init, media) = list.split_at(first_moof);
    if !init.iter().any(|b| &b.kind == b"moov") {
        return Err(LadderError::Mp4(
            "no moov in the transcoder's output".into(),
        ));
    }
    if !media.iter().any(|b| &b.kind == b"mdat") {
        return Err(LadderError::Mp4(
            "no mdat in the transcoder's output".into(),
        ));
    }
    let cut = media.first().map_or(out.len(), |b| b.offset());
    Ok((out.slice(..cut), out.slice(cut..)))
}

/// The `avcC` box payload of the first video track of an init segment (its SPS and
/// PPS): equal payloads mean one init fits both encodes.
pub fn avc_config(init: &[u8]) -> Result<Option<Bytes>, LadderError> {
    let Some(traks) = traks(init)? else {
        return Ok(None);
    };
    for trak in traks {
        let stsd = trak
            .children()
            .limit(MAX_INIT_BOXES)
            .find_path(&[b"mdia", b"minf", b"stbl", b"stsd"])?;
        // stsd: version/flags (4) + entry count (4), then the sample entries.
        let Some(Ok(entries)) = stsd.map(|stsd| stsd.children_after(8)) else {
            continue;
        };
        let entries = entries.limit(4).collect::<Result<Vec<_>, _>>()?;
        let Some(entry) = entries.first() else {
            continue;
        };
        if &entry.kind != b"avc1" && &entry.kind != b"avc3" {
            continue;
        }
        // An avc1/avc3 visual sample entry has 78 bytes before its child boxes.
        let Ok(children) = entry.children_after(78) else {
            continue;
        };
        if let Some(avcc) = children.limit(MAX_INIT_BOXES).find(b"avcC")? {
            return Ok(Some(Bytes::copy_from_slice(avcc.payload())));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> Ladder {
        Ladder::new(
            vec![
                "360p=640x360@800".parse().unwrap(),
                "720p=1280x720@3000".parse().unwrap(),
                "240p=426x240@400".parse().unwrap(),
            ],
            "src",
        )
        .unwrap()
    }

    const MULTI: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-STREAM-INF:BANDWIDTH=690000,AVERAGE-BANDWIDTH=424337,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000\n\
src/index.m3u8\n";

    const MEDIA: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.00000,HOLD-BACK=6.00000,PART-HOLD-BACK=1.50000\n\
#EXT-X-PART-INF:PART-TARGET=0.50000\n#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n#EXT-X-MAP:URI=\"init-2.mp4\"\n\
#EXT-X-PROGRAM-DATE-TIME:2026-11-26T01:37:22.566Z\n#EXTINF:1.9972666666666667,\nseg100.m4s\n\
#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-11-26T01:37:30.000Z\n\
#EXT-X-PART:DURATION=0.5,URI=\"part101.0.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.5,URI=\"part101.1.m4s\"\n\
#EXTINF:1.0,\nseg101.m4s\n#EXT-X-PROGRAM-DATE-TIME:2026-11-26T01:37:31.000Z\n\
#EXT-X-PART:DURATION=0.5,URI=\"part102.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part102.1.m4s\"\n\
#EXT-X-RENDITION-REPORT:URI=\"../other/index.m3u8\",LAST-MSN=101,LAST-PART=0\n";

    #[test]
    fn rung_syntax() {
        let r: Rung = "480p=854x480@1200".parse().unwrap();
        assert_eq!(
            r,
            Rung {
                name: "480p".into(),
                width: 854,
                height: 480,
                video_kbps: 1200
            }
        );
        for bad in [
            "",
            "480p",
            "480p=854x480",
            "=854x480@1",
            "a/b=2x2@1",
            "x=853x480@1",
            "x=0x0@1",
            "x=2x2@0",
            "x=99999x2@1",
            "x=axb@c",
            "x=2x2@-1",
        ] {
            assert!(bad.parse::<Rung>().is_err(), "{bad}");
        }
        let dup = Ladder::new(
            vec!["a=2x2@1".parse().unwrap(), "a=4x4@1".parse().unwrap()],
            "src",
        );
        assert!(matches!(dup, Err(LadderError::Duplicate(_))));
        let src = Ladder::new(vec!["src=2x2@1".parse().unwrap()], "src");
        assert!(matches!(src, Err(LadderError::Name(_))));
    }

    #[test]
    fn sizes_never_upscale() {
        let r: Rung = "480p=854x480@1200".parse().unwrap();
        assert_eq!(r.output_size((1280, 720)), Some((854, 480)));
        assert_eq!(r.output_size((1920, 1080)), Some((854, 480)));
        assert_eq!(r.output_size((640, 360)), None);
        assert_eq!(r.output_size((0, 0)), None);
        // A 4:3 source fits the box by height.
        assert_eq!(r.output_size((1440, 1080)), Some((640, 480)));
        let r: Rung = "240p=426x240@400".parse().unwrap();
        assert_eq!(r.output_size((640, 360)), Some((426, 240)));
        assert_eq!(r.output_size((426, 240)), Some((426, 240)));
    }

    #[test]
    fn levels() {
        assert_eq!(h264_level(426, 240), 30);
        assert_eq!(h264_level(256, 144), 21);
        assert_eq!(h264_level(640, 360), 31);
        assert_eq!(h264_level(854, 480), 31);
        assert_eq!(h264_level(1280, 720), 32);
        assert_eq!(h264_level(1920, 1080), 42);
        assert_eq!(h264_level(8192, 8192), 52);
        assert_eq!(
            rung_codecs((426, 240), Some("avc1.64001e,mp4a.40.2")),
            "avc1.64001e,mp4a.40.2"
        );
        assert_eq!(rung_codecs((256, 144), None), "avc1.640015");
    }

    #[test]
    fn multivariant_gets_the_rungs_below_the_source() {
        let out = ladder().rewrite_multivariant(MULTI).unwrap().unwrap();
        let pl = MultivariantPlaylist::parse(&out).unwrap();
        let uris: Vec<_> = pl.variants.iter().map(|v| v.uri.as_str()).collect();
        // 720p is taller than the 360p source: dropped.
        assert_eq!(
            uris,
            ["src/index.m3u8", "360p/index.m3u8", "240p/index.m3u8"]
        );
        let v = &pl.variants[2];
        assert_eq!(v.resolution, Some((426, 240)));
        assert_eq!(v.codecs.as_deref(), Some("avc1.64001e,mp4a.40.2"));
        assert_eq!(v.bandwidth, 400 * 1250 + AUDIO_ALLOWANCE_BPS);
        assert_eq!(v.frame_rate, Some(30.0));
        // Idempotent: rungs already listed are not added again.
        let again = ladder().rewrite_multivariant(&out).unwrap().unwrap();
        assert_eq!(again, out);
        // Another layout (no src variant) is left alone.
        let other = MULTI.replace("src/", "main/");
        assert_eq!(ladder().rewrite_multivariant(&other).unwrap(), None);
    }

    #[test]
    fn rung_playlists_are_regular_hls() {
        let out = ladder().rung_playlist(MEDIA).unwrap();
        for tag in [
            "EXT-X-PART",
            "PRELOAD-HINT",
            "CAN-BLOCK-RELOAD",
            "RENDITION-REPORT",
            "SERVER-CONTROL",
        ] {
            assert!(!out.contains(tag), "{tag} in {out}");
        }
        let pl = MediaPlaylist::parse(&out).unwrap();
        assert_eq!(pl.media_sequence, 100);
        assert_eq!(pl.discontinuity_sequence, 3);
        assert_eq!(pl.map_uri.as_deref(), Some("init-2.mp4"));
        assert_eq!(pl.segments.len(), 2);
        assert_eq!(pl.segments[0].duration, 1.9972666666666667);
        assert!(pl.segments[1].discontinuity);
        assert_eq!(
            pl.segments[1].program_date_time.as_deref(),
            Some("2026-11-26T01:37:30.000Z")
        );
        assert!(!pl.ended);
        assert!(media::hls::check_media_playlist(&pl)
            .iter()
            .all(|v| v.level != media::hls::Level::Must));
        let ended = ladder()
            .rung_playlist(&format!("{MEDIA}#EXT-X-ENDLIST\n"))
            .unwrap();
        assert!(ended.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn paths() {
        let l = ladder();
        let p = l.rung_path("/live/cam/240p/seg42.m4s").unwrap();
        assert_eq!((p.stream, p.rung.name.as_str()), ("cam", "240p"));
        assert_eq!(p.object, RungObject::Segment(42));
        assert_eq!(
            l.rung_path("/live/cam/240p/init-3.mp4").map(|p| p.object),
            Some(RungObject::Init(Some(3)))
        );
        assert_eq!(
            l.rung_path("/live/cam/240p/init.mp4").map(|p| p.object),
            Some(RungObject::Init(None))
        );
        assert_eq!(
            l.rung_path("/live/cam/240p/index.m3u8").map(|p| p.object),
            Some(RungObject::Playlist)
        );
        for other in [
            "/live/cam/src/seg1.m4s",
            "/live/cam/240p/part1.0.m4s",
            "/live/cam/240p/seg.m4s",
            "/live/cam/240p/seg-1.m4s",
            "/live/cam/240p/seg99999999999999999999.m4s",
            "/live/cam/240p/x/seg1.m4s",
            "/live//240p/seg1.m4s",
            "/vod/cam/240p/seg1.m4s",
            "/live/cam/240p/digests.json",
        ] {
            assert_eq!(l.rung_path(other), None, "{other}");
        }
        assert_eq!(l.multivariant_path("/live/cam/index.m3u8"), Some("cam"));
        assert_eq!(l.multivariant_path("/live/cam/src/index.m3u8"), None);
    }

    #[test]
    fn hostile_playlists_are_errors() {
        let l = ladder();
        for bad in [
            "",
            "garbage",
            "#EXTM3U\n#EXTINF:abc,\nx\n",
            &"#EXTM3U\n".repeat(3),
        ] {
            let _ = l.rewrite_multivariant(bad);
            let _ = l.rung_playlist(bad);
        }
        assert!(l.rung_playlist("not a playlist").is_err());
        assert!(l.rewrite_multivariant("not a playlist").is_err());
        let delta = MEDIA.replace("#EXT-X-MAP", "#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n#EXT-X-MAP");
        let _ = l.rung_playlist(&delta);
    }

    fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(payload);
        v
    }

    fn init(w: u32, h: u32) -> Vec<u8> {
        let mut tkhd = vec![0u8; 84];
        tkhd[76..80].copy_from_slice(&(w << 16).to_be_bytes());
        tkhd[80..84].copy_from_slice(&(h << 16).to_be_bytes());
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(b"vide");
        hdlr.extend_from_slice(&[0; 12]);
        let trak = bx(
            b"trak",
            &[bx(b"tkhd", &tkhd), bx(b"mdia", &bx(b"hdlr", &hdlr))].concat(),
        );
        [bx(b"ftyp", b"isom"), bx(b"moov", &trak)].concat()
    }

    #[test]
    fn fmp4_facts() {
        let i = init(640, 360);
        assert_eq!(video_size(&i), Ok((640, 360)));
        let out = Bytes::from([i.clone(), bx(b"moof", b"x"), bx(b"mdat", b"yy")].concat());
        let (a, b) = split_output(&out).unwrap();
        assert_eq!(&a[..], &i[..]);
        assert_eq!(&b[..4], &[0, 0, 0, 9]);
        assert_eq!(&b[4..8], b"moof");
        assert_eq!(avc_config(&i), Ok(None));
        // Hostile: truncated, no moof, no video track, box sizes past the end.
        assert!(split_output(&Bytes::from(i.clone())).is_err());
        assert!(split_output(&Bytes::from_static(&[0, 0, 0, 99, b'm', b'o', b'o', b'f'])).is_err());
        assert!(video_size(&i[..i.len() - 3]).is_err());
        assert!(video_size(&bx(b"moov", &[])).is_err());
        assert!(video_size(&[]).is_err());
        assert!(video_size(&init(0, 0)).is_err());
        assert!(avc_config(&[1, 2, 3]).is_err());
    }
}
