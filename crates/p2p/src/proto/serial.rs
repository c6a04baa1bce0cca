//! Field serialization of p2p-media-loader 2.3 peer commands: sign-magnitude
//! integers, "similar int" arrays and short strings, each prefixed by a byte whose
//! high nibble is the item type. Byte-exact with `binary-serialization.ts`.
//!
//! Not for framing or command layout (see `framing` and `command`). Written by hand
//! because no crate speaks this format.

use super::error::{ProtoError, UsageError};

/// Item type codes (high nibble of an item's first byte).
pub const ITEM_INT: u8 = 0;
pub const ITEM_SIMILAR_INT_ARRAY: u8 = 1;
pub const ITEM_STRING: u8 = 2;

/// Longest string the 12-bit length field can carry.
pub const MAX_STRING_LEN: usize = 0x0fff;

/// Bytes of the sign-magnitude form: magnitude bits plus one sign bit, rounded up.
fn int_len(magnitude: u64) -> usize {
    let bits = (64 - magnitude.leading_zeros()).max(1) as usize;
    (bits + 1).div_ceil(8)
}

/// Appends an Int item: `0x0L` (L = byte count) then big-endian magnitude with the
/// sign in the top bit of the first byte.
pub fn put_int(out: &mut Vec<u8>, value: i64) {
    let magnitude = value.unsigned_abs();
    let len = int_len(magnitude);
    out.push((ITEM_INT << 4) | len as u8);
    let start = out.len();
    for i in (0..len).rev() {
        let shift = 8 * i as u32;
        out.push(if shift >= 64 {
            0
        } else {
            (magnitude >> shift) as u8
        });
    }
    if value < 0 {
        out[start] |= 0x80;
    }
}

/// Reads an Int item; returns the value and the bytes consumed.
pub fn get_int(bytes: &[u8]) -> Result<(i64, usize), ProtoError> {
    let meta = *bytes.first().ok_or(ProtoError::Truncated("integer"))?;
    if meta >> 4 != ITEM_INT {
        return Err(ProtoError::Truncated("integer type"));
    }
    let len = usize::from(meta & 0x0f);
    let body = bytes
        .get(1..1 + len)
        .ok_or(ProtoError::Truncated("integer"))?;
    let mut magnitude: u128 = 0;
    for (i, b) in body.iter().enumerate() {
        let b = if i == 0 { b & 0x7f } else { *b };
        magnitude = (magnitude << 8) | u128::from(b);
    }
    let negative = body.first().is_some_and(|b| b & 0x80 != 0);
    let value = if negative {
        if magnitude > u128::from(i64::MIN.unsigned_abs()) {
            return Err(ProtoError::IntOutOfRange);
        }
        (magnitude as i128).wrapping_neg() as i64
    } else {
        i64::try_from(magnitude).map_err(|_| ProtoError::IntOutOfRange)?
    };
    Ok((value, 1 + len))
}

/// Groups `values` as the JS does: by `value & !0xff` (two's complement), in order of
/// first appearance, keeping each value's order inside its group. Unlike the JS (whose
/// 8-bit length wraps at 256), a group longer than 255 is split into several groups
/// with the same common part, which the JS decoder reads correctly.
fn group(values: &[i64]) -> Vec<(i64, Vec<u8>)> {
    let mut groups: Vec<(i64, Vec<Vec<u8>>)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for &v in values {
        let common = v & !0xff;
        let slot = *index.entry(common).or_insert_with(|| {
            groups.push((common, Vec::new()));
            groups.len() - 1
        });
        let runs = &mut groups[slot].1;
        match runs.last_mut() {
            Some(run) if run.len() < 255 => run.push((v & 0xff) as u8),
            _ => runs.push(vec![(v & 0xff) as u8]),
        }
    }
    groups
        .into_iter()
        .flat_map(|(common, runs)| runs.into_iter().map(move |r| (common, r)))
        .collect()
}

/// Appends a SimilarIntArray item: `0x10`, group count (1 byte), then per group an
/// Int item holding `common | count` followed by `count` low bytes.
pub fn put_similar_int_array(out: &mut Vec<u8>, values: &[i64]) -> Result<(), UsageError> {
    let groups = group(values);
    let count = u8::try_from(groups.len()).map_err(|_| UsageError::TooManyGroups(groups.len()))?;
    out.push(ITEM_SIMILAR_INT_ARRAY << 4);
    out.push(count);
    for (common, lows) in groups {
        put_int(out, common | lows.len() as i64);
        out.extend_from_slice(&lows);
    }
    Ok(())
}

/// Reads a SimilarIntArray item; at most `max_values` values are accepted.
pub fn get_similar_int_array(
    bytes: &[u8],
    max_values: usize,
) -> Result<(Vec<i64>, usize), ProtoError> {
    let (&code, rest) = bytes.split_first().ok_or(ProtoError::Truncated("array"))?;
    if code >> 4 != ITEM_SIMILAR_INT_ARRAY {
        return Err(ProtoError::Truncated("array type"));
    }
    let groups = *rest.first().ok_or(ProtoError::Truncated("array"))?;
    let mut offset = 2;
    let mut values = Vec::new();
    for _ in 0..groups {
        let (with_len, used) = get_int(bytes.get(offset..).unwrap_or_default())?;
        offset += used;
        let len = (with_len & 0xff) as usize;
        let common = with_len & !0xff;
        if values.len() + len > max_values {
            return Err(ProtoError::TooManySegments {
                count: values.len() + len,
                limit: max_values,
            });
        }
        let lows = bytes
            .get(offset..offset + len)
            .ok_or(ProtoError::Truncated("array"))?;
        values.extend(lows.iter().map(|&b| common | i64::from(b)));
        offset += len;
    }
    Ok((values, offset))
}

/// Appends a String item: `0x2H`, `L` (12-bit length H:L), then the UTF-8 bytes.
///
/// The JS writes the UTF-16 length of the string but the UTF-8 bytes, which only agree
/// for ASCII; we write the byte length (identical for ASCII). No 2.3 command carries a
/// string.
pub fn put_string(out: &mut Vec<u8>, s: &str) -> Result<(), UsageError> {
    let len = s.len();
    if len > MAX_STRING_LEN {
        return Err(UsageError::StringTooLong(len));
    }
    out.push((ITEM_STRING << 4) | ((len >> 8) as u8 & 0x0f));
    out.push(len as u8);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Reads a String item.
pub fn get_string(bytes: &[u8]) -> Result<(String, usize), ProtoError> {
    let (&code, rest) = bytes.split_first().ok_or(ProtoError::Truncated("string"))?;
    if code >> 4 != ITEM_STRING {
        return Err(ProtoError::Truncated("string type"));
    }
    let low = *rest.first().ok_or(ProtoError::Truncated("string"))?;
    let len = (usize::from(code & 0x0f) << 8) | usize::from(low);
    let body = bytes
        .get(2..2 + len)
        .ok_or(ProtoError::Truncated("string"))?;
    let s = std::str::from_utf8(body).map_err(|_| ProtoError::InvalidString)?;
    Ok((s.to_owned(), 2 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_int(&mut out, v);
        out
    }

    #[test]
    fn ints_are_sign_magnitude() {
        assert_eq!(int(0), [0x01, 0x00]);
        assert_eq!(int(127), [0x01, 0x7f]);
        assert_eq!(int(128), [0x02, 0x00, 0x80]);
        assert_eq!(int(-1), [0x01, 0x81]);
        assert_eq!(int(-128), [0x02, 0x80, 0x80]);
        assert_eq!(int(i64::MAX).len(), 9);
        assert_eq!(int(i64::MIN).len(), 10);
    }

    #[test]
    fn ints_round_trip() {
        for v in [
            0,
            1,
            -1,
            255,
            256,
            -256,
            1 << 40,
            -(1 << 53),
            i64::MAX,
            i64::MIN,
        ] {
            let bytes = int(v);
            assert_eq!(get_int(&bytes), Ok((v, bytes.len())), "{v}");
        }
    }

    #[test]
    fn hostile_ints() {
        assert_eq!(get_int(&[]), Err(ProtoError::Truncated("integer")));
        assert_eq!(
            get_int(&[0x03, 1, 2]),
            Err(ProtoError::Truncated("integer"))
        );
        // 15 bytes of 0xff: far beyond 64 bits
        let mut big = vec![0x0f];
        big.extend([0xff; 15]);
        assert_eq!(get_int(&big), Err(ProtoError::IntOutOfRange));
        // zero-length int reads as 0, like the JS
        assert_eq!(get_int(&[0x00]), Ok((0, 1)));
        // leading zero bytes are fine
        assert_eq!(
            get_int(&[0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
            Ok((5, 16))
        );
    }

    #[test]
    fn arrays_round_trip_and_split_long_groups() {
        let values: Vec<i64> = (0..600).chain([-5, -300, 70_000]).collect();
        let mut out = Vec::new();
        put_similar_int_array(&mut out, &values).unwrap();
        let (back, used) = get_similar_int_array(&out, 10_000).unwrap();
        assert_eq!(used, out.len());
        let mut a = back.clone();
        a.sort_unstable();
        let mut b = values.clone();
        b.sort_unstable();
        assert_eq!(a, b);
    }

    #[test]
    fn too_many_groups_is_refused() {
        let values: Vec<i64> = (0..256).map(|i| i * 256).collect();
        let mut out = Vec::new();
        assert_eq!(
            put_similar_int_array(&mut out, &values),
            Err(UsageError::TooManyGroups(256))
        );
    }

    #[test]
    fn hostile_arrays() {
        assert!(get_similar_int_array(&[0x10], 10).is_err());
        assert!(get_similar_int_array(&[0x10, 1], 10).is_err());
        // group claims 3 values but only 1 follows
        assert_eq!(
            get_similar_int_array(&[0x10, 1, 0x01, 0x03, 7], 10),
            Err(ProtoError::Truncated("array"))
        );
        // limit on values
        let mut out = Vec::new();
        put_similar_int_array(&mut out, &(0..100).collect::<Vec<_>>()).unwrap();
        assert!(matches!(
            get_similar_int_array(&out, 50),
            Err(ProtoError::TooManySegments { .. })
        ));
    }

    #[test]
    fn strings() {
        let mut out = Vec::new();
        put_string(&mut out, "hello").unwrap();
        assert_eq!(out, b"\x20\x05hello");
        assert_eq!(get_string(&out), Ok(("hello".to_owned(), 7)));
        assert!(put_string(&mut out, &"x".repeat(4096)).is_err());
        assert_eq!(
            get_string(&[0x20, 3, b'a']),
            Err(ProtoError::Truncated("string"))
        );
        assert_eq!(get_string(&[0x20, 1, 0xff]), Err(ProtoError::InvalidString));
    }
}
