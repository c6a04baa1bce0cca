//! RTP timestamps of a WHIP publisher mapped onto the publisher's millisecond
//! timeline (what `live::Publisher` takes).
//!
//! Each track (video at 90 kHz, audio at 48 kHz) has its own random RTP origin, so a
//! track is anchored at the arrival time of its first frame on the session's clock;
//! from there its RTP timestamps give the spacing (the sender's clock, free of network
//! jitter). Anchoring both tracks to arrival times keeps them in step to within the
//! first packets' network delay, which is what lip sync needs on a publish path.
//! Output never goes backwards (WebRTC H.264 has no B-frames). A timestamp that lands
//! more than [`RESYNC`] away from the arrival clock (a sender that restarted or
//! jumped its RTP clock) re-anchors the track at its arrival time instead of making a
//! hole or a pile-up in the stream.
//!
//! Sans-IO: times come in as numbers. Not the packaging (`live`).

/// How far a mapped timestamp may drift from the arrival clock before the track is
/// re-anchored, in milliseconds.
pub const RESYNC_MS: u64 = 5_000;

/// One track's mapping.
#[derive(Debug, Clone)]
pub struct TrackClock {
    rate: u32,
    /// (RTP timestamp, millisecond) of the anchor.
    anchor: Option<(u64, u64)>,
    last_ms: Option<u64>,
    resyncs: u64,
}

impl TrackClock {
    /// A track whose RTP clock runs at `rate` Hz (90 000 for video, 48 000 for Opus).
    pub fn new(rate: u32) -> Self {
        Self {
            rate: rate.max(1),
            anchor: None,
            last_ms: None,
            resyncs: 0,
        }
    }

    /// Times the track was re-anchored (for logs).
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// The millisecond timestamp of a frame with (extended) RTP time `rtp` that
    /// arrived at `arrival_ms` on the session's clock.
    pub fn map(&mut self, rtp: u64, arrival_ms: u64) -> u64 {
        let ms = match self.anchor {
            None => {
                self.anchor = Some((rtp, arrival_ms));
                arrival_ms
            }
            Some((rtp0, ms0)) => {
                let ticks = i128::from(rtp) - i128::from(rtp0);
                let ms = i128::from(ms0) + ticks * 1000 / i128::from(self.rate);
                if (ms - i128::from(arrival_ms)).unsigned_abs() > u128::from(RESYNC_MS) {
                    self.resyncs += 1;
                    let at = arrival_ms.max(self.last_ms.map_or(0, |l| l + 1));
                    self.anchor = Some((rtp, at));
                    at
                } else {
                    u64::try_from(ms.max(0)).unwrap_or(u64::MAX)
                }
            }
        };
        let ms = self.last_ms.map_or(ms, |last| ms.max(last));
        self.last_ms = Some(ms);
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_spacing_is_kept_from_the_first_arrival() {
        let mut v = TrackClock::new(90_000);
        // First frame arrives 120 ms into the session at a random RTP origin.
        let base = 3_000_000_000u64;
        assert_eq!(v.map(base, 120), 120);
        // 30 fps: 3000 ticks a frame; arrival jitter does not move the timestamps.
        assert_eq!(v.map(base + 3000, 160), 153);
        assert_eq!(v.map(base + 6000, 185), 186);
        assert_eq!(v.map(base + 90_000, 1130), 1120);
        let mut a = TrackClock::new(48_000);
        assert_eq!(a.map(77, 125), 125);
        assert_eq!(a.map(77 + 960, 150), 145);
        assert_eq!(a.map(77 + 48_000, 1100), 1125);
    }

    #[test]
    fn timestamps_never_go_back() {
        let mut v = TrackClock::new(90_000);
        assert_eq!(v.map(90_000, 1000), 1000);
        assert_eq!(v.map(90_000 + 9000, 1100), 1100);
        // An older timestamp (reordered or bogus) is held at the newest.
        assert_eq!(v.map(90_000 + 3000, 1110), 1100);
        assert_eq!(v.map(0, 1120), 1100);
        assert_eq!(v.resyncs(), 0);
    }

    #[test]
    fn a_jump_re_anchors_at_the_arrival_time() {
        let mut v = TrackClock::new(90_000);
        assert_eq!(v.map(1000, 0), 0);
        assert_eq!(v.map(1000 + 90_000, 1000), 1000);
        // The sender's clock jumps an hour ahead: the track continues at arrival time.
        assert_eq!(v.map(1000 + 90_000 * 3600, 1040), 1040);
        assert_eq!(v.resyncs(), 1);
        assert_eq!(v.map(1000 + 90_000 * 3600 + 3000, 1080), 1073);
        // And back to a small value (a restarted sender).
        assert_eq!(v.map(5, 1100), 1100);
        assert_eq!(v.resyncs(), 2);
    }
}
