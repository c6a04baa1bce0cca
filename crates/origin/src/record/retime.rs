//! Moves CMAF fragments earlier on their timeline: every `tfdt` (base media decode
//! time) of a `moof` + `mdat` sequence is lowered by a per-track amount, in place.
//!
//! The recorder uses it so that a publisher who reconnected within the grace period
//! continues one recording without a hole: the live packager restarts such a publisher
//! a little later on the stream's timeline (in the next numbering cell), and the
//! recording closes that gap by shifting the later fragments back. Nothing else in a
//! fragment changes (sample data, durations, sequence numbers): this is no re-encode
//! and no re-mux. Sans-IO; hostile input gives an error, never a panic.
//!
//! Not here: deciding how far to shift (the recorder does), or splitting tracks
//! (`media::split`).

use media::bmff::{tfhd, trun, u32_at, u64_at, BoxError, Boxes};

/// Why a fragment could not be shifted. The input is unchanged then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetimeError {
    #[error("malformed fragment: {0}")]
    Malformed(String),
    #[error("track {track}: decode time {time} is smaller than the shift {shift}")]
    BelowZero { track: u32, time: u64, shift: u64 },
}

impl From<BoxError> for RetimeError {
    fn from(e: BoxError) -> Self {
        RetimeError::Malformed(e.to_string())
    }
}

/// Lowers every `tfdt` in `fragments` (top-level `moof` + `mdat` pairs, other
/// top-level boxes left alone) by `shift(track_ID)` ticks of that track's timescale.
/// Either every `tfdt` is rewritten or, on an error, none.
pub fn shift_decode_times(
    fragments: &mut [u8],
    shift: impl Fn(u32) -> u64,
) -> Result<(), RetimeError> {
    // Find every tfdt first (the walk borrows the buffer), then write.
    let mut edits: Vec<(usize, bool, u64)> = Vec::new();
    for b in Boxes::new(fragments) {
        let b = b?;
        if &b.kind != b"moof" {
            continue;
        }
        for traf in b.children() {
            let traf = traf?;
            if &traf.kind != b"traf" {
                continue;
            }
            let [tfhd, tfdt] = traf.children().find_all([b"tfhd", b"tfdt"])?;
            let (Some(tfhd), Some(tfdt)) = (tfhd, tfdt) else {
                continue;
            };
            let track = u32_at(tfhd.payload(), 4)
                .ok_or_else(|| RetimeError::Malformed("tfhd without a track_ID".into()))?;
            let payload = tfdt.payload();
            let version = payload.first().copied().unwrap_or(0);
            let at = tfdt.payload_offset() + 4;
            let (wide, time) = if version == 1 {
                (true, u64_at(payload, 4))
            } else {
                (false, u32_at(payload, 4).map(u64::from))
            };
            let time =
                time.ok_or_else(|| RetimeError::Malformed("tfdt shorter than its time".into()))?;
            let by = shift(track);
            let Some(new) = time.checked_sub(by) else {
                return Err(RetimeError::BelowZero {
                    track,
                    time,
                    shift: by,
                });
            };
            edits.push((at, wide, new));
        }
    }
    for (at, wide, new) in edits {
        if wide {
            if let Some(dst) = fragments.get_mut(at..at + 8) {
                dst.copy_from_slice(&new.to_be_bytes());
            }
        } else if let Some(dst) = fragments.get_mut(at..at + 4) {
            // Lower than a value that fitted in 32 bits: fits too.
            dst.copy_from_slice(&(new as u32).to_be_bytes());
        }
    }
    Ok(())
}

/// Where each track of `fragments` starts and ends on its timeline: (track_ID, the
/// first `tfdt`, the last `tfdt` plus the durations of that fragment's samples), in
/// the order the tracks first appear.
pub fn track_spans(fragments: &[u8]) -> Result<Vec<(u32, u64, u64)>, RetimeError> {
    let mut out: Vec<(u32, u64, u64)> = Vec::new();
    for b in Boxes::new(fragments) {
        let b = b?;
        if &b.kind != b"moof" {
            continue;
        }
        for traf in b.children() {
            let traf = traf?;
            if &traf.kind != b"traf" {
                continue;
            }
            let mut track = None;
            let mut default_duration = 0u64;
            let mut start = None;
            let mut duration = 0u64;
            for child in traf.children() {
                let child = child?;
                let p = child.payload();
                match &child.kind {
                    b"tfhd" => {
                        let flags = u32_at(p, 0).unwrap_or(0) & 0x00ff_ffff;
                        track = u32_at(p, 4);
                        let mut at = 8;
                        if flags & tfhd::BASE_DATA_OFFSET != 0 {
                            at += 8;
                        }
                        if flags & tfhd::SAMPLE_DESCRIPTION_INDEX != 0 {
                            at += 4;
                        }
                        if flags & tfhd::DEFAULT_SAMPLE_DURATION != 0 {
                            default_duration = u32_at(p, at).map_or(0, u64::from);
                        }
                    }
                    b"tfdt" => {
                        start = if p.first() == Some(&1) {
                            u64_at(p, 4)
                        } else {
                            u32_at(p, 4).map(u64::from)
                        };
                    }
                    b"trun" => duration += run_duration(p, default_duration)?,
                    _ => {}
                }
            }
            let (Some(track), Some(start)) = (track, start) else {
                continue;
            };
            let end = start.saturating_add(duration);
            match out.iter_mut().find(|(t, _, _)| *t == track) {
                Some(span) => span.2 = span.2.max(end),
                None => out.push((track, start, end)),
            }
        }
    }
    Ok(out)
}

/// Sum of a `trun`'s sample durations (`default` when it has none of its own).
fn run_duration(p: &[u8], default: u64) -> Result<u64, RetimeError> {
    let bad = || RetimeError::Malformed("trun shorter than its samples".into());
    let flags = u32_at(p, 0).ok_or_else(bad)? & 0x00ff_ffff;
    let count = u64::from(u32_at(p, 4).ok_or_else(bad)?);
    if flags & trun::SAMPLE_DURATION == 0 {
        return Ok(default.saturating_mul(count));
    }
    let mut at = 8usize;
    if flags & trun::DATA_OFFSET != 0 {
        at += 4;
    }
    if flags & trun::FIRST_SAMPLE_FLAGS != 0 {
        at += 4;
    }
    let per_sample = 4 * [
        trun::SAMPLE_DURATION,
        trun::SAMPLE_SIZE,
        trun::SAMPLE_FLAGS,
        trun::SAMPLE_CTS,
    ]
    .iter()
    .filter(|f| flags & **f != 0)
    .count();
    let mut total = 0u64;
    for _ in 0..count {
        total = total.saturating_add(u64::from(u32_at(p, at).ok_or_else(bad)?));
        at = at.checked_add(per_sample).ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use media::fmp4::{fragment, Sample, TrackRun};

    fn sample() -> Sample {
        Sample {
            duration: 3000,
            cts_offset: 0,
            keyframe: true,
            data: Bytes::from_static(b"abcd"),
        }
    }

    fn two_tracks(video: u64, audio: u64) -> Vec<u8> {
        let s = [sample()];
        fragment(
            1,
            &[
                TrackRun {
                    track_id: 1,
                    base_decode_time: video,
                    samples: &s,
                },
                TrackRun {
                    track_id: 2,
                    base_decode_time: audio,
                    samples: &s,
                },
            ],
        )
        .to_vec()
    }

    #[test]
    fn every_track_moves_by_its_own_amount() {
        let mut a = two_tracks(900_000, 480_000);
        a.extend(two_tracks(903_000, 481_024));
        let before = a.clone();
        shift_decode_times(&mut a, |t| if t == 1 { 90_000 } else { 48_000 }).expect("shift");
        assert_eq!(
            track_spans(&a),
            Ok(vec![(1, 810_000, 816_000), (2, 432_000, 436_024)])
        );
        assert_eq!(a.len(), before.len(), "nothing but tfdt changes");
        let second = two_tracks(903_000, 481_024).len();
        let tail = &a[a.len() - second..];
        assert_eq!(
            track_spans(tail),
            Ok(vec![(1, 813_000, 816_000), (2, 433_024, 436_024)])
        );
        // A zero shift is the identity.
        let mut same = before.clone();
        shift_decode_times(&mut same, |_| 0).expect("shift");
        assert_eq!(same, before);
    }

    #[test]
    fn a_shift_past_zero_or_broken_input_changes_nothing() {
        let mut a = two_tracks(100, 5_000_000);
        let before = a.clone();
        assert!(matches!(
            shift_decode_times(&mut a, |_| 1000),
            Err(RetimeError::BelowZero { track: 1, .. })
        ));
        assert_eq!(a, before);
        for cut in [1, 9, 40, a.len() - 1] {
            let mut broken = before[..cut].to_vec();
            let copy = broken.clone();
            assert!(
                shift_decode_times(&mut broken, |_| 1).is_err(),
                "cut at {cut}"
            );
            assert_eq!(broken, copy);
        }
        let mut garbage = vec![0xffu8; 64];
        assert!(shift_decode_times(&mut garbage, |_| 1).is_err());
    }
}
