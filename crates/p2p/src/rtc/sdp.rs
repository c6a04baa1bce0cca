//! Checks and cleans SDP that arrives from the network before str0m sees it.
//!
//! Not an SDP parser (str0m parses); this only enforces a size limit and removes
//! candidate lines str0m cannot use: mDNS `.local` host names (browsers hide their
//! LAN address behind them), TCP candidates and malformed candidate lines.

/// Larger remote SDP is refused (a data-channel-only SDP with a dozen candidates is
/// about 1–2 KiB).
pub const MAX_SDP_LEN: usize = 16 * 1024;

/// Why a remote SDP was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpReject {
    #[error("sdp too large ({0} bytes)")]
    TooLarge(usize),
    #[error("sdp has no data channel section")]
    NoApplication,
}

/// What [`sanitize_remote`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub mdns: usize,
    pub other: usize,
}

/// Returns the SDP with unusable candidate lines removed, normalised to CRLF.
pub fn sanitize_remote(sdp: &str) -> Result<(String, Dropped), SdpReject> {
    if sdp.len() > MAX_SDP_LEN {
        return Err(SdpReject::TooLarge(sdp.len()));
    }
    if !sdp.contains("m=application") {
        return Err(SdpReject::NoApplication);
    }
    let mut out = String::with_capacity(sdp.len() + 64);
    let mut dropped = Dropped::default();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if let Some(cand) = line.strip_prefix("a=candidate:") {
            match classify(cand) {
                Cand::Keep => {}
                Cand::Mdns => {
                    dropped.mdns += 1;
                    continue;
                }
                Cand::Other => {
                    dropped.other += 1;
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    Ok((out, dropped))
}

enum Cand {
    Keep,
    Mdns,
    Other,
}

/// `foundation component transport priority address port typ kind ...`
fn classify(cand: &str) -> Cand {
    let f: Vec<&str> = cand.split_ascii_whitespace().collect();
    let (Some(proto), Some(addr), Some(port), Some(typ)) = (f.get(2), f.get(4), f.get(5), f.get(6))
    else {
        return Cand::Other;
    };
    if !proto.eq_ignore_ascii_case("udp") || *typ != "typ" || port.parse::<u16>().is_err() {
        return Cand::Other;
    }
    if addr.ends_with(".local") {
        return Cand::Mdns;
    }
    if addr.parse::<std::net::IpAddr>().is_err() {
        return Cand::Other;
    }
    Cand::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
a=candidate:1 1 udp 2113937151 0a1b2c3d-1111-2222-3333-444455556666.local 50000 typ host generation 0\r\n\
a=candidate:2 1 udp 2113937151 192.168.1.2 50001 typ host generation 0\r\n\
a=candidate:3 1 tcp 1518280447 192.168.1.2 9 typ host tcptype active\r\n\
a=candidate:garbage\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=sctp-port:5000\r\n";

    #[test]
    fn drops_mdns_tcp_and_garbage_candidates() {
        let (out, d) = sanitize_remote(CHROME).expect("ok");
        assert_eq!(d, Dropped { mdns: 1, other: 2 });
        assert!(out.contains("192.168.1.2 50001"));
        assert!(!out.contains(".local"));
        assert!(!out.contains("tcp"));
        assert!(out.ends_with("a=sctp-port:5000\r\n"));
    }

    #[test]
    fn refuses_huge_and_non_datachannel_sdp() {
        let big = format!("{CHROME}{}", "a=x\r\n".repeat(MAX_SDP_LEN));
        assert!(matches!(sanitize_remote(&big), Err(SdpReject::TooLarge(_))));
        assert_eq!(sanitize_remote("v=0\r\n"), Err(SdpReject::NoApplication));
    }

    #[test]
    fn lf_only_input_becomes_crlf() {
        let (out, _) = sanitize_remote(&CHROME.replace("\r\n", "\n")).expect("ok");
        assert!(out.lines().all(|l| !l.is_empty()));
        assert_eq!(out.matches("\r\n").count(), out.lines().count());
    }
}
