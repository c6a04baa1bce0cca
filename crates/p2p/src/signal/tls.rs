//! TLS for `wss://` trackers: a rustls client configuration that trusts the system's
//! root certificates (rustls-native-certs) plus, optionally, the CA certificates of a
//! PEM file (`--tracker-ca`, for private CAs and tests).
//!
//! Not the WebSocket (see `client`) and not server-side TLS (the tracker's
//! `--tls-cert/--tls-key` go through `service::load_tls`).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// Why the trust store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("CA file {path} holds no PEM certificate (want -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: String },
    #[error("CA file {path}: certificate {index} is not usable: {reason}")]
    BadCertificate {
        path: String,
        index: usize,
        reason: String,
    },
    #[error("TLS set-up failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The system's roots, read once per process (unusable ones are skipped and logged).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in found.errors.iter().take(3) {
            tracing::info!(error = %e, "some system root certificates could not be read");
        }
        if found.certs.is_empty() {
            tracing::warn!("no system root certificates found: wss:// trackers need --tracker-ca");
        }
        found.certs
    })
}

/// Reads every certificate of a PEM file.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (index, c) in rustls_pemfile::certs(&mut pem.as_slice()).enumerate() {
        out.push(c.map_err(|e| TlsError::BadCertificate {
            path: shown.clone(),
            index,
            reason: e.to_string(),
        })?);
    }
    if out.is_empty() {
        return Err(TlsError::NoCertificate { path: shown });
    }
    Ok(out)
}

/// A client configuration for `wss://` trackers: system roots, plus the CAs of
/// `extra_ca` when given (an unusable certificate there is an error, not skipped).
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let (_added, _skipped) = roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = extra_ca {
        for (index, c) in read_ca_file(path)?.into_iter().enumerate() {
            roots.add(c).map_err(|e| TlsError::BadCertificate {
                path: path.display().to_string(),
                index,
                reason: e.to_string(),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The configuration used for `wss://` when none was given: system roots only, made
/// once per process.
pub fn default_config() -> Option<Arc<ClientConfig>> {
    static DEFAULT: OnceLock<Option<Arc<ClientConfig>>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| match client_config(None) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "no TLS for wss:// trackers");
                None
            }
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `body` to `name` in `dir` (a temporary folder removed when dropped).
    fn temp(dir: &tempfile::TempDir, name: &str, body: &[u8]) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn a_private_ca_file_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["test-ca".into()]).unwrap();
        let p = temp(&dir, "ca.pem", ca.cert.pem().as_bytes());
        assert!(client_config(Some(&p)).is_ok());
        // Without the file: system roots only, still a valid configuration.
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn missing_empty_or_broken_ca_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("does-not-exist.pem");
        assert!(matches!(
            client_config(Some(&missing)),
            Err(TlsError::Read { .. })
        ));
        let empty = temp(&dir, "empty.pem", b"not a certificate\n");
        assert!(matches!(
            client_config(Some(&empty)),
            Err(TlsError::NoCertificate { .. })
        ));
        let junk = temp(
            &dir,
            "junk.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        assert!(matches!(
            client_config(Some(&junk)),
            Err(TlsError::BadCertificate { .. })
        ));
    }
}
