//! Live streams and their publish lifecycle: who may publish a name, what happens when
//! a publisher drops (a grace period to come back, then EXT-X-ENDLIST), and the feed
//! from an ingest session through the packager into the rendition stores.
//!
//! Ingest protocols (RTMP, the demo loop) call in through [`Publisher`]; HTTP reads
//! through [`Streams::get`]. Neither sockets nor playlists are handled here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::codec::VideoCodec;
use parking_lot::{Mutex, RwLock};

use super::directory::{Directory, History};
use super::keys::PublishKeys;
use super::name::valid_name;
use super::numbering::{self, SharedTimeline, Timing};
use super::packager::{Bounds, Input, Output, Packager, PackagerError, StreamInfo};
use super::store::{unix_ms, RenditionStore, StoreConfig};
use crate::config::{Limits, PackagingConfig};

/// Name of the single rendition an RTMP publish produces.
pub const SOURCE_RENDITION: &str = "src";

/// Why a publish was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PublishError {
    #[error(
        "stream {0:?} is already being published; stop the other publisher or pick another name"
    )]
    AlreadyLive(String),
    #[error("publish key for stream {0:?} is missing or wrong")]
    BadKey(String),
    #[error("stream name {0:?} is not allowed: use 1-64 characters of A-Z a-z 0-9 _ - .")]
    BadName(String),
    #[error("too many live streams (limit {0})")]
    TooMany(usize),
}

/// Why a kick did nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KickError {
    #[error("no live stream {0:?}")]
    NoSuchStream(String),
    #[error("stream {0:?} has no publisher connected")]
    NotLive(String),
    #[error("the publisher of stream {0:?} cannot be kicked (only RTMP publishers can)")]
    NotKickable(String),
}

/// Lifecycle of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    Live,
    /// Publisher dropped at this instant; it may come back within the grace period.
    Interrupted(Instant),
    /// Over (EXT-X-ENDLIST written) at this instant.
    Ended(Instant),
}

/// One rendition of a live stream.
#[derive(Debug)]
pub struct Rendition {
    pub name: String,
    pub store: Arc<RenditionStore>,
    pub info: RwLock<StreamInfo>,
    /// BANDWIDTH as first advertised, kept for the stream's life: p2p-media-loader
    /// hashes it into the swarm id, so a changing value would split the audience.
    pub advertised_bandwidth: Mutex<Option<u64>>,
}

/// A live stream.
#[derive(Debug)]
pub struct LiveStream {
    pub name: String,
    pub renditions: Vec<Arc<Rendition>>,
    state: Mutex<StreamState>,
    session: AtomicU64,
    /// Unix ms at which media time 0 was (DASH availabilityStartTime).
    pub epoch_ms: AtomicU64,
    /// Where the next session's timestamps continue, ms.
    next_ts_ms: AtomicU64,
    /// Numbering grid and wall-clock mapping, set at the first keyframe (see
    /// `numbering.rs`).
    timing: Mutex<Option<Timing>>,
    pub ingest_bytes: AtomicU64,
    viewers: Mutex<HashMap<IpAddr, Instant>>,
    /// The session whose ingest connection listens for a kick, and how to wake it.
    kicker: Mutex<Option<(u64, Arc<tokio::sync::Notify>)>>,
    /// The session an operator kicked (0: none).
    kicked: AtomicU64,
    /// How the current (or last) publisher reached us: `rtmp`, `srt`, `demo`, or
    /// `unknown` until its ingest says (the console shows it).
    source: Mutex<&'static str>,
    /// What WHEP playback taps (idle without WebRTC viewers).
    pub whep_tap: crate::whep::Tap,
    /// Woken when a consumer wants a keyframe soon (a WHEP viewer joined or asked
    /// for one); a WHIP publisher answers with a PLI, RTMP and SRT have no back channel.
    keyframe_wanted: tokio::sync::Notify,
}

const VIEWER_WINDOW: Duration = Duration::from_secs(15);
const MAX_TRACKED_VIEWERS: usize = 100_000;

impl LiveStream {
    fn new(name: &str, store: StoreConfig) -> Self {
        Self {
            name: name.to_string(),
            renditions: vec![Arc::new(Rendition {
                name: SOURCE_RENDITION.to_string(),
                store: Arc::new(RenditionStore::new(store)),
                info: RwLock::new(StreamInfo::default()),
                advertised_bandwidth: Mutex::new(None),
            })],
            state: Mutex::new(StreamState::Live),
            session: AtomicU64::new(0),
            epoch_ms: AtomicU64::new(0),
            next_ts_ms: AtomicU64::new(0),
            timing: Mutex::new(None),
            ingest_bytes: AtomicU64::new(0),
            viewers: Mutex::new(HashMap::new()),
            kicker: Mutex::new(None),
            kicked: AtomicU64::new(0),
            source: Mutex::new("unknown"),
            whep_tap: crate::whep::Tap::default(),
            keyframe_wanted: tokio::sync::Notify::new(),
        }
    }

    /// Asks the publisher for a keyframe soon (only a WHIP publisher can act on it).
    pub fn want_keyframe(&self) {
        self.keyframe_wanted.notify_one();
    }

    /// Resolves when a keyframe is wanted (see [`want_keyframe`](Self::want_keyframe)).
    pub async fn keyframe_wanted(&self) {
        self.keyframe_wanted.notified().await;
    }

    /// How the publisher reached us (`rtmp`, `srt`, `demo`; `unknown` if not said).
    pub fn source(&self) -> &'static str {
        *self.source.lock()
    }

    /// Ingest says how its publisher reached us.
    pub fn set_source(&self, source: &'static str) {
        *self.source.lock() = source;
    }

    pub fn state(&self) -> StreamState {
        *self.state.lock()
    }

    pub fn rendition(&self, name: &str) -> Option<&Arc<Rendition>> {
        self.renditions.iter().find(|r| r.name == name)
    }

    /// The stream's numbering timeline as the stream directory shares it; `None`
    /// before the first keyframe.
    pub fn shared_timeline(&self) -> Option<SharedTimeline> {
        let timing = (*self.timing.lock())?;
        let first = self.renditions.first()?;
        let t = first.store.read();
        Some(SharedTimeline {
            grid: timing.grid,
            pdt_anchor_ms: timing.pdt_anchor_ms,
            last_msn: t.last_complete_msn(),
            last_cc: t.last_cc(),
            live: self.state() == StreamState::Live,
            updated_ms: unix_ms(),
        })
    }

    /// Notes a playlist request from `ip`.
    pub fn touch_viewer(&self, ip: IpAddr) {
        let mut v = self.viewers.lock();
        if v.len() >= MAX_TRACKED_VIEWERS && !v.contains_key(&ip) {
            let now = Instant::now();
            v.retain(|_, seen| now.duration_since(*seen) < VIEWER_WINDOW);
            if v.len() >= MAX_TRACKED_VIEWERS {
                return;
            }
        }
        v.insert(ip, Instant::now());
    }

    /// Distinct client addresses that fetched a playlist in the last 15 s.
    pub fn viewers(&self) -> usize {
        let now = Instant::now();
        self.viewers
            .lock()
            .values()
            .filter(|seen| now.duration_since(**seen) < VIEWER_WINDOW)
            .count()
    }
}

/// All live streams of this origin.
#[derive(Debug)]
pub struct Streams {
    packaging: PackagingConfig,
    limits: Limits,
    keys: PublishKeys,
    map: RwLock<HashMap<String, Arc<LiveStream>>>,
    directory: RwLock<Option<Arc<dyn Directory>>>,
    history: Arc<History>,
    /// Streams whose P2P swarms the operator turned off.
    p2p_off: RwLock<std::collections::BTreeSet<String>>,
    p2p_changed: Arc<tokio::sync::Notify>,
    /// The fleet's shared operator state and audience, when the origin is in one.
    fleet: RwLock<Option<Arc<dyn super::fleet::FleetControl>>>,
    audience: RwLock<Option<Arc<dyn super::fleet::AudienceSource>>>,
}

impl Streams {
    pub fn new(
        packaging: PackagingConfig,
        limits: Limits,
        keys: HashMap<String, String>,
        require_keys: bool,
    ) -> Self {
        Self {
            packaging,
            limits,
            keys: PublishKeys::new(keys, require_keys),
            map: RwLock::new(HashMap::new()),
            directory: RwLock::new(None),
            history: Arc::new(History::default()),
            p2p_off: RwLock::new(std::collections::BTreeSet::new()),
            p2p_changed: Arc::new(tokio::sync::Notify::new()),
            fleet: RwLock::new(None),
            audience: RwLock::new(None),
        }
    }

    /// Joins the fleet's shared operator state: the write API writes there first.
    pub fn set_fleet_control(&self, control: Arc<dyn super::fleet::FleetControl>) {
        *self.fleet.write() = Some(control);
    }

    pub fn fleet_control(&self) -> Option<Arc<dyn super::fleet::FleetControl>> {
        self.fleet.read().clone()
    }

    /// Where viewer totals over the fleet come from (else: this origin's own count).
    pub fn set_audience(&self, source: Arc<dyn super::fleet::AudienceSource>) {
        *self.audience.write() = Some(source);
    }

    /// The fleet's audience of stream `name`, when known.
    pub fn audience(&self, name: &str) -> Option<super::fleet::Audience> {
        let source = self.audience.read().clone()?;
        source.audience(name)
    }

    /// Turns P2P off or on for stream `name` (whether or not it is live now).
    pub fn set_p2p(&self, name: &str, enabled: bool) -> Result<(), PublishError> {
        if !valid_name(name) {
            return Err(PublishError::BadName(name.to_string()));
        }
        let mut off = self.p2p_off.write();
        if enabled {
            off.remove(name);
        } else {
            if off.len() >= self.limits.max_streams && !off.contains(name) {
                return Err(PublishError::TooMany(self.limits.max_streams));
            }
            off.insert(name.to_string());
        }
        drop(off);
        self.p2p_changed.notify_one();
        Ok(())
    }

    /// Whether P2P is on for stream `name`.
    pub fn p2p_enabled(&self, name: &str) -> bool {
        !self.p2p_off.read().contains(name)
    }

    /// The streams whose P2P is off, sorted.
    pub fn p2p_off(&self) -> Vec<String> {
        self.p2p_off.read().iter().cloned().collect()
    }

    /// Notified (one stored permit) whenever the P2P switch of a stream changes.
    pub fn p2p_changed(&self) -> Arc<tokio::sync::Notify> {
        self.p2p_changed.clone()
    }

    /// Joins the fleet's stream directory: numbering adopts other origins' timelines
    /// and HTTP sends askers to the origin that holds a stream.
    pub fn set_directory(&self, directory: Arc<dyn Directory>) {
        *self.directory.write() = Some(directory);
    }

    pub fn directory(&self) -> Option<Arc<dyn Directory>> {
        self.directory.read().clone()
    }

    pub fn packaging(&self) -> &PackagingConfig {
        &self.packaging
    }

    pub fn get(&self, name: &str) -> Option<Arc<LiveStream>> {
        self.map.read().get(name).cloned()
    }

    /// Streams sorted by name.
    pub fn list(&self) -> Vec<Arc<LiveStream>> {
        let mut v: Vec<_> = self.map.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The stream whose publish key is `secret`, for encoders configured with the key
    /// alone as the stream key (OBS style).
    pub fn stream_for_key(&self, secret: &str) -> Option<String> {
        self.keys.stream_for_key(secret)
    }

    /// The publish keys, changeable at run time.
    pub fn keys(&self) -> &PublishKeys {
        &self.keys
    }

    /// Ends the live publish of `name`: its ingest connection is closed and the stream
    /// ends (EXT-X-ENDLIST) instead of waiting for the publisher to come back.
    pub fn kick(&self, name: &str) -> Result<(), KickError> {
        let stream = self
            .get(name)
            .ok_or_else(|| KickError::NoSuchStream(name.to_string()))?;
        if stream.state() != StreamState::Live {
            return Err(KickError::NotLive(name.to_string()));
        }
        let kicker = stream.kicker.lock();
        match &*kicker {
            Some((session, wake)) if *session == stream.session.load(Ordering::SeqCst) => {
                stream.kicked.store(*session, Ordering::SeqCst);
                // A stored permit: the connection sees it even if it is busy now.
                wake.notify_one();
                Ok(())
            }
            _ => Err(KickError::NotKickable(name.to_string())),
        }
    }

    /// Whether [`publish`](Self::publish) would accept `name` with `key` now (name,
    /// key, a live publisher of the name); reserves nothing. Ingest asks this before
    /// the `on_publish` hook, so a publish we would refuse anyway never reaches it.
    pub fn check_publish(&self, name: &str, key: Option<&str>) -> Result<(), PublishError> {
        self.check_name_and_key(name, key)?;
        match self.get(name).map(|s| s.state()) {
            Some(StreamState::Live) => Err(PublishError::AlreadyLive(name.to_string())),
            _ => Ok(()),
        }
    }

    fn check_name_and_key(&self, name: &str, key: Option<&str>) -> Result<(), PublishError> {
        if !valid_name(name) {
            return Err(PublishError::BadName(name.to_string()));
        }
        if !self.keys.allows(name, key) {
            return Err(PublishError::BadKey(name.to_string()));
        }
        Ok(())
    }

    /// Starts (or resumes, within the grace period) publishing `name`.
    pub fn publish(&self, name: &str, key: Option<&str>) -> Result<Publisher, PublishError> {
        self.check_name_and_key(name, key)?;
        let mut map = self.map.write();
        let stream = match map.get(name) {
            Some(existing) => {
                let mut state = existing.state.lock();
                match *state {
                    StreamState::Live => return Err(PublishError::AlreadyLive(name.to_string())),
                    StreamState::Interrupted(_) => {
                        *state = StreamState::Live;
                        drop(state);
                        for r in &existing.renditions {
                            r.store.mark_discontinuity();
                        }
                        tracing::info!(
                            stream = name,
                            "publisher came back within the grace period; stream continues"
                        );
                        Some(existing.clone())
                    }
                    StreamState::Ended(_) => None,
                }
            }
            None => None,
        };
        let stream = match stream {
            Some(s) => s,
            None => {
                let live = map
                    .values()
                    .filter(|s| !matches!(s.state(), StreamState::Ended(_)))
                    .count();
                if live >= self.limits.max_streams {
                    return Err(PublishError::TooMany(self.limits.max_streams));
                }
                let s = Arc::new(LiveStream::new(name, self.store_config()));
                map.insert(name.to_string(), s.clone());
                s
            }
        };
        let session = stream.session.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Publisher {
            stream,
            session,
            packager: Packager::new(self.packaging.segment_target, self.packaging.part_target)
                .with_bounds(self.bounds()),
            directory: self.directory(),
            history: self.history.clone(),
            target_ms: (self.packaging.segment_target.as_millis() as u64).max(1),
            clock: None,
            last_ts: 0,
            meters: Meters::new(),
        })
    }

    /// What one publisher may make its packager hold, from the limits.
    pub fn bounds(&self) -> Bounds {
        Bounds {
            max_part_bytes: self.limits.part_bytes(),
            max_segment_bytes: self.limits.open_segment_bytes(),
            max_keyframe_interval: self.limits.keyframe_interval(self.packaging.segment_target),
            max_frozen_frames: self.limits.max_frozen_frames,
        }
    }

    fn store_config(&self) -> StoreConfig {
        StoreConfig {
            segment_target: self.packaging.segment_target,
            part_target: self.packaging.part_target,
            dvr_window: self.packaging.dvr_window,
            max_bytes: self.limits.max_rendition_bytes,
            first_msn: unix_ms() / 1000 / self.packaging.segment_target.as_secs().max(1),
        }
    }

    /// Ends streams whose publisher did not come back and forgets old ended streams.
    /// Call about once a second.
    pub fn reap(&self) {
        let now = Instant::now();
        let mut map = self.map.write();
        map.retain(|name, s| {
            let mut state = s.state.lock();
            match *state {
                StreamState::Interrupted(at)
                    if now.duration_since(at) >= self.packaging.reconnect_grace =>
                {
                    for r in &s.renditions {
                        r.store.end_stream();
                    }
                    *state = StreamState::Ended(now);
                    tracing::info!(stream = %name, "publisher did not return; stream ended");
                    true
                }
                StreamState::Ended(at) => now.duration_since(at) < self.packaging.ended_linger,
                _ => true,
            }
        });
    }
}

/// Metric handles a publisher bumps per frame, looked up once (a lookup by name
/// per frame shows in ingest profiles).
struct Meters {
    ingest_bytes: metrics::Counter,
    parts: metrics::Counter,
    segments: metrics::Counter,
    part_delay: metrics::Histogram,
}

impl Meters {
    fn new() -> Self {
        Self {
            ingest_bytes: metrics::counter!("mediamesh_ingest_bytes_total"),
            parts: metrics::counter!("mediamesh_parts_total"),
            segments: metrics::counter!("mediamesh_segments_total"),
            part_delay: metrics::histogram!("mediamesh_part_publish_delay_seconds"),
        }
    }
}

impl std::fmt::Debug for Meters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meters")
    }
}

/// An ingest session's handle: feeds frames in; on drop the stream is interrupted.
#[derive(Debug)]
pub struct Publisher {
    stream: Arc<LiveStream>,
    session: u64,
    packager: Packager,
    directory: Option<Arc<dyn Directory>>,
    history: Arc<History>,
    target_ms: u64,
    /// (first input timestamp in ms, unwrapped) -> offset mapping for this session.
    clock: Option<(u64, u64)>,
    last_ts: u64,
    meters: Meters,
}

impl Publisher {
    pub fn stream(&self) -> &Arc<LiveStream> {
        &self.stream
    }

    /// Lets an operator kick this publish: `wake` is notified on a kick (see
    /// [`Streams::kick`]), after which [`kicked`](Self::kicked) is true.
    pub fn on_kick(&self, wake: Arc<tokio::sync::Notify>) {
        *self.stream.kicker.lock() = Some((self.session, wake));
    }

    /// Whether an operator kicked this publish.
    pub fn kicked(&self) -> bool {
        self.stream.kicked.load(Ordering::SeqCst) == self.session
    }

    /// Maps an input timestamp (ms, already unwrapped by the ingest) onto the stream's
    /// continuous timeline. The first session keeps the publisher's timestamps (so
    /// origins fed the same publish agree on `tfdt`); a reconnecting publisher that
    /// restarts at 0 continues in the next numbering cell.
    fn restamp(&mut self, ts: u64) -> u64 {
        let (first_in, first_out) = *self.clock.get_or_insert_with(|| {
            if self.stream.timing.lock().is_none() {
                return (ts, ts);
            }
            let out = self.stream.next_ts_ms.load(Ordering::SeqCst);
            (ts, out)
        });
        let out = first_out + ts.saturating_sub(first_in);
        self.last_ts = self.last_ts.max(out);
        out
    }

    /// See [`Packager::until_part_complete_ms`].
    pub fn until_part_complete_ms(&self) -> Option<u64> {
        self.packager.until_part_complete_ms()
    }

    /// An H.264 AVCDecoderConfigurationRecord.
    pub fn video_config(&mut self, record: Bytes) -> Result<(), PackagerError> {
        self.video_config_of(VideoCodec::Avc, record)
    }

    /// A video decoder configuration record of `codec`. WHEP carries H.264 only: the
    /// WHEP tap sees H.264 configurations and frames, and no video of other codecs.
    pub fn video_config_of(
        &mut self,
        codec: VideoCodec,
        record: Bytes,
    ) -> Result<(), PackagerError> {
        if codec == VideoCodec::Avc {
            self.stream.whep_tap.video_config(&record);
        }
        self.feed(Input::VideoConfig(codec, record))
    }

    /// The codec of the video configuration in use, if any.
    pub fn video_codec(&self) -> Option<VideoCodec> {
        self.packager.info().video.as_ref().map(|v| v.codec())
    }

    pub fn audio_config(&mut self, asc: Bytes) -> Result<(), PackagerError> {
        self.stream.whep_tap.audio_config(&asc);
        self.feed(Input::AudioConfig(asc))
    }

    /// Feeds one video frame. An error means the publisher broke a bound (see
    /// [`Bounds`]): its segment is closed and the caller should drop it.
    pub fn video(
        &mut self,
        ts_ms: u64,
        cts_ms: i32,
        keyframe: bool,
        data: Bytes,
    ) -> Result<(), PackagerError> {
        self.count(data.len());
        let dts_ms = self.restamp(ts_ms);
        if keyframe && self.packager.waiting_for_keyframe() {
            self.place(dts_ms);
        }
        if self.video_codec() == Some(VideoCodec::Avc) {
            self.stream.whep_tap.video(dts_ms, cts_ms, keyframe, &data);
        }
        self.feed(Input::Video {
            dts_ms,
            cts_ms,
            keyframe,
            data,
        })
    }

    /// Feeds one AAC frame; errors as for [`video`](Self::video).
    pub fn audio(&mut self, ts_ms: u64, data: Bytes) -> Result<(), PackagerError> {
        self.count(data.len());
        let dts_ms = self.restamp(ts_ms);
        self.stream.whep_tap.audio(dts_ms, &data);
        self.feed(Input::Audio { dts_ms, data })
    }

    /// Before the keyframe at `dts_ms` starts packaging: decides the stream's
    /// numbering on its first session (see `numbering.rs`) and gives the packager the
    /// grid.
    fn place(&mut self, dts_ms: u64) {
        let mut timing = self.stream.timing.lock();
        let grid = match *timing {
            Some(t) => t.grid,
            None => {
                let name = &self.stream.name;
                let mut known: Vec<SharedTimeline> = self
                    .directory
                    .as_ref()
                    .map(|d| d.timelines(name))
                    .unwrap_or_default();
                known.extend(self.history.get(name));
                let s = numbering::start(unix_ms(), dts_ms, self.target_ms, 0, &known);
                tracing::info!(
                    stream = %name,
                    first_msn = s.first_msn,
                    adopted = s.adopted,
                    discontinuity = s.discontinuity,
                    "segment numbering {}",
                    if s.adopted {
                        "adopted from another origin packaging the same publish"
                    } else if s.discontinuity {
                        "continues after the previous timeline of this stream"
                    } else {
                        "starts from the wall clock"
                    }
                );
                *timing = Some(Timing {
                    grid: s.grid,
                    pdt_anchor_ms: s.pdt_anchor_ms,
                });
                for r in &self.stream.renditions {
                    r.store
                        .begin(s.first_msn, s.discontinuity, s.discontinuity_sequence);
                }
                s.grid
            }
        };
        drop(timing);
        self.packager.set_grid(Some(grid));
    }

    fn count(&self, n: usize) {
        self.stream
            .ingest_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        self.meters.ingest_bytes.increment(n as u64);
    }

    fn feed(&mut self, input: Input) -> Result<(), PackagerError> {
        let arrived = Instant::now();
        let r = self.packager.handle(input);
        // A stopped packager has closed its segment: move that out too.
        self.drain(arrived);
        r
    }

    /// Moves packager output into the store. `arrived` is when the frame that caused
    /// it came in: the time from there to a part being listed is measured.
    fn drain(&mut self, arrived: Instant) {
        let Some(rendition) = self.stream.renditions.first().cloned() else {
            return;
        };
        while let Some(out) = self.packager.poll_output() {
            match out {
                Output::Init(init) => {
                    *rendition.info.write() = self.packager.info().clone();
                    rendition.store.set_init(init);
                }
                Output::Part {
                    bytes,
                    duration,
                    independent,
                    decode_time,
                } => {
                    let timing = *self.stream.timing.lock();
                    let media_ms = decode_time / 90;
                    if self.stream.epoch_ms.load(Ordering::SeqCst) == 0 {
                        let epoch = match timing {
                            Some(t) => t.pdt_anchor_ms.max(1) as u64,
                            None => unix_ms().saturating_sub(media_ms),
                        };
                        self.stream.epoch_ms.store(epoch, Ordering::SeqCst);
                    }
                    let pdt = timing
                        .map(|t| t.pdt_anchor_ms.saturating_add(media_ms as i64).max(0) as u64);
                    {
                        let mut info = rendition.info.write();
                        if info.frame_rate != self.packager.info().frame_rate {
                            info.frame_rate = self.packager.info().frame_rate;
                        }
                    }
                    rendition
                        .store
                        .push_part_at(bytes, duration, independent, decode_time, pdt);
                    self.meters.parts.increment(1);
                    self.meters
                        .part_delay
                        .record(arrived.elapsed().as_secs_f64());
                }
                Output::SegmentEnd => {
                    rendition.store.end_segment();
                    self.meters.segments.increment(1);
                }
            }
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.packager.finish();
        self.drain(Instant::now());
        // The next session continues in the middle of the next numbering cell (so its
        // first segment gets the next MSN), or a frame later without a grid.
        let timing = *self.stream.timing.lock();
        let next = match timing {
            Some(t) => t.grid.center_ms(t.grid.cell(self.last_ts) + 1),
            None => self.last_ts + 40,
        };
        self.stream.next_ts_ms.fetch_max(next, Ordering::SeqCst);
        if let Some(mut t) = self.stream.shared_timeline() {
            t.live = false;
            self.history.put(&self.stream.name, t);
        }
        {
            let mut kicker = self.stream.kicker.lock();
            if kicker.as_ref().is_some_and(|(s, _)| *s == self.session) {
                *kicker = None;
            }
        }
        let mut state = self.stream.state.lock();
        if self.stream.session.load(Ordering::SeqCst) == self.session && *state == StreamState::Live
        {
            if self.kicked() {
                // Kicked: over now, no grace period to come back in.
                for r in &self.stream.renditions {
                    r.store.end_stream();
                }
                *state = StreamState::Ended(Instant::now());
                tracing::info!(stream = %self.stream.name, "publisher kicked; stream ended");
            } else {
                *state = StreamState::Interrupted(Instant::now());
                tracing::info!(stream = %self.stream.name, "publisher left; waiting for it to return");
            }
        }
    }
}

/// Compares secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(keys: &[(&str, &str)]) -> Streams {
        let packaging = PackagingConfig {
            reconnect_grace: Duration::from_millis(50),
            ended_linger: Duration::from_millis(50),
            ..PackagingConfig::default()
        };
        Streams::new(
            packaging,
            Limits::default(),
            keys.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            false,
        )
    }

    #[test]
    fn second_publisher_of_a_live_name_is_refused() {
        let s = streams(&[]);
        let p = s.publish("cam", None);
        assert!(p.is_ok());
        assert_eq!(
            s.publish("cam", None).err(),
            Some(PublishError::AlreadyLive("cam".into()))
        );
        drop(p);
        // Within the grace period the same name resumes the same stream.
        assert!(s.publish("cam", None).is_ok());
    }

    #[test]
    fn keys_are_checked() {
        let s = streams(&[("cam", "secret")]);
        assert!(matches!(
            s.publish("cam", None),
            Err(PublishError::BadKey(_))
        ));
        assert!(matches!(
            s.publish("cam", Some("nope")),
            Err(PublishError::BadKey(_))
        ));
        assert!(s.publish("cam", Some("secret")).is_ok());
        assert!(s.publish("other", None).is_ok());
    }

    #[test]
    fn a_kicked_publisher_is_woken_and_its_stream_ends_at_once() {
        let s = streams(&[]);
        assert_eq!(s.kick("cam"), Err(KickError::NoSuchStream("cam".into())));
        let p = s.publish("cam", None).expect("publish");
        // Not listening for kicks (the demo loop): refused.
        assert_eq!(s.kick("cam"), Err(KickError::NotKickable("cam".into())));
        let wake = Arc::new(tokio::sync::Notify::new());
        p.on_kick(wake.clone());
        assert!(!p.kicked());
        assert_eq!(s.kick("cam"), Ok(()));
        assert!(p.kicked());
        // The permit waits for the connection even though nobody waited yet.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), wake.notified())
                .await
                .expect("woken");
        });
        drop(p);
        let cam = s.get("cam").expect("listed");
        assert!(matches!(cam.state(), StreamState::Ended(_)));
        assert!(cam.renditions[0].store.read().ended);
        // The next publish starts afresh and is not kicked.
        drop(cam);
        let p = s.publish("cam", None).expect("publish again");
        assert!(!p.kicked());
    }

    #[test]
    fn names_are_restricted() {
        let s = streams(&[]);
        for bad in ["", "../etc", "a/b", ".hidden", "x y", &"a".repeat(65)] {
            assert!(matches!(
                s.publish(bad, None),
                Err(PublishError::BadName(_))
            ));
        }
    }

    #[test]
    fn interrupted_stream_ends_after_grace() {
        let s = streams(&[]);
        drop(s.publish("cam", None));
        assert!(matches!(
            s.get("cam").map(|c| c.state()),
            Some(StreamState::Interrupted(_))
        ));
        assert_eq!(s.kick("cam"), Err(KickError::NotLive("cam".into())));
        std::thread::sleep(Duration::from_millis(60));
        s.reap();
        let cam = s.get("cam");
        assert!(matches!(
            cam.as_ref().map(|c| c.state()),
            Some(StreamState::Ended(_))
        ));
        assert!(cam.is_some_and(|c| c.renditions[0].store.read().ended));
        std::thread::sleep(Duration::from_millis(60));
        s.reap();
        assert!(s.get("cam").is_none());
    }
}
