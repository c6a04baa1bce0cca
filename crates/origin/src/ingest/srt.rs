//! The SRT ingest listener: encoders publish MPEG-TS (H.264 or H.265 + AAC) over SRT to
//! `srt://HOST:PORT?streamid=…`, and each publish feeds a `live::Publisher` exactly as
//! an RTMP publish does, so it plays as LL-HLS, DASH, P2P and through edges alike.
//!
//! Stream ids: the access-control form `#!::r=live/NAME,m=publish` and the plain form
//! `live/NAME`; a publish key as for RTMP, `live/NAME?key=KEY` (also as a `key=` field
//! of the access-control form), or the key alone as the name (`live/KEY`, OBS style).
//! With a passphrase configured, only callers that encrypt with it (AES-CTR, key length
//! 16/24/32, or the configured `pbkeylen`) get in. Playback over SRT (`m=request`) is
//! not offered.
//!
//! Why srt-protocol (the sans-IO core of srt-rs) and this shell of ours rather than
//! libsrt bindings or srt-tokio: libsrt is C++ and would add cmake, OpenSSL headers and
//! `unsafe` FFI to every build of the binary; srt-rs is pure Rust, implements HSv5,
//! TSBPD, ARQ and the libsrt key-material exchange, and is tested against libsrt
//! (`srt-live-transmit`) upstream and in our end-to-end tests (ffmpeg 5.1's libsrt and
//! Debian's srt-tools). Its tokio multiplexer (srt-tokio) is not used: it keeps state
//! for every source address that ever sent a packet, blocks all connections behind the
//! slowest, forces tokio's `test-util` feature on the build, and panics on some crafted
//! handshakes (a key-size mismatch, key material to a listener without a passphrase).
//! Here the socket and the connection table are ours: handshakes keep no state until
//! a caller returns a valid cookie of ours (keyed, unlike the core's), so a flood of
//! handshakes cannot crowd out a publisher; a full connection queue drops packets (SRT
//! retransmits) instead of stalling the others; crypto is checked before the library
//! sees it; and every call into the protocol core runs under `catch_unwind`, so a
//! panic in it ends only the handshake or connection it was serving.
//!
//! Not here: packaging (`live`), TS parsing (`media::ts`), HTTP.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io::Cursor;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use media::codec::VideoCodec;
use media::ts::{self, Demuxer, Frame};
use srt_protocol::connection::{Connection, DuplexConnection};
use srt_protocol::options::{KeySize, Passphrase};
use srt_protocol::packet::{
    ControlPacket, ControlTypes, CoreRejectReason, HandshakeControlInfo, HandshakeVsInfo, Packet,
    RejectReason, ServerRejectReason, ShakeType, SocketId, SrtControlPacket,
};
use srt_protocol::protocol::pending_connection::listen::Listen;
use srt_protocol::protocol::pending_connection::{AccessControlResponse, ConnectionResult};
use srt_protocol::settings::{
    CipherSettings, ConnInitSettings, KeyMaterialRefreshSettings, KeySettings,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::hooks::{Hooks, PublishGuard, PublishInfo};
use crate::live::{PublishError, Publisher, Streams};

/// What the SRT shell needs from the origin's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Callers must encrypt with this passphrase; `None` refuses encrypting callers.
    pub passphrase: Option<String>,
    /// Required key length in bytes (16, 24, 32); 0 takes the caller's.
    pub pbkeylen: u16,
    /// Receiver latency (TSBPD): the larger of this and the caller's applies.
    pub latency: Duration,
    /// Concurrent SRT connections.
    pub max_connections: usize,
    /// A publishing connection with no audio or video frame for this long is closed.
    pub idle_timeout: Duration,
}

/// Packets queued for one connection before further ones are dropped.
const CONNECTION_QUEUE: usize = 1024;

/// Accepts SRT publishers on `socket` forever.
///
/// With an `on_publish` hook, a caller that passes our own checks is connected first
/// and asked about on its connection's task (the listener never waits for a hook):
/// until the hook allows, its transport stream is held (bounded), and a refusal
/// closes the connection (SRT shutdown) before anything was packaged, as SRS does.
pub async fn serve(socket: UdpSocket, streams: Arc<Streams>, settings: Settings, hooks: Hooks) {
    let socket = Arc::new(socket);
    let local = socket.local_addr().ok();
    let ipv6 = local.map(|a| a.is_ipv6()).unwrap_or(false);
    let mut listener = Listener {
        socket: socket.clone(),
        streams,
        settings,
        hooks,
        tc_url: local.map(|a| format!("srt://{a}/live")).unwrap_or_default(),
        secret: RandomState::new(),
        conns: HashMap::new(),
        log_budget: LogBudget::new(Instant::now()),
    };
    let mut buf = vec![0u8; 65_536];
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    // The parser reads the network: a panic in it loses one datagram.
                    let datagram = &buf[..n];
                    let parsed = catch_unwind(|| Packet::parse(&mut Cursor::new(datagram), ipv6));
                    match parsed {
                        Ok(Ok(packet)) => listener.packet(packet, from),
                        _ => {
                            metrics::counter!("mediamesh_srt_bad_datagrams_total").increment(1);
                        }
                    }
                }
                Err(e) => {
                    // UDP errors (an ICMP unreachable surfacing) concern one peer.
                    tracing::debug!(error = %e, "srt receive failed");
                }
            },
            _ = tick.tick() => listener.housekeeping(),
        }
    }
}

struct Conn {
    tx: mpsc::Sender<Packet>,
    /// The caller's socket id: a conclusion with another one is a new caller on the
    /// same address.
    remote: SocketId,
}

/// The crypto of a caller's conclusion handshake, judged before the protocol core
/// sees it (it panics on some mismatches).
#[derive(Debug, Clone)]
enum Crypto {
    Plain,
    Encrypted(KeySettings),
    Refused(CoreRejectReason, &'static str),
}

/// The listener keeps no state for a handshake in progress (as SYN cookies do for
/// TCP): an induction is answered with a cookie of ours (a keyed hash of the address
/// and the time), and a conclusion that brings a valid one is decided at once. So
/// no number of half-open handshakes can crowd out a real publisher.
struct Listener {
    socket: Arc<UdpSocket>,
    streams: Arc<Streams>,
    settings: Settings,
    hooks: Hooks,
    /// `tcUrl` of hook events.
    tc_url: String,
    /// Key of our handshake cookies and listener socket ids.
    secret: RandomState,
    conns: HashMap<SocketAddr, Conn>,
    /// Bounds the handshake-time warnings (refusals, core failures) a caller can cause.
    log_budget: LogBudget,
}

/// Most handshake-time warning lines logged per second; the rest are counted.
const HANDSHAKE_LOG_PER_SECOND: u32 = 10;

/// A caller that completes handshakes in a loop (a wrong key, a wrong passphrase)
/// would otherwise write one log line per handshake: at most
/// [`HANDSHAKE_LOG_PER_SECOND`] lines a second, and the next line logged says how many
/// were left out. The metrics still count every one.
#[derive(Debug)]
struct LogBudget {
    window: Instant,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    fn new(now: Instant) -> Self {
        LogBudget {
            window: now,
            used: 0,
            suppressed: 0,
        }
    }

    /// `Some(lines left out since the last one logged)` when this line may be logged.
    fn take(&mut self, now: Instant) -> Option<u64> {
        if now.saturating_duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.used = 0;
        }
        if self.used < HANDSHAKE_LOG_PER_SECOND {
            self.used += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// Cookies are valid for one to two of these periods.
const COOKIE_PERIOD_SECS: u64 = 8;

impl Listener {
    fn send(&self, packet: &Packet, to: SocketAddr) {
        let mut out = BytesMut::with_capacity(1500);
        packet.serialize(&mut out);
        // Never wait for the socket here: one slow send must not stall the others,
        // and handshake packets are retransmitted by the caller.
        let _ = self.socket.try_send_to(&out, to);
    }

    fn housekeeping(&mut self) {
        self.conns.retain(|_, c| !c.tx.is_closed());
        metrics::gauge!("mediamesh_srt_connections").set(self.conns.len() as f64);
    }

    fn cookie(&self, from: SocketAddr, period: u64) -> i32 {
        self.secret.hash_one((from, period)) as i32
    }

    fn cookie_valid(&self, from: SocketAddr, cookie: i32) -> bool {
        let now = unix_secs() / COOKIE_PERIOD_SECS;
        [now, now.saturating_sub(1)]
            .into_iter()
            .any(|p| self.cookie(from, p) == cookie)
    }

    /// Handshake settings for a caller at `from`: its listener socket id is the same
    /// for the induction and the conclusion, which are handled by separate state
    /// machines.
    fn init(&self, from: SocketAddr) -> ConnInitSettings {
        ConnInitSettings {
            recv_latency: self.settings.latency,
            local_sockid: SocketId((self.secret.hash_one(from) as u32) | 1),
            ..ConnInitSettings::default()
        }
    }

    fn packet(&mut self, packet: Packet, from: SocketAddr) {
        let handshake = match &packet {
            Packet::Control(ControlPacket {
                control_type: ControlTypes::Handshake(hs),
                ..
            }) => Some((hs.shake_type, hs.socket_id)),
            _ => None,
        };
        if let Some(conn) = self.conns.get(&from) {
            // Handshakes of the connected caller go to its connection (a lost
            // conclusion response is sent again); a new caller on the same address
            // handshakes anew.
            let new_caller = match handshake {
                Some((ShakeType::Induction, _)) => true,
                Some((ShakeType::Conclusion, id)) => id != conn.remote,
                _ => false,
            };
            if !new_caller {
                match conn.tx.try_send(packet) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        metrics::counter!("mediamesh_srt_dropped_packets_total").increment(1);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        self.conns.remove(&from);
                    }
                }
                return;
            }
        }
        match handshake {
            Some((ShakeType::Induction, _)) => self.induction(packet, from),
            Some((ShakeType::Conclusion, _)) => self.conclusion(packet, from),
            _ => {
                // Data or control for no connection of ours.
                metrics::counter!("mediamesh_srt_stray_packets_total").increment(1);
            }
        }
    }

    /// Answers an induction with our cookie; keeps nothing.
    fn induction(&mut self, packet: Packet, from: SocketAddr) {
        let mut listen = Listen::new(self.init(from), true);
        let now = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            listen.handle_packet(now, Ok((packet, from)))
        }));
        if let Ok(ConnectionResult::SendPacket((mut response, to))) = result {
            let cookie = self.cookie(from, unix_secs() / COOKIE_PERIOD_SECS);
            set_cookie(&mut response, cookie);
            self.send(&response, to);
        }
    }

    /// Decides a conclusion that carries a valid cookie: the protocol core's state
    /// machine is brought to where it would be after the induction (with its own
    /// cookie), then fed the conclusion and our access decision.
    fn conclusion(&mut self, packet: Packet, from: SocketAddr) {
        let Packet::Control(ControlPacket {
            timestamp,
            control_type: ControlTypes::Handshake(hs),
            ..
        }) = &packet
        else {
            return;
        };
        let theirs = hs.syn_cookie;
        if !self.cookie_valid(from, theirs) {
            metrics::counter!("mediamesh_srt_stray_packets_total").increment(1);
            return;
        }
        let induction = Packet::Control(ControlPacket {
            timestamp: *timestamp,
            dest_sockid: SocketId(0),
            control_type: ControlTypes::Handshake(HandshakeControlInfo {
                shake_type: ShakeType::Induction,
                syn_cookie: 0,
                ..hs.clone()
            }),
        });
        let crypto = judge_crypto(hs, &self.settings);
        let mut listen = Listen::new(self.init(from), true);
        let now = Instant::now();
        let steps = catch_unwind(AssertUnwindSafe(|| {
            let internal = match listen.handle_packet(now, Ok((induction, from))) {
                ConnectionResult::SendPacket((p, _)) => cookie_of(&p),
                _ => None,
            }?;
            let mut conclusion = packet;
            set_cookie(&mut conclusion, internal);
            Some(listen.handle_packet(now, Ok((conclusion, from))))
        }));
        let request = match steps {
            Ok(Some(ConnectionResult::RequestAccess(request))) => request,
            Ok(Some(ConnectionResult::Reject(Some((mut p, to)), _))) => {
                set_cookie(&mut p, theirs);
                self.send(&p, to);
                return;
            }
            Ok(_) => return,
            Err(_) => {
                metrics::counter!("mediamesh_srt_errors_total").increment(1);
                if let Some(left_out) = self.log_budget.take(Instant::now()) {
                    tracing::warn!(%from, left_out, "srt handshake dropped: the protocol core failed on it");
                }
                return;
            }
        };
        let sid = request.stream_id.as_ref().map(|s| s.as_str());
        let (response, publisher) = match self.decide(sid, crypto, from) {
            Ok((publisher, keys)) => (AccessControlResponse::Accepted(keys), Some(publisher)),
            Err((reason, why, stream)) => {
                metrics::counter!("mediamesh_publish_refused_total").increment(1);
                metrics::counter!("mediamesh_srt_refused_total").increment(1);
                if let Some(left_out) = self.log_budget.take(Instant::now()) {
                    tracing::warn!(%from, stream = %stream, streamid = ?sid, error = %why, left_out, "srt publish refused");
                }
                (AccessControlResponse::Rejected(reason), None)
            }
        };
        let now = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            listen.handle_access_control_response(now, response)
        }));
        match (result, publisher) {
            (Ok(ConnectionResult::Connected(p, connection)), Some(publisher)) => {
                if let Some((mut p, to)) = p {
                    set_cookie(&mut p, theirs);
                    self.send(&p, to);
                }
                let encrypted = connection.settings.cipher.is_some();
                tracing::info!(%from, stream = %publisher.name(), encrypted, "srt publish started");
                self.open(from, connection, publisher);
            }
            (Ok(ConnectionResult::Reject(Some((mut p, to)), _)), publisher) => {
                set_cookie(&mut p, theirs);
                self.send(&p, to);
                if let Some(publisher) = publisher {
                    // Accepted here, refused by the protocol core (crypto it would not
                    // agree to): the publish never started.
                    tracing::warn!(%from, stream = %publisher.name(), "srt publish refused by the protocol core");
                }
            }
            (Ok(_), _) => {}
            (Err(_), _) => {
                metrics::counter!("mediamesh_srt_errors_total").increment(1);
                if let Some(left_out) = self.log_budget.take(Instant::now()) {
                    tracing::warn!(%from, left_out, "srt handshake dropped: the protocol core failed on it");
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn decide(
        &self,
        sid: Option<&str>,
        crypto: Crypto,
        from: SocketAddr,
    ) -> Result<(Admission, Option<KeySettings>), (RejectReason, String, String)> {
        let keys = match crypto {
            Crypto::Plain => None,
            Crypto::Encrypted(k) => Some(k),
            Crypto::Refused(reason, why) => {
                return Err((RejectReason::Core(reason), why.to_string(), String::new()))
            }
        };
        let target = parse_stream_id(sid).map_err(|e| {
            (
                RejectReason::Server(e.reject_reason()),
                e.to_string(),
                String::new(),
            )
        })?;
        if self.conns.len() >= self.settings.max_connections {
            return Err((
                RejectReason::Server(ServerRejectReason::Overload),
                format!(
                    "too many SRT connections (limit {})",
                    self.settings.max_connections
                ),
                target.name,
            ));
        }
        // OBS-style stream keys: the secret itself as the name.
        let (name, key) = match (target.key, self.streams.stream_for_key(&target.name)) {
            (None, Some(mapped)) => (mapped, Some(target.name)),
            (key, _) => (target.name, key),
        };
        let admitted = if self.hooks.asks_on_publish() {
            self.streams.check_publish(&name, key.as_deref()).map(|()| {
                let info = PublishInfo {
                    client_id: PublishInfo::new_client_id(),
                    ip: from.ip().to_string(),
                    app: "live".into(),
                    tc_url: self.tc_url.clone(),
                    stream: name.clone(),
                    param: key
                        .as_deref()
                        .map(|k| format!("?key={k}"))
                        .unwrap_or_default(),
                    protocol: "srt",
                };
                Admission::Ask {
                    streams: self.streams.clone(),
                    hooks: self.hooks.clone(),
                    key: key.clone(),
                    info,
                }
            })
        } else {
            self.streams.publish(&name, key.as_deref()).map(|p| {
                p.stream().set_source("srt");
                Admission::Ready(Box::new(p))
            })
        };
        match admitted {
            Ok(admission) => Ok((admission, keys)),
            Err(e) => {
                let reason = match e {
                    PublishError::AlreadyLive(_) => ServerRejectReason::Conflict,
                    PublishError::BadName(_) => ServerRejectReason::Notfound,
                    PublishError::BadKey(_) => ServerRejectReason::Unauthorized,
                    PublishError::TooMany(_) => ServerRejectReason::Overload,
                };
                Err((RejectReason::Server(reason), e.to_string(), name))
            }
        }
    }

    fn open(&mut self, from: SocketAddr, connection: Connection, publisher: Admission) {
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        let remote = connection.settings.remote_sockid;
        // Replaces (and so ends) a previous connection from the same address.
        self.conns.insert(from, Conn { tx, remote });
        let socket = self.socket.clone();
        let idle = self.settings.idle_timeout;
        let span = tracing::info_span!("srt", peer = %from, stream = %publisher.name());
        tokio::spawn(
            async move {
                metrics::counter!("mediamesh_srt_connections_total").increment(1);
                let name = publisher.name().to_string();
                match run_connection(connection, rx, socket, from, publisher, idle).await {
                    Ok(()) => tracing::info!(stream = %name, "srt publish stopped"),
                    Err(e) => {
                        metrics::counter!("mediamesh_srt_errors_total").increment(1);
                        tracing::info!(stream = %name, error = %e, "srt publish stopped");
                    }
                }
            }
            .instrument(span),
        );
    }
}

/// A caller let in by the listener: publishing at once, or once the `on_publish` hook
/// allows (asked on the connection's task).
enum Admission {
    Ready(Box<Publisher>),
    Ask {
        streams: Arc<Streams>,
        hooks: Hooks,
        key: Option<String>,
        info: PublishInfo,
    },
}

impl Admission {
    fn name(&self) -> &str {
        match self {
            Admission::Ready(p) => &p.stream().name,
            Admission::Ask { info, .. } => &info.stream,
        }
    }
}

/// The publish of a connection.
enum Publishing {
    /// The hook is being asked; transport stream held meanwhile.
    Asking {
        answer: tokio::task::JoinHandle<Result<(Publisher, PublishGuard), String>>,
        held: Vec<Bytes>,
        held_bytes: usize,
    },
    /// Publishing; the guard (dropped after the publisher) sends `on_unpublish`.
    Live(Box<Publisher>, #[allow(dead_code)] Option<PublishGuard>),
}

impl Drop for Publishing {
    fn drop(&mut self) {
        if let Publishing::Asking { answer, .. } = self {
            answer.abort();
        }
    }
}

/// Transport stream held per connection while its `on_publish` hook is asked; more is
/// dropped (the packager starts at the next keyframe anyway).
const MAX_HELD_BYTES: usize = 16 * 1024 * 1024;

/// Asks the hook, then publishes; the error is for the log.
async fn ask(
    streams: Arc<Streams>,
    hooks: Hooks,
    key: Option<String>,
    info: PublishInfo,
) -> Result<(Publisher, PublishGuard), String> {
    hooks.on_publish(&info).await.map_err(|e| e.to_string())?;
    // From here the backend knows of the publish: on_unpublish follows, whatever
    // happens next.
    let name = info.stream.clone();
    let guard = hooks.published(info);
    let publisher = streams
        .publish(&name, key.as_deref())
        .map_err(|e| e.to_string())?;
    publisher.stream().set_source("srt");
    Ok((publisher, guard))
}

/// The cookie of a handshake packet.
fn cookie_of(packet: &Packet) -> Option<i32> {
    match packet {
        Packet::Control(ControlPacket {
            control_type: ControlTypes::Handshake(hs),
            ..
        }) => Some(hs.syn_cookie),
        _ => None,
    }
}

fn set_cookie(packet: &mut Packet, cookie: i32) {
    if let Packet::Control(ControlPacket {
        control_type: ControlTypes::Handshake(hs),
        ..
    }) = packet
    {
        hs.syn_cookie = cookie;
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Judges the crypto of a conclusion handshake against the settings.
fn judge_crypto(hs: &HandshakeControlInfo, settings: &Settings) -> Crypto {
    let HandshakeVsInfo::V5(info) = &hs.info else {
        return Crypto::Refused(
            CoreRejectReason::Version,
            "SRT handshake version 5 required",
        );
    };
    match (&settings.passphrase, info.key_size, &info.ext_km) {
        (None, KeySize::Unspecified, None) => Crypto::Plain,
        (None, _, _) => Crypto::Refused(
            CoreRejectReason::Unsecure,
            "the caller encrypts but this listener has no passphrase (--srt-passphrase)",
        ),
        (Some(_), _, None) => Crypto::Refused(
            CoreRejectReason::Unsecure,
            "a passphrase is required: add passphrase=… to the srt:// URL",
        ),
        (Some(pass), size, Some(SrtControlPacket::KeyRefreshRequest(km))) => {
            // A caller without an explicit pbkeylen leaves the handshake's field 0 and
            // sends a 16-byte key; the protocol core wants the field as sent.
            let effective = match size {
                KeySize::Unspecified => 16,
                s => u16::from(s.as_raw()),
            };
            if settings.pbkeylen != 0 && effective != settings.pbkeylen {
                return Crypto::Refused(
                    CoreRejectReason::BadSecret,
                    "the caller's pbkeylen differs from --srt-pbkeylen",
                );
            }
            let Ok(passphrase) = Passphrase::try_from(pass.clone()) else {
                return Crypto::Refused(CoreRejectReason::BadSecret, "bad listener passphrase");
            };
            let keys = KeySettings {
                key_size: size,
                passphrase,
            };
            let refresh = KeyMaterialRefreshSettings::default();
            match catch_unwind(AssertUnwindSafe(|| {
                CipherSettings::new(&keys, &refresh, km).is_ok()
            })) {
                Ok(true) => Crypto::Encrypted(keys),
                _ => Crypto::Refused(
                    CoreRejectReason::BadSecret,
                    "wrong passphrase (the key material does not unwrap)",
                ),
            }
        }
        (Some(_), _, Some(_)) => Crypto::Refused(CoreRejectReason::BadSecret, "bad key material"),
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("no audio or video frame for {0:?} (idle timeout)")]
    Idle(Duration),
    #[error("the SRT protocol core failed on this connection")]
    Protocol,
    #[error("publish refused: {0}")]
    Refused(String),
    #[error("a new connection from the same address replaced it, or the listener stopped")]
    ListenerGone,
    #[error("publisher of stream {stream:?} dropped: {reason}")]
    Dropped {
        stream: String,
        reason: crate::live::packager::PackagerError,
    },
}

/// Drives one accepted connection: the protocol core's timers and packets, TS out of
/// it into the demuxer, frames into the publisher.
async fn run_connection(
    connection: Connection,
    mut rx: mpsc::Receiver<Packet>,
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    admission: Admission,
    idle_timeout: Duration,
) -> Result<(), ConnectionError> {
    let mut publishing = match admission {
        Admission::Ready(p) => Publishing::Live(p, None),
        Admission::Ask {
            streams,
            hooks,
            key,
            info,
        } => Publishing::Asking {
            answer: tokio::spawn(ask(streams, hooks, key, info)),
            held: Vec::new(),
            held_bytes: 0,
        },
    };
    let mut dc = catch_unwind(AssertUnwindSafe(|| DuplexConnection::new(connection)))
        .map_err(|_| ConnectionError::Protocol)?;
    let mut demux = Demuxer::new(ts::Limits::default());
    let mut last_frame = Instant::now();
    let mut out = BytesMut::with_capacity(1500);
    let mut inbox: Vec<Packet> = Vec::with_capacity(64);
    loop {
        let now = Instant::now();
        let step = catch_unwind(AssertUnwindSafe(|| {
            for p in inbox.drain(..) {
                dc.handle_packet_input(now, Ok((p, peer)));
            }
            let mut packets = Vec::new();
            while let Some(p) = dc.next_packet(now) {
                packets.push(p);
            }
            let mut data: Vec<Bytes> = Vec::new();
            while let Some((_, d)) = dc.next_data(now) {
                data.push(d);
            }
            let wake = dc.check_timers(now);
            (packets, data, wake, dc.is_open())
        }));
        let Ok((packets, data, wake, open)) = step else {
            return Err(ConnectionError::Protocol);
        };
        for (p, to) in packets {
            out.clear();
            p.serialize(&mut out);
            let _ = socket.send_to(&out, to).await;
        }
        match &mut publishing {
            Publishing::Live(publisher, _) => {
                for d in data {
                    demux.push(&d);
                    if feed(&mut demux, publisher)? {
                        last_frame = Instant::now();
                    }
                }
            }
            Publishing::Asking {
                held, held_bytes, ..
            } => {
                for d in data {
                    if *held_bytes + d.len() <= MAX_HELD_BYTES {
                        *held_bytes += d.len();
                        held.push(d);
                    }
                }
                // Waiting for the hook is not idling.
                last_frame = Instant::now();
            }
        }
        if !open {
            if let Publishing::Live(publisher, _) = &mut publishing {
                demux.finish();
                feed(&mut demux, publisher)?;
            }
            return Ok(());
        }
        if last_frame.elapsed() >= idle_timeout {
            return Err(ConnectionError::Idle(idle_timeout));
        }
        let wake = wake.min(Instant::now() + Duration::from_secs(1));
        let answer = async {
            match &mut publishing {
                Publishing::Asking { answer, .. } => answer.await,
                Publishing::Live(..) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            got = rx.recv_many(&mut inbox, 64) => {
                if got == 0 {
                    return Err(ConnectionError::ListenerGone);
                }
            }
            answer = answer => {
                let answer = answer.unwrap_or_else(|e| Err(format!("hook task failed: {e}")));
                let held = match &mut publishing {
                    Publishing::Asking { held, .. } => std::mem::take(held),
                    Publishing::Live(..) => Vec::new(),
                };
                match answer {
                    Ok((mut publisher, guard)) => {
                        tracing::info!(stream = %publisher.stream().name, "srt publish allowed by the on_publish hook");
                        for d in held {
                            demux.push(&d);
                            if feed(&mut demux, &mut publisher)? {
                                last_frame = Instant::now();
                            }
                        }
                        publishing = Publishing::Live(Box::new(publisher), Some(guard));
                    }
                    Err(why) => {
                        metrics::counter!("mediamesh_publish_refused_total").increment(1);
                        metrics::counter!("mediamesh_srt_refused_total").increment(1);
                        shut_down(&mut dc, &socket, &mut out).await;
                        return Err(ConnectionError::Refused(why));
                    }
                }
            }
        }
    }
}

/// Closes a connection from our side: the protocol core sends its shutdown.
async fn shut_down(dc: &mut DuplexConnection, socket: &UdpSocket, out: &mut BytesMut) {
    let now = Instant::now();
    let packets = catch_unwind(AssertUnwindSafe(|| {
        // Sends SRT's shutdown and marks the connection closed.
        dc.on_peer_idle_timeout(now);
        let mut packets = Vec::new();
        while let Some(p) = dc.next_packet(now) {
            packets.push(p);
        }
        packets
    }))
    .unwrap_or_default();
    for (p, to) in packets {
        out.clear();
        p.serialize(out);
        let _ = socket.send_to(out, to).await;
    }
}

/// Moves demuxed frames into the publisher; true when a media frame went in.
fn feed(demux: &mut Demuxer, publisher: &mut Publisher) -> Result<bool, ConnectionError> {
    let mut media = false;
    while let Some(frame) = demux.poll() {
        let fed = match frame {
            Frame::VideoConfig { codec, record } => {
                // As an E-RTMP sequence header: a configuration of another codec
                // ends the segment and the packager starts over on its keyframe.
                if let Err(e) = publisher.video_config_of(codec, record) {
                    tracing::warn!(codec = codec.fourcc(), error = %e, "bad video configuration");
                }
                Ok(())
            }
            Frame::AudioConfig(asc) => {
                if let Err(e) = publisher.audio_config(asc) {
                    tracing::warn!(error = %e, "bad audio configuration");
                }
                Ok(())
            }
            Frame::Video {
                codec,
                pts,
                dts,
                keyframe,
                data,
            } => {
                // As E-RTMP: frames of another codec than the configuration in use
                // (its own configuration was refused) are not packaged.
                let configured = publisher.video_codec();
                if configured.is_some_and(|c| c != codec) {
                    metrics::counter!("mediamesh_ingest_rejected_frames_total").increment(1);
                    tracing::debug!(
                        codec = codec.fourcc(),
                        configured = configured.map_or("none", VideoCodec::fourcc),
                        "video frame of another codec than the configuration ignored"
                    );
                    continue;
                }
                media = true;
                let (dts_ms, pts_ms) = (dts / 90, pts / 90);
                let cts = i32::try_from(pts_ms.saturating_sub(dts_ms)).unwrap_or(i32::MAX);
                publisher.video(dts_ms, cts, keyframe, data)
            }
            Frame::Audio { pts, data } => {
                media = true;
                publisher.audio(pts / 90, data)
            }
            Frame::Error(e @ ts::TsError::UnsupportedStream(_)) => {
                // Once per stream type: say what the publisher should change.
                tracing::warn!(error = %e, "transport stream has a stream that is not played");
                Ok(())
            }
            Frame::Error(e) => {
                metrics::counter!("mediamesh_ingest_rejected_frames_total").increment(1);
                tracing::debug!(error = %e, "transport stream input dropped");
                Ok(())
            }
        };
        if let Err(reason) = fed {
            metrics::counter!("mediamesh_publishers_dropped_total").increment(1);
            let stream = publisher.stream().name.clone();
            tracing::warn!(stream = %stream, error = %reason, "publisher dropped");
            return Err(ConnectionError::Dropped { stream, reason });
        }
    }
    Ok(media)
}

/// A publish target read from an SRT stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub key: Option<String>,
}

/// Why a stream id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error("no stream id: publish to srt://HOST:PORT?streamid=live/STREAM")]
    Missing,
    #[error("mode {0:?} is not offered: only m=publish (playback is over HTTP)")]
    Mode(String),
    #[error("type {0:?} is not offered: only t=stream")]
    Type(String),
    #[error("resource {0:?}: publish to live/STREAM")]
    Resource(String),
    #[error("malformed access-control stream id: {0}")]
    Syntax(&'static str),
}

impl StreamIdError {
    fn reject_reason(&self) -> ServerRejectReason {
        match self {
            StreamIdError::Mode(_) | StreamIdError::Type(_) => ServerRejectReason::BadMode,
            StreamIdError::Resource(_) => ServerRejectReason::Notfound,
            StreamIdError::Missing | StreamIdError::Syntax(_) => ServerRejectReason::BadRequest,
        }
    }
}

/// Reads `#!::r=live/NAME,m=publish[,key=KEY]` (SRT access-control syntax; `u`, `s`,
/// `h` and unknown keys are ignored) or `live/NAME[?key=KEY]`.
pub fn parse_stream_id(sid: Option<&str>) -> Result<Target, StreamIdError> {
    let sid = sid.map(str::trim).filter(|s| !s.is_empty());
    let Some(sid) = sid else {
        return Err(StreamIdError::Missing);
    };
    let (resource, mut key) = if let Some(fields) = sid.strip_prefix("#!::") {
        let mut resource = None;
        let mut key = None;
        for field in fields.split(',') {
            let Some((k, v)) = field.split_once('=') else {
                return Err(StreamIdError::Syntax("a field without '='"));
            };
            match k.trim() {
                "r" => resource = Some(v.trim().to_string()),
                "m" if v.trim() != "publish" => return Err(StreamIdError::Mode(v.into())),
                "t" if v.trim() != "stream" => return Err(StreamIdError::Type(v.into())),
                "key" => key = Some(v.to_string()),
                _ => {}
            }
        }
        (
            resource.ok_or(StreamIdError::Syntax("no r= resource"))?,
            key,
        )
    } else {
        (sid.to_string(), None)
    };
    let (path, query) = match resource.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (resource.as_str(), None),
    };
    if let Some(q) = query {
        if let Some(k) = q.split('&').find_map(|kv| kv.strip_prefix("key=")) {
            key = Some(k.to_string());
        }
    }
    let name = path
        .trim_start_matches('/')
        .strip_prefix("live/")
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| StreamIdError::Resource(path.to_string()))?;
    Ok(Target {
        name: name.to_string(),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_warnings_are_bounded_per_second_and_count_what_they_leave_out() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(t0);
        for _ in 0..HANDSHAKE_LOG_PER_SECOND {
            assert_eq!(b.take(t0), Some(0));
        }
        for _ in 0..25 {
            assert_eq!(b.take(t0 + Duration::from_millis(500)), None);
        }
        // The next second: lines again, the first one saying how many were left out.
        assert_eq!(b.take(t0 + Duration::from_millis(1000)), Some(25));
        assert_eq!(b.take(t0 + Duration::from_millis(1001)), Some(0));
    }

    fn t(name: &str, key: Option<&str>) -> Target {
        Target {
            name: name.into(),
            key: key.map(Into::into),
        }
    }

    #[test]
    fn stream_ids_in_both_forms() {
        assert_eq!(parse_stream_id(Some("live/cam")), Ok(t("cam", None)));
        assert_eq!(
            parse_stream_id(Some("live/cam?key=s3cret")),
            Ok(t("cam", Some("s3cret")))
        );
        assert_eq!(
            parse_stream_id(Some("#!::r=live/cam,m=publish")),
            Ok(t("cam", None))
        );
        assert_eq!(
            parse_stream_id(Some("#!::u=alice,r=live/cam?key=k1,m=publish,s=abc")),
            Ok(t("cam", Some("k1")))
        );
        assert_eq!(
            parse_stream_id(Some("#!::m=publish,r=live/cam,key=k2")),
            Ok(t("cam", Some("k2")))
        );
        assert_eq!(parse_stream_id(None), Err(StreamIdError::Missing));
        assert_eq!(parse_stream_id(Some("")), Err(StreamIdError::Missing));
        assert!(matches!(
            parse_stream_id(Some("#!::r=live/cam,m=request")),
            Err(StreamIdError::Mode(_))
        ));
        assert!(matches!(
            parse_stream_id(Some("app/cam")),
            Err(StreamIdError::Resource(_))
        ));
        assert!(matches!(
            parse_stream_id(Some("live/a/b")),
            Err(StreamIdError::Resource(_))
        ));
        assert!(matches!(
            parse_stream_id(Some("#!::m=publish")),
            Err(StreamIdError::Syntax(_))
        ));
        assert!(matches!(
            parse_stream_id(Some("#!::garbage")),
            Err(StreamIdError::Syntax(_))
        ));
    }

    fn settings(passphrase: Option<&str>, pbkeylen: u16) -> Settings {
        Settings {
            passphrase: passphrase.map(Into::into),
            pbkeylen,
            latency: Duration::from_millis(120),
            max_connections: 4,
            idle_timeout: Duration::from_secs(15),
        }
    }

    /// A caller's conclusion handshake, with key material wrapped as a caller with
    /// `passphrase` and `size` would send it.
    fn conclusion(crypto: Option<(&str, KeySize)>, header_size: KeySize) -> HandshakeControlInfo {
        let ext_km = crypto.and_then(|(pass, size)| {
            let keys = KeySettings {
                key_size: size,
                passphrase: Passphrase::try_from(pass.to_string()).expect("passphrase"),
            };
            CipherSettings::new_random(&keys, &KeyMaterialRefreshSettings::default())
                .wrap_keying_material()
                .map(SrtControlPacket::KeyRefreshRequest)
        });
        HandshakeControlInfo {
            init_seq_num: rand::random(),
            max_packet_size: srt_protocol::options::PacketSize(1500),
            max_flow_size: srt_protocol::options::PacketCount(8192),
            shake_type: ShakeType::Conclusion,
            socket_id: SocketId(7),
            syn_cookie: 0,
            peer_addr: std::net::IpAddr::from([127, 0, 0, 1]),
            info: HandshakeVsInfo::V5(srt_protocol::packet::HsV5Info {
                key_size: header_size,
                ext_km,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn crypto_is_judged_before_the_protocol_core_sees_it() {
        const PASS: &str = "correct horse battery";
        let plain = settings(None, 0);
        let secret = settings(Some(PASS), 0);
        assert!(matches!(
            judge_crypto(&conclusion(None, KeySize::Unspecified), &plain),
            Crypto::Plain
        ));
        // Key material to a listener without a passphrase (the core would panic).
        assert!(matches!(
            judge_crypto(
                &conclusion(Some((PASS, KeySize::AES128)), KeySize::Unspecified),
                &plain
            ),
            Crypto::Refused(CoreRejectReason::Unsecure, _)
        ));
        // No encryption to a listener with one.
        assert!(matches!(
            judge_crypto(&conclusion(None, KeySize::Unspecified), &secret),
            Crypto::Refused(CoreRejectReason::Unsecure, _)
        ));
        // The right passphrase: libsrt's default (no pbkeylen, AES-128) and AES-256.
        assert!(matches!(
            judge_crypto(
                &conclusion(Some((PASS, KeySize::AES128)), KeySize::Unspecified),
                &secret
            ),
            Crypto::Encrypted(_)
        ));
        assert!(matches!(
            judge_crypto(
                &conclusion(Some((PASS, KeySize::AES256)), KeySize::AES256),
                &secret
            ),
            Crypto::Encrypted(_)
        ));
        // A wrong passphrase, and a key length that lies about the key material.
        assert!(matches!(
            judge_crypto(
                &conclusion(
                    Some(("not the passphrase", KeySize::AES128)),
                    KeySize::AES128
                ),
                &secret
            ),
            Crypto::Refused(CoreRejectReason::BadSecret, _)
        ));
        assert!(matches!(
            judge_crypto(
                &conclusion(Some((PASS, KeySize::AES128)), KeySize::AES256),
                &secret
            ),
            Crypto::Refused(CoreRejectReason::BadSecret, _)
        ));
        // A required key length.
        assert!(matches!(
            judge_crypto(
                &conclusion(Some((PASS, KeySize::AES128)), KeySize::AES128),
                &settings(Some(PASS), 32)
            ),
            Crypto::Refused(CoreRejectReason::BadSecret, _)
        ));
    }
}
