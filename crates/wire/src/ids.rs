//! Queue ids and capability secrets.
//!
//! A queue has two ids (receive and send) and two secrets. The client makes the secrets and
//! gives the relay only their SHA-256 hashes, so a leaked relay database grants nothing.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::DecodeError;

/// A random 16-byte queue id, shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub [u8; 16]);

impl QueueId {
    /// A fresh random id. Randomness failure is unrecoverable on any real platform.
    pub fn random() -> Self {
        let mut id = [0u8; 16];
        fill_random(&mut id);
        Self(id)
    }

    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    pub fn from_hex(text: &str) -> Result<Self, DecodeError> {
        Ok(Self(hex_decode(text, "queue id")?))
    }
}

impl std::fmt::Debug for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueueId({})", self.to_hex())
    }
}

impl std::fmt::Display for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for QueueId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for QueueId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// A 32-byte bearer capability for one side of one queue. Never printed, zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct QueueSecret(pub [u8; 32]);

impl QueueSecret {
    pub fn random() -> Self {
        let mut s = [0u8; 32];
        fill_random(&mut s);
        Self(s)
    }

    /// What the relay stores and compares against.
    pub fn hash(&self) -> SecretHash {
        SecretHash(Sha256::digest(self.0).into())
    }

    /// The form carried in an `Authorization: Bearer` header or a WebSocket subscribe: hex
    /// text that is itself a secret (zeroed on drop, `Debug` redacted).
    pub fn to_hex(&self) -> SecretHex {
        SecretHex(hex_encode(&self.0))
    }

    pub fn from_hex(text: &str) -> Result<Self, DecodeError> {
        Ok(Self(hex_decode(text, "queue secret")?))
    }
}

impl std::fmt::Debug for QueueSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueSecret(<redacted>)")
    }
}

/// Serialized as hex: it appears only in the client's encrypted store and in WebSocket
/// subscribe messages, which travel inside TLS.
impl Serialize for QueueSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// The hex text of a [`QueueSecret`]: as much a capability as the bytes. Zeroed on drop;
/// `Debug` prints nothing; `Display` and `Deref<Target = str>` give the hex for the one place
/// it must go (a header, a subscribe message).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretHex(String);

impl SecretHex {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Any text, as a peer may send it (the relay checks it with [`QueueSecret::from_hex`]).
impl From<String> for SecretHex {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for SecretHex {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl std::ops::Deref for SecretHex {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SecretHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for SecretHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHex(<redacted>)")
    }
}

impl Serialize for SecretHex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretHex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(String::deserialize(d)?))
    }
}

impl<'de> Deserialize<'de> for QueueSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = zeroize::Zeroizing::new(String::deserialize(d)?);
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// SHA-256 of a [`QueueSecret`]; compared in constant time.
#[derive(Clone, Copy, Eq)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    pub fn from_hex(text: &str) -> Result<Self, DecodeError> {
        Ok(Self(hex_decode(text, "secret hash")?))
    }

    /// True when `secret` is the capability this hash was made from.
    pub fn admits(&self, secret: &QueueSecret) -> bool {
        *self == secret.hash()
    }
}

impl PartialEq for SecretHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretHash({})", self.to_hex())
    }
}

impl Serialize for SecretHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for SecretHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Fills `buf` from the operating system's generator. Without one there is no safe way to go
/// on, so this is the single place the crate may abort.
#[allow(clippy::panic, reason = "no OS randomness means no safe way to continue")]
pub(crate) fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        panic!("the operating system's random number generator failed");
    }
}

/// Lower-case hex of any bytes (ids, public keys); the form every text output uses.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

pub(crate) fn hex_decode<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], DecodeError> {
    let text = text.as_bytes();
    if text.len() != N * 2 {
        return Err(DecodeError::Invalid(what));
    }
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0]).ok_or(DecodeError::Invalid(what))?;
        let lo = hex_digit(pair[1]).ok_or(DecodeError::Invalid(what))?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_prints_no_bytes() {
        let s = QueueSecret([0xab; 32]);
        let shown = format!("{s:?}");
        assert!(!shown.contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    /// L10: the hex form of a secret is a secret type too; its Debug (and so the Debug of a
    /// WebSocket subscribe message that carries it) prints none of it.
    #[test]
    fn secret_hex_debug_is_redacted() {
        let hex = QueueSecret([0xab; 32]).to_hex();
        assert_eq!(format!("{hex:?}"), "SecretHex(<redacted>)");
        assert_eq!(hex.as_str(), "ab".repeat(32));
        let subscribe = crate::WsClientMessage::Subscribe { recv_id: QueueId([1; 16]), secret: hex.clone() };
        assert!(!format!("{subscribe:?}").contains("abab"), "{subscribe:?}");
        let json = serde_json::to_string(&subscribe).unwrap();
        assert!(json.contains(&"ab".repeat(32)), "the wire form is unchanged: {json}");
        assert_eq!(serde_json::from_str::<crate::WsClientMessage>(&json).unwrap(), subscribe);
    }

    #[test]
    fn hash_admits_only_its_secret() {
        let s = QueueSecret::random();
        let h = s.hash();
        assert!(h.admits(&s));
        assert!(!h.admits(&QueueSecret::random()));
    }

    #[test]
    fn hex_round_trip_and_rejects_junk() {
        let id = QueueId::random();
        assert_eq!(QueueId::from_hex(&id.to_hex()), Ok(id));
        assert!(QueueId::from_hex("zz").is_err());
        assert!(QueueId::from_hex(&"g".repeat(32)).is_err());
    }
}
