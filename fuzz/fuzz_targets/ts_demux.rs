//! Fuzz the MPEG-TS demuxer the SRT ingest feeds: arbitrary bytes, pushed in
//! input-chosen chunk sizes under small limits, must never panic, and every
//! configuration it emits must parse as the packager will parse it (H.265 records,
//! which the demuxer builds itself, must parse without error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::codec::{AacConfig, AvcConfig, HevcConfig, VideoCodec};
use media::ts::{Demuxer, Frame, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let mut d = Demuxer::new(Limits {
        max_pes_bytes: 64 * 1024,
        max_programs: 4,
        max_streams: 4,
        max_parameter_sets: 2,
    });
    for part in rest.chunks(usize::from(chunk).max(1)) {
        d.push(part);
        drain(&mut d);
    }
    d.finish();
    drain(&mut d);
});

fn drain(d: &mut Demuxer) {
    while let Some(f) = d.poll() {
        match f {
            Frame::VideoConfig {
                codec: VideoCodec::Hevc,
                record,
            } => {
                // Built and checked by the demuxer: it must parse.
                if let Err(e) = HevcConfig::parse(record) {
                    panic!("the demuxer emitted an HEVC record the packager refuses: {e}");
                }
            }
            Frame::VideoConfig { record, .. } => {
                let _ = AvcConfig::parse(record);
            }
            Frame::AudioConfig(asc) => {
                let _ = AacConfig::parse(asc);
            }
            _ => {}
        }
    }
}
