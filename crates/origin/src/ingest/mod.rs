//! Ways live media gets into the origin: RTMP publishers (OBS, ffmpeg), SRT publishers
//! (MPEG-TS) and the built-in demo loop. All feed a `live::Publisher`; none packages
//! anything itself.

pub mod demo;
pub mod rtmp;
pub mod srt;

/// Extends 32-bit millisecond timestamps (RTMP wraps after ~49.7 days) to 64 bits.
#[derive(Debug, Default, Clone)]
pub struct TimestampUnwrap {
    last: Option<u32>,
    epoch: u64,
}

impl TimestampUnwrap {
    pub fn unwrap(&mut self, ts: u32) -> u64 {
        if let Some(last) = self.last {
            if ts < last && last - ts > u32::MAX / 2 {
                self.epoch += 1 << 32;
            } else if ts > last && ts - last > u32::MAX / 2 && self.epoch > 0 {
                // A late frame from before the wrap.
                return self.epoch - (1 << 32) + u64::from(ts);
            }
        }
        self.last = Some(ts);
        self.epoch + u64::from(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::TimestampUnwrap;

    #[test]
    fn wraps_forward() {
        let mut u = TimestampUnwrap::default();
        assert_eq!(u.unwrap(10), 10);
        assert_eq!(u.unwrap(u32::MAX - 5), u64::from(u32::MAX) - 5);
        assert_eq!(u.unwrap(3), (1u64 << 32) + 3);
        assert_eq!(u.unwrap(u32::MAX - 1), u64::from(u32::MAX) - 1);
        assert_eq!(u.unwrap(40), (1u64 << 32) + 40);
    }
}
