//! The player clock of a headless viewer: start-up, playback at real-time speed, and
//! stalls when the buffer runs dry. Shared by `mediamesh peer` and the simulator, so
//! that "stall seconds" mean the same in both.
//!
//! Not a decoder: the caller says up to which media time it holds contiguous
//! segments ([`super::Scheduler::contiguous_end`]) and the playhead moves within that.

/// Where the player is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayState {
    /// Waiting for the first `start_buffer_ms` of media.
    Starting {
        since: u64,
    },
    Playing,
    /// The buffer ran dry; resumes when `rebuffer_ms` are buffered again.
    Stalled {
        since: u64,
    },
}

/// A viewer's playback position and its start-up and stall record. Times in ms.
#[derive(Debug, Clone)]
pub struct Playhead {
    state: PlayState,
    position_ms: u64,
    last: u64,
    start_buffer_ms: u64,
    rebuffer_ms: u64,
    startup_ms: Option<u64>,
    stalls: u32,
    stall_ms: u64,
    played_ms: u64,
}

impl Playhead {
    /// A player that joins at `position_ms` on the media timeline at wall time `now`
    /// and starts once `start_buffer_ms` are buffered.
    pub fn new(now: u64, position_ms: u64, start_buffer_ms: u64, rebuffer_ms: u64) -> Self {
        Playhead {
            state: PlayState::Starting { since: now },
            position_ms,
            last: now,
            start_buffer_ms,
            rebuffer_ms,
            startup_ms: None,
            stalls: 0,
            stall_ms: 0,
            played_ms: 0,
        }
    }

    /// Moves the clock to `now`, with media held contiguously up to `buffered_end_ms`.
    /// Returns the new position.
    pub fn advance(&mut self, now: u64, buffered_end_ms: u64) -> u64 {
        let now = now.max(self.last);
        let elapsed = now - self.last;
        self.last = now;
        match self.state {
            PlayState::Starting { since } => {
                if buffered_end_ms >= self.position_ms + self.start_buffer_ms {
                    self.startup_ms = Some(now - since);
                    self.state = PlayState::Playing;
                }
            }
            PlayState::Playing => {
                let want = self.position_ms + elapsed;
                if want <= buffered_end_ms {
                    self.position_ms = want;
                    self.played_ms += elapsed;
                } else {
                    let played = buffered_end_ms.saturating_sub(self.position_ms);
                    self.played_ms += played;
                    self.position_ms = self.position_ms.max(buffered_end_ms);
                    self.stalls += 1;
                    // The stall began when the media ran out, not at this call.
                    let dry = elapsed - played.min(elapsed);
                    self.stall_ms += dry;
                    self.state = PlayState::Stalled { since: now - dry };
                }
            }
            PlayState::Stalled { .. } => {
                self.stall_ms += elapsed;
                if buffered_end_ms >= self.position_ms + self.rebuffer_ms {
                    self.state = PlayState::Playing;
                }
            }
        }
        self.position_ms
    }

    pub fn state(&self) -> PlayState {
        self.state
    }

    pub fn position_ms(&self) -> u64 {
        self.position_ms
    }

    /// Wall time from joining to the first frame, once playing.
    pub fn startup_ms(&self) -> Option<u64> {
        self.startup_ms
    }

    pub fn stalls(&self) -> u32 {
        self.stalls
    }

    /// Total time spent stalled (not counting start-up).
    pub fn stall_ms(&self) -> u64 {
        self.stall_ms
    }

    /// Media time played.
    pub fn played_ms(&self) -> u64 {
        self.played_ms
    }

    /// Wall time at which the buffer runs dry if nothing more arrives.
    pub fn dry_at(&self, buffered_end_ms: u64) -> Option<u64> {
        match self.state {
            PlayState::Playing => {
                Some(self.last + buffered_end_ms.saturating_sub(self.position_ms))
            }
            _ => None,
        }
    }
}
