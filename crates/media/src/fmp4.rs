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
//! read MP4 files. It writes H.264 (`avc1` + `avcC`), H.265 (`hvc1` + `hvcC`,
//! parameter sets out of band as CMAF's `hvc1` brand asks), AV1 (`av01` + `av1C`,
//! samples being OBUs without temporal delimiters), AAC (`mp4a` + `esds`) and Opus
//! (`Opus` + `dOps`) sample entries; H.265 and AV1 samples must already be in their
//! MP4 form (the ingest does that), they are copied as they are.
//!
//! Size limits: fields are 32-bit in the boxes written here. A sample larger
//! than 4 GiB or a fragment whose sample data exceeds 2 GiB cannot be
//! described; such values are saturated rather than panicking (the `mdat`
//! itself switches to a 64-bit `largesize` when needed). Live CMAF chunks are
//! many orders of magnitude below these limits.

use crate::bmff::{self, header_len_for, tfhd, trun, Writer};
use crate::codec::{AacConfig, OpusConfig, TrackCodec, OPUS_RATE};
use bytes::Bytes;

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
/// `trun` flags: data-offset, sample-duration, sample-size, sample-flags and
/// sample-composition-time-offset present.
const TRUN_FLAGS: u32 = trun::DATA_OFFSET
    | trun::SAMPLE_DURATION
    | trun::SAMPLE_SIZE
    | trun::SAMPLE_FLAGS
    | trun::SAMPLE_CTS;
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
    let mut w = Writer::with_capacity(
        1024 + tracks
            .iter()
            .map(|t| match &t.codec {
                TrackCodec::Avc(c) => c.raw.len(),
                TrackCodec::Hevc(c) => c.raw.len(),
                TrackCodec::Av1(c) => c.raw.len(),
                TrackCodec::Aac(c) => c.raw.len(),
                TrackCodec::Opus(c) => c.raw.len(),
            })
            .sum::<usize>(),
    );
    w.plain(b"ftyp", |w| {
        w.bytes(b"iso6");
        w.u32(0);
        for brand in [b"iso6", b"cmfc", b"isom", b"mp41"] {
            w.bytes(brand);
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
                    w.u32(track.id);
                    w.u32(1); // default_sample_description_index
                    w.u32(0); // default_sample_duration
                    w.u32(0); // default_sample_size
                    w.u32(0); // default_sample_flags
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
    let mdat_header_len = header_len_for(payload_len) as u64;

    let mut w = Writer::with_capacity(
        (64 + runs.len() * 64 + sample_count * 16)
            .saturating_add(usize::try_from(payload_len + mdat_header_len).unwrap_or(0)),
    );
    // Positions of each trun's data_offset field, patched once the moof size is known.
    let mut data_offset_fields = Vec::with_capacity(runs.len());
    w.plain(b"moof", |w| {
        w.full(b"mfhd", 0, 0, |w| w.u32(sequence_number));
        for run in &runs {
            w.plain(b"traf", |w| {
                w.full(b"tfhd", 0, tfhd::DEFAULT_BASE_IS_MOOF, |w| {
                    w.u32(run.track_id);
                });
                w.full(b"tfdt", 1, 0, |w| w.u64(run.base_decode_time));
                w.full(b"trun", 1, TRUN_FLAGS, |w| {
                    w.u32(clamp_u32(run.samples.len()));
                    data_offset_fields.push(w.len());
                    w.i32(0); // data_offset, patched below
                    for s in run.samples {
                        w.u32(s.duration);
                        w.u32(clamp_u32(s.data.len()));
                        w.u32(if s.keyframe {
                            FLAGS_SYNC
                        } else {
                            FLAGS_NON_SYNC
                        });
                        w.i32(s.cts_offset);
                    }
                });
            });
        }
    });

    // data_offset is relative to the first byte of the moof (default-base-is-moof),
    // which is the first byte of the output.
    let mut offset = w.len() as u64 + mdat_header_len;
    for (field, run) in data_offset_fields.into_iter().zip(&runs) {
        let value = i32::try_from(offset).unwrap_or(i32::MAX);
        w.patch_u32(field, value as u32);
        offset += run.samples.iter().map(|s| s.data.len() as u64).sum::<u64>();
    }

    w.header(b"mdat", payload_len);
    for s in runs.iter().flat_map(|r| r.samples.iter()) {
        w.bytes(&s.data);
    }
    w.finish()
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn clamp_u16(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn write_mvhd(w: &mut Writer, next_track_id: u32) {
    w.full(b"mvhd", 0, 0, |w| {
        w.u32(0); // creation_time
        w.u32(0); // modification_time
        w.u32(1000); // timescale (movie-level, unused by fragments)
        w.u32(0); // duration: unknown
        w.u32(0x0001_0000); // rate 1.0
        w.u16(0x0100); // volume 1.0
        w.zeros(10); // reserved
        for m in MATRIX {
            w.u32(m);
        }
        w.zeros(24); // pre_defined
        w.u32(next_track_id);
    });
}

fn write_trak(w: &mut Writer, track: &Track) {
    let (is_video, width, height) = match &track.codec {
        TrackCodec::Avc(c) => (true, clamp_u16(c.width), clamp_u16(c.height)),
        TrackCodec::Hevc(c) => (true, clamp_u16(c.width), clamp_u16(c.height)),
        TrackCodec::Av1(c) => {
            let (w, h) = c.dimensions.unwrap_or((0, 0));
            (true, clamp_u16(w), clamp_u16(h))
        }
        TrackCodec::Aac(_) | TrackCodec::Opus(_) => (false, 0, 0),
    };
    w.plain(b"trak", |w| {
        // flags: track_enabled | track_in_movie
        w.full(b"tkhd", 0, 0x3, |w| {
            w.u32(0); // creation_time
            w.u32(0); // modification_time
            w.u32(track.id);
            w.u32(0); // reserved
            w.u32(0); // duration
            w.zeros(8); // reserved
            w.u16(0); // layer
            w.u16(0); // alternate_group
            w.u16(if is_video { 0 } else { 0x0100 }); // volume
            w.u16(0); // reserved
            for m in MATRIX {
                w.u32(m);
            }
            w.u32(u32::from(width) << 16);
            w.u32(u32::from(height) << 16);
        });
        w.plain(b"mdia", |w| {
            w.full(b"mdhd", 0, 0, |w| {
                w.u32(0); // creation_time
                w.u32(0); // modification_time
                w.u32(track.timescale);
                w.u32(0); // duration
                w.u16(LANGUAGE_UND);
                w.u16(0); // pre_defined
            });
            w.full(b"hdlr", 0, 0, |w| {
                w.u32(0); // pre_defined
                w.bytes(if is_video { b"vide" } else { b"soun" });
                w.zeros(12); // reserved
                w.bytes(if is_video {
                    b"VideoHandler\0"
                } else {
                    b"SoundHandler\0"
                });
            });
            w.plain(b"minf", |w| {
                if is_video {
                    w.full(b"vmhd", 0, 1, |w| {
                        w.u16(0); // graphicsmode
                        w.zeros(6); // opcolor
                    });
                } else {
                    w.full(b"smhd", 0, 0, |w| {
                        w.u16(0); // balance
                        w.u16(0); // reserved
                    });
                }
                w.plain(b"dinf", |w| {
                    w.full(b"dref", 0, 0, |w| {
                        w.u32(1); // entry_count
                        w.full(b"url ", 0, 1, |_| {}); // self-contained
                    });
                });
                w.plain(b"stbl", |w| {
                    w.full(b"stsd", 0, 0, |w| {
                        w.u32(1); // entry_count
                        match &track.codec {
                            TrackCodec::Avc(c) => {
                                write_visual(w, b"avc1", b"avcC", &c.raw, width, height)
                            }
                            TrackCodec::Hevc(c) => {
                                write_visual(w, b"hvc1", b"hvcC", &c.raw, width, height)
                            }
                            TrackCodec::Av1(c) => {
                                write_visual(w, b"av01", b"av1C", &c.raw, width, height)
                            }
                            TrackCodec::Aac(c) => write_mp4a(w, c),
                            TrackCodec::Opus(c) => write_opus(w, c),
                        }
                    });
                    for empty in [b"stts", b"stsc", b"stco"] {
                        w.full(empty, 0, 0, |w| w.u32(0)); // entry_count
                    }
                    w.full(b"stsz", 0, 0, |w| {
                        w.u32(0); // sample_size
                        w.u32(0); // sample_count
                    });
                });
            });
        });
    });
}

fn write_sample_entry_header(w: &mut Writer) {
    w.zeros(6); // reserved
    w.u16(1); // data_reference_index
}

/// A visual sample entry (`avc1`, `hvc1`, `av01`) with its configuration box
/// holding `record` verbatim.
fn write_visual(
    w: &mut Writer,
    entry: &[u8; 4],
    config: &[u8; 4],
    record: &[u8],
    width: u16,
    height: u16,
) {
    w.plain(entry, |w| {
        write_sample_entry_header(w);
        w.u16(0); // pre_defined
        w.u16(0); // reserved
        w.zeros(12); // pre_defined
        w.u16(width);
        w.u16(height);
        w.u32(0x0048_0000); // horizresolution 72 dpi
        w.u32(0x0048_0000); // vertresolution 72 dpi
        w.u32(0); // reserved
        w.u16(1); // frame_count
        w.zeros(32); // compressorname (empty Pascal string)
        w.u16(0x0018); // depth
        w.i16(-1); // pre_defined
        w.plain(config, |w| w.bytes(record));
    });
}

fn write_mp4a(w: &mut Writer, c: &AacConfig) {
    w.plain(b"mp4a", |w| {
        write_sample_entry_header(w);
        w.zeros(8); // reserved
        w.u16(u16::from(c.channels));
        w.u16(16); // samplesize
        w.u16(0); // pre_defined
        w.u16(0); // reserved
                  // 16.16 fixed point; rates above 65535 Hz do not fit and are written
                  // as 0 (the decoder takes the real rate from the ASC).
        w.u32(u16::try_from(c.sample_rate).map_or(0, |r| u32::from(r) << 16));
        w.full(b"esds", 0, 0, |w| write_es_descriptor(w, &c.raw));
    });
}

/// `Opus` sample entry with its `dOps` box ("Encapsulation of Opus in ISO Base Media
/// File Format", §4.3: big-endian fields of the `OpusHead`, version 0, mapping
/// family 0 without a table).
fn write_opus(w: &mut Writer, c: &OpusConfig) {
    w.plain(b"Opus", |w| {
        write_sample_entry_header(w);
        w.zeros(8); // reserved
        w.u16(u16::from(c.channels));
        w.u16(16); // samplesize
        w.u16(0); // pre_defined
        w.u16(0); // reserved
        w.u32(OPUS_RATE << 16);
        w.plain(b"dOps", |w| {
            w.u8(0); // Version
            w.u8(c.channels); // OutputChannelCount
            w.u16(c.pre_skip);
            w.u32(c.input_sample_rate);
            w.i16(c.output_gain);
            w.u8(0); // ChannelMappingFamily
        });
    });
}

/// ES_Descriptor > DecoderConfigDescriptor > DecSpecificInfo, SLConfigDescriptor
/// (ISO/IEC 14496-1 §7.2.6).
fn write_es_descriptor(w: &mut Writer, asc: &[u8]) {
    let dsi_len = bmff::descriptor_len(asc.len());
    let dcd_body = 13 + dsi_len;
    let dcd_len = bmff::descriptor_len(dcd_body);
    let sl_len = bmff::descriptor_len(1);
    let es_body = 3 + dcd_len + sl_len;

    w.descriptor_header(0x03, es_body); // ES_DescrTag
    w.u16(0); // ES_ID: 0 in files (ISO/IEC 14496-14 §3.1.2)
    w.u8(0); // no dependence, URL or OCR; priority 0

    w.descriptor_header(0x04, dcd_body); // DecoderConfigDescrTag
    w.u8(0x40); // objectTypeIndication: MPEG-4 Audio
    w.u8((0x05 << 2) | 1); // streamType audio, upStream 0, reserved 1
    w.zeros(3); // bufferSizeDB: unknown
    w.u32(0); // maxBitrate: unknown
    w.u32(0); // avgBitrate: unknown (variable)

    w.descriptor_header(0x05, asc.len()); // DecSpecificInfoTag
    w.bytes(asc);

    w.descriptor_header(0x06, 1); // SLConfigDescrTag
    w.u8(0x02); // predefined: reserved for MP4 files
}

#[cfg(test)]
mod tests;
