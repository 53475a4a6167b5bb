//! The relay address: one string that names a host and pins its TLS certificate.
//!
//! Form: `bcr://HOST:PORT#FINGERPRINT`, where FINGERPRINT is the unpadded base64url SHA-256 of
//! the relay certificate's DER bytes. IPv6 hosts go in brackets: `bcr://[::1]:4443#…`.
//! Pinning the fingerprint means no certificate authority is needed or trusted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const SCHEME: &str = "bcr://";

/// Where a relay listens and which certificate it must present.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelayAddress {
    pub host: String,
    pub port: u16,
    pub fingerprint: [u8; 32],
}

/// Why a relay address could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    #[error("a relay address starts with `bcr://` (got {0:?})")]
    Scheme(String),
    #[error("the relay address has no `#fingerprint` part; copy the whole line the relay printed")]
    MissingFingerprint,
    #[error("the relay address's fingerprint is not 43 base64url characters")]
    BadFingerprint,
    #[error("the relay address needs HOST:PORT before the `#`")]
    BadHostPort,
}

impl RelayAddress {
    /// The address of a relay at `host:port` whose certificate is `cert_der`.
    pub fn for_certificate(host: impl Into<String>, port: u16, cert_der: &[u8]) -> Self {
        Self { host: host.into(), port, fingerprint: Sha256::digest(cert_der).into() }
    }

    /// True when `cert_der` is the certificate this address pins.
    pub fn pins(&self, cert_der: &[u8]) -> bool {
        let seen: [u8; 32] = Sha256::digest(cert_der).into();
        seen == self.fingerprint
    }

    /// `host:port`, for connecting a socket.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for RelayAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{SCHEME}{}#{}", self.authority(), URL_SAFE_NO_PAD.encode(self.fingerprint))
    }
}

impl std::fmt::Debug for RelayAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RelayAddress({self})")
    }
}

impl serde::Serialize for RelayAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for RelayAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for RelayAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let rest =
            text.strip_prefix(SCHEME).ok_or_else(|| AddressError::Scheme(text.chars().take(16).collect()))?;
        let (authority, fpr) = rest.split_once('#').ok_or(AddressError::MissingFingerprint)?;
        let fingerprint = decode_fingerprint(fpr)?;
        let (host, port) = split_authority(authority)?;
        Ok(Self { host, port, fingerprint })
    }
}

fn decode_fingerprint(text: &str) -> Result<[u8; 32], AddressError> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| AddressError::BadFingerprint)?;
    bytes.try_into().map_err(|_| AddressError::BadFingerprint)
}

fn split_authority(authority: &str) -> Result<(String, u16), AddressError> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']').ok_or(AddressError::BadHostPort)?;
        (host, rest.strip_prefix(':').ok_or(AddressError::BadHostPort)?)
    } else {
        authority.rsplit_once(':').ok_or(AddressError::BadHostPort)?
    };
    let port = port.parse::<u16>().map_err(|_| AddressError::BadHostPort)?;
    let host_ok = !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    if !host_ok || port == 0 {
        return Err(AddressError::BadHostPort);
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_v4_and_v6() {
        for host in ["127.0.0.1", "::1", "relay.example.org"] {
            let a = RelayAddress::for_certificate(host, 4443, b"cert");
            let back: RelayAddress = a.to_string().parse().unwrap();
            assert_eq!(a, back);
            assert!(back.pins(b"cert"));
            assert!(!back.pins(b"other cert"));
        }
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!("http://x:1#a".parse::<RelayAddress>(), Err(AddressError::Scheme(_))));
        assert_eq!("bcr://x:1".parse::<RelayAddress>(), Err(AddressError::MissingFingerprint));
        assert_eq!("bcr://x:1#abc".parse::<RelayAddress>(), Err(AddressError::BadFingerprint));
        let fpr = URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert_eq!(format!("bcr://x#{fpr}").parse::<RelayAddress>(), Err(AddressError::BadHostPort));
        assert_eq!(format!("bcr://x:0#{fpr}").parse::<RelayAddress>(), Err(AddressError::BadHostPort));
        assert_eq!(format!("bcr://a b:9#{fpr}").parse::<RelayAddress>(), Err(AddressError::BadHostPort));
    }

    proptest! {
        #[test]
        fn never_panics(text in ".{0,80}") {
            let _ = text.parse::<RelayAddress>();
        }
    }
}
