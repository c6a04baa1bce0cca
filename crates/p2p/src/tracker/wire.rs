//! JSON shapes of the WebTorrent tracker protocol: typed request structs parsed
//! with serde, and builders for the replies. No state or policy lives here; the
//! binary-string ids are validated into [`Id20`] but nothing more.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::Reject;
use super::id::Id20;

/// Top-level frame; unknown fields (downloaded, trackerid, …) are ignored. `uploaded`
/// is read for the P2P byte count (what peers say they handed to other peers).
#[derive(Debug, Deserialize)]
pub(crate) struct RawRequest {
    pub action: Option<String>,
    pub info_hash: Option<OneOrMany>,
    pub peer_id: Option<String>,
    pub to_peer_id: Option<String>,
    pub event: Option<String>,
    pub left: Option<Value>,
    pub uploaded: Option<Value>,
    pub numwant: Option<Value>,
    pub offers: Option<Vec<RawOffer>>,
    pub answer: Option<Value>,
    pub offer_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawOffer {
    pub offer: Value,
    pub offer_id: String,
}

/// Announce `event`, with `bittorrent-tracker`'s defaults (absent/"empty" → update,
/// "paused" behaves as update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Started,
    Stopped,
    Completed,
    Update,
}

impl Event {
    pub(crate) fn parse(s: Option<&str>) -> Result<Self, Reject> {
        match s {
            None | Some("") | Some("empty") | Some("update") | Some("paused") => Ok(Event::Update),
            Some("started") => Ok(Event::Started),
            Some("stopped") => Ok(Event::Stopped),
            Some("completed") => Ok(Event::Completed),
            Some(_) => Err(Reject::InvalidEvent),
        }
    }
}

/// `left == 0` means seeder. Like JS `Number(left)`: numbers and numeric strings
/// count; anything else (absent, NaN) means "unknown", i.e. leecher.
pub(crate) fn left_is_zero(left: Option<&Value>) -> bool {
    match left {
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok() == Some(0.0),
        _ => false,
    }
}

/// Largest `uploaded` figure taken from a peer (2^53, where JSON numbers stop being
/// exact): anything above is ignored as nonsense.
const MAX_BYTE_COUNT: u64 = 1 << 53;

/// A byte count (`uploaded`) as a non-negative whole number (or numeric string).
pub(crate) fn byte_count(v: Option<&Value>) -> Option<u64> {
    let n = match v? {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    (n <= MAX_BYTE_COUNT).then_some(n)
}

/// `numwant` as a count, if it is a non-negative number (or numeric string).
pub(crate) fn numwant(v: Option<&Value>) -> Option<usize> {
    let f = match v? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    // Saturating float→int cast; NaN becomes 0.
    (f >= 0.0).then_some(f as usize)
}

pub(crate) fn id_field(v: Option<&str>, err: Reject) -> Result<Id20, Reject> {
    v.and_then(Id20::from_binary_str).ok_or(err)
}

pub(crate) fn announce_reply(
    info_hash: Id20,
    complete: usize,
    incomplete: usize,
    interval: u64,
) -> String {
    json!({
        "action": "announce",
        "interval": interval,
        "info_hash": info_hash.to_binary_string(),
        "complete": complete,
        "incomplete": incomplete,
    })
    .to_string()
}

pub(crate) fn relayed_offer(info_hash: Id20, from: Id20, offer: &Value, offer_id: &str) -> String {
    json!({
        "action": "announce",
        "offer": offer,
        "offer_id": offer_id,
        "peer_id": from.to_binary_string(),
        "info_hash": info_hash.to_binary_string(),
    })
    .to_string()
}

pub(crate) fn relayed_answer(
    info_hash: Id20,
    from: Id20,
    answer: &Value,
    offer_id: &str,
) -> String {
    json!({
        "action": "announce",
        "answer": answer,
        "offer_id": offer_id,
        "peer_id": from.to_binary_string(),
        "info_hash": info_hash.to_binary_string(),
    })
    .to_string()
}

/// `files` entries: (info hash, complete, incomplete).
pub(crate) fn scrape_reply(files: &[(Id20, usize, usize)], interval: u64) -> String {
    let mut map = Map::new();
    for &(ih, complete, incomplete) in files {
        map.insert(
            ih.to_binary_string(),
            json!({ "complete": complete, "incomplete": incomplete, "downloaded": complete }),
        );
    }
    json!({
        "action": "scrape",
        "files": map,
        "flags": { "min_request_interval": interval },
    })
    .to_string()
}

/// `{"failure reason", action?, info_hash?}`. Clients ignore announce failures
/// without their info_hash, and drop the socket on frames without an action.
pub(crate) fn failure(reason: Reject, action: Option<&str>, info_hash: Option<Id20>) -> String {
    let mut map = Map::new();
    map.insert("failure reason".into(), Value::String(reason.to_string()));
    if let Some(a) = action {
        map.insert("action".into(), Value::String(a.into()));
    }
    if let Some(ih) = info_hash {
        map.insert("info_hash".into(), Value::String(ih.to_binary_string()));
    }
    Value::Object(map).to_string()
}
