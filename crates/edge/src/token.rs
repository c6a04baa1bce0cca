//! Signed URL tokens in the Akamai EdgeAuth ("Token Auth 2.0") format.
//!
//! What this is for: minting and checking the `__token__` that a customer's
//! backend hands to viewers, so that the edge serves a path only to holders of
//! a token whose HMAC-SHA256 was made with the shared key. Tokens minted by
//! Akamai's EdgeAuth libraries (with SHA-256 and no salt) verify here and vice
//! versa.
//!
//! What this is not: a session or DRM system. It does not track token use,
//! revoke tokens, rate limit, or keep secrets in memory safely; the key is a
//! plain byte slice. It does not support the SHA-1/MD5 variants or `salt`.
//!
//! # Format
//!
//! Fields are joined by `~`, always in this order when present:
//! `ip=`, `st=`, `exp=`, `acl=` (ACL tokens only), `id=`, `data=`, then
//! `hmac=` with 64 hex digits. The HMAC is keyed with the hex-decoded key and
//! taken over the token text before `~hmac=`. For URL tokens (no `acl=`),
//! `~url=URL` is appended to the signed text; the URL itself is not part of the
//! token. An ACL may hold several patterns separated by `!`; `*` matches any
//! run of characters, `/` included.
//!
//! # Escaping
//!
//! Akamai's "escape_early" option percent-encodes the `acl` value in the token
//! and the URL in the signed text. [`verify`] and [`mint`] use values as-is
//! (the EdgeAuth default); [`verify_with`] and [`try_mint_with`] take
//! [`Escape::Early`] for the escaped flavour, where the URL is encoded before
//! signing and the ACL is percent-decoded before it is matched.
//!
//! # Time
//!
//! A token is valid for `st <= now < exp`: `exp` is the first second at which
//! the token no longer works.
//!
//! No normalisation (`..`, `//`, escapes) happens here: the edge hands [`verify`]
//! its canonical path (`crate::canonical`: unreserved escapes decoded, `//` merged,
//! dot-segments and encoded slashes refused before any check), the same path the
//! cache key and the upstream request are made from, so an ACL cannot be escaped
//! by a form the origin reads differently.

use std::borrow::Cow;
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Longest hex key accepted by [`parse_key`], in hex digits.
pub const MAX_KEY_HEX_LEN: usize = 1024;
/// Default name of the query parameter, cookie and header holding the token.
pub const DEFAULT_TOKEN_NAME: &str = "__token__";

const FIELD_SEP: char = '~';
const ACL_SEP: char = '!';
const HMAC_LEN: usize = 32;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token text is not in EdgeAuth form; the reason is fixed text,
    /// never a copy of the input.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The HMAC does not match the key and the signed text.
    #[error("token signature does not match")]
    BadSignature,
    /// `now >= exp`.
    #[error("token has expired")]
    Expired,
    /// `now < st`.
    #[error("token is not valid yet")]
    NotYetValid,
    /// The request path matches none of the ACL patterns.
    #[error("path not allowed by token ACL")]
    PathNotAllowed,
    /// The token is bound to an IP that is not the client's.
    #[error("token is bound to another IP address")]
    IpMismatch,
    /// A required field (`exp`, `hmac`) is absent.
    #[error("token lacks a required field")]
    Missing,
    /// The key is empty, too long, or not hex.
    #[error("token key is not usable")]
    BadKey,
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("token is too long")]
    TooLong,
}

/// How `acl` and `url` values are written (Akamai's `escape_early`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Escape {
    /// Values are used as given (EdgeAuth default).
    #[default]
    AsIs,
    /// Values are percent-encoded with lower-case hex before use, keeping
    /// `A-Z a-z 0-9 - . _ ~ /` (Python `quote` as EdgeAuth uses it).
    Early,
}

/// A parsed token. Parsing checks the form only; use [`verify`] to trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub ip: Option<String>,
    pub start: Option<u64>,
    pub expires: u64,
    pub acl: Option<String>,
    pub id: Option<String>,
    pub data: Option<String>,
    /// The HMAC as it appears in the token (hex).
    pub hmac: String,
}

/// What to sign. Exactly one of `acl` and `url` must be set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MintRequest<'a> {
    pub acl: Option<&'a str>,
    pub url: Option<&'a str>,
    pub start: Option<u64>,
    pub expires: u64,
    pub ip: Option<&'a str>,
    pub id: Option<&'a str>,
    pub data: Option<&'a str>,
}

/// Field names in the order they must appear.
const ORDER: [&str; 7] = ["ip", "st", "exp", "acl", "id", "data", "hmac"];

impl Token {
    /// Parses the token text. Fields must be in EdgeAuth order, appear at most
    /// once, and `hmac` must come last with 64 hex digits.
    pub fn parse(s: &str) -> Result<Token, TokenError> {
        if s.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        let mut tok = Token {
            ip: None,
            start: None,
            expires: 0,
            acl: None,
            id: None,
            data: None,
            hmac: String::new(),
        };
        let mut have_exp = false;
        let mut have_hmac = false;
        // Index into ORDER of the next field allowed.
        let mut next = 0usize;
        for field in s.split(FIELD_SEP) {
            if have_hmac {
                return Err(TokenError::Malformed("field after hmac"));
            }
            let (name, value) = field
                .split_once('=')
                .ok_or(TokenError::Malformed("field without '='"))?;
            let pos = ORDER
                .iter()
                .position(|n| *n == name)
                .ok_or(TokenError::Malformed("unknown field"))?;
            if pos < next {
                return Err(TokenError::Malformed("field repeated or out of order"));
            }
            next = pos + 1;
            if value.is_empty() {
                return Err(TokenError::Malformed("empty field value"));
            }
            match name {
                "ip" => tok.ip = Some(value.to_owned()),
                "st" => tok.start = Some(parse_time(value)?),
                "exp" => {
                    tok.expires = parse_time(value)?;
                    have_exp = true;
                }
                "acl" => tok.acl = Some(value.to_owned()),
                "id" => tok.id = Some(value.to_owned()),
                "data" => tok.data = Some(value.to_owned()),
                _ => {
                    // "hmac", the only name left in ORDER.
                    if value.len() != HMAC_LEN * 2 || !value.bytes().all(|b| b.is_ascii_hexdigit())
                    {
                        return Err(TokenError::Malformed("hmac is not 64 hex digits"));
                    }
                    tok.hmac = value.to_owned();
                    have_hmac = true;
                }
            }
        }
        if !have_exp || !have_hmac {
            return Err(TokenError::Missing);
        }
        Ok(tok)
    }

    /// Whether this is an ACL token (as opposed to a URL token).
    pub fn is_acl(&self) -> bool {
        self.acl.is_some()
    }
}

fn parse_time(v: &str) -> Result<u64, TokenError> {
    if v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::Malformed("time is not a decimal number"));
    }
    v.parse()
        .map_err(|_| TokenError::Malformed("time is out of range"))
}

/// Decodes a key given as hex, as Akamai shows it. Surrounding whitespace is
/// ignored; an empty, odd-length, non-hex or over-long key is [`TokenError::BadKey`].
pub fn parse_key(hex: &str) -> Result<Vec<u8>, TokenError> {
    let hex = hex.trim();
    if hex.is_empty() || hex.len() > MAX_KEY_HEX_LEN {
        return Err(TokenError::BadKey);
    }
    hex::decode(hex).map_err(|_| TokenError::BadKey)
}

/// Characters `escape_early` encodes: everything but `A-Za-z0-9-._~/`.
const EARLY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

fn escape_early(s: &str) -> String {
    let enc = utf8_percent_encode(s, EARLY).to_string();
    // EdgeAuth lower-cases the hex digits of each escape.
    let mut out = String::with_capacity(enc.len());
    let mut left = 0usize;
    for c in enc.chars() {
        if c == '%' {
            left = 2;
            out.push(c);
        } else if left > 0 {
            left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn escape(s: &str, e: Escape) -> Cow<'_, str> {
    match e {
        Escape::AsIs => Cow::Borrowed(s),
        Escape::Early => Cow::Owned(escape_early(s)),
    }
}

fn new_mac(key: &[u8]) -> Result<Hmac<Sha256>, TokenError> {
    if key.is_empty() {
        return Err(TokenError::BadKey);
    }
    <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| TokenError::BadKey)
}

/// HMAC of `body` plus, for URL tokens, `~url=URL`.
fn sign(key: &[u8], body: &str, url: Option<&str>) -> Result<[u8; HMAC_LEN], TokenError> {
    let mut mac = new_mac(key)?;
    mac.update(body.as_bytes());
    if let Some(url) = url {
        mac.update(b"~url=");
        mac.update(url.as_bytes());
    }
    Ok(mac.finalize().into_bytes().into())
}

/// Mints a token with values as-is. An invalid request (empty key, both or
/// neither of `acl`/`url`, `~` in a field, `start > expires`) yields an empty
/// string, which never verifies; use [`try_mint`] to see the reason.
pub fn mint(key: &[u8], req: &MintRequest) -> String {
    try_mint(key, req).unwrap_or_default()
}

/// [`mint`] that reports why a request is invalid.
pub fn try_mint(key: &[u8], req: &MintRequest) -> Result<String, TokenError> {
    try_mint_with(key, req, Escape::AsIs)
}

/// [`try_mint`] with a choice of escaping for `acl` and `url`.
pub fn try_mint_with(key: &[u8], req: &MintRequest, esc: Escape) -> Result<String, TokenError> {
    if key.is_empty() {
        return Err(TokenError::BadKey);
    }
    let acl = req.acl.map(|a| escape(a, esc));
    let url = req.url.map(|u| escape(u, esc));
    if acl.is_some() == url.is_some() {
        return Err(TokenError::Malformed("need exactly one of acl and url"));
    }
    if req.start.is_some_and(|st| st > req.expires) {
        return Err(TokenError::Malformed("start is after expiry"));
    }
    let mut body = String::new();
    let mut push = |name: &str, value: &str| -> Result<(), TokenError> {
        if value.is_empty() {
            return Err(TokenError::Malformed("empty field value"));
        }
        if value.contains(FIELD_SEP) {
            return Err(TokenError::Malformed("field value contains '~'"));
        }
        if !body.is_empty() {
            body.push(FIELD_SEP);
        }
        body.push_str(name);
        body.push('=');
        body.push_str(value);
        Ok(())
    };
    if let Some(ip) = req.ip {
        push("ip", ip)?;
    }
    if let Some(st) = req.start {
        push("st", &st.to_string())?;
    }
    push("exp", &req.expires.to_string())?;
    if let Some(acl) = &acl {
        push("acl", acl)?;
    }
    if let Some(id) = req.id {
        push("id", id)?;
    }
    if let Some(data) = req.data {
        push("data", data)?;
    }
    let digest = sign(key, &body, url.as_deref())?;
    let out = format!("{body}~hmac={}", hex::encode(digest));
    if out.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    Ok(out)
}

/// Verifies `token` for a request with values as-is; see [`verify_with`].
pub fn verify(
    key: &[u8],
    token: &str,
    path: &str,
    query: Option<&str>,
    client_ip: Option<&str>,
    now: u64,
) -> Result<Token, TokenError> {
    verify_with(key, token, path, query, client_ip, now, Escape::AsIs)
}

/// Verifies `token` for a request to `path` (with its `query`, without `?`)
/// from `client_ip` at unix time `now`.
///
/// Checks in this order: length, form, HMAC (compared in constant time),
/// `st <= now < exp`, IP, then the ACL against `path`. For URL tokens the
/// signed URL is tried as `path`, then as `path?query`; a URL token minted for
/// another path fails as [`TokenError::BadSignature`]. The query is never
/// matched against an ACL.
///
/// A token with `ip=` fails with [`TokenError::IpMismatch`] when `client_ip` is
/// `None`. IPs that parse are compared as addresses (so `::ffff:1.2.3.4`
/// equals `1.2.3.4`), others as strings.
pub fn verify_with(
    key: &[u8],
    token: &str,
    path: &str,
    query: Option<&str>,
    client_ip: Option<&str>,
    now: u64,
    esc: Escape,
) -> Result<Token, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let tok = Token::parse(token)?;
    // `parse` guarantees the token ends in "~hmac=" + 64 hex digits, or is
    // only "hmac=..." (which lacks exp and was refused).
    let body = token
        .rsplit_once("~hmac=")
        .map(|(b, _)| b)
        .ok_or(TokenError::Missing)?;
    let given = hex::decode(&tok.hmac).map_err(|_| TokenError::Malformed("hmac is not hex"))?;

    let signed_ok = if tok.is_acl() {
        ct_eq(&sign(key, body, None)?, &given)
    } else {
        let mut ok = ct_eq(&sign(key, body, Some(&escape(path, esc)))?, &given);
        if let (false, Some(q)) = (ok, query) {
            let full = format!("{path}?{q}");
            ok = ct_eq(&sign(key, body, Some(&escape(&full, esc)))?, &given);
        }
        ok
    };
    if !signed_ok {
        return Err(TokenError::BadSignature);
    }

    if tok.start.is_some_and(|st| now < st) {
        return Err(TokenError::NotYetValid);
    }
    if now >= tok.expires {
        return Err(TokenError::Expired);
    }
    if let Some(ip) = &tok.ip {
        match client_ip {
            Some(client) if same_ip(ip, client) => {}
            _ => return Err(TokenError::IpMismatch),
        }
    }
    if let Some(acl) = &tok.acl {
        let allowed = match esc {
            Escape::AsIs => acl_matches(acl, path),
            Escape::Early => match percent_decode_str(acl).decode_utf8() {
                Ok(decoded) => acl_matches(&decoded, path),
                Err(_) => false,
            },
        };
        if !allowed {
            return Err(TokenError::PathNotAllowed);
        }
    }
    Ok(tok)
}

fn ct_eq(a: &[u8; HMAC_LEN], b: &[u8]) -> bool {
    b.len() == HMAC_LEN && bool::from(a.as_slice().ct_eq(b))
}

fn same_ip(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x.to_canonical() == y.to_canonical(),
        _ => a == b,
    }
}

/// Finds the token: the `name` query parameter, else the cookie `name`, else
/// the header value. Empty values are skipped.
///
/// A query value that already looks like a token (holds `~` and `hmac=`) is
/// returned untouched, because escape_early tokens contain `%xx` that must not
/// be decoded; any other query value is percent-decoded once (for clients
/// that encoded the whole token). Cookie values lose surrounding double
/// quotes; header values are trimmed.
pub fn extract<'a>(
    name: &str,
    query: Option<&'a str>,
    cookie_header: Option<&'a str>,
    header_value: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    if let Some(q) = query {
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k != name || v.is_empty() {
                continue;
            }
            if v.contains(FIELD_SEP) && v.contains("hmac=") {
                return Some(Cow::Borrowed(v));
            }
            if let Ok(d) = percent_decode_str(v).decode_utf8() {
                if !d.is_empty() {
                    return Some(d);
                }
            }
        }
    }
    if let Some(c) = cookie_header {
        for part in c.split(';') {
            let Some((k, v)) = part.trim().split_once('=') else {
                continue;
            };
            if k.trim() != name {
                continue;
            }
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(v);
            if !v.is_empty() {
                return Some(Cow::Borrowed(v));
            }
        }
    }
    header_value
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(Cow::Borrowed)
}

/// Whether `path` matches any of the `!`-separated patterns in `acl`. `*`
/// matches any run of characters, `/` included; everything else is literal.
///
/// Runs in time linear in the lengths (up to the cost of substring search):
/// the literal pieces between stars are matched greedily left to right,
/// which is exact for patterns whose only wildcard is `*`.
pub fn acl_matches(acl: &str, path: &str) -> bool {
    acl.split(ACL_SEP).any(|p| glob(p, path))
}

fn glob(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    let Some(rest) = text.strip_prefix(first) else {
        return false;
    };
    // Pieces after the first star; the last one is anchored at the end.
    let mut middle: Vec<&str> = pieces.collect();
    let Some(last) = middle.pop() else {
        // No star at all: exact match.
        return rest.is_empty();
    };
    let Some(mut rest) = rest.strip_suffix(last) else {
        return false;
    };
    // `strip_suffix` may overlap the prefix only if `rest` was shorter than
    // `last`, which strip_suffix already refused.
    for piece in middle {
        if piece.is_empty() {
            continue;
        }
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const KEY_HEX: &str = "0123456789abcdef0123456789abcdef";

    fn key() -> Vec<u8> {
        parse_key(KEY_HEX).unwrap()
    }

    fn acl_req(acl: &str) -> MintRequest<'_> {
        MintRequest {
            acl: Some(acl),
            start: Some(1000),
            expires: 2000,
            ..MintRequest::default()
        }
    }

    #[test]
    fn known_answer() {
        let k = key();
        let body = "st=1000~exp=2000~acl=/live/x/*";
        let mut mac = Hmac::<Sha256>::new_from_slice(&k).unwrap();
        mac.update(body.as_bytes());
        let want = format!("{body}~hmac={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(mint(&k, &acl_req("/live/x/*")), want);
        // Same vector from Python's hmac module, fixed here.
        assert_eq!(
            want,
            "st=1000~exp=2000~acl=/live/x/*~hmac=\
             e0c57f00b1487490849e455a51d927bf756171b746c5d607a36e63f465cb5155"
        );
        let t = verify(&k, &want, "/live/x/seg1.m4s", None, None, 1500).unwrap();
        assert_eq!(t.start, Some(1000));
        assert_eq!(t.expires, 2000);
        assert_eq!(t.acl.as_deref(), Some("/live/x/*"));
    }

    #[test]
    fn known_answer_url_token() {
        let k = key();
        let mut mac = Hmac::<Sha256>::new_from_slice(&k).unwrap();
        mac.update(b"exp=2000~url=/vod/a.mp4");
        let want = format!("exp=2000~hmac={}", hex::encode(mac.finalize().into_bytes()));
        let req = MintRequest {
            url: Some("/vod/a.mp4"),
            expires: 2000,
            ..MintRequest::default()
        };
        assert_eq!(mint(&k, &req), want);
        assert_eq!(
            want,
            "exp=2000~hmac=dc6d01d3016e13585ea248e00a46f1600bd14854fff9cf7c9d0228870b629964"
        );
    }

    #[test]
    fn round_trip_all_fields() {
        let k = key();
        let req = MintRequest {
            acl: Some("/live/*"),
            url: None,
            start: Some(10),
            expires: 20,
            ip: Some("192.0.2.7"),
            id: Some("sess-1"),
            data: Some("a=b"),
        };
        let s = mint(&k, &req);
        assert!(s.starts_with("ip=192.0.2.7~st=10~exp=20~acl=/live/*~id=sess-1~data=a=b~hmac="));
        let t = verify(&k, &s, "/live/ch/index.m3u8", None, Some("192.0.2.7"), 15).unwrap();
        assert_eq!(t.id.as_deref(), Some("sess-1"));
        assert_eq!(t.data.as_deref(), Some("a=b"));
        assert_eq!(Token::parse(&s).unwrap(), t);
    }

    #[test]
    fn time_window() {
        let k = key();
        let s = mint(&k, &acl_req("/*"));
        assert_eq!(
            verify(&k, &s, "/a", None, None, 999),
            Err(TokenError::NotYetValid)
        );
        assert!(verify(&k, &s, "/a", None, None, 1000).is_ok());
        assert!(verify(&k, &s, "/a", None, None, 1999).is_ok());
        assert_eq!(
            verify(&k, &s, "/a", None, None, 2000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&k, &s, "/a", None, None, u64::MAX),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn forged_hmac_and_wrong_key() {
        let k = key();
        let s = mint(&k, &acl_req("/*"));
        // Flip the last hex digit to another digit.
        let mut forged = s.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        assert_eq!(
            verify(&k, &forged, "/a", None, None, 1500),
            Err(TokenError::BadSignature)
        );
        let other = parse_key("00112233445566778899aabbccddeeff").unwrap();
        assert_eq!(
            verify(&other, &s, "/a", None, None, 1500),
            Err(TokenError::BadSignature)
        );
        // Upper-case hex of the right digest is the same digest.
        let (body, mac) = s.rsplit_once("~hmac=").unwrap();
        let upper = format!("{body}~hmac={}", mac.to_ascii_uppercase());
        assert!(verify(&k, &upper, "/a", None, None, 1500).is_ok());
        // Tampering with a signed field breaks the signature.
        let widened = s.replace("exp=2000", "exp=9000");
        assert_eq!(
            verify(&k, &widened, "/a", None, None, 2500),
            Err(TokenError::BadSignature)
        );
        // Signature is checked before time.
        assert_eq!(
            verify(&k, &forged, "/a", None, None, 5000),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn acl_paths() {
        let k = key();
        let s = mint(&k, &acl_req("/live/x/*"));
        assert_eq!(
            verify(&k, &s, "/live/y/a.ts", None, None, 1500),
            Err(TokenError::PathNotAllowed)
        );
        assert_eq!(
            verify(&k, &s, "/live/x", None, None, 1500),
            Err(TokenError::PathNotAllowed)
        );
        assert!(verify(&k, &s, "/live/x/", None, None, 1500).is_ok());
        assert!(verify(&k, &s, "/live/x/deep/er/a.ts", Some("a=1"), None, 1500).is_ok());

        let multi = mint(&k, &acl_req("/live/a/*!/live/b/*.m3u8!/exact.txt"));
        assert!(verify(&k, &multi, "/live/a/1.ts", None, None, 1500).is_ok());
        assert!(verify(&k, &multi, "/live/b/x/index.m3u8", None, None, 1500).is_ok());
        assert!(verify(&k, &multi, "/exact.txt", None, None, 1500).is_ok());
        assert_eq!(
            verify(&k, &multi, "/live/b/1.ts", None, None, 1500),
            Err(TokenError::PathNotAllowed)
        );
        assert_eq!(
            verify(&k, &multi, "/exact.txt2", None, None, 1500),
            Err(TokenError::PathNotAllowed)
        );
    }

    #[test]
    fn glob_cases() {
        assert!(acl_matches("/live/*/index.m3u8", "/live/ch1/index.m3u8"));
        assert!(acl_matches("/live/*/index.m3u8", "/live/a/b/index.m3u8"));
        assert!(!acl_matches("/live/*/index.m3u8", "/live/ch1/index.m3u8x"));
        assert!(!acl_matches("/live/*/index.m3u8", "/vod/ch1/index.m3u8"));
        assert!(acl_matches("*", ""));
        assert!(acl_matches("*", "/anything"));
        assert!(acl_matches("**", "/x"));
        assert!(acl_matches("/a*a", "/aa"));
        assert!(!acl_matches("/a*a", "/a"));
        assert!(acl_matches("/*a*b*", "/xaybz"));
        assert!(!acl_matches("/*a*b*", "/xbya"));
        assert!(acl_matches("/ab*ab", "/abab"));
        assert!(!acl_matches("/ab*ab", "/ab"));
        assert!(!acl_matches("", "/"));
        assert!(acl_matches("", ""));
        assert!(acl_matches("/x!", ""));
    }

    #[test]
    fn pathological_patterns_are_fast() {
        let text = "/".to_owned() + &"a".repeat(200_000);
        let pattern = "/*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let t0 = Instant::now();
        assert!(!acl_matches(pattern, &text));
        let many_stars = "*a".repeat(1000) + "*b";
        assert!(!acl_matches(&many_stars, &text));
        assert!(acl_matches(&many_stars, &(text.clone() + "b")));
        assert!(t0.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn ip_binding() {
        let k = key();
        let req = MintRequest {
            ip: Some("192.0.2.7"),
            ..acl_req("/*")
        };
        let s = mint(&k, &req);
        assert!(verify(&k, &s, "/a", None, Some("192.0.2.7"), 1500).is_ok());
        assert!(verify(&k, &s, "/a", None, Some("::ffff:192.0.2.7"), 1500).is_ok());
        assert_eq!(
            verify(&k, &s, "/a", None, Some("192.0.2.8"), 1500),
            Err(TokenError::IpMismatch)
        );
        assert_eq!(
            verify(&k, &s, "/a", None, None, 1500),
            Err(TokenError::IpMismatch)
        );
    }

    #[test]
    fn url_tokens() {
        let k = key();
        let req = MintRequest {
            url: Some("/vod/a.mp4"),
            expires: 2000,
            ..MintRequest::default()
        };
        let s = mint(&k, &req);
        assert!(verify(&k, &s, "/vod/a.mp4", None, None, 1).is_ok());
        assert!(verify(&k, &s, "/vod/a.mp4", Some("x=1"), None, 1).is_ok());
        assert_eq!(
            verify(&k, &s, "/vod/b.mp4", None, None, 1),
            Err(TokenError::BadSignature)
        );

        let with_q = MintRequest {
            url: Some("/vod/a.mp4?quality=hd"),
            expires: 2000,
            ..MintRequest::default()
        };
        let s = mint(&k, &with_q);
        assert!(verify(&k, &s, "/vod/a.mp4", Some("quality=hd"), None, 1).is_ok());
        assert_eq!(
            verify(&k, &s, "/vod/a.mp4", None, None, 1),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&k, &s, "/vod/a.mp4", Some("quality=sd"), None, 1),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn escape_early_flavour() {
        let k = key();
        let s = try_mint_with(&k, &acl_req("/live/x y/*"), Escape::Early).unwrap();
        assert!(s.contains("acl=/live/x%20y/%2a~"), "{s}");
        assert!(verify_with(&k, &s, "/live/x y/a", None, None, 1500, Escape::Early).is_ok());
        assert_eq!(
            verify_with(&k, &s, "/live/z/a", None, None, 1500, Escape::Early),
            Err(TokenError::PathNotAllowed)
        );
        let url = MintRequest {
            url: Some("/v/a b.mp4"),
            expires: 2000,
            ..MintRequest::default()
        };
        let s = try_mint_with(&k, &url, Escape::Early).unwrap();
        assert!(verify_with(&k, &s, "/v/a b.mp4", None, None, 1, Escape::Early).is_ok());
        assert_eq!(
            verify(&k, &s, "/v/a b.mp4", None, None, 1),
            Err(TokenError::BadSignature)
        );
        assert_eq!(super::escape_early("/a*b!c~d"), "/a%2ab%21c~d");
    }

    #[test]
    fn mint_rejects_bad_requests() {
        let k = key();
        let both = MintRequest {
            acl: Some("/*"),
            url: Some("/a"),
            expires: 5,
            ..MintRequest::default()
        };
        assert!(matches!(try_mint(&k, &both), Err(TokenError::Malformed(_))));
        assert_eq!(mint(&k, &both), "");
        let neither = MintRequest {
            expires: 5,
            ..MintRequest::default()
        };
        assert!(try_mint(&k, &neither).is_err());
        let inject = MintRequest {
            id: Some("x~acl=/*"),
            ..acl_req("/a")
        };
        assert!(try_mint(&k, &inject).is_err());
        assert_eq!(try_mint(&[], &acl_req("/a")), Err(TokenError::BadKey));
        let backwards = MintRequest {
            start: Some(3000),
            ..acl_req("/a")
        };
        assert!(try_mint(&k, &backwards).is_err());
        // A URL may contain '~': it is not part of the token text.
        let tilde = MintRequest {
            url: Some("/~user/a"),
            expires: 9,
            ..MintRequest::default()
        };
        let s = mint(&k, &tilde);
        assert!(verify(&k, &s, "/~user/a", None, None, 1).is_ok());
    }

    #[test]
    fn parse_rejects_junk() {
        let h = "0".repeat(64);
        for bad in [
            "",
            "~",
            "exp=1",
            "hmac=".to_owned().as_str(),
            &format!("hmac={h}"),
            &format!("exp=1~hmac={h}~id=x"),
            &format!("acl=/*~exp=1~hmac={h}"),
            &format!("exp=1~exp=2~hmac={h}"),
            &format!("exp=-1~hmac={h}"),
            &format!("exp=+1~hmac={h}"),
            &format!("exp=99999999999999999999~hmac={h}"),
            &format!("exp=1~hmac={}", &h[..62]),
            &format!("exp=1~hmac={}g", &h[..63]),
            &format!("exp=1~salt=x~hmac={h}"),
            &format!("exp=1~acl=~hmac={h}"),
            &format!("exp=1~acl~hmac={h}"),
            &format!("exp=1~hmac={h}~"),
            "exp=1~hmac=ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé",
        ] {
            assert!(Token::parse(bad).is_err(), "{bad:?}");
            assert!(verify(&key(), bad, "/", None, None, 0).is_err(), "{bad:?}");
        }
        assert_eq!(Token::parse("exp=1"), Err(TokenError::Missing));
        let long = format!("exp=1~data={}~hmac={h}", "a".repeat(MAX_TOKEN_LEN));
        assert_eq!(Token::parse(&long), Err(TokenError::TooLong));
        assert_eq!(
            verify(&key(), &long, "/", None, None, 0),
            Err(TokenError::TooLong)
        );
        assert!(Token::parse(&format!("exp=1~hmac={h}")).is_ok());
    }

    #[test]
    fn keys() {
        assert_eq!(parse_key(" 00ff \n").unwrap(), vec![0, 255]);
        assert_eq!(parse_key(""), Err(TokenError::BadKey));
        assert_eq!(parse_key("abc"), Err(TokenError::BadKey));
        assert_eq!(parse_key("zz"), Err(TokenError::BadKey));
        assert_eq!(parse_key(&"00".repeat(1000)), Err(TokenError::BadKey));
        assert_eq!(
            verify(&[], "exp=1~hmac=00", "/", None, None, 0).unwrap_err(),
            TokenError::Malformed("hmac is not 64 hex digits")
        );
        let h = "0".repeat(64);
        assert_eq!(
            verify(&[], &format!("exp=1~hmac={h}"), "/", None, None, 0),
            Err(TokenError::BadKey)
        );
    }

    #[test]
    fn extraction() {
        let tok = "st=1~exp=2~acl=%2f*~hmac=ab";
        let q = format!("a=1&__token__={tok}&b=2");
        assert_eq!(
            extract(DEFAULT_TOKEN_NAME, Some(&q), None, None).as_deref(),
            Some(tok)
        );
        // Fully encoded token is decoded once.
        let q = "__token__=exp%3D2%7Ehmac%3Dab";
        assert_eq!(
            extract(DEFAULT_TOKEN_NAME, Some(q), None, None).as_deref(),
            Some("exp=2~hmac=ab")
        );
        // Query beats cookie beats header.
        let c = "x=1; __token__=\"cookie-tok\"; y=2";
        assert_eq!(
            extract("__token__", Some("q=1"), Some(c), Some("h")).as_deref(),
            Some("cookie-tok")
        );
        assert_eq!(
            extract("__token__", Some("__token__="), Some("a=b"), Some(" h ")).as_deref(),
            Some("h")
        );
        assert_eq!(extract("__token__", None, None, Some("  ")), None);
        assert_eq!(
            extract("tk", Some("tk=abc"), None, None).as_deref(),
            Some("abc")
        );
        assert_eq!(extract("tk", Some("__token__=abc"), None, None), None);
        assert_eq!(extract("tk", Some("tk=%ff"), None, None), None);
    }
}
