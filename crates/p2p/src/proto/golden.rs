//! Byte-exactness against the real npm `p2p-media-loader-core@2.3.1`: `golden.json`
//! is written by `crates/p2p/tests/js/pml-golden.mjs`, which runs the package's own
//! serializer, deserializer, `isCommandChunk`, swarm-id and hash functions in node.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::command::{CommandLimits, PeerCommand};
use super::framing::{self, Decoder, Frame};
use super::ids::{self, StreamKind, StreamProps};

const GOLDEN: &str = include_str!("golden.json");

fn golden() -> Value {
    serde_json::from_str(GOLDEN).expect("golden.json is valid JSON")
}

fn ints(v: &Value, key: &str) -> Vec<i64> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|x| x.as_i64().expect("integer")).collect())
        .unwrap_or_default()
}

/// The generated case `big` of the script: 255 groups of 255 ids.
fn big() -> Vec<i64> {
    (0..255)
        .flat_map(|g| (0..255).map(move |k| g * 256 + k))
        .collect()
}

fn command_from_js(v: &Value) -> PeerCommand {
    let get = |k: &str| v.get(k).and_then(Value::as_i64);
    let (i, r) = (get("i").unwrap_or(0), get("r").unwrap_or(0));
    match get("c") {
        Some(0) => PeerCommand::SegmentsAnnouncement {
            loaded: if v.get("gen").is_some() {
                big()
            } else {
                ints(v, "l")
            },
            http_loading: ints(v, "p"),
            extensions: 0,
        },
        None if v.get("gen").is_some() => PeerCommand::SegmentsAnnouncement {
            loaded: big(),
            http_loading: vec![],
            extensions: 0,
        },
        Some(1) => PeerCommand::SegmentRequest {
            segment: i,
            request_id: r,
            byte_from: get("b"),
        },
        Some(2) => PeerCommand::SegmentData {
            segment: i,
            request_id: r,
            size: get("s").unwrap_or(0),
        },
        Some(3) => PeerCommand::SendingCompleted {
            segment: i,
            request_id: r,
        },
        Some(4) => PeerCommand::SegmentAbsent {
            segment: i,
            request_id: r,
        },
        Some(5) => PeerCommand::CancelSegmentRequest {
            segment: i,
            request_id: r,
        },
        other => panic!("unexpected command {other:?}"),
    }
}

/// `JSON.stringify` of the JS deserializer's output for our decoded command.
fn js_json(c: &PeerCommand) -> String {
    let list = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    match c {
        PeerCommand::SegmentsAnnouncement {
            loaded,
            http_loading,
            ..
        } => {
            let mut s = String::from("{\"c\":0");
            if !loaded.is_empty() {
                s += &format!(",\"l\":[{}]", list(loaded));
            }
            if !http_loading.is_empty() {
                s += &format!(",\"p\":[{}]", list(http_loading));
            }
            s + "}"
        }
        PeerCommand::SegmentRequest {
            segment,
            request_id,
            byte_from,
        } => {
            let b = byte_from.map(|b| format!(",\"b\":{b}")).unwrap_or_default();
            format!("{{\"c\":1,\"i\":{segment},\"r\":{request_id}{b}}}")
        }
        PeerCommand::SegmentData {
            segment,
            request_id,
            size,
        } => {
            format!("{{\"c\":2,\"i\":{segment},\"s\":{size},\"r\":{request_id}}}")
        }
        PeerCommand::SendingCompleted {
            segment,
            request_id,
        } => {
            format!("{{\"c\":3,\"i\":{segment},\"r\":{request_id}}}")
        }
        PeerCommand::SegmentAbsent {
            segment,
            request_id,
        } => {
            format!("{{\"c\":4,\"i\":{segment},\"r\":{request_id}}}")
        }
        PeerCommand::CancelSegmentRequest {
            segment,
            request_id,
        } => {
            format!("{{\"c\":5,\"i\":{segment},\"r\":{request_id}}}")
        }
        other => panic!("the golden vectors hold no {}", other.name()),
    }
}

fn decode_all(messages: &[Vec<u8>]) -> PeerCommand {
    let mut d = Decoder::new(1 << 20);
    let limits = CommandLimits {
        max_announced: 100_000,
        ..CommandLimits::default()
    };
    for m in messages {
        if let Frame::Command(body) = d.push(m).expect("frame") {
            return PeerCommand::decode(&body, &limits).expect("decode");
        }
    }
    panic!("no complete command");
}

#[test]
fn golden_file_is_from_2_3() {
    let g = golden();
    assert_eq!(g["package"], "p2p-media-loader-core@2.3.1");
    assert_eq!(g["peerIdPrefix"], ids::PEER_ID_PREFIX);
    let sample = g["peerIdSample"].as_str().expect("sample");
    assert_eq!(sample.len(), ids::PEER_ID_LEN);
    assert!(sample[8..]
        .bytes()
        .all(|b| ids::PEER_ID_SYMBOLS.contains(&b)));
}

#[test]
fn commands_encode_and_decode_like_js() {
    let g = golden();
    let cases = g["commands"].as_array().expect("commands");
    assert!(cases.len() >= 15);
    for case in cases {
        let max = case["max"].as_u64().expect("max") as usize;
        let command = command_from_js(&case["command"]);
        let ours = command.encode(max).expect("encode");
        let lengths: Vec<u64> = ours.iter().map(|m| m.len() as u64).collect();
        let js_lengths: Vec<u64> = case["lengths"]
            .as_array()
            .expect("lengths")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert_eq!(lengths, js_lengths, "{command:?}");
        if let Some(msgs) = case.get("messages").and_then(Value::as_array) {
            let js: Vec<Vec<u8>> = msgs
                .iter()
                .map(|m| hex::decode(m.as_str().expect("hex")).expect("hex"))
                .collect();
            assert_eq!(ours, js, "{command:?}");
            // decode the JS bytes; compare with the JS deserializer's result
            let decoded = decode_all(&js);
            assert_eq!(
                serde_json::from_str::<Value>(&js_json(&decoded)).expect("json"),
                case["decoded"],
                "{command:?}"
            );
        } else {
            let concat: Vec<u8> = ours.concat();
            assert_eq!(
                hex::encode(Sha256::digest(&concat)),
                case["messagesSha256"],
                "{command:?}"
            );
            let decoded = decode_all(&ours);
            assert_eq!(
                hex::encode(Sha256::digest(js_json(&decoded).as_bytes())),
                case["decodedSha256"]
            );
        }
    }
}

#[test]
fn command_chunk_classification_like_js() {
    for case in golden()["chunks"].as_array().expect("chunks") {
        let bytes = hex::decode(case["hex"].as_str().expect("hex")).expect("hex");
        assert_eq!(
            Value::Bool(framing::is_command_chunk(&bytes)),
            case["command"],
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn swarm_ids_and_info_hashes_like_js() {
    for case in golden()["swarms"].as_array().expect("swarms") {
        let kind = match case["type"].as_str() {
            Some("main") => StreamKind::Main,
            _ => StreamKind::Secondary,
        };
        let id = ids::stream_swarm_id(
            case["swarmId"].as_str().expect("swarm"),
            kind,
            case["index"].as_str().expect("index"),
        );
        assert_eq!(id, case["streamSwarmId"].as_str().expect("id"));
        let hash = ids::info_hash(&id);
        assert_eq!(std::str::from_utf8(&hash).ok(), case["infoHash"].as_str());
    }
}

#[test]
fn stream_short_ids_like_js() {
    for case in golden()["shortIds"].as_array().expect("shortIds") {
        let p = &case["props"];
        let s = |k: &str| p.get(k).and_then(Value::as_str);
        let n = |k: &str| p.get(k).and_then(Value::as_u64);
        let props = StreamProps {
            bitrate: n("bitrate"),
            codecs: s("codecs"),
            width: n("width").map(|v| v as u32),
            height: n("height").map(|v| v as u32),
            language: s("language"),
            channels: s("channels"),
            name: s("name"),
            frame_rate: s("frameRate"),
            video_range: s("videoRange"),
        };
        assert_eq!(
            Some(ids::stream_short_id(&props).as_str()),
            case["id"].as_str(),
            "{p}"
        );
    }
}
