//! CMAF fragmented-MP4 writer (ISO/IEC 14496-12, ISO/IEC 23000-19).
//!
//! [`init_segment`] builds the CMAF header (`ftyp` + `moov` with empty sample
//! tables and an `mvex`), and [`fragment`] builds one CMAF chunk/fragment
//! (`moof` + a single `mdat`). Both are pure functions from already-parsed
//! codec configurations and samples to bytes: H.264 samples must already be
//! AVCC (length-prefixed NAL units, exactly what FLV carries) and AAC samples
//! raw access units; both are copied into `mdat` untouched.
//!
//! This module does not decide fragment boundaries, compute timestamps or
//! durations, convert Annex B, write `sidx`/`styp`/`emsg`/`prft`, encrypt, or
//! read MP4 files. It writes only H.264 (`avc1` + `avcC`) and AAC (`mp4a` +
//! `esds`) sample entries.
//!
//! Size limits: fields are 32-bit in the boxes written here. A sample larger
//! than 4 GiB or a fragment whose sample data exceeds 2 GiB cannot be
//! described; such values are saturated rather than panicking (the `mdat`
//! itself switches to a 64-bit `largesize` when needed). Live CMAF chunks are
//! many orders of magnitude below these limits.

use crate::codec::{AacConfig, AvcConfig, TrackCodec};
use bytes::{BufMut, Bytes, BytesMut};

/// One track of the presentation.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    /// `track_ID`, non-zero and unique within the presentation.
    pub id: u32,
    /// Media timescale (ticks per second) used by `mdhd`, `tfdt` and `trun`.
    pub timescale: u32,
    /// Codec configuration; its `raw` record goes into `avcC` / `esds`.
    pub codec: TrackCodec,
}

/// One media sample (access unit) of a fragment.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Decode duration in the track's timescale.
    pub duration: u32,
    /// Composition time minus decode time, in the track's timescale.
    pub cts_offset: i32,
    /// Sync sample (IDR for video; every AAC frame should be `true`).
    pub keyframe: bool,
    /// Sample bytes: AVCC NAL units for H.264, a raw AAC frame for AAC.
    pub data: Bytes,
}

/// The samples of one track inside a fragment.
#[derive(Clone, Copy, Debug)]
pub struct TrackRun<'a> {
    /// `track_ID` of the samples.
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale (`tfdt`).
    pub base_decode_time: u64,
    /// Samples in decode order.
    pub samples: &'a [Sample],
}

/// `sample_flags` of a sync sample: sample_depends_on = 2 (independent).
const FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: sample_depends_on = 1, is_non_sync.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;
/// `tfhd` flag: default-base-is-moof.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags: data-offset, sample-duration, sample-size, sample-flags and
/// sample-composition-time-offset present.
const TRUN_FLAGS: u32 = 0x00_0001 | 0x00_0100 | 0x00_0200 | 0x00_0400 | 0x00_0800;
/// Identity transformation matrix used by `mvhd` and `tkhd`.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];
/// ISO-639-2/T "und" packed as three 5-bit letters.
const LANGUAGE_UND: u16 = 0x55c4;

/// Builds the CMAF header: ftyp + moov with
/// mvhd, one trak per track (tkhd with width/height for video, volume for audio; mdia/mdhd with timescale,
/// hdlr vide/soun, minf with vmhd/smhd, dinf/dref, stbl with avc1+avcC (raw record) or mp4a+esds
/// (ES_Descriptor > DecoderConfigDescriptor(objectType 0x40, streamType 5) > DecSpecificInfo = raw ASC),
/// empty stts/stsc/stsz/stco), mvex with one trex per track.
///
/// Brands: major `iso6` (minor version 0), compatible `iso6`, `cmfc` (CMAF
/// structural brand), `isom`, `mp41`. Durations are 0 (unknown, live).
/// Video dimensions come from the parsed SPS and are clamped to 65535.
pub fn init_segment(tracks: &[Track]) -> Bytes {
    let mut w = BoxWriter::with_capacity(
        1024 + tracks
            .iter()
            .map(|t| match &t.codec {
                TrackCodec::Avc(c) => c.raw.len(),
                TrackCodec::Aac(c) => c.raw.len(),
            })
            .sum::<usize>(),
    );
    w.plain(b"ftyp", |w| {
        w.buf.put_slice(b"iso6");
        w.buf.put_u32(0);
        for brand in [b"iso6", b"cmfc", b"isom", b"mp41"] {
            w.buf.put_slice(brand);
        }
    });
    w.plain(b"moov", |w| {
        let next_track_id = tracks
            .iter()
            .map(|t| t.id)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        write_mvhd(w, next_track_id);
        for track in tracks {
            write_trak(w, track);
        }
        w.plain(b"mvex", |w| {
            for track in tracks {
                w.full(b"trex", 0, 0, |w| {
                    w.buf.put_u32(track.id);
                    w.buf.put_u32(1); // default_sample_description_index
                    w.buf.put_u32(0); // default_sample_duration
                    w.buf.put_u32(0); // default_sample_size
                    w.buf.put_u32(0); // default_sample_flags
                });
            }
        });
    });
    w.finish()
}

/// One CMAF chunk/fragment: moof (mfhd with sequence_number; per run a traf with tfhd
/// (default-base-is-moof), tfdt version 1, trun version 1 with data_offset, per-sample duration,
/// size, flags (keyframe: depends_on=2 / non-sync: depends_on=1 + is_non_sync flag), signed cts offset))
/// followed by a single mdat holding the samples of every run in order. Runs with no samples are skipped.
///
/// If every run is empty the result is a `moof` holding only `mfhd`, followed
/// by an empty `mdat`.
pub fn fragment(sequence_number: u32, runs: &[TrackRun]) -> Bytes {
    let runs: Vec<&TrackRun> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let payload_len: u64 = runs
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(|s| s.data.len() as u64)
        .sum();
    let sample_count: usize = runs.iter().map(|r| r.samples.len()).sum();
    let mdat_header_len: u64 = if payload_len + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    };

    let mut w = BoxWriter::with_capacity(
        (64 + runs.len() * 64 + sample_count * 16)
            .saturating_add(usize::try_from(payload_len + mdat_header_len).unwrap_or(0)),
    );
    // Positions of each trun's data_offset field, patched once the moof size is known.
    let mut data_offset_fields = Vec::with_capacity(runs.len());
    w.plain(b"moof", |w| {
        w.full(b"mfhd", 0, 0, |w| w.buf.put_u32(sequence_number));
        for run in &runs {
            w.plain(b"traf", |w| {
                w.full(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |w| {
                    w.buf.put_u32(run.track_id);
                });
                w.full(b"tfdt", 1, 0, |w| w.buf.put_u64(run.base_decode_time));
                w.full(b"trun", 1, TRUN_FLAGS, |w| {
                    w.buf.put_u32(clamp_u32(run.samples.len()));
                    data_offset_fields.push(w.buf.len());
                    w.buf.put_i32(0); // data_offset, patched below
                    for s in run.samples {
                        w.buf.put_u32(s.duration);
                        w.buf.put_u32(clamp_u32(s.data.len()));
                        w.buf.put_u32(if s.keyframe {
                            FLAGS_SYNC
                        } else {
                            FLAGS_NON_SYNC
                        });
                        w.buf.put_i32(s.cts_offset);
                    }
                });
            });
        }
    });

    // data_offset is relative to the first byte of the moof (default-base-is-moof),
    // which is the first byte of the output.
    let mut offset = w.buf.len() as u64 + mdat_header_len;
    for (field, run) in data_offset_fields.into_iter().zip(&runs) {
        let value = i32::try_from(offset).unwrap_or(i32::MAX);
        w.patch_u32(field, value as u32);
        offset += run.samples.iter().map(|s| s.data.len() as u64).sum::<u64>();
    }

    if mdat_header_len == 16 {
        w.buf.put_u32(1);
        w.buf.put_slice(b"mdat");
        w.buf.put_u64(payload_len + 16);
    } else {
        // Checked above: fits in 32 bits.
        w.buf.put_u32((payload_len + 8) as u32);
        w.buf.put_slice(b"mdat");
    }
    for s in runs.iter().flat_map(|r| r.samples.iter()) {
        w.buf.put_slice(&s.data);
    }
    w.finish()
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn clamp_u16(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn write_mvhd(w: &mut BoxWriter, next_track_id: u32) {
    w.full(b"mvhd", 0, 0, |w| {
        w.buf.put_u32(0); // creation_time
        w.buf.put_u32(0); // modification_time
        w.buf.put_u32(1000); // timescale (movie-level, unused by fragments)
        w.buf.put_u32(0); // duration: unknown
        w.buf.put_u32(0x0001_0000); // rate 1.0
        w.buf.put_u16(0x0100); // volume 1.0
        w.buf.put_bytes(0, 10); // reserved
        for m in MATRIX {
            w.buf.put_u32(m);
        }
        w.buf.put_bytes(0, 24); // pre_defined
        w.buf.put_u32(next_track_id);
    });
}

fn write_trak(w: &mut BoxWriter, track: &Track) {
    let (is_video, width, height) = match &track.codec {
        TrackCodec::Avc(c) => (true, clamp_u16(c.width), clamp_u16(c.height)),
        TrackCodec::Aac(_) => (false, 0, 0),
    };
    w.plain(b"trak", |w| {
        // flags: track_enabled | track_in_movie
        w.full(b"tkhd", 0, 0x3, |w| {
            w.buf.put_u32(0); // creation_time
            w.buf.put_u32(0); // modification_time
            w.buf.put_u32(track.id);
            w.buf.put_u32(0); // reserved
            w.buf.put_u32(0); // duration
            w.buf.put_bytes(0, 8); // reserved
            w.buf.put_u16(0); // layer
            w.buf.put_u16(0); // alternate_group
            w.buf.put_u16(if is_video { 0 } else { 0x0100 }); // volume
            w.buf.put_u16(0); // reserved
            for m in MATRIX {
                w.buf.put_u32(m);
            }
            w.buf.put_u32(u32::from(width) << 16);
            w.buf.put_u32(u32::from(height) << 16);
        });
        w.plain(b"mdia", |w| {
            w.full(b"mdhd", 0, 0, |w| {
                w.buf.put_u32(0); // creation_time
                w.buf.put_u32(0); // modification_time
                w.buf.put_u32(track.timescale);
                w.buf.put_u32(0); // duration
                w.buf.put_u16(LANGUAGE_UND);
                w.buf.put_u16(0); // pre_defined
            });
            w.full(b"hdlr", 0, 0, |w| {
                w.buf.put_u32(0); // pre_defined
                w.buf.put_slice(if is_video { b"vide" } else { b"soun" });
                w.buf.put_bytes(0, 12); // reserved
                w.buf.put_slice(if is_video {
                    b"VideoHandler\0"
                } else {
                    b"SoundHandler\0"
                });
            });
            w.plain(b"minf", |w| {
                if is_video {
                    w.full(b"vmhd", 0, 1, |w| {
                        w.buf.put_u16(0); // graphicsmode
                        w.buf.put_bytes(0, 6); // opcolor
                    });
                } else {
                    w.full(b"smhd", 0, 0, |w| {
                        w.buf.put_u16(0); // balance
                        w.buf.put_u16(0); // reserved
                    });
                }
                w.plain(b"dinf", |w| {
                    w.full(b"dref", 0, 0, |w| {
                        w.buf.put_u32(1); // entry_count
                        w.full(b"url ", 0, 1, |_| {}); // self-contained
                    });
                });
                w.plain(b"stbl", |w| {
                    w.full(b"stsd", 0, 0, |w| {
                        w.buf.put_u32(1); // entry_count
                        match &track.codec {
                            TrackCodec::Avc(c) => write_avc1(w, c, width, height),
                            TrackCodec::Aac(c) => write_mp4a(w, c),
                        }
                    });
                    for empty in [b"stts", b"stsc", b"stco"] {
                        w.full(empty, 0, 0, |w| w.buf.put_u32(0)); // entry_count
                    }
                    w.full(b"stsz", 0, 0, |w| {
                        w.buf.put_u32(0); // sample_size
                        w.buf.put_u32(0); // sample_count
                    });
                });
            });
        });
    });
}

fn write_sample_entry_header(w: &mut BoxWriter) {
    w.buf.put_bytes(0, 6); // reserved
    w.buf.put_u16(1); // data_reference_index
}

fn write_avc1(w: &mut BoxWriter, c: &AvcConfig, width: u16, height: u16) {
    w.plain(b"avc1", |w| {
        write_sample_entry_header(w);
        w.buf.put_u16(0); // pre_defined
        w.buf.put_u16(0); // reserved
        w.buf.put_bytes(0, 12); // pre_defined
        w.buf.put_u16(width);
        w.buf.put_u16(height);
        w.buf.put_u32(0x0048_0000); // horizresolution 72 dpi
        w.buf.put_u32(0x0048_0000); // vertresolution 72 dpi
        w.buf.put_u32(0); // reserved
        w.buf.put_u16(1); // frame_count
        w.buf.put_bytes(0, 32); // compressorname (empty Pascal string)
        w.buf.put_u16(0x0018); // depth
        w.buf.put_i16(-1); // pre_defined
        w.plain(b"avcC", |w| w.buf.put_slice(&c.raw));
    });
}

fn write_mp4a(w: &mut BoxWriter, c: &AacConfig) {
    w.plain(b"mp4a", |w| {
        write_sample_entry_header(w);
        w.buf.put_bytes(0, 8); // reserved
        w.buf.put_u16(u16::from(c.channels));
        w.buf.put_u16(16); // samplesize
        w.buf.put_u16(0); // pre_defined
        w.buf.put_u16(0); // reserved
                          // 16.16 fixed point; rates above 65535 Hz do not fit and are written
                          // as 0 (the decoder takes the real rate from the ASC).
        w.buf
            .put_u32(u16::try_from(c.sample_rate).map_or(0, |r| u32::from(r) << 16));
        w.full(b"esds", 0, 0, |w| write_es_descriptor(&mut w.buf, &c.raw));
    });
}

/// ES_Descriptor > DecoderConfigDescriptor > DecSpecificInfo, SLConfigDescriptor
/// (ISO/IEC 14496-1 §7.2.6).
fn write_es_descriptor(buf: &mut BytesMut, asc: &[u8]) {
    let dsi_len = descriptor_len(asc.len());
    let dcd_body = 13 + dsi_len;
    let dcd_len = descriptor_len(dcd_body);
    let sl_len = descriptor_len(1);
    let es_body = 3 + dcd_len + sl_len;

    write_descriptor_header(buf, 0x03, es_body); // ES_DescrTag
    buf.put_u16(0); // ES_ID: 0 in files (ISO/IEC 14496-14 §3.1.2)
    buf.put_u8(0); // no dependence, URL or OCR; priority 0

    write_descriptor_header(buf, 0x04, dcd_body); // DecoderConfigDescrTag
    buf.put_u8(0x40); // objectTypeIndication: MPEG-4 Audio
    buf.put_u8((0x05 << 2) | 1); // streamType audio, upStream 0, reserved 1
    buf.put_bytes(0, 3); // bufferSizeDB: unknown
    buf.put_u32(0); // maxBitrate: unknown
    buf.put_u32(0); // avgBitrate: unknown (variable)

    write_descriptor_header(buf, 0x05, asc.len()); // DecSpecificInfoTag
    buf.put_slice(asc);

    write_descriptor_header(buf, 0x06, 1); // SLConfigDescrTag
    buf.put_u8(0x02); // predefined: reserved for MP4 files
}

/// Bytes needed for the size field of a descriptor with `body` bytes.
fn size_field_len(body: usize) -> usize {
    match body {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        _ => 4,
    }
}

/// Total length (tag + size field + body) of a descriptor.
fn descriptor_len(body: usize) -> usize {
    1 + size_field_len(body) + body
}

/// Writes a descriptor tag and its expandable size (7 bits per byte, MSB =
/// continuation). Sizes beyond 2^28 - 1 are saturated; an ASC is never that big.
fn write_descriptor_header(buf: &mut BytesMut, tag: u8, body: usize) {
    buf.put_u8(tag);
    let body = body.min(0x0fff_ffff);
    let n = size_field_len(body);
    for i in (0..n).rev() {
        let seven = ((body >> (7 * i)) & 0x7f) as u8;
        buf.put_u8(if i == 0 { seven } else { seven | 0x80 });
    }
}

/// Appends nested boxes to one buffer, back-patching their sizes.
struct BoxWriter {
    buf: BytesMut,
}

impl BoxWriter {
    fn with_capacity(n: usize) -> Self {
        BoxWriter {
            buf: BytesMut::with_capacity(n),
        }
    }

    /// Writes a box whose body is produced by `body`.
    fn plain(&mut self, fourcc: &[u8; 4], body: impl FnOnce(&mut Self)) {
        let start = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_slice(fourcc);
        body(self);
        let size = clamp_u32(self.buf.len() - start);
        self.patch_u32(start, size);
    }

    /// Writes a full box (version + 24-bit flags) whose body is produced by `body`.
    fn full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32, body: impl FnOnce(&mut Self)) {
        self.plain(fourcc, |w| {
            w.buf
                .put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
            body(w);
        });
    }

    /// Overwrites four already-written bytes at `at`.
    fn patch_u32(&mut self, at: usize, value: u32) {
        if let Some(slot) = self.buf.get_mut(at..at + 4) {
            slot.copy_from_slice(&value.to_be_bytes());
        }
    }

    fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- a minimal box reader for structural checks ----

    #[derive(Debug, Clone)]
    struct Bx<'a> {
        kind: String,
        /// Absolute offset of the box header in the parsed buffer.
        start: usize,
        /// Absolute offset of the payload.
        payload_start: usize,
        payload: &'a [u8],
    }

    /// Parses consecutive boxes covering `data` exactly; `base` is the absolute
    /// offset of `data[0]`.
    fn read_boxes(data: &[u8], base: usize) -> Vec<Bx<'_>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            assert!(
                data.len() - pos >= 8,
                "box header truncated at {}",
                base + pos
            );
            let size32 = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            let kind = String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned();
            let (size, header) = if size32 == 1 {
                let s = u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap());
                (s as usize, 16)
            } else {
                (size32, 8)
            };
            assert!(size >= header, "{kind}: size {size} < header");
            assert!(pos + size <= data.len(), "{kind}: overruns its parent");
            out.push(Bx {
                kind,
                start: base + pos,
                payload_start: base + pos + header,
                payload: &data[pos + header..pos + size],
            });
            pos += size;
        }
        out
    }

    /// Children of a box, for the container types this writer produces.
    fn children<'a>(b: &Bx<'a>) -> Vec<Bx<'a>> {
        let skip = match b.kind.as_str() {
            "moov" | "trak" | "mdia" | "minf" | "dinf" | "stbl" | "mvex" | "moof" | "traf" => 0,
            "stsd" | "dref" => 8,
            "avc1" => 78,
            "mp4a" => 28,
            _ => return Vec::new(),
        };
        read_boxes(&b.payload[skip..], b.payload_start + skip)
    }

    /// Depth-first list of box paths, e.g. "moov/trak/tkhd".
    fn tree(data: &[u8]) -> Vec<String> {
        fn walk(b: &Bx<'_>, prefix: &str, out: &mut Vec<String>) {
            let path = if prefix.is_empty() {
                b.kind.clone()
            } else {
                format!("{prefix}/{}", b.kind)
            };
            out.push(path.clone());
            for c in children(b) {
                walk(&c, &path, out);
            }
        }
        let mut out = Vec::new();
        for b in read_boxes(data, 0) {
            walk(&b, "", &mut out);
        }
        out
    }

    /// Finds all boxes along a path like "moov/trak/mdia/mdhd".
    fn find<'a>(data: &'a [u8], path: &str) -> Vec<Bx<'a>> {
        let mut level = read_boxes(data, 0);
        let parts: Vec<&str> = path.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let matching: Vec<Bx<'a>> = level.into_iter().filter(|b| b.kind == *part).collect();
            if i + 1 == parts.len() {
                return matching;
            }
            level = matching.iter().flat_map(children).collect();
        }
        Vec::new()
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
    }

    fn be64(b: &[u8], at: usize) -> u64 {
        u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
    }

    fn hex(s: &str) -> Bytes {
        let v: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        Bytes::from(v)
    }

    const AVC_720P: &str = "0164001fffe1001a6764001facd9405005bb011000000300100000030320f183196001000668ebe3cb22c0fdf8f800";
    const AVC_1080P: &str = "01640028ffe1001b67640028acd940780227e5c044000003000400000300c83c60c65801000668ebe3cb22c0fdf8f800";

    fn video_track(id: u32, rec: &str) -> Track {
        Track {
            id,
            timescale: 90_000,
            codec: TrackCodec::Avc(AvcConfig::parse(hex(rec)).unwrap()),
        }
    }

    fn audio_track(id: u32) -> Track {
        Track {
            id,
            timescale: 44_100,
            codec: TrackCodec::Aac(AacConfig::parse(hex("121056e500")).unwrap()),
        }
    }

    #[test]
    fn init_segment_structure() {
        let tracks = [video_track(1, AVC_720P), audio_track(2)];
        let init = init_segment(&tracks);
        let stbl = |p: &str| {
            vec![
                format!("{p}/stsd"),
                // sample entry pushed below
                String::new(),
                String::new(),
                format!("{p}/stts"),
                format!("{p}/stsc"),
                format!("{p}/stco"),
                format!("{p}/stsz"),
            ]
        };
        let mut want = vec![
            "ftyp",
            "moov",
            "moov/mvhd",
            "moov/trak",
            "moov/trak/tkhd",
            "moov/trak/mdia",
            "moov/trak/mdia/mdhd",
            "moov/trak/mdia/hdlr",
            "moov/trak/mdia/minf",
            "moov/trak/mdia/minf/vmhd",
            "moov/trak/mdia/minf/dinf",
            "moov/trak/mdia/minf/dinf/dref",
            "moov/trak/mdia/minf/dinf/dref/url ",
            "moov/trak/mdia/minf/stbl",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        let p = "moov/trak/mdia/minf/stbl";
        let mut v = stbl(p);
        v[1] = format!("{p}/stsd/avc1");
        v[2] = format!("{p}/stsd/avc1/avcC");
        want.extend(v);
        want.extend(
            [
                "moov/trak",
                "moov/trak/tkhd",
                "moov/trak/mdia",
                "moov/trak/mdia/mdhd",
                "moov/trak/mdia/hdlr",
                "moov/trak/mdia/minf",
                "moov/trak/mdia/minf/smhd",
                "moov/trak/mdia/minf/dinf",
                "moov/trak/mdia/minf/dinf/dref",
                "moov/trak/mdia/minf/dinf/dref/url ",
                "moov/trak/mdia/minf/stbl",
            ]
            .map(String::from),
        );
        let mut v = stbl(p);
        v[1] = format!("{p}/stsd/mp4a");
        v[2] = format!("{p}/stsd/mp4a/esds");
        want.extend(v);
        want.extend(["moov/mvex", "moov/mvex/trex", "moov/mvex/trex"].map(String::from));
        assert_eq!(tree(&init), want);

        // ftyp brands.
        let ftyp = &find(&init, "ftyp")[0];
        assert_eq!(&ftyp.payload[..4], b"iso6");
        assert!(ftyp.payload[8..].chunks(4).any(|b| b == b"cmfc"));

        // mvhd next_track_ID.
        let mvhd = &find(&init, "moov/mvhd")[0];
        assert_eq!(mvhd.payload.len(), 100);
        assert_eq!(be32(mvhd.payload, 96), 3);

        // tkhd: ids, volume, 16.16 width/height.
        let tkhd = find(&init, "moov/trak/tkhd");
        assert_eq!(tkhd.len(), 2);
        assert_eq!(tkhd[0].payload.len(), 84);
        assert_eq!(be32(tkhd[0].payload, 0), 3); // version 0, flags enabled|in_movie
        assert_eq!(be32(tkhd[0].payload, 12), 1);
        assert_eq!(be32(tkhd[1].payload, 12), 2);
        assert_eq!(be16(tkhd[0].payload, 36), 0);
        assert_eq!(be16(tkhd[1].payload, 36), 0x0100);
        assert_eq!(be32(tkhd[0].payload, 76), 1280 << 16);
        assert_eq!(be32(tkhd[0].payload, 80), 720 << 16);
        assert_eq!(be32(tkhd[1].payload, 76), 0);

        // mdhd timescales and hdlr types.
        let mdhd = find(&init, "moov/trak/mdia/mdhd");
        assert_eq!(be32(mdhd[0].payload, 12), 90_000);
        assert_eq!(be32(mdhd[1].payload, 12), 44_100);
        let hdlr = find(&init, "moov/trak/mdia/hdlr");
        assert_eq!(&hdlr[0].payload[8..12], b"vide");
        assert_eq!(&hdlr[1].payload[8..12], b"soun");

        // avc1: dimensions and verbatim avcC.
        let avc1 = &find(&init, "moov/trak/mdia/minf/stbl/stsd/avc1")[0];
        assert_eq!(be16(avc1.payload, 6), 1); // data_reference_index
        assert_eq!(be16(avc1.payload, 24), 1280);
        assert_eq!(be16(avc1.payload, 26), 720);
        let avcc = &find(&init, "moov/trak/mdia/minf/stbl/stsd/avc1/avcC")[0];
        assert_eq!(avcc.payload, &hex(AVC_720P)[..]);

        // mp4a: channel count, sample size, 16.16 rate.
        let mp4a = &find(&init, "moov/trak/mdia/minf/stbl/stsd/mp4a")[0];
        assert_eq!(be16(mp4a.payload, 16), 2);
        assert_eq!(be16(mp4a.payload, 18), 16);
        assert_eq!(be32(mp4a.payload, 24), 44_100 << 16);

        // trex per track.
        let trex = find(&init, "moov/mvex/trex");
        assert_eq!(be32(trex[0].payload, 4), 1);
        assert_eq!(be32(trex[1].payload, 4), 2);
        assert_eq!(be32(trex[0].payload, 8), 1);

        // Empty sample tables.
        for kind in ["stts", "stsc", "stco"] {
            for b in find(&init, &format!("moov/trak/mdia/minf/stbl/{kind}")) {
                assert_eq!(b.payload, &[0u8; 8][..], "{kind}");
            }
        }
    }

    /// Parses an expandable-size MPEG-4 descriptor: (tag, body, rest).
    fn descriptor(b: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = b[0];
        let mut len = 0usize;
        let mut i = 1;
        loop {
            let byte = b[i];
            len = (len << 7) | usize::from(byte & 0x7f);
            i += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        (tag, &b[i..i + len], &b[i + len..])
    }

    #[test]
    fn esds_descriptor_chain() {
        for asc in [
            hex("121056e500"),
            hex("1190"),
            Bytes::from(vec![0x12; 200]), // forces a 2-byte size field
        ] {
            let track = Track {
                id: 7,
                timescale: 48_000,
                codec: TrackCodec::Aac(AacConfig {
                    object_type: 2,
                    sample_rate: 96_000,
                    channels: 2,
                    raw: asc.clone(),
                }),
            };
            let init = init_segment(std::slice::from_ref(&track));
            let mp4a = &find(&init, "moov/trak/mdia/minf/stbl/stsd/mp4a")[0];
            assert_eq!(be32(mp4a.payload, 24), 0, "96 kHz does not fit 16.16");
            let esds = &find(&init, "moov/trak/mdia/minf/stbl/stsd/mp4a/esds")[0];
            assert_eq!(be32(esds.payload, 0), 0);
            let (tag, es, rest) = descriptor(&esds.payload[4..]);
            assert_eq!((tag, rest.len()), (3, 0));
            assert_eq!(&es[..3], &[0, 0, 0]);
            let (tag, dcd, rest) = descriptor(&es[3..]);
            assert_eq!(tag, 4);
            assert_eq!(dcd[0], 0x40);
            assert_eq!(dcd[1] >> 2, 5);
            let (tag, dsi, after_dsi) = descriptor(&dcd[13..]);
            assert_eq!(tag, 5);
            assert_eq!(dsi, &asc[..]);
            assert!(after_dsi.is_empty());
            let (tag, sl, rest) = descriptor(rest);
            assert_eq!((tag, sl, rest.len()), (6, &[2u8][..], 0));
        }
    }

    #[test]
    fn descriptor_size_encoding() {
        for (n, want) in [
            (0usize, vec![0u8]),
            (0x7f, vec![0x7f]),
            (0x80, vec![0x81, 0x00]),
            (0x3fff, vec![0xff, 0x7f]),
            (0x4000, vec![0x81, 0x80, 0x00]),
            (0x20_0000, vec![0x81, 0x80, 0x80, 0x00]),
        ] {
            let mut b = BytesMut::new();
            write_descriptor_header(&mut b, 9, n);
            assert_eq!(b[0], 9);
            assert_eq!(&b[1..], &want[..], "{n:#x}");
            assert_eq!(descriptor_len(n), 1 + want.len() + n);
        }
    }

    #[test]
    fn init_segment_1080p_and_edge_cases() {
        let init = init_segment(&[video_track(3, AVC_1080P)]);
        let avc1 = &find(&init, "moov/trak/mdia/minf/stbl/stsd/avc1")[0];
        assert_eq!(
            (be16(avc1.payload, 24), be16(avc1.payload, 26)),
            (1920, 1080)
        );
        let mvhd = &find(&init, "moov/mvhd")[0];
        assert_eq!(be32(mvhd.payload, 96), 4);

        // No tracks: still a well-formed ftyp + moov.
        let init = init_segment(&[]);
        assert_eq!(tree(&init), ["ftyp", "moov", "moov/mvhd", "moov/mvex"]);

        // Oversized dimensions are clamped rather than wrapped.
        let mut t = video_track(u32::MAX, AVC_720P);
        if let TrackCodec::Avc(c) = &mut t.codec {
            c.width = 70_000;
        }
        let init = init_segment(&[t]);
        let avc1 = &find(&init, "moov/trak/mdia/minf/stbl/stsd/avc1")[0];
        assert_eq!(be16(avc1.payload, 24), u16::MAX);
        let mvhd = &find(&init, "moov/mvhd")[0];
        assert_eq!(be32(mvhd.payload, 96), u32::MAX);
    }

    fn samples(n: usize, seed: u8, with_key: bool) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                duration: 3000 + i as u32,
                cts_offset: if i % 3 == 1 { -1500 } else { 3000 * i as i32 },
                keyframe: with_key && i == 0,
                data: Bytes::from(vec![seed.wrapping_add(i as u8); 10 + i * 7]),
            })
            .collect()
    }

    /// Checks one fragment against its runs: box tree, tfhd/tfdt/trun fields,
    /// data_offset pointing at each run's bytes, and sizes summing to the mdat.
    fn check_fragment(frag: &[u8], seq: u32, runs: &[TrackRun]) {
        let top = read_boxes(frag, 0);
        assert_eq!(top.len(), 2);
        let (moof, mdat) = (&top[0], &top[1]);
        assert_eq!((moof.kind.as_str(), mdat.kind.as_str()), ("moof", "mdat"));
        assert_eq!(moof.start, 0);
        let mfhd = &find(frag, "moof/mfhd")[0];
        assert_eq!(be32(mfhd.payload, 4), seq);

        let nonempty: Vec<&TrackRun> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
        let trafs = find(frag, "moof/traf");
        assert_eq!(trafs.len(), nonempty.len());
        let mut expected_offset = mdat.payload_start;
        let mut expected_payload = Vec::new();
        for (traf, run) in trafs.iter().zip(&nonempty) {
            let kids = children(traf);
            let kinds: Vec<&str> = kids.iter().map(|b| b.kind.as_str()).collect();
            assert_eq!(kinds, ["tfhd", "tfdt", "trun"]);
            let (tfhd, tfdt, trun) = (&kids[0], &kids[1], &kids[2]);
            assert_eq!(be32(tfhd.payload, 0), TFHD_DEFAULT_BASE_IS_MOOF);
            assert_eq!(be32(tfhd.payload, 4), run.track_id);
            assert_eq!(tfdt.payload[0], 1, "tfdt version 1");
            assert_eq!(be64(tfdt.payload, 4), run.base_decode_time);
            assert_eq!(trun.payload[0], 1, "trun version 1");
            assert_eq!(be32(trun.payload, 0) & 0xff_ffff, 0xf01);
            let count = be32(trun.payload, 4) as usize;
            assert_eq!(count, run.samples.len());
            assert_eq!(trun.payload.len(), 12 + 16 * count);
            let data_offset = be32(trun.payload, 8) as usize;
            assert_eq!(
                data_offset, expected_offset,
                "data_offset of track {}",
                run.track_id
            );
            let mut at = data_offset;
            for (i, s) in run.samples.iter().enumerate() {
                let e = 12 + 16 * i;
                assert_eq!(be32(trun.payload, e), s.duration);
                let size = be32(trun.payload, e + 4) as usize;
                assert_eq!(size, s.data.len());
                let flags = be32(trun.payload, e + 8);
                assert_eq!(flags, if s.keyframe { 0x0200_0000 } else { 0x0101_0000 });
                assert_eq!(be32(trun.payload, e + 12) as i32, s.cts_offset);
                // The bytes at the described position are the sample.
                assert_eq!(&frag[at..at + size], &s.data[..]);
                at += size;
                expected_payload.extend_from_slice(&s.data);
            }
            expected_offset = at;
        }
        assert_eq!(expected_offset, frag.len(), "sizes sum to the mdat end");
        assert_eq!(mdat.payload, &expected_payload[..]);
    }

    #[test]
    fn fragment_two_tracks() {
        let v = samples(5, 0x10, true);
        let a = samples(8, 0x80, false)
            .into_iter()
            .map(|s| Sample {
                keyframe: true,
                cts_offset: 0,
                ..s
            })
            .collect::<Vec<_>>();
        let runs = [
            TrackRun {
                track_id: 1,
                base_decode_time: 9_000_000_000,
                samples: &v,
            },
            TrackRun {
                track_id: 2,
                base_decode_time: 441_000,
                samples: &a,
            },
        ];
        let frag = fragment(42, &runs);
        check_fragment(&frag, 42, &runs);
        assert_eq!(
            tree(&frag),
            [
                "moof",
                "moof/mfhd",
                "moof/traf",
                "moof/traf/tfhd",
                "moof/traf/tfdt",
                "moof/traf/trun",
                "moof/traf",
                "moof/traf/tfhd",
                "moof/traf/tfdt",
                "moof/traf/trun",
                "mdat"
            ]
        );
    }

    #[test]
    fn fragment_skips_empty_runs() {
        let v = samples(3, 1, true);
        let runs = [
            TrackRun {
                track_id: 1,
                base_decode_time: 0,
                samples: &[],
            },
            TrackRun {
                track_id: 2,
                base_decode_time: 5,
                samples: &v,
            },
            TrackRun {
                track_id: 3,
                base_decode_time: 0,
                samples: &[],
            },
        ];
        let frag = fragment(1, &runs);
        check_fragment(&frag, 1, &runs);
        assert_eq!(find(&frag, "moof/traf").len(), 1);

        let frag = fragment(2, &runs[..1]);
        check_fragment(&frag, 2, &runs[..1]);
        assert_eq!(tree(&frag), ["moof", "moof/mfhd", "mdat"]);
        assert_eq!(find(&frag, "mdat")[0].payload.len(), 0);
        let frag = fragment(3, &[]);
        assert_eq!(tree(&frag), ["moof", "moof/mfhd", "mdat"]);
    }

    #[test]
    fn fragment_many_shapes() {
        // Interleavings of runs of different sizes, including zero-length samples.
        let pool: Vec<Vec<Sample>> = (0..6)
            .map(|n| samples(n, n as u8 * 31, n % 2 == 0))
            .collect();
        let mut zero = samples(2, 0, false);
        zero[1].data = Bytes::new();
        for a in 0..pool.len() {
            for b in 0..pool.len() {
                let runs = [
                    TrackRun {
                        track_id: 1,
                        base_decode_time: a as u64 * 1000,
                        samples: &pool[a],
                    },
                    TrackRun {
                        track_id: 2,
                        base_decode_time: u64::MAX - b as u64,
                        samples: &pool[b],
                    },
                    TrackRun {
                        track_id: 3,
                        base_decode_time: 7,
                        samples: &zero,
                    },
                ];
                let seq = (a * 10 + b) as u32;
                check_fragment(&fragment(seq, &runs), seq, &runs);
            }
        }
    }

    #[test]
    fn init_then_fragment_from_flv_packets() {
        use crate::flv::{parse_audio, parse_video, AudioPacket, VideoPacket};
        let seq = parse_video(hex(&format!("1700000000{AVC_720P}"))).unwrap();
        let VideoPacket::SequenceHeader(rec) = seq else {
            panic!("not a sequence header")
        };
        let AudioPacket::SequenceHeader(asc) = parse_audio(hex("af00121056e500")).unwrap() else {
            panic!("not a sequence header")
        };
        let tracks = [
            Track {
                id: 1,
                timescale: 1000,
                codec: TrackCodec::Avc(AvcConfig::parse(rec).unwrap()),
            },
            Track {
                id: 2,
                timescale: 44_100,
                codec: TrackCodec::Aac(AacConfig::parse(asc).unwrap()),
            },
        ];
        let init = init_segment(&tracks);
        assert_eq!(read_boxes(&init, 0).len(), 2);
        let VideoPacket::Nalus {
            keyframe,
            composition_time_ms,
            data,
        } = parse_video(Bytes::from_static(&[
            0x17, 1, 0, 0, 40, 0, 0, 0, 2, 0x65, 0x88,
        ]))
        .unwrap()
        else {
            panic!("not NALUs")
        };
        let v = [Sample {
            duration: 40,
            cts_offset: composition_time_ms,
            keyframe,
            data,
        }];
        let runs = [TrackRun {
            track_id: 1,
            base_decode_time: 0,
            samples: &v,
        }];
        let frag = fragment(1, &runs);
        check_fragment(&frag, 1, &runs);
    }
}
