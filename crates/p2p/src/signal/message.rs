//! Client side of the WebTorrent tracker wire format, as npm `bittorrent-tracker`'s
//! `lib/client/websocket-tracker.js` speaks it: parsing what the tracker sends
//! (with limits) and building our announces. Ids travel as 20-char "binary strings".
//!
//! Not the state machine (see `core`), not the transport.

use serde_json::{json, Map, Value};

use crate::tracker::Id20;

/// A tracker frame larger than this is dropped unparsed.
pub const MAX_FRAME: usize = 64 * 1024;
/// An offer or answer SDP larger than this is dropped.
pub const MAX_SDP: usize = crate::rtc::sdp::MAX_SDP_LEN;

/// A remote peer's offer or answer relayed by the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    pub from: Id20,
    pub offer_id: Id20,
    pub sdp: String,
}

/// One parsed tracker frame for our swarm.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TrackerMessage {
    /// Re-announce interval in seconds (`interval` or `min interval`).
    pub interval: Option<u64>,
    pub failure: Option<String>,
    pub warning: Option<String>,
    pub offer: Option<Relayed>,
    pub answer: Option<Relayed>,
}

/// Why a frame was dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadMessage {
    #[error("frame too large ({0} bytes)")]
    TooLarge(usize),
    #[error("not a JSON object")]
    NotJson,
    #[error("action is not announce")]
    NotAnnounce,
    #[error("for another swarm")]
    OtherSwarm,
    #[error("from ourselves")]
    FromSelf,
    #[error("bad peer_id or offer_id")]
    BadId,
    #[error("malformed offer/answer")]
    BadSdp,
    #[error("sdp too large")]
    SdpTooLarge,
}

fn id(v: Option<&Value>) -> Option<Id20> {
    v.and_then(Value::as_str).and_then(Id20::from_binary_str)
}

fn relayed(obj: &Map<String, Value>, key: &str, kind: &str) -> Result<Option<Relayed>, BadMessage> {
    let Some(desc) = obj.get(key) else {
        return Ok(None);
    };
    if desc.is_null() {
        return Ok(None);
    }
    let from = id(obj.get("peer_id")).ok_or(BadMessage::BadId)?;
    let offer_id = id(obj.get("offer_id")).ok_or(BadMessage::BadId)?;
    let t = desc.get("type").and_then(Value::as_str);
    let sdp = desc
        .get("sdp")
        .and_then(Value::as_str)
        .ok_or(BadMessage::BadSdp)?;
    if t.is_some_and(|t| t != kind) {
        return Err(BadMessage::BadSdp);
    }
    if sdp.len() > MAX_SDP {
        return Err(BadMessage::SdpTooLarge);
    }
    Ok(Some(Relayed {
        from,
        offer_id,
        sdp: sdp.to_owned(),
    }))
}

/// Parses one text frame from the tracker for swarm `info_hash` as peer `me`.
pub fn parse(text: &str, info_hash: &Id20, me: &Id20) -> Result<TrackerMessage, BadMessage> {
    if text.len() > MAX_FRAME {
        return Err(BadMessage::TooLarge(text.len()));
    }
    let v: Value = serde_json::from_str(text).map_err(|_| BadMessage::NotJson)?;
    let obj = v.as_object().ok_or(BadMessage::NotJson)?;
    if obj.get("action").and_then(Value::as_str) != Some("announce") {
        return Err(BadMessage::NotAnnounce);
    }
    // bittorrent-tracker drops frames for other info hashes (shared sockets).
    if let Some(ih) = obj.get("info_hash") {
        if id(Some(ih)).as_ref() != Some(info_hash) {
            return Err(BadMessage::OtherSwarm);
        }
    }
    if id(obj.get("peer_id")).as_ref() == Some(me) {
        return Err(BadMessage::FromSelf);
    }
    let text_of = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .map(|s| s.chars().take(200).collect())
    };
    let interval = obj
        .get("interval")
        .or_else(|| obj.get("min interval"))
        .and_then(Value::as_u64);
    Ok(TrackerMessage {
        interval,
        failure: text_of("failure reason"),
        warning: text_of("warning message"),
        offer: relayed(obj, "offer", "offer")?,
        answer: relayed(obj, "answer", "answer")?,
    })
}

/// Our announce, with offers (`offer_id`, SDP) when we want peers, and the bytes we
/// have uploaded to peers of this swarm so far (the tracker sums them for the
/// operator's P2P byte count).
pub fn announce(
    info_hash: &Id20,
    me: &Id20,
    numwant: usize,
    event: Option<&str>,
    offers: &[(Id20, String)],
    uploaded: u64,
) -> String {
    let mut v = json!({
        "action": "announce",
        "info_hash": info_hash.to_binary_string(),
        "peer_id": me.to_binary_string(),
        "numwant": numwant,
        "uploaded": uploaded,
        "downloaded": 0,
        "left": 1,
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(e) = event {
            obj.insert("event".into(), json!(e));
        }
        if event != Some("stopped") {
            let list: Vec<Value> = offers
                .iter()
                .map(|(oid, sdp)| {
                    json!({"offer": {"type": "offer", "sdp": sdp}, "offer_id": oid.to_binary_string()})
                })
                .collect();
            obj.insert("offers".into(), Value::Array(list));
        }
    }
    v.to_string()
}

/// Our answer to `to`'s offer `offer_id`.
pub fn answer(info_hash: &Id20, me: &Id20, to: &Id20, offer_id: &Id20, sdp: &str) -> String {
    json!({
        "action": "announce",
        "info_hash": info_hash.to_binary_string(),
        "peer_id": me.to_binary_string(),
        "to_peer_id": to.to_binary_string(),
        "answer": {"type": "answer", "sdp": sdp},
        "offer_id": offer_id.to_binary_string(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IH: Id20 = Id20([1; 20]);
    const ME: Id20 = Id20([2; 20]);
    const THEM: Id20 = Id20([0xfe; 20]);

    #[test]
    fn parses_reply_offer_and_answer() {
        let reply = json!({"action":"announce","interval":120,"info_hash":IH.to_binary_string(),"complete":0,"incomplete":2}).to_string();
        assert_eq!(parse(&reply, &IH, &ME).expect("ok").interval, Some(120));
        let offer = json!({"action":"announce","info_hash":IH.to_binary_string(),"peer_id":THEM.to_binary_string(),
            "offer_id":Id20([9;20]).to_binary_string(),"offer":{"type":"offer","sdp":"v=0"}})
        .to_string();
        let m = parse(&offer, &IH, &ME).expect("ok");
        assert_eq!(
            m.offer,
            Some(Relayed {
                from: THEM,
                offer_id: Id20([9; 20]),
                sdp: "v=0".into()
            })
        );
        let ans = json!({"action":"announce","info_hash":IH.to_binary_string(),"peer_id":THEM.to_binary_string(),
            "offer_id":Id20([9;20]).to_binary_string(),"answer":{"type":"answer","sdp":"v=0"}})
        .to_string();
        assert!(parse(&ans, &IH, &ME).expect("ok").answer.is_some());
    }

    #[test]
    fn announce_round_trips_through_our_parser_shape() {
        let a = announce(
            &IH,
            &ME,
            3,
            Some("started"),
            &[(Id20([7; 20]), "v=0\r\n".into())],
            1234,
        );
        let v: Value = serde_json::from_str(&a).expect("json");
        assert_eq!(v["uploaded"], 1234);
        assert_eq!(
            v["offers"][0]["offer_id"]
                .as_str()
                .map(|s| s.chars().count()),
            Some(20)
        );
        assert_eq!(v["event"], "started");
        let s = announce(&IH, &ME, 0, Some("stopped"), &[], 0);
        assert!(!s.contains("offers"));
        let ans = answer(&IH, &ME, &THEM, &Id20([7; 20]), "v=0");
        assert!(ans.contains("to_peer_id") && ans.contains("\"type\":\"answer\""));
    }

    #[test]
    fn hostile_frames_are_rejected_not_panicking() {
        let ih = IH.to_binary_string();
        let cases: Vec<(String, BadMessage)> = vec![
            ("x".repeat(MAX_FRAME + 1), BadMessage::TooLarge(MAX_FRAME + 1)),
            ("{nope".into(), BadMessage::NotJson),
            ("[1,2]".into(), BadMessage::NotJson),
            (json!({"action":"scrape"}).to_string(), BadMessage::NotAnnounce),
            (json!({"action":"announce","info_hash":"short"}).to_string(), BadMessage::OtherSwarm),
            (json!({"action":"announce","info_hash":ih,"peer_id":ME.to_binary_string()}).to_string(), BadMessage::FromSelf),
            (json!({"action":"announce","info_hash":ih,"peer_id":"x","offer":{"sdp":"v"},"offer_id":"y"}).to_string(), BadMessage::BadId),
            (json!({"action":"announce","info_hash":ih,"peer_id":THEM.to_binary_string(),"offer_id":THEM.to_binary_string(),"offer":{"type":"offer","sdp":7}}).to_string(), BadMessage::BadSdp),
            (json!({"action":"announce","info_hash":ih,"peer_id":THEM.to_binary_string(),"offer_id":THEM.to_binary_string(),"offer":{"type":"answer","sdp":"v"}}).to_string(), BadMessage::BadSdp),
            (json!({"action":"announce","info_hash":ih,"peer_id":THEM.to_binary_string(),"offer_id":THEM.to_binary_string(),"offer":{"type":"offer","sdp":"v".repeat(MAX_SDP+1)}}).to_string(), BadMessage::SdpTooLarge),
        ];
        for (text, want) in cases {
            assert_eq!(parse(&text, &IH, &ME), Err(want), "{text:.80}");
        }
    }
}
