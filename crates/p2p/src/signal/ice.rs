//! ICE servers (STUN/TURN) that an operator hands to viewers: the `--ice-server URL`
//! form (RFC 7064 `stun:`/`stuns:`, RFC 7065 `turn:`/`turns:`, with TURN credentials
//! written as `turn:USER:PASS@HOST:PORT`) and the JSON the player page reads from
//! `/api/v1/p2p` into p2p-media-loader's `rtcConfig.iceServers`.
//!
//! The same URLs configure the native peer (`mediamesh peer --ice-server`):
//! [`IceServer::native`] turns one into the [`NativeIceServer`] that
//! [`crate::rtc::IceHub`] gathers server-reflexive and relayed candidates from (UDP
//! only: `stuns:`/`turns:` and `?transport=tcp` are refused there). Not a STUN or
//! TURN client itself. Static TURN credentials given here are sent to every viewer
//! that loads the page (that is how browsers get them); they are never logged.

use std::fmt;

use serde_json::{json, Value};

/// Longest URL accepted (with credentials).
const MAX_LEN: usize = 512;

/// One ICE server as `RTCIceServer` wants it.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, … (no credentials).
    pub url: String,
    pub username: Option<String>,
    pub credential: Option<String>,
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("credential", &self.credential.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Why an `--ice-server` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IceError {
    #[error("ICE server URL must start with stun:, stuns:, turn: or turns: (got {0:?})")]
    Scheme(String),
    #[error("ICE server URL {0:?} has no host")]
    NoHost(String),
    #[error("ICE server URL is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("ICE server URL {0:?} holds spaces, quotes or control characters")]
    BadChar(String),
    #[error("ICE server URL {0:?}: a port must be a number from 1 to 65535")]
    BadPort(String),
    #[error("ICE server URL {0:?}: only turn:/turns: take USER:PASS@ credentials")]
    CredentialsOnStun(String),
    #[error("ICE server URL {0:?}: credentials must be USER:PASS@")]
    BadCredentials(String),
    #[error("ICE server URL {0:?}: turn:/turns: need USER:PASS@ (browsers refuse TURN without credentials)")]
    TurnWithoutCredentials(String),
    #[error("ICE server URL {0:?}: native peers speak STUN/TURN over UDP only (not stuns:, turns: or ?transport=tcp)")]
    NativeUnsupported(String),
}

/// Default port of `stun:`/`turn:` (RFC 7064, RFC 7065).
pub const DEFAULT_PORT: u16 = 3478;

/// TURN long-term credentials of a [`NativeIceServer`] (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    pub username: String,
    pub credential: String,
}

impl fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// An ICE server as the native peer uses it: a UDP STUN server, or a UDP TURN
/// server (which answers Binding requests too) with its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeIceServer {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// `Some` for `turn:`.
    pub turn: Option<TurnCredentials>,
}

impl fmt::Display for NativeIceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.turn.is_some() { "turn" } else { "stun" };
        if self.host.contains(':') {
            write!(f, "{scheme}:[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}:{}:{}", self.host, self.port)
        }
    }
}

impl IceServer {
    /// Parses one operator-given URL.
    pub fn parse(s: &str) -> Result<IceServer, IceError> {
        let s = s.trim();
        if s.len() > MAX_LEN {
            return Err(IceError::TooLong);
        }
        if s.chars().any(|c| {
            c.is_control() || c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '\\' | ',')
        }) {
            return Err(IceError::BadChar(redact(s)));
        }
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(IceError::Scheme(s.to_string()));
        };
        let scheme = scheme.to_ascii_lowercase();
        let turn = match scheme.as_str() {
            "stun" | "stuns" => false,
            "turn" | "turns" => true,
            _ => return Err(IceError::Scheme(s.to_string())),
        };
        // Some write `stun://host`; RFC 7064 has no slashes.
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (creds, hostpart) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let (username, credential) = match creds {
            None if turn => return Err(IceError::TurnWithoutCredentials(s.to_string())),
            None => (None, None),
            Some(_) if !turn => return Err(IceError::CredentialsOnStun(redact(s))),
            Some(c) => match c.split_once(':') {
                Some((u, p)) if !u.is_empty() && !p.is_empty() => {
                    (Some(u.to_string()), Some(p.to_string()))
                }
                _ => return Err(IceError::BadCredentials(redact(s))),
            },
        };
        let (hostport, query) = match hostpart.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (hostpart, None),
        };
        if let Some(q) = query {
            if !turn || !matches!(q, "transport=udp" | "transport=tcp") {
                return Err(IceError::Scheme(redact(s)));
            }
        }
        let host = host_of(hostport).ok_or_else(|| IceError::NoHost(redact(s)))?;
        if host.len() < hostport.len() {
            let port = &hostport[host.len()..];
            let ok = port
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| p != 0);
            if !ok {
                return Err(IceError::BadPort(redact(s)));
            }
        }
        let url = match query {
            Some(q) => format!("{scheme}:{hostport}?{q}"),
            None => format!("{scheme}:{hostport}"),
        };
        Ok(IceServer {
            url,
            username,
            credential,
        })
    }

    /// The server as the native peer's STUN/TURN client uses it.
    pub fn native(&self) -> Result<NativeIceServer, IceError> {
        let (scheme, rest) = self
            .url
            .split_once(':')
            .ok_or_else(|| IceError::Scheme(self.url.clone()))?;
        let (hostport, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        let turn = match (scheme, query) {
            ("stun", None) => None,
            ("turn", None | Some("transport=udp")) => match (&self.username, &self.credential) {
                (Some(u), Some(c)) => Some(TurnCredentials {
                    username: u.clone(),
                    credential: c.clone(),
                }),
                _ => return Err(IceError::TurnWithoutCredentials(self.url.clone())),
            },
            _ => return Err(IceError::NativeUnsupported(self.url.clone())),
        };
        let host = host_of(hostport).ok_or_else(|| IceError::NoHost(self.url.clone()))?;
        let port = match &hostport[host.len()..] {
            "" => DEFAULT_PORT,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| IceError::BadPort(self.url.clone()))?,
        };
        Ok(NativeIceServer {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            turn,
        })
    }

    /// As an `RTCIceServer` dictionary.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "urls": self.url });
        if let (Some(u), Some(c)) = (&self.username, &self.credential) {
            v["username"] = json!(u);
            v["credential"] = json!(c);
        }
        v
    }
}

/// The host of `host[:port]` or `[v6][:port]`; `None` when empty or malformed.
fn host_of(hostport: &str) -> Option<&str> {
    let host = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        &hostport[..=end]
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    let inner = host.trim_start_matches('[').trim_end_matches(']');
    let ok = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    ok.then_some(host)
}

/// The URL with any credentials cut out (for error messages and logs).
fn redact(s: &str) -> String {
    match (s.split_once(':'), s.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}:…@{host}"),
        _ => s.to_string(),
    }
}

/// Parses every `--ice-server` value.
pub fn parse_all<'a>(urls: impl IntoIterator<Item = &'a str>) -> Result<Vec<IceServer>, IceError> {
    urls.into_iter().map(IceServer::parse).collect()
}

/// The document at `/api/v1/p2p` that the player page reads:
/// `{"ice_servers": [RTCIceServer, …]}`.
pub fn page_config(servers: &[IceServer]) -> Value {
    json!({ "ice_servers": servers.iter().map(IceServer::to_json).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_and_turn_urls_parse() {
        let s = IceServer::parse("stun:stun.example.org:3478").unwrap();
        assert_eq!(s.url, "stun:stun.example.org:3478");
        assert_eq!(s.username, None);
        assert_eq!(
            IceServer::parse("STUN://10.0.0.1").unwrap().url,
            "stun:10.0.0.1"
        );
        assert_eq!(
            IceServer::parse("stun:[::1]:3478").unwrap().url,
            "stun:[::1]:3478"
        );
        let t = IceServer::parse("turns:alice:s3cret@turn.example.org:5349?transport=tcp").unwrap();
        assert_eq!(t.url, "turns:turn.example.org:5349?transport=tcp");
        assert_eq!(t.username.as_deref(), Some("alice"));
        assert_eq!(t.credential.as_deref(), Some("s3cret"));
        assert_eq!(
            t.to_json(),
            json!({"urls": "turns:turn.example.org:5349?transport=tcp", "username": "alice", "credential": "s3cret"})
        );
        assert_eq!(
            page_config(&[s]),
            json!({"ice_servers": [{"urls": "stun:stun.example.org:3478"}]})
        );
    }

    #[test]
    fn hostile_or_wrong_urls_are_refused() {
        for bad in [
            "",
            "stun",
            "http://example.org",
            "stun:",
            "stun::3478",
            "stun:host:0",
            "stun:host:99999",
            "stun:host:x",
            "stun:a b",
            "stun:\"x\"",
            "stun:x\ny",
            "stun:a,b",
            "stun:user:pw@host",
            "turn:@host",
            "turn:user@host",
            "turn:u:p@host?transport=quic",
            "turn:turn.example.org",
            "stun:host?transport=udp",
            "turn:[::1",
            "turn:h/st",
        ] {
            assert!(IceServer::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            IceServer::parse(&format!("stun:{}", "a".repeat(600))),
            Err(IceError::TooLong)
        );
    }

    #[test]
    fn native_servers_are_udp_stun_and_turn() {
        let s = IceServer::parse("stun:10.0.0.1").unwrap().native().unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.turn.is_none()),
            ("10.0.0.1", 3478, true)
        );
        let t = IceServer::parse("turn:u:p@turn.example.org:3479?transport=udp")
            .unwrap()
            .native()
            .unwrap();
        assert_eq!(t.host, "turn.example.org");
        assert_eq!(t.port, 3479);
        assert_eq!(t.turn.as_ref().map(|c| c.credential.as_str()), Some("p"));
        assert!(!format!("{t:?}").contains("\"p\""));
        assert_eq!(t.to_string(), "turn:turn.example.org:3479");
        let v6 = IceServer::parse("stun:[::1]:5000")
            .unwrap()
            .native()
            .unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5000));
        for refused in [
            "stuns:stun.example.org",
            "turns:u:p@turn.example.org",
            "turn:u:p@turn.example.org?transport=tcp",
        ] {
            let e = IceServer::parse(refused).unwrap().native().unwrap_err();
            assert!(
                matches!(e, IceError::NativeUnsupported(_)),
                "{refused}: {e}"
            );
        }
    }

    #[test]
    fn credentials_stay_out_of_debug_and_errors() {
        let t = IceServer::parse("turn:bob:hunter2@turn.example.org").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
        let e = IceServer::parse("stun:bob:hunter2@host").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = IceServer::parse("turn:bob:hunter2@host:0").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
