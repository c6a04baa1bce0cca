//! What we give to other peers: a cap on concurrent uploads (slots) and on upload
//! rate (a token bucket). The caller asks before answering a request and before each
//! chunk; sans-IO, times in ms.

/// Upload slots and rate limit of one viewer.
#[derive(Debug, Clone)]
pub struct UploadGate {
    slots: usize,
    busy: usize,
    /// Bytes per second; 0 means no rate cap.
    rate: u64,
    burst: u64,
    tokens: u64,
    last: u64,
    uploaded: u64,
    refused: u64,
}

impl UploadGate {
    /// `slots` uploads at once, `rate_bytes_per_s` (0 = unlimited), with a burst of
    /// one second's worth (at least 64 KiB, one data chunk).
    pub fn new(slots: usize, rate_bytes_per_s: u64) -> Self {
        let burst = rate_bytes_per_s.max(64 * 1024);
        UploadGate {
            slots,
            busy: 0,
            rate: rate_bytes_per_s,
            burst,
            tokens: burst,
            last: 0,
            uploaded: 0,
            refused: 0,
        }
    }

    /// Takes an upload slot for a peer's request; `false` means answer "absent".
    pub fn try_start(&mut self) -> bool {
        if self.busy < self.slots {
            self.busy += 1;
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// Gives the slot back when an upload ends (sent, cancelled or failed).
    pub fn finish(&mut self) {
        self.busy = self.busy.saturating_sub(1);
    }

    /// Asks to send `bytes` at `now`: 0 means go ahead (the bytes are counted),
    /// otherwise the number of ms to wait before asking again.
    pub fn take(&mut self, now: u64, bytes: u64) -> u64 {
        if self.rate == 0 {
            self.uploaded += bytes;
            return 0;
        }
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate / 1000).min(self.burst);
        let need = bytes.min(self.burst);
        if self.tokens >= need {
            self.tokens -= need;
            self.uploaded += bytes;
            0
        } else {
            ((need - self.tokens) * 1000).div_ceil(self.rate).max(1)
        }
    }

    pub fn busy(&self) -> usize {
        self.busy
    }

    pub fn uploaded(&self) -> u64 {
        self.uploaded
    }

    /// Requests answered "absent" because every slot was busy.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped() {
        let mut g = UploadGate::new(2, 0);
        assert!(g.try_start());
        assert!(g.try_start());
        assert!(!g.try_start());
        g.finish();
        assert!(g.try_start());
        assert_eq!(g.refused(), 1);
    }

    #[test]
    fn rate_is_capped() {
        // 100 KB/s with a 100 KB burst: 300 KB over 64 KiB chunks takes about 2 s.
        let mut g = UploadGate::new(1, 100_000);
        let mut now = 0;
        let mut sent = 0;
        while sent < 300_000 {
            let wait = g.take(now, 65_536);
            if wait == 0 {
                sent += 65_536;
            } else {
                now += wait;
            }
        }
        assert!((1_500..=2_600).contains(&now), "took {now} ms");
        assert_eq!(g.uploaded(), sent);
    }
}
