//! The relay's TLS identity: a self-signed certificate made once and kept, because clients pin
//! its fingerprint (the `#…` part of the relay address) instead of trusting any authority.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::RelayError;
use crate::error::io_reason;

const CERT_FILE: &str = "cert.der";
const KEY_FILE: &str = "key.der";

/// Loads `cert.der` and `key.der` from `data_dir`, or makes and saves a new self-signed pair
/// for `names` (host names or IPs). Returns the TLS server configuration and the certificate
/// (whose SHA-256 is the fingerprint clients pin).
pub fn load_or_create_tls(
    data_dir: &Path,
    names: &[String],
) -> Result<(Arc<ServerConfig>, Vec<u8>), RelayError> {
    let fail = |reason: String| RelayError::Tls { dir: data_dir.to_owned(), reason };
    let (cert_path, key_path) = (data_dir.join(CERT_FILE), data_dir.join(KEY_FILE));
    let (cert, key) = match (cert_path.exists(), key_path.exists()) {
        (true, true) => (read(&cert_path).map_err(fail)?, read(&key_path).map_err(fail)?),
        (false, false) => create(&cert_path, &key_path, names).map_err(fail)?,
        _ => {
            return Err(fail(format!(
                "found only one of {CERT_FILE} and {KEY_FILE}; restore the other, or delete both to make a new \
                 certificate (clients holding the old relay address will then refuse this relay)"
            )));
        }
    };
    let config = server_config(cert.clone(), key).map_err(fail)?;
    Ok((config, cert))
}

/// Loads the pair at `cert_path` and `key_path` (both must exist): what the nodes of one host
/// share.
pub(crate) fn load_pair(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Arc<ServerConfig>, Vec<u8>), RelayError> {
    let fail =
        |reason: String| RelayError::Tls { dir: cert_path.parent().unwrap_or(cert_path).to_owned(), reason };
    let (cert, key) = (read(cert_path).map_err(fail)?, read(key_path).map_err(fail)?);
    let config = server_config(cert.clone(), key).map_err(fail)?;
    Ok((config, cert))
}

/// The next certificate: read if both files exist, made (for `names`) if neither does.
pub(crate) fn load_or_create_next(
    cert_path: &Path,
    key_path: &Path,
    names: &[String],
) -> Result<Vec<u8>, RelayError> {
    let fail =
        |reason: String| RelayError::Tls { dir: cert_path.parent().unwrap_or(cert_path).to_owned(), reason };
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let (cert, key) = (read(cert_path).map_err(fail)?, read(key_path).map_err(fail)?);
            server_config(cert.clone(), key).map_err(fail)?;
            Ok(cert)
        }
        (false, false) => Ok(create(cert_path, key_path, names).map_err(fail)?.0),
        _ => Err(fail(format!(
            "found only one of {} and {}: keep both, or delete both to make a new next certificate",
            cert_path.display(),
            key_path.display()
        ))),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("cannot read {}: {}", path.display(), io_reason(&e)))
}

fn create(cert_path: &Path, key_path: &Path, names: &[String]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| format!("cannot make a certificate for {names:?}: {e}"))?;
    let cert = made.cert.der().to_vec();
    let key = made.signing_key.serialize_der();
    write_new(key_path, &key, 0o600)?;
    write_new(cert_path, &cert, 0o644)?;
    Ok((cert, key))
}

/// Writes a file that must not exist yet, readable as `mode`, and syncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {}", path.display(), io_reason(&e));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// TLS 1.3 only, with ring: every client of ours speaks it, and it leaves less to configure.
fn server_config(cert: Vec<u8>, key: Vec<u8>) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert)], key)
        .map_err(|e| format!("the saved key does not fit the certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Clients pin the certificate and never resume: tickets would only cost each connection.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let (_, first) = load_or_create_tls(dir.path(), &names).unwrap();
        let (_, again) = load_or_create_tls(dir.path(), &names).unwrap();
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_next_pair_is_made_once_and_differs() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned()];
        let (_, now) = load_or_create_tls(dir.path(), &names).unwrap();
        let (c, k) = (dir.path().join("next-cert.der"), dir.path().join("next-key.der"));
        let next = load_or_create_next(&c, &k, &names).unwrap();
        assert_ne!(now, next);
        assert_eq!(load_or_create_next(&c, &k, &names).unwrap(), next);
        let (_, loaded) = load_pair(&c, &k).unwrap();
        assert_eq!(loaded, next);
        assert!(load_pair(&dir.path().join("nope.der"), &k).is_err());
    }

    #[test]
    fn half_a_pair_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create_tls(dir.path(), &["localhost".to_owned()]).unwrap();
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let err = load_or_create_tls(dir.path(), &["localhost".to_owned()]).unwrap_err().to_string();
        assert!(err.contains("found only one of cert.der and key.der"), "{err}");
    }
}
