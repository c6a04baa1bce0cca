//! Loading a PEM certificate chain and private key into a rustls server config that
//! offers HTTP/2 and HTTP/1.1 by ALPN, with session resumption (stateless tickets
//! for TLS 1.3 and 1.2, plus a server-side session cache) and the server's cipher
//! order: AES-128-GCM first (the cheapest with AES instructions, which every current
//! server and phone CPU has), then AES-256-GCM, then ChaCha20-Poly1305.
//!
//! Not here: accepting connections (`serve`), client certificates.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::server::ServerSessionMemoryCache;
use tokio_rustls::rustls::{self, CipherSuite, ServerConfig, SupportedCipherSuite};

/// Sessions the server-side cache holds (TLS 1.2 session ids, and TLS 1.3 clients that
/// do not take tickets); the rest resume by ticket, which costs the server no memory.
const SESSION_CACHE: usize = 16 * 1024;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} holds no PEM certificate")]
    NoCert(String),
    #[error("{0} holds no PEM private key")]
    NoKey(String),
    #[error("certificate and key do not form a valid TLS config: {0}")]
    Config(#[from] rustls::Error),
}

/// Rank of a suite in the server's order (lower first): TLS 1.3 before 1.2, and within
/// a version AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305.
fn preference(s: &SupportedCipherSuite) -> (u8, u8) {
    let version = match s {
        SupportedCipherSuite::Tls13(_) => 0,
        _ => 1,
    };
    let cipher = match s.suite() {
        CipherSuite::TLS13_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        CipherSuite::TLS13_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
        _ => 2,
    };
    (version, cipher)
}

/// The suites of the crypto provider in the server's order.
fn ordered_suites(mut suites: Vec<SupportedCipherSuite>) -> Vec<SupportedCipherSuite> {
    suites.sort_by_key(preference);
    suites
}

/// A TLS acceptor config from PEM files.
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCert(cert.display().to_string()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::NoKey(key.display().to_string()))?;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = ordered_suites(provider.cipher_suites);
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's order, not the client's (OpenSSL clients list AES-256 first).
    config.ignore_client_order = true;
    // Resumption: rustls's defaults keep 256 sessions and issue no tickets.
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_comes_first_and_tls13_before_tls12() {
        let suites = ordered_suites(rustls::crypto::ring::default_provider().cipher_suites);
        let ids: Vec<CipherSuite> = suites.iter().map(SupportedCipherSuite::suite).collect();
        assert_eq!(
            ids[..3],
            [
                CipherSuite::TLS13_AES_128_GCM_SHA256,
                CipherSuite::TLS13_AES_256_GCM_SHA384,
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            ]
        );
        assert!(suites[3..]
            .iter()
            .all(|s| matches!(s, SupportedCipherSuite::Tls12(_))));
        assert!(matches!(
            ids[3],
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        ));
    }
}
