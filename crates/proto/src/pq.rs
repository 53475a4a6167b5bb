//! The post-quantum layer: a symmetric chain per direction, keyed from the ML-KEM-768 shared
//! secret of the session's handshake and ratcheted once per message.
//!
//! Root: `HKDF-SHA-256(salt = "backchannel/pq/v1", ikm = ML-KEM shared secret, info = transcript)`
//! gives 64 bytes: the inviter→acceptor and acceptor→inviter chain keys. Each message takes
//! `mk = HMAC(ck, 0x01)` and moves `ck = HMAC(ck, 0x02)`; the Olm ciphertext is sealed under
//! `mk` with ChaCha20-Poly1305. Old chain keys are overwritten, so a later device compromise
//! does not open earlier messages of this layer. Limit: the KEM runs once per session, so this
//! layer has no post-compromise healing of its own (Olm's DH ratchet still heals the classical
//! layer). See docs/protocol.md.

use std::collections::BTreeMap;

use backchannel_wire::codec::Reader;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{SecretKey, hkdf, hmac_key, open_once, seal_once};
use crate::error::{ProtoError, Result};

const LABEL: &[u8] = b"backchannel/pq/v1";
/// Most message keys a receiver derives ahead to cover messages the host held back.
pub const MAX_SKIP: u32 = 2000;

#[derive(Clone, Serialize, Deserialize)]
struct Chain {
    key: SecretKey,
    next: u32,
}

impl Chain {
    fn step(&mut self) -> (u32, SecretKey) {
        let mk = hmac_key(&self.key, &[1]);
        self.key = hmac_key(&self.key, &[2]);
        let n = self.next;
        self.next = self.next.saturating_add(1);
        (n, mk)
    }
}

/// Both directions of a session's post-quantum chain.
#[derive(Clone, Serialize, Deserialize)]
pub struct PqChains {
    send: Chain,
    recv: Chain,
    /// Keys of messages skipped over, kept until they arrive (bounded by [`MAX_SKIP`]).
    skipped: BTreeMap<u32, SecretKey>,
}

impl std::fmt::Debug for PqChains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PqChains(send #{}, recv #{}, <keys redacted>)", self.send.next, self.recv.next)
    }
}

/// Which end of the handshake we are: it decides which chain we send on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Inviter,
    Acceptor,
}

impl PqChains {
    /// Both chains from the ML-KEM shared secret and a transcript hash. The 64-byte root and
    /// its halves are zeroed as soon as they are split into the chain keys.
    pub fn derive(shared_secret: &[u8], transcript: &[u8; 32], role: Role) -> Self {
        let root: Zeroizing<[u8; 64]> = Zeroizing::new(hkdf(LABEL, shared_secret, transcript));
        let mut i2a = SecretKey([0u8; 32]);
        let mut a2i = SecretKey([0u8; 32]);
        i2a.0.copy_from_slice(&root[..32]);
        a2i.0.copy_from_slice(&root[32..]);
        let (send, recv) = match role {
            Role::Inviter => (i2a, a2i),
            Role::Acceptor => (a2i, i2a),
        };
        Self {
            send: Chain { key: send, next: 0 },
            recv: Chain { key: recv, next: 0 },
            skipped: BTreeMap::new(),
        }
    }

    /// The key-confirmation value both ends compute from the shared secret and the full
    /// handshake transcript: the acceptor sends it inside the handshake, the inviter compares.
    pub fn confirmation(shared_secret: &[u8], transcript: &[u8; 32]) -> SecretKey {
        SecretKey(hkdf(LABEL, shared_secret, &[&b"backchannel/confirm/v2"[..], transcript].concat()))
    }

    /// `counter u32 | ChaCha20-Poly1305(mk, plaintext)`.
    pub fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let (n, mk) = self.send.step();
        let mut out = n.to_be_bytes().to_vec();
        out.extend_from_slice(&seal_once(&mk, &aad(n), plaintext));
        out
    }

    /// Opens a sealed message. On error nothing changes (stage, then commit).
    pub fn open(&mut self, sealed: &[u8]) -> Result<Vec<u8>> {
        let mut r = Reader::new(sealed);
        let n = r.u32().map_err(ProtoError::malformed("post-quantum layer"))?;
        let body = r.take(r.remaining()).map_err(ProtoError::malformed("post-quantum layer"))?;
        let mut staged = self.clone();
        let mk = staged.key_for(n)?;
        let plaintext = open_once(&mk, &aad(n), body).ok_or(ProtoError::Forged("post-quantum layer"))?;
        *self = staged;
        Ok(plaintext)
    }

    fn key_for(&mut self, n: u32) -> Result<SecretKey> {
        if n < self.recv.next {
            return self.skipped.remove(&n).ok_or(ProtoError::Replayed);
        }
        if n - self.recv.next > MAX_SKIP {
            return Err(ProtoError::PeerMisbehaved("message counter jumped too far ahead"));
        }
        while self.recv.next < n {
            let (i, mk) = self.recv.step();
            self.skipped.insert(i, mk);
        }
        while self.skipped.len() > MAX_SKIP as usize {
            self.skipped.pop_first();
        }
        Ok(self.recv.step().1)
    }
}

fn aad(n: u32) -> Vec<u8> {
    [LABEL, &n.to_be_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (PqChains, PqChains) {
        let t = [7u8; 32];
        (PqChains::derive(b"ss", &t, Role::Inviter), PqChains::derive(b"ss", &t, Role::Acceptor))
    }

    #[test]
    fn both_directions_and_out_of_order() {
        let (mut i, mut a) = pair();
        let m0 = i.seal(b"zero");
        let m1 = i.seal(b"one");
        let m2 = i.seal(b"two");
        assert_eq!(a.open(&m2).unwrap(), b"two");
        assert_eq!(a.open(&m0).unwrap(), b"zero");
        assert_eq!(a.open(&m1).unwrap(), b"one");
        assert_eq!(i.open(&a.seal(b"back")).unwrap(), b"back");
    }

    #[test]
    fn replay_and_tamper_are_refused_without_state_change() {
        let (mut i, mut a) = pair();
        let m0 = i.seal(b"zero");
        let mut bad = m0.clone();
        bad[6] ^= 1;
        assert_eq!(a.open(&bad), Err(ProtoError::Forged("post-quantum layer")));
        assert_eq!(a.open(&m0).unwrap(), b"zero", "a failed open leaves the chain usable");
        assert_eq!(a.open(&m0), Err(ProtoError::Replayed));
    }

    /// L10: chain keys, skipped keys and the key confirmation print nothing of themselves.
    #[test]
    fn debug_prints_no_key() {
        let (mut i, mut a) = pair();
        let m = i.seal(b"x");
        a.open(&i.seal(b"y")).unwrap();
        assert_eq!(format!("{a:?}"), "PqChains(send #0, recv #2, <keys redacted>)");
        assert!(a.open(&m).is_ok());
        let confirm = PqChains::confirmation(b"ss", &[7; 32]);
        assert_eq!(format!("{confirm:?}"), "SecretKey(<redacted>)");
        assert_ne!(confirm, PqChains::confirmation(b"ss", &[8; 32]), "bound to the transcript");
    }

    #[test]
    fn far_jump_is_refused() {
        let (_, mut a) = pair();
        let mut sealed = (MAX_SKIP + 5).to_be_bytes().to_vec();
        sealed.extend_from_slice(&[0; 20]);
        assert!(matches!(a.open(&sealed), Err(ProtoError::PeerMisbehaved(_))));
    }
}
