//! The relay address: one string that names a host's relay nodes and pins its TLS certificate.
//!
//! Form: `bcr://HOST:PORT[,HOST:PORT…]#FINGERPRINT[,FINGERPRINT]`. Each FINGERPRINT is the
//! unpadded base64url SHA-256 of a certificate's DER bytes; IPv6 hosts go in brackets:
//! `bcr://[::1]:4443#…`. Pinning the fingerprint means no certificate authority is needed or
//! trusted.
//!
//! Several nodes: the nodes of one host share its certificate and one store; a client tries
//! them in turn and moves on when one is down. Two fingerprints: the certificate served now
//! and the one the host will rotate to, so the address outlives one rotation (see
//! docs/operations.md).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const SCHEME: &str = "bcr://";
/// Most nodes one address may list.
pub const MAX_NODES: usize = 8;
/// Most certificates one address may pin: the current one and the next.
pub const MAX_FINGERPRINTS: usize = 2;

/// One relay node: where to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelayNode {
    pub host: String,
    pub port: u16,
}

impl RelayNode {
    /// `host:port`, for connecting a socket (IPv6 literals in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for RelayNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.authority())
    }
}

impl std::str::FromStr for RelayNode {
    type Err = AddressError;

    /// `HOST:PORT` or `[IPv6]:PORT`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        split_authority(text.trim())
    }
}

/// Where a host's relay nodes listen and which certificates they may present. Always at least
/// one node and one fingerprint, at most [`MAX_NODES`] and [`MAX_FINGERPRINTS`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelayAddress {
    nodes: Vec<RelayNode>,
    fingerprints: Vec<[u8; 32]>,
}

/// Why a relay address could not be read or built.
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
    #[error("a relay address lists 1 to {MAX_NODES} nodes and 1 to {MAX_FINGERPRINTS} fingerprints")]
    TooMany,
}

impl RelayAddress {
    /// The address of one relay at `host:port` whose certificate is `cert_der`.
    pub fn for_certificate(host: impl Into<String>, port: u16, cert_der: &[u8]) -> Self {
        let node = RelayNode { host: host.into(), port };
        Self { nodes: vec![node], fingerprints: vec![Sha256::digest(cert_der).into()] }
    }

    /// The same certificates, served by `nodes` (in the order clients should try them).
    pub fn with_nodes(&self, nodes: Vec<RelayNode>) -> Result<Self, AddressError> {
        if nodes.is_empty() || nodes.len() > MAX_NODES {
            return Err(AddressError::TooMany);
        }
        Ok(Self { nodes, fingerprints: self.fingerprints.clone() })
    }

    /// Also pins `next_cert_der`, the certificate the host will rotate to.
    pub fn with_next_certificate(&self, next_cert_der: &[u8]) -> Self {
        let next: [u8; 32] = Sha256::digest(next_cert_der).into();
        let mut fingerprints = vec![self.fingerprints[0]];
        if next != fingerprints[0] {
            fingerprints.push(next);
        }
        Self { nodes: self.nodes.clone(), fingerprints }
    }

    /// The nodes, in the order clients try them first.
    pub fn nodes(&self) -> &[RelayNode] {
        &self.nodes
    }

    /// The first node.
    pub fn node(&self) -> &RelayNode {
        &self.nodes[0]
    }

    /// The pinned certificate fingerprints (SHA-256 of the DER bytes).
    pub fn fingerprints(&self) -> &[[u8; 32]] {
        &self.fingerprints
    }

    /// True when `cert_der` is a certificate this address pins.
    pub fn pins(&self, cert_der: &[u8]) -> bool {
        let seen: [u8; 32] = Sha256::digest(cert_der).into();
        self.fingerprints.contains(&seen)
    }

    /// The first node's `host:port`, for connecting a socket.
    pub fn authority(&self) -> String {
        self.node().authority()
    }
}

impl std::fmt::Display for RelayAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(SCHEME)?;
        for (i, node) in self.nodes.iter().enumerate() {
            write!(f, "{}{}", if i == 0 { "" } else { "," }, node.authority())?;
        }
        for (i, fpr) in self.fingerprints.iter().enumerate() {
            write!(f, "{}{}", if i == 0 { "#" } else { "," }, URL_SAFE_NO_PAD.encode(fpr))?;
        }
        Ok(())
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
        let (authorities, fprs) = rest.split_once('#').ok_or(AddressError::MissingFingerprint)?;
        let fingerprints = fprs.split(',').map(decode_fingerprint).collect::<Result<Vec<_>, _>>()?;
        let nodes = authorities.split(',').map(split_authority).collect::<Result<Vec<_>, _>>()?;
        if nodes.len() > MAX_NODES || fingerprints.len() > MAX_FINGERPRINTS {
            return Err(AddressError::TooMany);
        }
        Ok(Self { nodes, fingerprints })
    }
}

fn decode_fingerprint(text: &str) -> Result<[u8; 32], AddressError> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| AddressError::BadFingerprint)?;
    bytes.try_into().map_err(|_| AddressError::BadFingerprint)
}

fn split_authority(authority: &str) -> Result<RelayNode, AddressError> {
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
    Ok(RelayNode { host: host.to_owned(), port })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
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
    fn a_single_node_address_reads_as_before() {
        let fpr = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let a: RelayAddress = format!("bcr://relay.example.org:4443#{fpr}").parse().unwrap();
        assert_eq!(a.nodes(), &[RelayNode { host: "relay.example.org".into(), port: 4443 }]);
        assert_eq!(a.fingerprints(), &[[7u8; 32]]);
        assert_eq!(a.to_string(), format!("bcr://relay.example.org:4443#{fpr}"));
        assert_eq!(a.authority(), "relay.example.org:4443");
    }

    #[test]
    fn several_nodes_and_a_next_certificate() {
        let one = RelayAddress::for_certificate("a.example", 1, b"now");
        let nodes =
            vec!["a.example:1".parse().unwrap(), "[::1]:2".parse().unwrap(), "10.0.0.3:3".parse().unwrap()];
        let many = one.with_nodes(nodes).unwrap().with_next_certificate(b"next");
        let text = many.to_string();
        assert!(text.starts_with("bcr://a.example:1,[::1]:2,10.0.0.3:3#"), "{text}");
        assert_eq!(text.matches(',').count(), 3, "{text}");
        let back: RelayAddress = text.parse().unwrap();
        assert_eq!(back, many);
        assert_eq!(back.nodes().len(), 3);
        assert_eq!(back.nodes()[1].host, "::1");
        assert!(back.pins(b"now") && back.pins(b"next") && !back.pins(b"other"));
        // The same certificate as next adds nothing.
        assert_eq!(one.with_next_certificate(b"now").fingerprints().len(), 1);
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
        assert_eq!(format!("bcr://x:1,#{fpr}").parse::<RelayAddress>(), Err(AddressError::BadHostPort));
        assert_eq!(format!("bcr://x:1#{fpr},").parse::<RelayAddress>(), Err(AddressError::BadFingerprint));
        let three = format!("bcr://x:1#{fpr},{fpr},{fpr}");
        assert_eq!(three.parse::<RelayAddress>(), Err(AddressError::TooMany));
        let nine = (1..=9).map(|p| format!("x:{p}")).collect::<Vec<_>>().join(",");
        assert_eq!(format!("bcr://{nine}#{fpr}").parse::<RelayAddress>(), Err(AddressError::TooMany));
        let one = RelayAddress::for_certificate("x", 1, b"c");
        assert_eq!(one.with_nodes(Vec::new()), Err(AddressError::TooMany));
    }

    proptest! {
        #[test]
        fn never_panics(text in ".{0,80}") {
            let _ = text.parse::<RelayAddress>();
        }

        #[test]
        fn lists_round_trip(ports in proptest::collection::vec(1u16.., 1..=MAX_NODES), two in any::<bool>()) {
            let nodes = ports.iter().map(|p| RelayNode { host: "h.example".into(), port: *p }).collect();
            let mut a = RelayAddress::for_certificate("x", 1, b"c").with_nodes(nodes).unwrap();
            if two {
                a = a.with_next_certificate(b"d");
            }
            prop_assert_eq!(a.to_string().parse::<RelayAddress>().unwrap(), a);
        }
    }
}
