//! AMF0 value model, decoder and encoder.
//!
//! This module is for the Action Message Format version 0 as it appears in
//! RTMP command messages (type 20, and type 17 after its leading format byte)
//! and data messages (type 18, e.g. `@setDataFrame`/`onMetaData`).
//!
//! It is *not* an AMF3 implementation, and it does not support object
//! references (marker 0x07), movie clips, record sets, XML documents or the
//! AVM+ switch marker: those yield [`Amf0Error::UnsupportedMarker`]. Typed
//! objects (0x10) are decoded as plain [`Value::Object`] (the class name is
//! dropped).
//!
//! Decoding is defensive: every length is checked against the input, declared
//! counts never drive allocations, nesting depth and the total number of
//! decoded values are limited (see [`Limits`]).

use thiserror::Error;

/// Maximum nesting depth of objects/arrays accepted by [`decode_all`].
pub const MAX_DEPTH: usize = 32;
/// Maximum total number of values (including nested ones and object
/// properties) accepted by one [`decode_all`] call.
pub const MAX_VALUES: usize = 65_536;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;
const DATE: u8 = 0x0b;
const LONG_STRING: u8 = 0x0c;
const TYPED_OBJECT: u8 = 0x10;

/// One AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    String(String),
    /// Anonymous object; property order is preserved.
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    /// Associative ("ECMA") array; property order is preserved.
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    /// Milliseconds since the Unix epoch (the time-zone field is ignored).
    Date(f64),
    LongString(String),
}

impl Value {
    /// The string content of a `String` or `LongString`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    /// The number of a `Number`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// Property lookup for `Object` and `EcmaArray` (first match wins).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(props) | Value::EcmaArray(props) => {
                props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Convenience constructor for an `Object` from `(&str, Value)` pairs.
    pub fn object<'a>(props: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Object(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// Convenience constructor for a `String`.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
}

/// AMF0 decoding failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Amf0Error {
    #[error("AMF0 input ends in the middle of a value")]
    Truncated,
    #[error("unsupported AMF0 type marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    #[error("unexpected AMF0 object-end marker")]
    UnexpectedObjectEnd,
    #[error("AMF0 string is not valid UTF-8")]
    InvalidUtf8,
    #[error("AMF0 nesting deeper than {0}")]
    TooDeep(usize),
    #[error("more than {0} AMF0 values")]
    TooManyValues(usize),
}

/// Decoder limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum nesting depth of objects/arrays (top level is depth 0).
    pub max_depth: usize,
    /// Maximum total number of values (properties and nested values count).
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: MAX_DEPTH,
            max_values: MAX_VALUES,
        }
    }
}

/// Decode a sequence of AMF0 values filling the whole buffer, with the
/// default [`Limits`].
pub fn decode_all(buf: &[u8]) -> Result<Vec<Value>, Amf0Error> {
    decode_all_with_limits(buf, Limits::default())
}

/// Decode a sequence of AMF0 values filling the whole buffer.
pub fn decode_all_with_limits(buf: &[u8], limits: Limits) -> Result<Vec<Value>, Amf0Error> {
    let mut d = Decoder {
        buf,
        pos: 0,
        values: 0,
        limits,
    };
    let mut out = Vec::new();
    while d.pos < buf.len() {
        out.push(d.value(0)?);
    }
    Ok(out)
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    values: usize,
    limits: Limits,
}

impl<'a> Decoder<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self.pos.checked_add(n).ok_or(Amf0Error::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(Amf0Error::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn utf8(&mut self, len: usize) -> Result<String, Amf0Error> {
        let b = self.take(len)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| Amf0Error::InvalidUtf8)
    }

    fn short_string(&mut self) -> Result<String, Amf0Error> {
        let len = self.u16()? as usize;
        self.utf8(len)
    }

    fn count_value(&mut self) -> Result<(), Amf0Error> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(Amf0Error::TooManyValues(self.limits.max_values));
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value, Amf0Error> {
        self.count_value()?;
        let marker = self.u8()?;
        Ok(match marker {
            NUMBER => Value::Number(self.f64()?),
            BOOLEAN => Value::Boolean(self.u8()? != 0),
            STRING => Value::String(self.short_string()?),
            OBJECT => Value::Object(self.properties(depth + 1)?),
            NULL => Value::Null,
            UNDEFINED => Value::Undefined,
            ECMA_ARRAY => {
                // The count is advisory; the property list is terminated by
                // the object-end marker like an object.
                let _count = self.u32()?;
                Value::EcmaArray(self.properties(depth + 1)?)
            }
            OBJECT_END => return Err(Amf0Error::UnexpectedObjectEnd),
            STRICT_ARRAY => {
                let count = self.u32()? as usize;
                self.enter(depth + 1)?;
                // Each element takes at least one byte: never allocate more
                // than the input could hold.
                let mut items = Vec::with_capacity(count.min(self.remaining()));
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            DATE => {
                let ms = self.f64()?;
                let _tz = self.u16()?;
                Value::Date(ms)
            }
            LONG_STRING => {
                let len = self.u32()? as usize;
                Value::LongString(self.utf8(len)?)
            }
            TYPED_OBJECT => {
                let _class = self.short_string()?;
                Value::Object(self.properties(depth + 1)?)
            }
            other => return Err(Amf0Error::UnsupportedMarker(other)),
        })
    }

    fn enter(&self, depth: usize) -> Result<(), Amf0Error> {
        if depth > self.limits.max_depth {
            return Err(Amf0Error::TooDeep(self.limits.max_depth));
        }
        Ok(())
    }

    /// Property list up to and including the `00 00 09` terminator.
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
        self.enter(depth)?;
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.buf.get(self.pos) == Some(&OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let v = self.value(depth)?;
            props.push((key, v));
        }
    }
}

/// Append the AMF0 encoding of `v` to `out`.
///
/// `String`s longer than 65535 bytes are written as long strings; property
/// names longer than 65535 bytes are truncated (at a character boundary).
pub fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Number(n) => {
            out.push(NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => {
            out.push(BOOLEAN);
            out.push(u8::from(*b));
        }
        Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.push(STRING);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Err(_) => encode_long_string(s, out),
        },
        Value::Object(props) => {
            out.push(OBJECT);
            encode_properties(props, out);
        }
        Value::Null => out.push(NULL),
        Value::Undefined => out.push(UNDEFINED),
        Value::EcmaArray(props) => {
            out.push(ECMA_ARRAY);
            let count = u32::try_from(props.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            encode_properties(props, out);
        }
        Value::StrictArray(items) => {
            out.push(STRICT_ARRAY);
            let items = &items[..items.len().min(u32::MAX as usize)];
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for item in items {
                encode(item, out);
            }
        }
        Value::Date(ms) => {
            out.push(DATE);
            out.extend_from_slice(&ms.to_be_bytes());
            out.extend_from_slice(&0u16.to_be_bytes());
        }
        Value::LongString(s) => encode_long_string(s, out),
    }
}

fn encode_long_string(s: &str, out: &mut Vec<u8>) {
    let mut end = s.len().min(u32::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.push(LONG_STRING);
    out.extend_from_slice(&(end as u32).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn encode_properties(props: &[(String, Value)], out: &mut Vec<u8>) {
    for (k, v) in props {
        let mut end = k.len().min(u16::MAX as usize);
        while !k.is_char_boundary(end) {
            end -= 1;
        }
        out.extend_from_slice(&(end as u16).to_be_bytes());
        out.extend_from_slice(&k.as_bytes()[..end]);
        encode(v, out);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: Value) {
        let mut buf = Vec::new();
        encode(&v, &mut buf);
        assert_eq!(decode_all(&buf).unwrap(), vec![v]);
    }

    #[test]
    fn roundtrips_every_variant() {
        roundtrip(Value::Number(1.5));
        roundtrip(Value::Boolean(true));
        roundtrip(Value::string("héllo"));
        roundtrip(Value::Null);
        roundtrip(Value::Undefined);
        roundtrip(Value::Date(1_700_000_000_000.0));
        roundtrip(Value::LongString("x".repeat(70_000)));
        roundtrip(Value::object([
            ("app", Value::string("live")),
            ("n", Value::Number(3.0)),
            ("nested", Value::object([("a", Value::Null)])),
        ]));
        roundtrip(Value::EcmaArray(vec![
            ("width".into(), Value::Number(320.0)),
            ("encoder".into(), Value::string("Lavf")),
        ]));
        roundtrip(Value::StrictArray(vec![Value::Number(1.0), Value::Null]));
        roundtrip(Value::Object(vec![]));
    }

    #[test]
    fn long_plain_string_is_encoded_as_long_string() {
        let mut buf = Vec::new();
        encode(&Value::String("y".repeat(70_000)), &mut buf);
        assert_eq!(buf[0], LONG_STRING);
        assert_eq!(
            decode_all(&buf).unwrap(),
            vec![Value::LongString("y".repeat(70_000))]
        );
    }

    #[test]
    fn decodes_known_connect_bytes() {
        // "connect", 1.0, {app: "live"}
        let mut buf = vec![0x02, 0x00, 0x07];
        buf.extend_from_slice(b"connect");
        buf.push(0x00);
        buf.extend_from_slice(&1.0f64.to_be_bytes());
        buf.extend_from_slice(&[0x03, 0x00, 0x03]);
        buf.extend_from_slice(b"app");
        buf.extend_from_slice(&[0x02, 0x00, 0x04]);
        buf.extend_from_slice(b"live");
        buf.extend_from_slice(&[0x00, 0x00, 0x09]);
        let v = decode_all(&buf).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].as_str(), Some("connect"));
        assert_eq!(v[1].as_f64(), Some(1.0));
        assert_eq!(v[2].get("app").and_then(Value::as_str), Some("live"));
    }

    #[test]
    fn typed_object_decodes_as_object() {
        let mut buf = vec![TYPED_OBJECT, 0x00, 0x01, b'C', 0x00, 0x01, b'k', NULL];
        buf.extend_from_slice(&[0, 0, OBJECT_END]);
        assert_eq!(
            decode_all(&buf).unwrap(),
            vec![Value::Object(vec![("k".into(), Value::Null)])]
        );
    }

    #[test]
    fn truncated_inputs_error() {
        let mut buf = Vec::new();
        encode(
            &Value::object([("key", Value::string("value")), ("n", Value::Number(1.0))]),
            &mut buf,
        );
        for cut in 1..buf.len() {
            assert!(decode_all(&buf[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(decode_all(&[]).unwrap(), vec![]);
    }

    #[test]
    fn rejects_unsupported_and_garbage() {
        assert_eq!(
            decode_all(&[0x07, 0, 1]),
            Err(Amf0Error::UnsupportedMarker(0x07))
        );
        assert_eq!(
            decode_all(&[0x11, 0]),
            Err(Amf0Error::UnsupportedMarker(0x11))
        );
        assert_eq!(
            decode_all(&[OBJECT_END]),
            Err(Amf0Error::UnexpectedObjectEnd)
        );
        assert_eq!(
            decode_all(&[STRING, 0, 2, 0xff, 0xfe]),
            Err(Amf0Error::InvalidUtf8)
        );
        // Long string claiming 4 GiB.
        assert_eq!(
            decode_all(&[LONG_STRING, 0xff, 0xff, 0xff, 0xff, b'a']),
            Err(Amf0Error::Truncated)
        );
    }

    #[test]
    fn strict_array_count_does_not_drive_allocation() {
        // Claims u32::MAX elements but has only one.
        let buf = [STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff, NULL];
        assert_eq!(decode_all(&buf), Err(Amf0Error::Truncated));
    }

    #[test]
    fn nesting_depth_is_limited() {
        let mut v = Value::Null;
        for _ in 0..MAX_DEPTH {
            v = Value::StrictArray(vec![v]);
        }
        let mut ok = Vec::new();
        encode(&v, &mut ok);
        assert!(decode_all(&ok).is_ok());

        let deeper = Value::object([("x", v)]);
        let mut bad = Vec::new();
        encode(&deeper, &mut bad);
        assert_eq!(decode_all(&bad), Err(Amf0Error::TooDeep(MAX_DEPTH)));

        // Deep nesting of unterminated objects: must error, not overflow.
        let mut evil = Vec::new();
        for _ in 0..100_000 {
            evil.extend_from_slice(&[OBJECT, 0, 1, b'a']);
        }
        assert_eq!(decode_all(&evil), Err(Amf0Error::TooDeep(MAX_DEPTH)));
    }

    #[test]
    fn value_count_is_limited() {
        let buf = vec![NULL; MAX_VALUES + 1];
        assert_eq!(decode_all(&buf), Err(Amf0Error::TooManyValues(MAX_VALUES)));
        assert_eq!(decode_all(&buf[..MAX_VALUES]).unwrap().len(), MAX_VALUES);
        let limits = Limits {
            max_depth: 1,
            max_values: 3,
        };
        assert!(decode_all_with_limits(&[NULL, NULL, NULL], limits).is_ok());
        assert!(decode_all_with_limits(&[NULL, NULL, NULL, NULL], limits).is_err());
    }
}
