//! An Enhanced RTMP publisher of our own, for tests only: ffmpeg 5.1 cannot send
//! E-RTMP (its FLV muxer knows H.264 only), so this client takes a real encoder's
//! output — an MP4 that ffmpeg writes with libx265 or SVT-AV1 — and publishes it
//! over RTMP the way OBS 30+ does: `connect` with `fourCcList`, E-RTMP video tags
//! (`ExVideoTagHeader`, FourCC `hvc1`/`av01`, SequenceStart, CodedFrames with a
//! composition time, CodedFramesX, SequenceEnd) and legacy AAC audio tags, paced in
//! real time and looped (timestamps keep rising) for as long as asked.
//!
//! It is not a general RTMP client: no extended timestamps (a publish is well
//! under 4.6 hours), no reading of the server's replies beyond the `connect` result
//! and `NetStream.Publish.Start`, and it trusts the MP4 it reads (a test fixture).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use media::mp4::{self, SampleEntry, TrackKind};
use rtmp::amf0::{self, Value};

use super::{require, run};

/// Our chunk size, announced with Set Chunk Size.
const CHUNK: usize = 60_000;

/// Which encoder makes the clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// libx265, with B-frames (so CodedFrames carry composition times).
    Hevc,
    /// SVT-AV1.
    Av1,
}

impl Codec {
    pub fn fourcc(self) -> &'static [u8; 4] {
        match self {
            Codec::Hevc => b"hvc1",
            Codec::Av1 => b"av01",
        }
    }
}

/// Encodes `secs` seconds of a synthetic 30 fps picture (keyframe every second) and
/// a tone into an MP4 at `out` with `codec`.
pub fn encode_clip(codec: Codec, size: &str, secs: u32, out: &Path) {
    require("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string(), "-pix_fmt", "yuv420p"]);
    match codec {
        Codec::Hevc => cmd.args([
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "keyint=30:min-keyint=30:scenecut=0:bframes=2:info=0:log-level=error",
            "-tag:v",
            "hvc1",
        ]),
        Codec::Av1 => cmd.args([
            "-c:v",
            "libsvtav1",
            "-preset",
            "12",
            "-g",
            "30",
            "-svtav1-params",
            "scd=0",
        ]),
    };
    cmd.args(["-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart"])
        .arg(out);
    let o = run(&mut cmd, Duration::from_secs(180));
    assert!(
        o.status.success(),
        "ffmpeg could not encode the {codec:?} clip (is its encoder built in? `ffmpeg -encoders`): {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// One tag to send: FLV message type, timestamp in ms, body.
#[derive(Debug, Clone)]
struct Tag {
    type_id: u8,
    ts_ms: u64,
    body: Vec<u8>,
}

/// The clip as FLV/E-RTMP tags: the sequence headers, and the media tags in
/// timestamp order with the clip's length.
pub struct Clip {
    headers: Vec<Tag>,
    media: Vec<Tag>,
    length_ms: u64,
    pub codec: Codec,
}

impl Clip {
    /// Adds, after every 15th video tag, E-RTMP tags a broken or hostile encoder
    /// could send: a frame of another codec, a truncated SequenceStart, a runaway
    /// ModEx chain, a multitrack packet, a `vp09` frame, a Metadata packet, an AV1
    /// descriptor for an HEVC stream, and random bytes with the `IsExHeader` bit.
    /// The server must skip each and keep packaging the stream.
    pub fn with_hostile_tags(mut self) -> Clip {
        let mut out = Vec::with_capacity(self.media.len() * 2);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut video = 0usize;
        for t in self.media.drain(..) {
            let ts = t.ts_ms;
            let is_video = t.type_id == 9;
            out.push(t);
            if !is_video {
                continue;
            }
            video += 1;
            if !video.is_multiple_of(15) {
                continue;
            }
            let other: &[u8; 4] = if self.codec == Codec::Hevc {
                b"av01"
            } else {
                b"hvc1"
            };
            let mut bodies: Vec<Vec<u8>> = vec![
                [&[0x91u8][..], other, &[0, 0, 0, 0x12, 0, 0x32, 0]].concat(),
                [&[0x90u8][..], self.codec.fourcc(), &[0x01, 0x01]].concat(),
                [&[0x97u8][..], &[2, 0, 0, 0, 0x07].repeat(12)].concat(),
                [&[0x96u8][..], self.codec.fourcc(), &[0, 0, 0, 0]].concat(),
                [&[0x91u8][..], b"vp09", &[0, 1, 2, 3]].concat(),
                [&[0x94u8][..], self.codec.fourcc(), &[2, 0, 9]].concat(),
                [&[0x95u8][..], b"av01", &[0x80, 4, 0x81, 0, 0x0c]].concat(),
                vec![0x80],
            ];
            let random: Vec<u8> = (0..64)
                .map(|i| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    if i == 0 {
                        0x80 | (state as u8 & 0x7f)
                    } else {
                        (state >> 24) as u8
                    }
                })
                .collect();
            bodies.push(random);
            out.extend(bodies.into_iter().map(|body| Tag {
                type_id: 9,
                ts_ms: ts,
                body,
            }));
        }
        self.media = out;
        self
    }

    /// Reads the MP4 ffmpeg wrote and builds the tags.
    pub fn load(codec: Codec, path: &Path) -> Clip {
        let file = std::fs::read(path).expect("read the clip");
        let mut pos = 0usize;
        let mut moov = None;
        while pos < file.len() {
            let h = mp4::read_box_header(&file[pos..])
                .expect("box")
                .expect("box header");
            let size = h.size.map_or(file.len() - pos, |s| s as usize);
            if &h.kind == b"moov" {
                moov = Some(mp4::parse_moov(&file[pos..pos + size]).expect("moov"));
            }
            pos += size.max(8);
        }
        let moov = moov.expect("a moov box");
        let mut headers = Vec::new();
        let mut media = Vec::new();
        let mut length_ms = 0u64;
        for t in &moov.tracks {
            let ts = |ticks: u64| ticks * 1000 / u64::from(t.timescale.max(1));
            match (&t.kind, &t.entry) {
                (TrackKind::Video, SampleEntry::Hevc { hvcc: record, .. })
                | (TrackKind::Video, SampleEntry::Av1 { av1c: record, .. }) => {
                    // IsExHeader | KeyFrame << 4 | SequenceStart.
                    let mut body = vec![0x90];
                    body.extend_from_slice(codec.fourcc());
                    body.extend_from_slice(record);
                    headers.push(Tag {
                        type_id: 9,
                        ts_ms: 0,
                        body,
                    });
                    for s in &t.samples {
                        let data = &file[s.offset as usize..s.offset as usize + s.size as usize];
                        let cts_ms = i64::from(s.cts_offset) * 1000 / i64::from(t.timescale.max(1));
                        let frame_type: u8 = if s.keyframe { 1 } else { 2 };
                        let mut body = Vec::with_capacity(data.len() + 8);
                        if codec == Codec::Hevc && cts_ms == 0 {
                            // CodedFramesX: no composition time.
                            body.push(0x80 | frame_type << 4 | 3);
                            body.extend_from_slice(codec.fourcc());
                        } else {
                            body.push(0x80 | frame_type << 4 | 1);
                            body.extend_from_slice(codec.fourcc());
                            if codec == Codec::Hevc {
                                body.extend_from_slice(&(cts_ms as i32).to_be_bytes()[1..]);
                            }
                        }
                        body.extend_from_slice(data);
                        length_ms = length_ms.max(ts(s.dts + u64::from(s.duration)));
                        media.push(Tag {
                            type_id: 9,
                            ts_ms: ts(s.dts),
                            body,
                        });
                    }
                }
                (TrackKind::Audio, SampleEntry::Aac { asc, .. }) => {
                    let mut body = vec![0xaf, 0];
                    body.extend_from_slice(asc);
                    headers.push(Tag {
                        type_id: 8,
                        ts_ms: 0,
                        body,
                    });
                    for s in &t.samples {
                        let data = &file[s.offset as usize..s.offset as usize + s.size as usize];
                        let mut body = vec![0xaf, 1];
                        body.extend_from_slice(data);
                        media.push(Tag {
                            type_id: 8,
                            ts_ms: ts(s.dts),
                            body,
                        });
                    }
                }
                other => panic!("unexpected track in the clip: {other:?}"),
            }
        }
        assert!(headers.iter().any(|h| h.type_id == 9), "no video track");
        media.sort_by_key(|t| (t.ts_ms, t.type_id == 8));
        Clip {
            headers,
            media,
            length_ms: length_ms.max(1),
            codec,
        }
    }
}

/// A running publish; stops (SequenceEnd, then closes) when dropped.
pub struct Publish {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The server's `connect` result, as bytes.
    pub connect_reply: Vec<u8>,
}

impl Drop for Publish {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One RTMP message as chunks: a type 0 chunk, then type 3 ones.
fn message(csid: u8, type_id: u8, ts: u64, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let ts = u32::try_from(ts).expect("timestamp").min(0xff_fffe);
    let mut out = Vec::with_capacity(payload.len() + payload.len() / CHUNK + 16);
    out.push(csid);
    out.extend(&ts.to_be_bytes()[1..]);
    out.extend(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend(stream_id.to_le_bytes());
    for (i, piece) in payload.chunks(CHUNK).enumerate() {
        if i > 0 {
            out.push(0xc0 | csid);
        }
        out.extend(piece);
    }
    out
}

fn amf(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        amf0::encode(v, &mut out);
    }
    out
}

/// Reads until `needle` shows up; returns everything read, or panics after `limit`.
fn read_until(s: &mut TcpStream, needle: &[u8], limit: Duration) -> Vec<u8> {
    let until = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(needle.len()).any(|w| w == needle) {
                    return seen;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("reading from the server: {e}"),
        }
    }
    panic!(
        "no {:?} from the server within {limit:?}; got {:?}",
        String::from_utf8_lossy(needle),
        String::from_utf8_lossy(&seen)
    );
}

/// Connects to `127.0.0.1:port`, publishes `live/{name}` with E-RTMP and sends
/// `clip` in real time, looped, for `secs` seconds (or until dropped).
pub fn publish(port: u16, name: &str, clip: Clip, secs: u64) -> Publish {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // Handshake (C0 C1, S0 S1 S2, C2).
    let mut c0c1 = vec![3u8];
    c0c1.extend((0..1536u32).map(|i| (i * 7 % 251) as u8));
    s.write_all(&c0c1).expect("C0C1");
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    s.read_exact(&mut s0s1s2).expect("S0S1S2");
    s.write_all(&s0s1s2[1..1537]).expect("C2");

    let mut out = message(2, 1, 0, 0, &(CHUNK as u32).to_be_bytes());
    // connect as OBS 30+ sends it: the FourCCs it can send in E-RTMP tags.
    let connect = amf(&[
        Value::string("connect"),
        Value::Number(1.0),
        Value::object([
            ("app", Value::string("live")),
            ("type", Value::string("nonprivate")),
            ("flashVer", Value::string("FMLE/3.0 (compatible; FMSc/1.0)")),
            (
                "tcUrl",
                Value::string(format!("rtmp://127.0.0.1:{port}/live")),
            ),
            (
                "fourCcList",
                Value::StrictArray(vec![
                    Value::string("av01"),
                    Value::string("vp09"),
                    Value::string("hvc1"),
                ]),
            ),
        ]),
    ]);
    out.extend(message(3, 20, 0, 0, &connect));
    s.write_all(&out).expect("connect");
    let connect_reply = read_until(
        &mut s,
        b"NetConnection.Connect.Success",
        Duration::from_secs(10),
    );

    let mut out = Vec::new();
    for (i, (cmd, stream)) in [("releaseStream", 0u32), ("FCPublish", 0)]
        .iter()
        .enumerate()
    {
        let c = amf(&[
            Value::string(*cmd),
            Value::Number(2.0 + i as f64),
            Value::Null,
            Value::string(name),
        ]);
        out.extend(message(3, 20, 0, *stream, &c));
    }
    let create = amf(&[
        Value::string("createStream"),
        Value::Number(4.0),
        Value::Null,
    ]);
    out.extend(message(3, 20, 0, 0, &create));
    let publish = amf(&[
        Value::string("publish"),
        Value::Number(5.0),
        Value::Null,
        Value::string(name),
        Value::string("live"),
    ]);
    out.extend(message(4, 20, 0, 1, &publish));
    s.write_all(&out).expect("publish");
    read_until(&mut s, b"NetStream.Publish.Start", Duration::from_secs(10));

    // Metadata as OBS sends it for E-RTMP: videocodecid is the FourCC as a number.
    let fourcc = u32::from_be_bytes(*clip.codec.fourcc());
    let meta = amf(&[
        Value::string("@setDataFrame"),
        Value::string("onMetaData"),
        Value::EcmaArray(vec![
            ("videocodecid".into(), Value::Number(f64::from(fourcc))),
            ("audiocodecid".into(), Value::Number(10.0)),
        ]),
    ]);
    s.write_all(&message(4, 18, 0, 1, &meta)).expect("metadata");

    let stop = Arc::new(AtomicBool::new(false));
    // Drain what the server sends (acknowledgements) so it never waits on us.
    let mut r = s.try_clone().expect("clone");
    let drain_stop = stop.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !drain_stop.load(Ordering::SeqCst) {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
    });
    let thread_stop = stop.clone();
    let thread = std::thread::spawn(move || {
        let start = Instant::now();
        let limit = Duration::from_secs(secs);
        let mut w = s;
        for h in &clip.headers {
            let csid = if h.type_id == 9 { 6 } else { 7 };
            if w.write_all(&message(csid, h.type_id, 0, 1, &h.body))
                .is_err()
            {
                return;
            }
        }
        let mut last_ts = 0;
        'outer: for round in 0u64.. {
            for t in &clip.media {
                let ts = round * clip.length_ms + t.ts_ms;
                let due = start + Duration::from_millis(ts);
                while Instant::now() < due {
                    if thread_stop.load(Ordering::SeqCst) {
                        break 'outer;
                    }
                    std::thread::sleep((due - Instant::now()).min(Duration::from_millis(50)));
                }
                if thread_stop.load(Ordering::SeqCst) || start.elapsed() > limit {
                    break 'outer;
                }
                let csid = if t.type_id == 9 { 6 } else { 7 };
                if w.write_all(&message(csid, t.type_id, ts, 1, &t.body))
                    .is_err()
                {
                    return;
                }
                last_ts = ts;
            }
        }
        // SequenceEnd, then unpublish.
        let mut end = vec![0x92];
        end.extend_from_slice(clip.codec.fourcc());
        let _ = w.write_all(&message(6, 9, last_ts, 1, &end));
        let _ = w.shutdown(std::net::Shutdown::Both);
    });
    Publish {
        stop,
        thread: Some(thread),
        connect_reply,
    }
}
