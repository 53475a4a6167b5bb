//! Thin wrappers over the RustCrypto primitives this crate uses, so each call site names its
//! purpose (a domain-separation label) instead of repeating cipher plumbing.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A 32-byte symmetric key. Zeroed on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecretKey(pub [u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        random_bytes(&mut k);
        Self(k)
    }
}

/// Fills `buf` from the operating system. Without randomness no key is safe, so this is
/// the one place the crate may abort.
#[allow(clippy::panic, reason = "no OS randomness means no safe way to continue")]
pub fn random_bytes(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        panic!("the operating system's random number generator failed");
    }
}

pub fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    random_bytes(&mut out);
    out
}

/// XChaCha20-Poly1305 with a random 24-byte nonce prepended: `nonce | ciphertext | tag`.
pub fn seal_random_nonce(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce: [u8; 24] = random_array();
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    let mut out = nonce.to_vec();
    // Encryption with a valid key and in-memory buffers cannot fail.
    if let Ok(ct) = cipher.encrypt(&nonce.into(), Payload { msg: plaintext, aad }) {
        out.extend_from_slice(&ct);
    }
    out
}

/// Opens what [`seal_random_nonce`] made; `None` on any tampering or wrong key.
pub fn open_random_nonce(key: &SecretKey, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 24 + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().ok()?;
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    cipher.decrypt(&nonce.into(), Payload { msg: ct, aad }).ok()
}

/// [`seal_random_nonce`] without copying: seals `buf` in place and frames it as
/// `nonce[24] | ciphertext | tag[16]` (the block layer seals every block this way).
pub fn seal_random_nonce_in_place(key: &SecretKey, aad: &[u8], mut buf: Vec<u8>) -> Vec<u8> {
    use chacha20poly1305::aead::AeadInOut;
    let nonce: [u8; 24] = random_array();
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    // Encryption with a valid key and an in-memory buffer cannot fail.
    let Ok(tag) = cipher.encrypt_inout_detached(&nonce.into(), aad, buf.as_mut_slice().into()) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(24 + buf.len() + 16);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    out.extend_from_slice(&tag);
    out
}

/// ChaCha20-Poly1305 under a key used for exactly one message, hence the fixed nonce.
pub fn seal_once(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(&key.0.into());
    cipher.encrypt(&[0u8; 12].into(), Payload { msg: plaintext, aad }).unwrap_or_default()
}

pub fn open_once(key: &SecretKey, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let cipher = ChaCha20Poly1305::new(&key.0.into());
    cipher.decrypt(&[0u8; 12].into(), Payload { msg: sealed, aad }).ok()
}

/// HKDF-SHA-256 expanding `ikm` into `N` bytes for the labelled purpose.
pub fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    // N is at most 255 * 32 for every caller, so expansion cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut out);
    out
}

/// HMAC-SHA-256, the step function of the post-quantum symmetric chain.
pub fn hmac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let Ok(mut mac) = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key) else {
        return [0u8; 32]; // unreachable: HMAC takes keys of any length
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA-256 whose output is a key (a chain step): it goes straight into a [`SecretKey`],
/// and the MAC state's copy is zeroed, so no copy of the key outlives its use.
pub fn hmac_key(key: &SecretKey, data: &[u8]) -> SecretKey {
    let Ok(mut mac) = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&key.0) else {
        return SecretKey([0u8; 32]); // unreachable: HMAC takes keys of any length
    };
    mac.update(data);
    let mut out = mac.finalize().into_bytes();
    let mut key = SecretKey([0u8; 32]);
    key.0.copy_from_slice(&out);
    out.as_mut_slice().zeroize();
    key
}

pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_key_and_aad() {
        let k = SecretKey::random();
        let sealed = seal_random_nonce(&k, b"ad", b"hello");
        assert_eq!(open_random_nonce(&k, b"ad", &sealed).as_deref(), Some(&b"hello"[..]));
        assert!(open_random_nonce(&k, b"other", &sealed).is_none());
        assert!(open_random_nonce(&SecretKey::random(), b"ad", &sealed).is_none());
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(open_random_nonce(&k, b"ad", &bad).is_none());
        assert!(open_random_nonce(&k, b"ad", &sealed[..10]).is_none());
    }

    #[test]
    fn seal_once_round_trip() {
        let k = SecretKey::random();
        let s = seal_once(&k, b"a", b"x");
        assert_eq!(open_once(&k, b"a", &s).as_deref(), Some(&b"x"[..]));
        assert!(open_once(&k, b"b", &s).is_none());
    }

    #[test]
    fn secret_key_debug_is_redacted() {
        let shown = format!("{:?}", SecretKey([0x42; 32]));
        assert_eq!(shown, "SecretKey(<redacted>)");
    }
}
