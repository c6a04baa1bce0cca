//! Proxy-Wasm ABI 0.2.1 values and wire formats, with no wasm runtime in sight: status
//! codes, enum numbers, the header-map serialization both sides use, and property
//! paths. Pure functions, so they are unit-tested and fuzzed directly.
//!
//! Not here: calling into a module (see `vm`) or the host functions (see `hostcalls`).

/// Results of host calls (`WasmResult` in the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

/// Filter decisions returned by the HTTP callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Pause,
}

impl Action {
    /// Anything but 1 (pause) continues, as in Envoy.
    pub fn from_raw(v: i32) -> Self {
        if v == 1 {
            Self::Pause
        } else {
            Self::Continue
        }
    }
}

/// Header maps a filter can address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    HttpCallResponseHeaders,
    HttpCallResponseTrailers,
}

impl MapType {
    pub fn from_raw(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::RequestHeaders,
            1 => Self::RequestTrailers,
            2 => Self::ResponseHeaders,
            3 => Self::ResponseTrailers,
            6 => Self::HttpCallResponseHeaders,
            7 => Self::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// Buffers a filter can address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferType {
    RequestBody,
    ResponseBody,
    HttpCallResponseBody,
    VmConfiguration,
    PluginConfiguration,
}

impl BufferType {
    pub fn from_raw(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::RequestBody,
            1 => Self::ResponseBody,
            4 => Self::HttpCallResponseBody,
            6 => Self::VmConfiguration,
            7 => Self::PluginConfiguration,
            _ => return None,
        })
    }
}

/// Log levels of `proxy_log`.
pub fn log_level_name(level: i32) -> &'static str {
    match level {
        0 => "trace",
        1 => "debug",
        2 => "info",
        3 => "warn",
        4 => "error",
        _ => "critical",
    }
}

/// Why a serialized map could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("map shorter than its header ({0} bytes)")]
    Truncated(usize),
    #[error("map declares {0} pairs, more than its bytes can hold")]
    TooManyPairs(u32),
    #[error("map entry {0} runs past the end")]
    EntryOutOfBounds(usize),
    #[error("map entry {0} is not NUL-terminated")]
    MissingNul(usize),
}

/// Raw key/value pairs of a decoded map.
pub type RawPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Serialized header map: `u32 count`, then `count` × (`u32 key_len`, `u32 value_len`),
/// then each key and value followed by a NUL byte. All integers little-endian.
pub fn encode_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let data: usize = pairs
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// Reads a serialized header map sent by a filter. Never panics; every length is
/// checked against the bytes that are really there. An empty input is an empty map.
pub fn decode_map(bytes: &[u8]) -> Result<RawPairs, MapError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0).ok_or(MapError::Truncated(bytes.len()))?;
    // Each pair needs 8 header bytes and 2 NULs at least.
    if count > (bytes.len() - 4) / 10 {
        return Err(MapError::TooManyPairs(count as u32));
    }
    let mut pairs = Vec::with_capacity(count);
    let mut p = 4 + count * 8;
    for n in 0..count {
        let klen = word(4 + n * 8).ok_or(MapError::EntryOutOfBounds(n))?;
        let vlen = word(8 + n * 8).ok_or(MapError::EntryOutOfBounds(n))?;
        let key = take(bytes, &mut p, klen, n)?;
        let value = take(bytes, &mut p, vlen, n)?;
        pairs.push((key.to_vec(), value.to_vec()));
    }
    Ok(pairs)
}

fn take<'a>(bytes: &'a [u8], p: &mut usize, len: usize, n: usize) -> Result<&'a [u8], MapError> {
    let end = p.checked_add(len).ok_or(MapError::EntryOutOfBounds(n))?;
    let s = bytes.get(*p..end).ok_or(MapError::EntryOutOfBounds(n))?;
    if bytes.get(end) != Some(&0) {
        return Err(MapError::MissingNul(n));
    }
    *p = end + 1;
    Ok(s)
}

/// A property path as filters send it: segments separated by NUL bytes
/// (`request\0path`). Returned joined with dots (`request.path`), the CEL spelling.
pub fn property_path(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    raw.split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_round_trip() {
        let pairs = vec![
            (b":path".to_vec(), b"/a?b".to_vec()),
            (b"x".to_vec(), Vec::new()),
            (Vec::new(), b"v".to_vec()),
        ];
        let enc = encode_map(&pairs);
        assert_eq!(decode_map(&enc), Ok(pairs));
        assert_eq!(decode_map(&encode_map::<&[u8], &[u8]>(&[])), Ok(vec![]));
        assert_eq!(decode_map(&[]), Ok(vec![]));
    }

    #[test]
    fn hostile_maps_are_refused() {
        assert_eq!(decode_map(&[1, 0]), Err(MapError::Truncated(2)));
        // Claims 1000 pairs in 20 bytes.
        let mut m = 1000u32.to_le_bytes().to_vec();
        m.extend_from_slice(&[0; 16]);
        assert_eq!(decode_map(&m), Err(MapError::TooManyPairs(1000)));
        // Key length far past the end.
        let mut m = encode_map(&[("k", "v")]);
        m[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_map(&m), Err(MapError::EntryOutOfBounds(0))));
        // Missing NUL.
        let mut m = encode_map(&[("k", "v")]);
        let last = m.len() - 1;
        m[last] = b'x';
        assert_eq!(decode_map(&m), Err(MapError::MissingNul(0)));
    }

    #[test]
    fn property_paths() {
        assert_eq!(property_path(b"request\0path"), "request.path");
        assert_eq!(property_path(b"plugin_name\0"), "plugin_name");
        assert_eq!(property_path(b""), "");
    }

    #[test]
    fn actions_and_types() {
        assert_eq!(Action::from_raw(1), Action::Pause);
        assert_eq!(Action::from_raw(0), Action::Continue);
        assert_eq!(MapType::from_raw(2), Some(MapType::ResponseHeaders));
        assert_eq!(MapType::from_raw(99), None);
        assert_eq!(
            BufferType::from_raw(7),
            Some(BufferType::PluginConfiguration)
        );
        assert_eq!(BufferType::from_raw(-1), None);
    }
}
