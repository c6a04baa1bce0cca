//! One WHIP publisher: a str0m `Rtc` that receives the publisher's H.264 and Opus and
//! hands access units and packets to the stream's `live::Publisher` (Opus announced
//! with an `OpusHead`, so the packager writes an `Opus` track and WHEP passes it on). [`Ingest`] is the sans-IO
//! core (datagrams and time in; datagrams, media, a deadline and an end out); [`run`]
//! is its thin tokio shell, one task per publisher, in the span the caller gives it.
//!
//! Keyframes: browsers send an IDR when asked (PLI) and otherwise rarely, so the core
//! asks when a WHEP viewer or the packager needs one (`LiveStream::want_keyframe`),
//! when a frame was lost (and drops frames until the IDR comes: the packager must not
//! get a broken reference chain), and whenever no IDR came for the keyframe interval
//! (the segment target: segments are cut at keyframes). Requests are at most one per
//! [`MIN_REQUEST_GAP`].
//!
//! Not the routing of datagrams (`whep::udp`, shared with WHEP), not packaging.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::{mpsc, Notify};

use super::clock::TrackClock;
use super::h264::{Depacketized, H264Error};
use crate::live::Publisher;
use crate::whep::session::Step;
use crate::whep::udp::{Datagram, Mux};

/// Keyframe requests are at least this far apart.
pub const MIN_REQUEST_GAP: Duration = Duration::from_millis(500);

/// What a publisher has sent, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestStats {
    pub video_frames: u64,
    pub keyframes: u64,
    pub audio_packets: u64,
    /// Video frames dropped while waiting for a keyframe (start, loss).
    pub skipped: u64,
    pub keyframe_requests: u64,
    /// Video frames str0m handed over with a gap before them.
    pub gaps: u64,
}

/// Media for the packager, on the publisher's millisecond timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// A new `AVCDecoderConfigurationRecord`.
    VideoConfig(Bytes),
    /// One AVCC access unit.
    Video {
        ms: u64,
        keyframe: bool,
        data: Bytes,
    },
    /// The audio is Opus: an `OpusHead` (sent once, before the first packet).
    AudioConfig(Bytes),
    /// One Opus packet.
    Audio { ms: u64, data: Bytes },
}

/// The sans-IO publisher session.
pub struct Ingest {
    rtc: Rtc,
    local: SocketAddr,
    epoch: Instant,
    video: Option<Mid>,
    audio: Option<Mid>,
    h264: Depacketized,
    video_clock: TrackClock,
    audio_clock: TrackClock,
    audio_announced: bool,
    waiting_keyframe: bool,
    connected: bool,
    keyframe_interval: Duration,
    last_keyframe: Option<Instant>,
    last_request: Option<Instant>,
    want_keyframe: bool,
    out: VecDeque<Media>,
    pub stats: IngestStats,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Ingest {
    /// A session around `rtc` (offer accepted), reachable at `local`, that wants an
    /// IDR at least every `keyframe_interval`.
    pub fn new(rtc: Rtc, local: SocketAddr, now: Instant, keyframe_interval: Duration) -> Self {
        Self {
            rtc,
            local,
            epoch: now,
            video: None,
            audio: None,
            h264: Depacketized::default(),
            video_clock: TrackClock::new(90_000),
            audio_clock: TrackClock::new(media::codec::OPUS_RATE),
            audio_announced: false,
            waiting_keyframe: true,
            connected: false,
            keyframe_interval: keyframe_interval.max(MIN_REQUEST_GAP),
            last_keyframe: None,
            last_request: None,
            want_keyframe: false,
            out: VecDeque::new(),
            stats: IngestStats::default(),
        }
    }

    /// One datagram from `source`.
    pub fn receive(&mut self, now: Instant, source: SocketAddr, data: &[u8]) -> Result<(), String> {
        let Ok(contents) = data.try_into() else {
            return Ok(()); // not a WebRTC datagram: ignore, like the network would
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            return Ok(());
        }
        self.rtc
            .handle_input(input)
            .map_err(|e| format!("webrtc error: {e}"))
    }

    /// Time passed: str0m's timers, and the keyframe interval.
    pub fn timeout(&mut self, now: Instant) -> Result<(), String> {
        if self.connected {
            let due = match self.last_keyframe {
                Some(k) => now.duration_since(k) >= self.keyframe_interval,
                None => true,
            };
            if due || self.want_keyframe {
                self.request_keyframe(now);
            }
        }
        self.rtc
            .handle_input(Input::Timeout(now))
            .map_err(|e| format!("webrtc error: {e}"))
    }

    /// A consumer (WHEP viewer, packager) wants a keyframe soon.
    pub fn want_keyframe(&mut self, now: Instant) {
        self.want_keyframe = true;
        if self.connected {
            self.request_keyframe(now);
        }
    }

    /// Sends a PLI unless one went out less than [`MIN_REQUEST_GAP`] ago (then the
    /// want stays and the next timeout sends it).
    fn request_keyframe(&mut self, now: Instant) {
        if self
            .last_request
            .is_some_and(|t| now.duration_since(t) < MIN_REQUEST_GAP)
        {
            return;
        }
        let Some(mid) = self.video else { return };
        let Some(mut writer) = self.rtc.writer(mid) else {
            return;
        };
        // Fails until the first video packet named its stream: try again later.
        if writer
            .request_keyframe(None, KeyframeRequestKind::Pli)
            .is_ok()
        {
            self.last_request = Some(now);
            self.want_keyframe = false;
            self.stats.keyframe_requests += 1;
        }
    }

    /// Whether the session is connected (ICE and DTLS done).
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// The next media for the packager.
    pub fn take_media(&mut self) -> Option<Media> {
        self.out.pop_front()
    }

    /// The next thing to do.
    pub fn poll(&mut self) -> Step {
        loop {
            if !self.rtc.is_alive() {
                return Step::Closed("connection closed".into());
            }
            let out = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => return Step::Closed(format!("webrtc error: {e}")),
            };
            match out {
                Output::Transmit(t) => return Step::Transmit(t),
                Output::Timeout(t) => {
                    // Wake for the keyframe interval too.
                    let t = if self.connected {
                        t.min(Instant::now() + MIN_REQUEST_GAP)
                    } else {
                        t
                    };
                    return Step::Wait(t);
                }
                Output::Event(e) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.want_keyframe = true;
                        tracing::info!("publisher connected");
                    }
                    Event::MediaAdded(m) => match m.kind {
                        MediaKind::Video if self.video.is_none() => self.video = Some(m.mid),
                        MediaKind::Audio if self.audio.is_none() => self.audio = Some(m.mid),
                        _ => {}
                    },
                    Event::MediaData(d) => {
                        if Some(d.mid) == self.video {
                            self.video_frame(&d);
                        } else if Some(d.mid) == self.audio {
                            self.audio_packet(&d);
                        }
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Step::Closed("ice disconnected".into());
                    }
                    _ => {}
                },
            }
        }
    }

    fn video_frame(&mut self, d: &str0m::media::MediaData) {
        let now = Instant::now();
        if !d.contiguous && !self.waiting_keyframe {
            // A lost packet broke the reference chain: wait for (and ask for) an IDR.
            self.stats.gaps += 1;
            self.waiting_keyframe = true;
            self.want_keyframe(now);
        }
        let au = match self.h264.access_unit(&d.data) {
            Ok(au) => au,
            Err(e) => {
                self.stats.skipped += 1;
                if e == H264Error::NoParameterSets {
                    self.want_keyframe(now);
                }
                tracing::debug!(error = %e, "video frame dropped");
                return;
            }
        };
        if self.waiting_keyframe && !au.keyframe {
            self.stats.skipped += 1;
            self.want_keyframe(now);
            return;
        }
        self.waiting_keyframe = false;
        if au.keyframe {
            self.last_keyframe = Some(now);
            self.stats.keyframes += 1;
        }
        let arrival_ms = self.arrival_ms(d.network_time);
        let ms = self.video_clock.map(
            d.time.rebase(str0m::media::Frequency::NINETY_KHZ).numer(),
            arrival_ms,
        );
        if let Some(config) = au.config {
            self.out.push_back(Media::VideoConfig(config));
        }
        self.stats.video_frames += 1;
        self.out.push_back(Media::Video {
            ms,
            keyframe: au.keyframe,
            data: au.data,
        });
    }

    fn audio_packet(&mut self, d: &str0m::media::MediaData) {
        if d.params.spec().codec != str0m::format::Codec::Opus || d.data.is_empty() {
            return;
        }
        if !self.audio_announced {
            self.audio_announced = true;
            // WebRTC signals Opus as stereo (opus/48000/2) whatever it carries.
            let head = media::codec::OpusConfig::head(2);
            self.out.push_back(Media::AudioConfig(head));
        }
        let ms = self.audio_clock.map(
            d.time
                .rebase(str0m::media::Frequency::FORTY_EIGHT_KHZ)
                .numer(),
            self.arrival_ms(d.network_time),
        );
        self.stats.audio_packets += 1;
        self.out.push_back(Media::Audio {
            ms,
            data: Bytes::copy_from_slice(&d.data),
        });
    }

    /// `at` on the session's millisecond clock.
    fn arrival_ms(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch);
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    }

    /// Ends the connection and hands back what is left to send.
    pub fn close(&mut self) -> Vec<str0m::net::Transmit> {
        self.rtc.disconnect();
        let mut out = Vec::new();
        while let Ok(Output::Transmit(t)) = self.rtc.poll_output() {
            out.push(t);
        }
        out
    }
}

/// The shell's inputs.
pub struct Links {
    pub mux: Arc<Mux>,
    pub datagrams: mpsc::Receiver<Datagram>,
    pub publisher: Publisher,
    pub stop: Arc<Notify>,
    pub kick: Arc<Notify>,
    pub idle_timeout: Duration,
}

/// Runs `ingest` until it ends, feeding `links.publisher`; returns why and its stats.
/// The publisher is dropped before this returns (the stream is interrupted).
pub async fn run(mut ingest: Ingest, mut links: Links) -> (String, IngestStats) {
    let reason = drive(&mut ingest, &mut links).await;
    for t in ingest.close() {
        links.mux.send(t.destination, &t.contents).await;
    }
    (reason, ingest.stats)
}

async fn drive(ingest: &mut Ingest, l: &mut Links) -> String {
    let stream = l.publisher.stream().clone();
    let mut last_media = tokio::time::Instant::now();
    loop {
        let wake = loop {
            match ingest.poll() {
                Step::Transmit(t) => l.mux.send(t.destination, &t.contents).await,
                Step::Wait(t) => break t,
                Step::Closed(reason) => return reason,
            }
        };
        while let Some(m) = ingest.take_media() {
            let fed = match m {
                Media::VideoConfig(record) => {
                    if let Err(e) = l.publisher.video_config(record) {
                        tracing::warn!(error = %e, "bad H.264 parameter sets from the publisher");
                    }
                    Ok(())
                }
                Media::Video { ms, keyframe, data } => {
                    last_media = tokio::time::Instant::now();
                    l.publisher.video(ms, 0, keyframe, data)
                }
                Media::AudioConfig(head) => {
                    if let Err(e) = l.publisher.audio_config(head) {
                        tracing::warn!(error = %e, "Opus configuration refused");
                    }
                    Ok(())
                }
                Media::Audio { ms, data } => l.publisher.audio(ms, data),
            };
            if let Err(e) = fed {
                metrics::counter!("mediamesh_publishers_dropped_total").increment(1);
                return format!("publisher dropped: {e}");
            }
        }
        if l.publisher.kicked() {
            return "kicked by an operator".into();
        }
        let now = tokio::time::Instant::now();
        let idle_at = last_media + l.idle_timeout;
        if now >= idle_at {
            return format!(
                "idle: no video from the publisher for {} s",
                l.idle_timeout.as_secs_f64()
            );
        }
        let timer = tokio::time::Instant::from_std(wake).min(idle_at);
        tokio::select! {
            d = l.datagrams.recv() => {
                let Some(d) = d else { return "socket closed".into() };
                if let Err(e) = ingest.receive(Instant::now(), d.source, &d.data) {
                    return e;
                }
            }
            _ = l.stop.notified() => return "ended by the publisher (DELETE)".into(),
            _ = l.kick.notified() => return "kicked by an operator".into(),
            _ = stream.keyframe_wanted() => ingest.want_keyframe(Instant::now()),
            _ = tokio::time::sleep_until(timer) => {
                if let Err(e) = ingest.timeout(Instant::now()) {
                    return e;
                }
            }
        }
    }
}
