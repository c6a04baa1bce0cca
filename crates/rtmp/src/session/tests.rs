//! Session tests: a minimal client drives a `ServerSession` and decodes its
//! replies with the crate's own chunk decoder.

use bytes::{BufMut, BytesMut};

use super::*;
use crate::amf0;
use crate::chunk::{put_basic_header, ChunkEncoder, ChunkError};
use crate::handshake::{HandshakeError, HANDSHAKE_SIZE};

struct Client {
    server: ServerSession,
    enc: ChunkEncoder,
    dec: ChunkDecoder,
    inbox: BytesMut,
    tx: f64,
}

fn c0c1() -> Vec<u8> {
    let mut v = vec![3u8];
    v.extend((0..HANDSHAKE_SIZE).map(|i| (i * 7 % 256) as u8));
    v
}

impl Client {
    fn new(config: ServerConfig) -> Client {
        Client {
            server: ServerSession::new(config),
            enc: ChunkEncoder::new(),
            dec: ChunkDecoder::new(DecoderLimits {
                max_chunk_size: 1 << 24,
                max_message_size: 1 << 24,
                max_chunk_streams: 16,
                max_buffered: 1 << 24,
            }),
            inbox: BytesMut::new(),
            tx: 0.0,
        }
    }

    /// Handshake plus connect to app "live".
    fn connected(config: ServerConfig) -> Client {
        let mut c = Client::new(config);
        c.handshake();
        c.connect();
        assert!(matches!(c.events()[..], [ServerEvent::Connect { .. }]));
        c.replies();
        c
    }

    /// Handshake, connect, createStream, publish "cam?key=k", accepted.
    fn publishing() -> Client {
        let mut c = Client::connected(ServerConfig::default());
        c.command(0, "createStream", Value::Null, vec![]);
        c.replies();
        c.command(
            1,
            "publish",
            Value::Null,
            vec![Value::string("cam?key=k"), Value::string("live")],
        );
        c.events();
        c.server.accept_publish(1);
        c.replies();
        c
    }

    fn handshake(&mut self) {
        let hello = c0c1();
        self.server.handle_input(&hello[..1000]).unwrap();
        assert!(self.server.take_output().is_empty());
        self.server.handle_input(&hello[1000..]).unwrap();
        let s = self.server.take_output();
        assert_eq!(s.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(s[0], 3);
        assert_eq!(&s[1 + HANDSHAKE_SIZE..], &hello[1..], "S2 echoes C1");
        // C2 echoes S1.
        self.server.handle_input(&s[1..1 + HANDSHAKE_SIZE]).unwrap();
        assert!(self.server.poll_event().is_none());
    }

    fn send(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        self.server.handle_input(data)
    }

    fn send_msg(&mut self, csid: u32, ts: u32, type_id: u8, sid: u32, payload: &[u8]) {
        let mut b = BytesMut::new();
        self.enc.encode(&mut b, csid, ts, type_id, sid, payload);
        self.send(&b).unwrap();
    }

    fn set_chunk_size(&mut self, size: u32) -> Vec<u8> {
        let mut b = BytesMut::new();
        self.enc.encode(
            &mut b,
            2,
            0,
            message::SET_CHUNK_SIZE,
            0,
            &size.to_be_bytes(),
        );
        self.enc.set_chunk_size(size);
        b.to_vec()
    }

    fn command(&mut self, sid: u32, name: &str, obj: Value, args: Vec<Value>) {
        self.tx += 1.0;
        let cmd = Command {
            name: name.into(),
            transaction_id: self.tx,
            command_object: obj,
            args,
        };
        self.send_msg(3, 0, message::COMMAND_AMF0, sid, &cmd.encode());
    }

    fn connect(&mut self) {
        self.command(
            0,
            "connect",
            Value::object([
                ("app", Value::string("live")),
                ("type", Value::string("nonprivate")),
                ("tcUrl", Value::string("rtmp://127.0.0.1/live")),
                ("objectEncoding", Value::Number(0.0)),
            ]),
            vec![],
        );
    }

    /// Decode everything the server wrote, applying its Set Chunk Size.
    fn replies(&mut self) -> Vec<RawMessage> {
        self.inbox.extend_from_slice(&self.server.take_output());
        let mut out = Vec::new();
        while let Some(m) = self.dec.poll(&mut self.inbox).unwrap() {
            if m.type_id == message::SET_CHUNK_SIZE {
                let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                self.dec.set_chunk_size(size).unwrap();
            }
            out.push(m);
        }
        assert!(self.inbox.is_empty());
        out
    }

    fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }
}

fn cmd(m: &RawMessage) -> Command {
    assert_eq!(m.type_id, message::COMMAND_AMF0);
    Command::parse(&m.payload, false).unwrap()
}

fn status_code(m: &RawMessage) -> (String, String, String) {
    let c = cmd(m);
    assert_eq!(c.name, "onStatus");
    let info = &c.args[0];
    let s = |k| info.get(k).and_then(Value::as_str).unwrap().to_owned();
    (s("level"), s("code"), s("description"))
}

/// Hand-built chunk (for header types the encoder never produces).
fn chunk(fmt: u8, csid: u32, fields: &[u8], ext: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    put_basic_header(&mut b, fmt, csid);
    b.put_slice(fields);
    if let Some(e) = ext {
        b.put_u32(e);
    }
    b.put_slice(payload);
    b.to_vec()
}

fn t0(ts: u32, len: usize, type_id: u8, sid: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&ts.min(0xff_ffff).to_be_bytes()[1..]);
    v.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&sid.to_le_bytes());
    v
}

fn t1(delta: u32, len: usize, type_id: u8) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&delta.to_be_bytes()[1..]);
    v.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    v.push(type_id);
    v
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn full_publish_session() {
    let mut c = Client::new(ServerConfig::default());
    c.handshake();

    // connect
    c.connect();
    assert_eq!(
        c.events(),
        vec![ServerEvent::Connect {
            app: "live".into(),
            tc_url: Some("rtmp://127.0.0.1/live".into()),
        }]
    );
    let r = c.replies();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].type_id, message::WINDOW_ACK_SIZE);
    assert_eq!(&r[0].payload[..], &2_500_000u32.to_be_bytes());
    assert_eq!(r[1].type_id, message::SET_PEER_BANDWIDTH);
    assert_eq!(&r[1].payload[..], &[0x00, 0x26, 0x25, 0xa0, 2]);
    assert_eq!(r[2].type_id, message::SET_CHUNK_SIZE);
    assert_eq!(&r[2].payload[..], &4096u32.to_be_bytes());
    let res = cmd(&r[3]);
    assert_eq!(res.name, "_result");
    assert_eq!(res.transaction_id, 1.0);
    assert_eq!(
        res.command_object.get("fmsVer").and_then(Value::as_str),
        Some("FMS/3,0,1,123")
    );
    assert!(res.command_object.get("capabilities").is_some());
    let info = &res.args[0];
    assert_eq!(info.get("level").and_then(Value::as_str), Some("status"));
    assert_eq!(
        info.get("code").and_then(Value::as_str),
        Some("NetConnection.Connect.Success")
    );
    assert_eq!(info.get("objectEncoding"), Some(&Value::Number(0.0)));

    // releaseStream, FCPublish, createStream (ffmpeg's order)
    c.command(
        0,
        "releaseStream",
        Value::Null,
        vec![Value::string("cam?key=k")],
    );
    c.command(
        0,
        "FCPublish",
        Value::Null,
        vec![Value::string("cam?key=k")],
    );
    c.command(0, "createStream", Value::Null, vec![]);
    let r = c.replies();
    assert_eq!(r.len(), 2);
    assert_eq!(cmd(&r[0]).name, "onFCPublish");
    let res = cmd(&r[1]);
    assert_eq!((res.name.as_str(), res.transaction_id), ("_result", 4.0));
    assert_eq!(res.args, vec![Value::Number(1.0)]);

    // publish: the application decides
    c.command(
        1,
        "publish",
        Value::Null,
        vec![Value::string("cam?key=k"), Value::string("live")],
    );
    assert_eq!(
        c.events(),
        vec![ServerEvent::PublishRequest {
            stream_id: 1,
            app: "live".into(),
            name: "cam".into(),
            query: Some("key=k".into()),
        }]
    );
    assert!(c.replies().is_empty());
    // Media before acceptance is dropped.
    c.send_msg(6, 0, message::VIDEO, 1, b"early");
    assert!(c.events().is_empty());

    c.server.accept_publish(1);
    let r = c.replies();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].type_id, message::USER_CONTROL);
    assert_eq!(&r[0].payload[..], &[0, 0, 0, 0, 0, 1]);
    assert_eq!(r[1].stream_id, 1);
    assert_eq!(status_code(&r[1]).1, "NetStream.Publish.Start".to_string());

    // metadata
    let mut meta = Vec::new();
    amf0::encode(&Value::string("@setDataFrame"), &mut meta);
    amf0::encode(&Value::string("onMetaData"), &mut meta);
    let props = Value::EcmaArray(vec![
        ("width".into(), Value::Number(320.0)),
        ("height".into(), Value::Number(240.0)),
    ]);
    amf0::encode(&props, &mut meta);
    c.send_msg(4, 0, message::DATA_AMF0, 1, &meta);
    assert_eq!(
        c.events(),
        vec![ServerEvent::Metadata {
            stream_id: 1,
            values: vec![props],
        }]
    );

    // Media: chunk size changes, interleaving, type 1/2/3 headers, extended
    // timestamps on type 3 continuations.
    let v1 = pattern(300, 1);
    let a1 = pattern(150, 2);
    let a2 = pattern(130, 3);
    let v2 = pattern(300, 4);
    let ext = 0x0100_0000u32;
    let mut wire = c.set_chunk_size(100);
    wire.extend(chunk(0, 6, &t0(ext, 300, 9, 1), Some(ext), &v1[..100]));
    wire.extend(chunk(0, 4, &t0(1000, 150, 8, 1), None, &a1[..100]));
    wire.extend(chunk(3, 6, &[], Some(ext), &v1[100..200]));
    wire.extend(chunk(3, 4, &[], None, &a1[100..]));
    wire.extend(c.set_chunk_size(64)); // mid video message
    wire.extend(chunk(3, 6, &[], Some(ext), &v1[200..264]));
    wire.extend(chunk(3, 6, &[], Some(ext), &v1[264..]));
    wire.extend(chunk(1, 4, &t1(23, 130, 8), None, &a2[..64]));
    wire.extend(chunk(3, 4, &[], None, &a2[64..128]));
    wire.extend(chunk(3, 4, &[], None, &a2[128..]));
    wire.extend(chunk(2, 6, &[0, 0, 40], None, &v2[..64]));
    for part in v2[64..].chunks(64) {
        wire.extend(chunk(3, 6, &[], None, part));
    }
    // Odd-sized writes exercise partial headers and payloads.
    for piece in wire.chunks(7) {
        c.send(piece).unwrap();
    }
    assert_eq!(
        c.events(),
        vec![
            ServerEvent::Audio {
                stream_id: 1,
                timestamp: 1000,
                data: a1.into(),
            },
            ServerEvent::Video {
                stream_id: 1,
                timestamp: ext,
                data: v1.into(),
            },
            ServerEvent::Audio {
                stream_id: 1,
                timestamp: 1023,
                data: a2.into(),
            },
            ServerEvent::Video {
                stream_id: 1,
                timestamp: ext + 40,
                data: v2.into(),
            },
        ]
    );
    // Nothing to say about media (window not reached).
    assert!(c.replies().is_empty());

    // Unpublish: FCUnpublish then deleteStream produce one event.
    c.command(
        0,
        "FCUnpublish",
        Value::Null,
        vec![Value::string("cam?key=k")],
    );
    c.command(0, "deleteStream", Value::Null, vec![Value::Number(1.0)]);
    assert_eq!(c.events(), vec![ServerEvent::Unpublish { stream_id: 1 }]);
    c.send_msg(6, 0, message::VIDEO, 1, b"late");
    assert!(c.events().is_empty());
}

#[test]
fn enhanced_rtmp_connect_gets_the_fourcc_list() {
    let mut c = Client::new(ServerConfig::default());
    c.handshake();
    c.command(
        0,
        "connect",
        Value::object([
            ("app", Value::string("live")),
            ("tcUrl", Value::string("rtmp://127.0.0.1/live")),
            (
                "fourCcList",
                Value::StrictArray(vec![Value::string("av01"), Value::string("hvc1")]),
            ),
        ]),
        vec![],
    );
    let r = c.replies();
    let res = cmd(&r[3]);
    assert_eq!(res.name, "_result");
    let list = res.command_object.get("fourCcList").expect("fourCcList");
    assert_eq!(
        list,
        &Value::StrictArray(vec![
            Value::string("avc1"),
            Value::string("hvc1"),
            Value::string("av01")
        ])
    );
    let map = res.command_object.get("videoFourCcInfoMap").expect("map");
    assert_eq!(map.get("hvc1"), Some(&Value::Number(4.0)));
    assert_eq!(map.get("av01"), Some(&Value::Number(4.0)));
    assert_eq!(res.command_object.get("capsEx"), Some(&Value::Number(4.0)));

    // A legacy client (no fourCcList) gets the legacy reply.
    let mut c = Client::new(ServerConfig::default());
    c.handshake();
    c.connect();
    let r = c.replies();
    let res = cmd(&r[3]);
    assert!(res.command_object.get("fourCcList").is_none());
    assert!(res.command_object.get("videoFourCcInfoMap").is_none());
}

#[test]
fn rejected_publish_refuses_media() {
    for (reason, code) in [
        (PublishRejection::Denied, "NetStream.Publish.Denied"),
        (PublishRejection::BadName, "NetStream.Publish.BadName"),
    ] {
        let mut c = Client::connected(ServerConfig::default());
        c.command(0, "createStream", Value::Null, vec![]);
        c.command(1, "publish", Value::Null, vec![Value::string("cam")]);
        assert!(matches!(
            c.events()[..],
            [ServerEvent::PublishRequest { query: None, .. }]
        ));
        c.replies();
        c.server.reject_publish(1, reason, "nope");
        let r = c.replies();
        assert_eq!(r.len(), 1);
        assert_eq!(
            status_code(&r[0]),
            ("error".into(), code.into(), "nope".into())
        );
        c.send_msg(6, 0, message::VIDEO, 1, b"frame");
        c.send_msg(4, 0, message::AUDIO, 1, b"frame");
        assert!(c.events().is_empty());
        // Accepting after rejecting does nothing.
        c.server.accept_publish(1);
        assert!(c.replies().is_empty());
        // Closing a rejected stream emits nothing.
        c.command(1, "closeStream", Value::Null, vec![]);
        assert!(c.events().is_empty());
    }
}

#[test]
fn close_stream_unpublishes() {
    let mut c = Client::publishing();
    c.command(1, "closeStream", Value::Null, vec![]);
    assert_eq!(c.events(), vec![ServerEvent::Unpublish { stream_id: 1 }]);
    // The stream can publish again.
    c.command(1, "publish", Value::Null, vec![Value::string("cam2")]);
    assert!(matches!(
        &c.events()[..],
        [ServerEvent::PublishRequest { name, .. }] if name == "cam2"
    ));
}

#[test]
fn play_is_refused() {
    let mut c = Client::connected(ServerConfig::default());
    c.command(0, "createStream", Value::Null, vec![]);
    c.replies();
    c.command(1, "play", Value::Null, vec![Value::string("cam")]);
    let r = c.replies();
    assert_eq!(
        status_code(&r[0]),
        (
            "error".into(),
            "NetStream.Play.Failed".into(),
            "playback over RTMP is not supported".into()
        )
    );
    assert!(c.events().is_empty());
}

#[test]
fn amf3_command_type_is_accepted() {
    let mut c = Client::new(ServerConfig::default());
    c.handshake();
    let connect = Command {
        name: "connect".into(),
        transaction_id: 1.0,
        command_object: Value::object([("app", Value::string("app3"))]),
        args: vec![],
    };
    let mut payload = vec![0u8];
    payload.extend(connect.encode());
    c.send_msg(3, 0, message::COMMAND_AMF3, 0, &payload);
    assert_eq!(
        c.events(),
        vec![ServerEvent::Connect {
            app: "app3".into(),
            tc_url: None
        }]
    );
}

#[test]
fn ignored_commands_and_ping() {
    let mut c = Client::connected(ServerConfig::default());
    for name in ["_checkbw", "getStreamLength", "whatever", "releaseStream"] {
        c.command(0, name, Value::Null, vec![]);
    }
    assert!(c.events().is_empty());
    assert!(c.replies().is_empty());
    c.send_msg(2, 0, message::USER_CONTROL, 0, &[0, 6, 0, 0, 1, 2]);
    let r = c.replies();
    assert_eq!(r[0].type_id, message::USER_CONTROL);
    assert_eq!(&r[0].payload[..], &[0, 7, 0, 0, 1, 2]);
}

#[test]
fn acknowledgement_after_window() {
    let mut c = Client::connected(ServerConfig {
        window_ack_size: 10_000,
        ..ServerConfig::default()
    });
    assert!(c.replies().is_empty());
    // Every byte on the connection counts, including the handshake.
    let mut acks = Vec::new();
    while acks.len() < 2 {
        let before = c.server.bytes_received;
        c.send_msg(8, 0, message::AUDIO, 0, &[0u8; 1000]);
        let r = c.replies();
        let crossed = before / 10_000 != c.server.bytes_received / 10_000;
        assert_eq!(r.len(), usize::from(crossed), "after {before} bytes");
        if let Some(m) = r.first() {
            assert_eq!(m.type_id, message::ACKNOWLEDGEMENT);
            let seq = u32::from_be_bytes(m.payload[..].try_into().unwrap());
            assert_eq!(u64::from(seq), c.server.bytes_received);
            acks.push(seq);
        }
    }
    assert!(acks[0] >= 10_000 && acks[1] >= acks[0] + 10_000);
}

#[test]
fn commands_before_connect_fail() {
    let mut c = Client::new(ServerConfig::default());
    c.handshake();
    let cmd = Command {
        name: "createStream".into(),
        transaction_id: 2.0,
        command_object: Value::Null,
        args: vec![],
    };
    let mut b = BytesMut::new();
    c.enc
        .encode(&mut b, 3, 0, message::COMMAND_AMF0, 0, &cmd.encode());
    assert_eq!(
        c.send(&b),
        Err(RtmpError::NotConnected("createStream".into()))
    );
    assert_eq!(c.send(&[]), Err(RtmpError::Closed));
}

#[test]
fn stream_errors() {
    let mut c = Client::connected(ServerConfig {
        max_streams: 2,
        ..ServerConfig::default()
    });
    // publish on a stream that was never created
    let publish = Command {
        name: "publish".into(),
        transaction_id: 0.0,
        command_object: Value::Null,
        args: vec![Value::string("x")],
    };
    let mut b = BytesMut::new();
    c.enc
        .encode(&mut b, 8, 0, message::COMMAND_AMF0, 7, &publish.encode());
    assert_eq!(c.send(&b), Err(RtmpError::UnknownStream(7)));

    let mut c = Client::connected(ServerConfig {
        max_streams: 2,
        ..ServerConfig::default()
    });
    c.command(0, "createStream", Value::Null, vec![]);
    c.command(0, "createStream", Value::Null, vec![]);
    c.command(0, "deleteStream", Value::Null, vec![Value::Number(1.0)]);
    c.command(0, "createStream", Value::Null, vec![]);
    let ids: Vec<Value> = c.replies().iter().map(|m| cmd(m).args[0].clone()).collect();
    assert_eq!(
        ids,
        vec![Value::Number(1.0), Value::Number(2.0), Value::Number(3.0)]
    );
    let mut b = BytesMut::new();
    c.enc.encode(
        &mut b,
        3,
        0,
        message::COMMAND_AMF0,
        0,
        &Command {
            name: "createStream".into(),
            transaction_id: 9.0,
            command_object: Value::Null,
            args: vec![],
        }
        .encode(),
    );
    assert_eq!(c.send(&b), Err(RtmpError::TooManyStreams { limit: 2 }));
}

// ---- hostile input ----

#[test]
fn bad_version() {
    let mut s = ServerSession::new(ServerConfig::default());
    assert_eq!(
        s.handle_input(b"GET / HTTP/1.1\r\n"),
        Err(RtmpError::Handshake(HandshakeError::BadVersion(b'G')))
    );
    assert!(s.take_output().is_empty());
    assert_eq!(s.handle_input(&c0c1()), Err(RtmpError::Closed));
}

#[test]
fn truncated_handshake_waits() {
    let mut s = ServerSession::new(ServerConfig::default());
    s.handle_input(&c0c1()[..1536]).unwrap();
    assert!(s.take_output().is_empty());
    assert!(s.poll_event().is_none());
    s.handle_input(&c0c1()[1536..]).unwrap();
    assert_eq!(s.take_output().len(), 3073);
    s.handle_input(&[0u8; 1000]).unwrap(); // partial C2
    assert!(s.take_output().is_empty());
    assert!(s.poll_event().is_none());
}

#[test]
fn garbage_after_handshake_errors_without_panic() {
    let mut seed = 0x1234_5678u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut errors = 0;
    for round in 0..300 {
        let mut c = Client::new(ServerConfig::default());
        c.handshake();
        if round % 2 == 0 {
            c.connect();
        }
        let len = (next() % 4000) as usize;
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        for piece in junk.chunks(1 + (next() % 300) as usize) {
            if c.send(piece).is_err() {
                errors += 1;
                break;
            }
            while let Some(ev) = c.server.poll_event() {
                if let ServerEvent::PublishRequest { stream_id, .. } = ev {
                    c.server.accept_publish(stream_id);
                }
            }
        }
        c.server.take_output();
    }
    assert!(errors > 0);
}

#[test]
fn bad_chunk_sizes() {
    for size in [0u32, 0x8000_0000, 16 * 1024 * 1024 + 1, u32::MAX] {
        let mut c = Client::connected(ServerConfig::default());
        let mut b = BytesMut::new();
        c.enc.encode(&mut b, 2, 0, 1, 0, &size.to_be_bytes());
        assert!(
            matches!(
                c.send(&b),
                Err(RtmpError::Chunk(ChunkError::InvalidChunkSize { .. }))
            ),
            "size {size}"
        );
    }
    let mut c = Client::connected(ServerConfig {
        max_chunk_size: 1000,
        ..ServerConfig::default()
    });
    let b = c.set_chunk_size(1001);
    assert!(c.send(&b).is_err());
}

#[test]
fn too_many_chunk_streams() {
    let mut c = Client::connected(ServerConfig::default());
    let mut wire = Vec::new();
    for csid in 10..10_010u32 {
        wire.extend(chunk(0, csid, &t0(0, 1, 8, 0), None, b"x"));
    }
    let err = c.send(&wire).unwrap_err();
    assert_eq!(
        err,
        RtmpError::Chunk(ChunkError::TooManyChunkStreams { limit: 64 })
    );
    assert!(c.server.decoder.chunk_streams() <= 64);
}

#[test]
fn declared_length_over_limit() {
    let mut c = Client::connected(ServerConfig {
        max_message_size: 1000,
        ..ServerConfig::default()
    });
    let b = chunk(0, 6, &t0(0, 1001, 9, 1), None, b"");
    assert_eq!(
        c.send(&b),
        Err(RtmpError::Chunk(ChunkError::MessageTooLarge {
            len: 1001,
            limit: 1000
        }))
    );
}

#[test]
fn partial_messages_are_bounded() {
    let mut c = Client::connected(ServerConfig {
        max_pending_input: 10_000,
        ..ServerConfig::default()
    });
    // Many large messages left incomplete on different chunk streams.
    let mut wire = c.set_chunk_size(4096);
    for csid in 10..14 {
        wire.extend(chunk(0, csid, &t0(0, 5000, 9, 1), None, &[0u8; 4096]));
    }
    assert!(matches!(
        c.send(&wire),
        Err(RtmpError::Chunk(ChunkError::TooMuchBuffered {
            limit: 10_000
        }))
    ));
}

#[test]
fn malformed_command_is_an_error() {
    let mut c = Client::connected(ServerConfig::default());
    let mut b = BytesMut::new();
    c.enc.encode(
        &mut b,
        3,
        0,
        message::COMMAND_AMF0,
        0,
        &[0x02, 0x00, 0x10, b'x'],
    );
    assert!(matches!(c.send(&b), Err(RtmpError::Message(_))));
}

#[test]
fn malformed_metadata_is_dropped() {
    let mut c = Client::publishing();
    c.send_msg(4, 0, message::DATA_AMF0, 1, &[0x02, 0x00, 0x10]);
    assert!(c.events().is_empty());
    c.send_msg(6, 0, message::VIDEO, 1, b"ok");
    assert_eq!(c.events().len(), 1);
}

#[test]
fn split_query_forms() {
    assert_eq!(split_query("cam?key=secret"), ("cam", Some("key=secret")));
    assert_eq!(split_query("cam?"), ("cam", None));
    assert_eq!(split_query("cam"), ("cam", None));
    assert_eq!(split_query("a?b?c"), ("a", Some("b?c")));
}

/// Issue 18: before a publish is requested, a connection cannot make the session
/// hold more than `max_pending_before_publish`; from the publish on, the full
/// limits apply, and they narrow again when the publish ends.
#[test]
fn limits_are_narrow_until_a_publish_is_requested() {
    let mut c = Client::connected(ServerConfig {
        max_pending_before_publish: 4096,
        ..ServerConfig::default()
    });
    // A large message declared before any publish: refused at its header.
    let b = chunk(0, 6, &t0(0, 100_000, 9, 1), None, b"");
    assert_eq!(
        c.send(&b),
        Err(RtmpError::Chunk(ChunkError::MessageTooLarge {
            len: 100_000,
            limit: 4096
        }))
    );

    // Partial messages across chunk streams: capped at the same small limit.
    let mut c = Client::connected(ServerConfig {
        max_pending_before_publish: 4096,
        ..ServerConfig::default()
    });
    let mut wire = Vec::new();
    for csid in 10..60 {
        wire.extend(chunk(0, csid, &t0(0, 4000, 9, 1), None, &[0u8; 128]));
    }
    assert!(matches!(
        c.send(&wire),
        Err(RtmpError::Chunk(ChunkError::TooMuchBuffered {
            limit: 4096
        }))
    ));

    // A publishing session takes large frames (the default cap is 64 KiB).
    let mut c = Client::publishing();
    let frame = pattern(300_000, 7);
    let mut b = BytesMut::new();
    c.enc.encode(&mut b, 6, 40, message::VIDEO, 1, &frame);
    c.send(&b).unwrap();
    assert!(c
        .events()
        .iter()
        .any(|e| matches!(e, ServerEvent::Video { data, .. } if data.len() == 300_000)));
    // Once the publish ends, a large message is refused again.
    c.command(1, "closeStream", Value::Null, vec![]);
    c.events();
    let b = chunk(0, 7, &t0(0, 300_000, 9, 1), None, b"");
    assert!(matches!(
        c.send(&b),
        Err(RtmpError::Chunk(ChunkError::MessageTooLarge { .. }))
    ));
}
