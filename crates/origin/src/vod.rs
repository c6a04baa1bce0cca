//! VOD: MP4 files in the media folder, packaged on request into CMAF segments from the
//! file's sample tables (no re-encode, no pre-packaging step). The parsed sample tables
//! are cached per file (path, size, modification time); segment bytes are read from
//! the file when asked for.
//!
//! Names are confined to the media folder: a name is one path segment of boring
//! characters, and the resolved file must still lie inside the folder after symlinks.
//! Manifest writing and HTTP answers are in `http::vod`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use media::codec::{AacConfig, Av1Config, AvcConfig, HevcConfig, TrackCodec};
use media::fmp4::{self, Sample, Track, TrackRun};
use media::mp4::{self, Mp4Track, SampleEntry, TrackKind};
use parking_lot::Mutex;

use crate::live::name::valid_name;
use integrity::sha256_hex;

/// What can go wrong serving a VOD file.
#[derive(Debug, thiserror::Error)]
pub enum VodError {
    #[error("no such VOD file")]
    NotFound,
    #[error("name is not allowed (one path segment of A-Z a-z 0-9 _ - .)")]
    BadName,
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a usable MP4: {0}")]
    Format(String),
    #[error("moov box is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("no such segment")]
    NoSegment,
}

/// The VOD library: one media folder.
#[derive(Debug)]
pub struct Library {
    dir: PathBuf,
    segment_target: Duration,
    max_moov: u64,
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

/// A parsed asset and the file state (modification time, length) it was parsed from.
type Cached = (SystemTime, u64, Arc<Asset>);

/// A track as packaged.
#[derive(Debug)]
pub struct AssetTrack {
    pub id: u32,
    pub timescale: u32,
    pub codec: TrackCodec,
    pub samples: Vec<mp4::SampleInfo>,
}

/// One packaged segment: sample ranges per track.
#[derive(Debug, Clone)]
pub struct AssetSegment {
    /// Start, video (or first track) timescale.
    pub start: u64,
    /// Duration in that timescale.
    pub duration: u64,
    pub ranges: Vec<Range<usize>>,
    pub bytes: u64,
}

/// A parsed VOD file and its segment plan.
#[derive(Debug)]
pub struct Asset {
    pub path: PathBuf,
    pub tracks: Vec<AssetTrack>,
    pub segments: Vec<AssetSegment>,
    pub init: Bytes,
    /// Timescale of `AssetSegment::start`/`duration`.
    pub timescale: u32,
    /// SHA-256 of every object, made on first request (reads the whole file once).
    digests: std::sync::OnceLock<BTreeMap<String, String>>,
}

impl Asset {
    pub fn duration_secs(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| s.duration as f64 / f64::from(self.timescale))
            .sum()
    }

    pub fn segment_secs(&self, s: &AssetSegment) -> f64 {
        s.duration as f64 / f64::from(self.timescale)
    }

    /// RFC 6381 codecs.
    pub fn codecs(&self) -> String {
        self.tracks
            .iter()
            .map(|t| t.codec.codec_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn resolution(&self) -> Option<(u32, u32)> {
        self.tracks.iter().find_map(|t| t.codec.dimensions())
    }

    /// Peak and average bits per second.
    pub fn bitrate(&self) -> (u64, u64) {
        let mut peak = 0.0f64;
        for s in &self.segments {
            let secs = self.segment_secs(s);
            if secs > 0.0 {
                peak = peak.max(s.bytes as f64 * 8.0 / secs);
            }
        }
        let total: u64 = self.segments.iter().map(|s| s.bytes).sum();
        let dur = self.duration_secs();
        let avg = if dur > 0.0 {
            total as f64 * 8.0 / dur
        } else {
            0.0
        };
        (peak as u64, avg as u64)
    }

    /// Index of the first track of `kind` (video = H.264, H.265 or AV1; audio = AAC).
    pub fn track_index(&self, video: bool) -> Option<usize> {
        self.tracks.iter().position(|t| t.codec.is_video() == video)
    }

    /// Init segment holding only track `index` (DASH: one track per representation).
    pub fn track_init(&self, index: usize) -> Option<Bytes> {
        let t = self.tracks.get(index)?;
        Some(fmp4::init_segment(&[Track {
            id: t.id,
            timescale: t.timescale,
            codec: t.codec.clone(),
        }]))
    }

    /// (start, duration) of each segment in track `index`'s own timescale.
    pub fn track_timeline(&self, index: usize) -> Vec<(u64, u64)> {
        let Some(t) = self.tracks.get(index) else {
            return Vec::new();
        };
        self.segments
            .iter()
            .filter_map(|s| {
                let samples = t.samples.get(s.ranges.get(index)?.clone())?;
                let start = samples.first()?.dts;
                Some((start, samples.iter().map(|x| u64::from(x.duration)).sum()))
            })
            .collect()
    }

    /// SHA-256 (hex) of every object this asset serves, by file name: `init.mp4`,
    /// `seg{n}.m4s`, and the per-track DASH objects `v-…`/`a-…`. Computed once.
    pub fn digests(&self) -> Result<&BTreeMap<String, String>, VodError> {
        if let Some(d) = self.digests.get() {
            return Ok(d);
        }
        let mut out = BTreeMap::new();
        out.insert("init.mp4".to_string(), sha256_hex(&self.init));
        let tracks: Vec<(&str, usize)> = [
            ("v", self.track_index(true)),
            ("a", self.track_index(false)),
        ]
        .into_iter()
        .filter_map(|(p, i)| i.map(|i| (p, i)))
        .collect();
        for (prefix, ti) in &tracks {
            if let Some(init) = self.track_init(*ti) {
                out.insert(format!("{prefix}-init.mp4"), sha256_hex(&init));
            }
        }
        for n in 0..self.segments.len() {
            out.insert(
                format!("seg{n}.m4s"),
                sha256_hex(&self.segment_bytes(n, None)?),
            );
            for (prefix, ti) in &tracks {
                let bytes = self.segment_bytes(n, Some(*ti))?;
                out.insert(format!("{prefix}-seg{n}.m4s"), sha256_hex(&bytes));
            }
        }
        Ok(self.digests.get_or_init(|| out))
    }

    /// Reads the samples of segment `index` from the file and muxes one fragment, with
    /// every track or only track `only`.
    pub fn segment_bytes(&self, index: usize, only: Option<usize>) -> Result<Bytes, VodError> {
        let seg = self.segments.get(index).ok_or(VodError::NoSegment)?;
        let mut file = File::open(&self.path)?;
        let mut runs_samples = Vec::with_capacity(self.tracks.len());
        for (ti, (track, range)) in self.tracks.iter().zip(&seg.ranges).enumerate() {
            if only.is_some_and(|o| o != ti) {
                continue;
            }
            let infos = track
                .samples
                .get(range.clone())
                .ok_or(VodError::NoSegment)?;
            let mut samples = Vec::with_capacity(infos.len());
            for info in infos {
                let mut buf = vec![0u8; info.size as usize];
                file.seek(SeekFrom::Start(info.offset))?;
                file.read_exact(&mut buf)?;
                samples.push(Sample {
                    duration: info.duration,
                    cts_offset: info.cts_offset,
                    keyframe: info.keyframe,
                    data: Bytes::from(buf),
                });
            }
            let base = infos.first().map_or(0, |s| s.dts);
            runs_samples.push((track.id, base, samples));
        }
        let runs: Vec<TrackRun> = runs_samples
            .iter()
            .map(|(id, base, samples)| TrackRun {
                track_id: *id,
                base_decode_time: *base,
                samples,
            })
            .collect();
        Ok(fmp4::fragment(
            u32::try_from(index + 1).unwrap_or(u32::MAX),
            &runs,
        ))
    }
}

impl Library {
    pub fn new(dir: &Path, segment_target: Duration, max_moov: u64) -> std::io::Result<Self> {
        Ok(Self {
            dir: dir.canonicalize()?,
            segment_target,
            max_moov,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Names of the MP4 files (without extension) that can be served: those that
    /// [`resolve`](Self::resolve) accepts, so a symlink out of the folder, a dangling
    /// one or a folder named `x.mp4` is not listed.
    pub fn list(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().and_then(|x| x.to_str()) == Some("mp4") {
                    if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                        if valid_name(stem) && self.resolve(stem).is_ok() {
                            out.push(stem.to_string());
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Resolves `name` to a file inside the media folder.
    pub fn resolve(&self, name: &str) -> Result<PathBuf, VodError> {
        if !valid_name(name) {
            return Err(VodError::BadName);
        }
        let file = if name.ends_with(".mp4") {
            name.to_string()
        } else {
            format!("{name}.mp4")
        };
        let path = self
            .dir
            .join(file)
            .canonicalize()
            .map_err(|_| VodError::NotFound)?;
        if !path.starts_with(&self.dir) || !path.is_file() {
            return Err(VodError::NotFound);
        }
        Ok(path)
    }

    /// The parsed asset (cached while the file is unchanged).
    pub fn asset(&self, name: &str) -> Result<Arc<Asset>, VodError> {
        let path = self.resolve(name)?;
        let meta = std::fs::metadata(&path)?;
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if let Some((t, len, a)) = self.cache.lock().get(&path) {
            if *t == mtime && *len == meta.len() {
                return Ok(a.clone());
            }
        }
        let asset = Arc::new(load(&path, self.segment_target, self.max_moov)?);
        let mut cache = self.cache.lock();
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(path, (mtime, meta.len(), asset.clone()));
        Ok(asset)
    }
}

/// Finds and reads the `moov` box of the file at `path`.
pub fn read_moov(path: &Path, max_moov: u64) -> Result<Vec<u8>, VodError> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut pos = 0u64;
    while pos < len {
        let mut head = [0u8; 16];
        let n = usize::try_from((len - pos).min(16)).unwrap_or(16);
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut head[..n])?;
        let Some(h) =
            mp4::read_box_header(&head[..n]).map_err(|e| VodError::Format(e.to_string()))?
        else {
            break;
        };
        let size = h.size.unwrap_or(len - pos);
        if size < u64::from(h.header_len) {
            return Err(VodError::Format("box smaller than its header".into()));
        }
        if &h.kind == b"moov" {
            if size > max_moov {
                return Err(VodError::TooLarge(max_moov));
            }
            let mut buf =
                vec![0u8; usize::try_from(size).map_err(|_| VodError::TooLarge(max_moov))?];
            file.seek(SeekFrom::Start(pos))?;
            file.read_exact(&mut buf)?;
            return Ok(buf);
        }
        pos = pos.saturating_add(size);
    }
    Err(VodError::Format("no moov box".into()))
}

fn load(path: &Path, segment_target: Duration, max_moov: u64) -> Result<Asset, VodError> {
    let moov = read_moov(path, max_moov)?;
    let file = mp4::parse_moov(&moov).map_err(|e| VodError::Format(e.to_string()))?;
    let mut tracks = Vec::new();
    let mut next_id = 1;
    for t in file.tracks {
        if let Some(track) = usable(t, next_id)? {
            tracks.push(track);
            next_id += 1;
        }
    }
    // Video first: it decides where segments are cut.
    tracks.sort_by_key(|t| !t.codec.is_video());
    let Some(lead) = tracks.first() else {
        return Err(VodError::Format("no H.264, H.265, AV1 or AAC track".into()));
    };
    let timescale = lead.timescale.max(1);
    let target = (segment_target.as_secs_f64() * f64::from(timescale)) as u64;
    // Cut points on the lead track: first sync sample at or after the target.
    let mut cuts = vec![0usize];
    let mut seg_start = lead.samples.first().map_or(0, |s| s.dts);
    for (i, s) in lead.samples.iter().enumerate().skip(1) {
        if s.keyframe && s.dts.saturating_sub(seg_start) >= target {
            cuts.push(i);
            seg_start = s.dts;
        }
    }
    let lead_end = lead
        .samples
        .last()
        .map_or(0, |s| s.dts + u64::from(s.duration));
    let mut segments = Vec::with_capacity(cuts.len());
    let mut cursors = vec![0usize; tracks.len()];
    for (n, &cut) in cuts.iter().enumerate() {
        let end_idx = cuts.get(n + 1).copied().unwrap_or(lead.samples.len());
        let start = lead.samples.get(cut).map_or(0, |s| s.dts);
        let end = lead.samples.get(end_idx).map_or(lead_end, |s| s.dts);
        let last = n + 1 == cuts.len();
        let mut ranges = Vec::with_capacity(tracks.len());
        let mut bytes = 0u64;
        for (ti, t) in tracks.iter().enumerate() {
            let from = cursors[ti];
            let to = if ti == 0 {
                end_idx
            } else if last {
                t.samples.len()
            } else {
                // Other tracks: samples that start before the segment ends (in seconds).
                let end_secs = end as f64 / f64::from(timescale);
                let mut k = from;
                while let Some(s) = t.samples.get(k) {
                    if s.dts as f64 / f64::from(t.timescale.max(1)) >= end_secs {
                        break;
                    }
                    k += 1;
                }
                k
            };
            bytes += t.samples[from..to]
                .iter()
                .map(|s| u64::from(s.size))
                .sum::<u64>();
            ranges.push(from..to);
            cursors[ti] = to;
        }
        segments.push(AssetSegment {
            start,
            duration: end.saturating_sub(start),
            ranges,
            bytes,
        });
    }
    let init = fmp4::init_segment(
        &tracks
            .iter()
            .map(|t| Track {
                id: t.id,
                timescale: t.timescale,
                codec: t.codec.clone(),
            })
            .collect::<Vec<_>>(),
    );
    Ok(Asset {
        path: path.to_path_buf(),
        tracks,
        segments,
        init,
        timescale,
        digests: std::sync::OnceLock::new(),
    })
}

fn usable(t: Mp4Track, id: u32) -> Result<Option<AssetTrack>, VodError> {
    if t.samples.is_empty() {
        return Ok(None);
    }
    let codec = match (&t.kind, t.entry) {
        (TrackKind::Video, SampleEntry::Avc { avcc, .. }) => TrackCodec::Avc(
            AvcConfig::parse(avcc).map_err(|e| VodError::Format(format!("avcC: {e}")))?,
        ),
        (TrackKind::Video, SampleEntry::Hevc { hvcc, .. }) => TrackCodec::Hevc(
            HevcConfig::parse(hvcc).map_err(|e| VodError::Format(format!("hvcC: {e}")))?,
        ),
        (TrackKind::Video, SampleEntry::Av1 { av1c, .. }) => TrackCodec::Av1(
            Av1Config::parse(av1c).map_err(|e| VodError::Format(format!("av1C: {e}")))?,
        ),
        (TrackKind::Audio, SampleEntry::Aac { asc, .. }) => TrackCodec::Aac(
            AacConfig::parse(asc).map_err(|e| VodError::Format(format!("esds: {e}")))?,
        ),
        _ => return Ok(None),
    };
    Ok(Some(AssetTrack {
        id,
        timescale: t.timescale,
        codec,
        samples: t.samples,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_only_what_can_be_served() {
        let root = tempfile::tempdir().expect("tempdir");
        let media = root.path().join("media");
        std::fs::create_dir(&media).expect("media folder");
        std::fs::write(media.join("plain.mp4"), b"x").expect("file");
        std::fs::write(root.path().join("secret.mp4"), b"x").expect("file outside");
        std::fs::create_dir(media.join("folder.mp4")).expect("folder");
        #[cfg(unix)]
        {
            use std::os::unix::fs::symlink;
            symlink(root.path().join("secret.mp4"), media.join("outside.mp4")).expect("link");
            symlink(media.join("gone.mp4"), media.join("dangling.mp4")).expect("link");
            symlink(media.join("plain.mp4"), media.join("inside.mp4")).expect("link");
        }
        let lib = Library::new(&media, Duration::from_secs(2), 1 << 20).expect("library");
        let listed = lib.list();
        for name in &listed {
            assert!(lib.resolve(name).is_ok(), "{name} is listed but not served");
        }
        #[cfg(unix)]
        assert_eq!(listed, vec!["inside".to_string(), "plain".to_string()]);
    }
}
