//! One WHEP viewer: a str0m `Rtc` that sends the stream's shared frames. [`Viewer`] is
//! the sans-IO core (datagrams, frames and time in; datagrams, a deadline and an end
//! out); [`run`] is its thin tokio shell, one task per viewer, with a span naming the
//! session.
//!
//! Keyframes: a viewer starts at the next IDR of the stream (frames before it are not
//! sent), and after it lagged behind the fan-out it skips to the next IDR again. A
//! viewer that connects, lags or sends PLI/FIR asks the stream for a keyframe
//! (`LiveStream::want_keyframe`): a WHIP publisher answers with an IDR at once; RTMP
//! and SRT have no such back channel, so there the next IDR the publisher sends
//! answers it (its GOP bounds the wait). Not the routing of datagrams (`udp`), not the media
//! preparation (`fanout`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::{broadcast, mpsc, Notify};

use super::fanout::{FanOut, Frame, Kind};
use super::udp::{Datagram, Mux};
use crate::live::StreamState;

/// What a viewer has done, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ViewerStats {
    pub video_frames: u64,
    pub audio_packets: u64,
    /// Frames not sent while waiting for a keyframe.
    pub skipped: u64,
    /// Frames the viewer missed because it fell behind the fan-out.
    pub lagged: u64,
    pub keyframe_requests: u64,
}

#[derive(Debug, Clone, Copy)]
struct Track {
    mid: Mid,
    pt: Option<Pt>,
}

/// What the core wants next.
#[derive(Debug)]
pub enum Step {
    Transmit(Transmit),
    /// Nothing to do before this instant (unless input arrives).
    Wait(Instant),
    /// The connection is over, for this reason.
    Closed(String),
}

/// The sans-IO viewer.
pub struct Viewer {
    rtc: Rtc,
    local: SocketAddr,
    video: Option<Track>,
    audio: Option<Track>,
    waiting_keyframe: bool,
    connected: bool,
    /// The viewer connected or asked for a keyframe since the shell last looked.
    wants_keyframe: bool,
    pub stats: ViewerStats,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Viewer {
    /// A viewer around `rtc` (offer accepted), reachable at `local`.
    pub fn new(rtc: Rtc, local: SocketAddr) -> Self {
        Self {
            rtc,
            local,
            video: None,
            audio: None,
            waiting_keyframe: true,
            connected: false,
            wants_keyframe: false,
            stats: ViewerStats::default(),
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

    pub fn timeout(&mut self, now: Instant) -> Result<(), String> {
        self.rtc
            .handle_input(Input::Timeout(now))
            .map_err(|e| format!("webrtc error: {e}"))
    }

    /// The viewer fell `n` frames behind: skip to the next keyframe.
    pub fn lagged(&mut self, n: u64) {
        self.stats.lagged += n;
        self.waiting_keyframe = true;
        self.wants_keyframe = true;
    }

    /// Whether the viewer needs a keyframe (it connected, lagged or sent PLI/FIR)
    /// since the last call: the shell then asks the publisher, which only a WHIP
    /// publisher can act on.
    pub fn take_keyframe_want(&mut self) -> bool {
        std::mem::take(&mut self.wants_keyframe)
    }

    /// One shared frame of the stream.
    pub fn frame(&mut self, f: &Frame) -> Result<(), String> {
        if !self.connected {
            return Ok(());
        }
        let (track, time) = match f.kind {
            Kind::Video { keyframe } => {
                if self.waiting_keyframe && !keyframe {
                    self.stats.skipped += 1;
                    return Ok(());
                }
                self.waiting_keyframe = false;
                (&mut self.video, MediaTime::from_90khz(f.rtp_time))
            }
            Kind::Audio => (
                &mut self.audio,
                MediaTime::new(f.rtp_time, str0m::media::Frequency::FORTY_EIGHT_KHZ),
            ),
        };
        let Some(t) = track.as_mut() else {
            return Ok(());
        };
        let Some(writer) = self.rtc.writer(t.mid) else {
            return Ok(());
        };
        let pt = match t.pt {
            Some(pt) => pt,
            None => {
                let Some(pt) = choose_pt(writer.payload_params().map(|p| {
                    let s = p.spec();
                    (
                        p.pt(),
                        s.codec,
                        s.format.packetization_mode,
                        s.format.profile_level_id,
                    )
                })) else {
                    return Err("no H.264/Opus payload type negotiated".into());
                };
                t.pt = Some(pt);
                pt
            }
        };
        writer
            .write(pt, f.at, time, f.data.clone())
            .map_err(|e| format!("webrtc write: {e}"))?;
        match f.kind {
            Kind::Video { .. } => self.stats.video_frames += 1,
            Kind::Audio => self.stats.audio_packets += 1,
        }
        Ok(())
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
                Output::Timeout(t) => return Step::Wait(t),
                Output::Event(e) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.wants_keyframe = true;
                        tracing::info!("viewer connected");
                    }
                    Event::MediaAdded(m) => {
                        let t = Some(Track {
                            mid: m.mid,
                            pt: None,
                        });
                        match m.kind {
                            MediaKind::Video if self.video.is_none() => self.video = t,
                            MediaKind::Audio if self.audio.is_none() => self.audio = t,
                            _ => {}
                        }
                    }
                    Event::KeyframeRequest(r) => {
                        self.stats.keyframe_requests += 1;
                        self.wants_keyframe = true;
                        tracing::debug!(kind = ?r.kind, "keyframe request; the next IDR from the publisher answers it");
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Step::Closed("ice disconnected".into());
                    }
                    _ => {}
                },
            }
        }
    }

    /// Ends the connection and hands back what is left to send.
    pub fn close(&mut self) -> Vec<Transmit> {
        self.rtc.disconnect();
        let mut out = Vec::new();
        while let Ok(Output::Transmit(t)) = self.rtc.poll_output() {
            out.push(t);
        }
        out
    }
}

/// The payload type to send with: H.264 with packetization-mode 1 (High, then Main,
/// then any profile: browsers decode what the stream has), or Opus.
fn choose_pt(params: impl Iterator<Item = (Pt, Codec, Option<u8>, Option<u32>)>) -> Option<Pt> {
    let mut best: Option<(u8, Pt)> = None;
    for (pt, codec, mode, profile) in params {
        let rank = match codec {
            Codec::Opus => 10,
            Codec::H264 if mode == Some(1) => match profile.map(|p| p >> 16) {
                Some(0x64) => 9,
                Some(0x4d) => 8,
                _ => 7,
            },
            Codec::H264 => 1,
            _ => continue,
        };
        if best.is_none_or(|(r, _)| rank > r) {
            best = Some((rank, pt));
        }
    }
    best.map(|(_, pt)| pt)
}

/// The shell's inputs.
pub struct Links {
    pub mux: Arc<Mux>,
    pub datagrams: mpsc::Receiver<Datagram>,
    pub frames: broadcast::Receiver<Arc<Frame>>,
    pub fanout: Arc<FanOut>,
    pub stop: Arc<Notify>,
    pub idle_timeout: Duration,
}

/// How often the shell looks at the stream's state.
const STREAM_CHECK: Duration = Duration::from_secs(1);

/// Runs `viewer` until it ends; returns why and its stats.
pub async fn run(mut viewer: Viewer, mut links: Links) -> (String, ViewerStats) {
    let reason = drive(&mut viewer, &mut links).await;
    for t in viewer.close() {
        links.mux.send(t.destination, &t.contents).await;
    }
    (reason, viewer.stats)
}

async fn drive(viewer: &mut Viewer, l: &mut Links) -> String {
    let mut last_heard = tokio::time::Instant::now();
    let mut next_check = tokio::time::Instant::now() + STREAM_CHECK;
    loop {
        let wake = loop {
            match viewer.poll() {
                Step::Transmit(t) => l.mux.send(t.destination, &t.contents).await,
                Step::Wait(t) => break t,
                Step::Closed(reason) => return reason,
            }
        };
        if viewer.take_keyframe_want() {
            l.fanout.stream.want_keyframe();
        }
        let now = tokio::time::Instant::now();
        let idle_at = last_heard + l.idle_timeout;
        if now >= idle_at {
            return format!(
                "idle: nothing heard from the viewer for {} s",
                l.idle_timeout.as_secs_f64()
            );
        }
        if now >= next_check {
            next_check = now + STREAM_CHECK;
            if matches!(l.fanout.stream.state(), StreamState::Ended(_)) {
                return "the stream ended".into();
            }
        }
        let timer = tokio::time::Instant::from_std(wake)
            .min(idle_at)
            .min(next_check);
        tokio::select! {
            d = l.datagrams.recv() => {
                let Some(d) = d else { return "socket closed".into() };
                last_heard = tokio::time::Instant::now();
                if let Err(e) = viewer.receive(Instant::now(), d.source, &d.data) {
                    return e;
                }
            }
            f = l.frames.recv() => match f {
                Ok(f) => {
                    if let Err(e) = viewer.frame(&f) {
                        return e;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    metrics::counter!("mediamesh_whep_lagged_frames_total").increment(n);
                    viewer.lagged(n);
                }
                Err(broadcast::error::RecvError::Closed) => return "the stream's fan-out ended".into(),
            },
            _ = l.stop.notified() => return "ended by the client (DELETE)".into(),
            _ = tokio::time::sleep_until(timer) => {
                if let Err(e) = viewer.timeout(Instant::now()) {
                    return e;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_type_prefers_high_profile_h264_with_mode_1() {
        let p = |n: u8| Pt::from(n);
        let offered = vec![
            (p(96), Codec::Vp8, None, None),
            (p(102), Codec::H264, Some(1), Some(0x42001f)),
            (p(104), Codec::H264, Some(0), Some(0x64001f)),
            (p(106), Codec::H264, Some(1), Some(0x64001f)),
        ];
        assert_eq!(choose_pt(offered.into_iter()), Some(p(106)));
        assert_eq!(
            choose_pt(vec![(p(96), Codec::Vp8, None, None)].into_iter()),
            None
        );
    }
}
