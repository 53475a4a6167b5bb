//! One-time, out-of-band invitations: `backchannel:` followed by base64url of
//! `"BCI" | version u8 | id[16] | route | card | one_time_key[32] | ml_kem_768_public[1184] |
//! expires_at u64 | n u8 | route × n | checksum[4]`: version 2, with `n` more routes (the
//! inviter's inboxes on other hosts; the Hello goes over all of them). Version 1 texts end
//! after `expires_at` and are still accepted.
//!
//! The text is a capability (it holds the send secret of the inviter's fresh queue): pass it
//! only to the intended party, then compare safety numbers.

use backchannel_wire::codec::{Reader, Writer};
use backchannel_wire::{QueueId, QueueSecret};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libcrux_ml_kem::mlkem768;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{random_array, sha256};
use crate::error::{ProtoError, Result};
use crate::identity::{Card, Identity};
use crate::message::Route;

pub const PREFIX: &str = "backchannel:";
const MAGIC: &[u8; 3] = b"BCI";
const VERSION: u8 = 2;
/// Most routes one invitation names (its first and up to this many more).
pub const MAX_MORE_ROUTES: usize = 7;
pub const KEM_PUBLIC_LEN: usize = 1184;
pub const KEM_CIPHERTEXT_LEN: usize = 1088;

/// Why an invitation text was refused. Each says what the user can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvitationError {
    #[error("this is not a Backchannel invitation (it should start with `backchannel:`)")]
    NotAnInvitation,
    #[error("the invitation is damaged ({0}); copy the whole text again")]
    Damaged(&'static str),
    #[error("the invitation was made by a newer version of Backchannel; upgrade to accept it")]
    NewerVersion,
    #[error("the invitation expired; ask for a new one")]
    Expired,
}

/// The public invitation, as carried in the text.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Invitation {
    pub id: [u8; 16],
    /// How to reach the inviter's fresh receive queue.
    pub route: Route,
    pub inviter: Card,
    pub one_time_key: [u8; 32],
    pub kem_public: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub expires_at: u64,
    /// The inviter's inboxes on other hosts (version 2).
    pub more_routes: Vec<Route>,
    /// The text's version: 1 for texts from versions before routes, receipts and heartbeats.
    pub version: u8,
}

/// One more inbox of an invitation, on another host.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingQueue {
    pub recv_id: QueueId,
    pub recv_secret: QueueSecret,
    pub route: Route,
}

/// The inviter's private half, kept until the invitation is answered or expires.
#[derive(Serialize, Deserialize)]
pub struct PendingInvitation {
    pub id: [u8; 16],
    pub recv_id: QueueId,
    pub recv_secret: QueueSecret,
    pub route: Route,
    pub one_time_key: [u8; 32],
    /// ML-KEM-768 key generation seed: the decapsulation key is rebuilt from it.
    pub kem_seed: Zeroizing<Vec<u8>>,
    pub expires_at: u64,
    /// The invitation's inboxes on other hosts.
    #[serde(default)]
    pub more: Vec<PendingQueue>,
}

impl std::fmt::Debug for PendingInvitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PendingInvitation(expires_at {}, <keys redacted>)", self.expires_at)
    }
}

/// Makes an invitation for the queue `recv_id` whose send side is `route`.
/// The caller persists the identity afterwards: a one-time key was added to its account.
pub fn create(
    identity: &mut Identity,
    route: Route,
    recv_id: QueueId,
    recv_secret: QueueSecret,
    expires_at: u64,
) -> Result<(Invitation, PendingInvitation)> {
    let created = identity.account.generate_one_time_keys(1).created;
    identity.account.mark_keys_as_published();
    let one_time_key = created.first().ok_or(ProtoError::ApiMisuse("no one-time key generated"))?.to_bytes();
    let kem_seed = Zeroizing::new(random_array::<64>().to_vec());
    let kem_public = kem_keypair(&kem_seed)?.pk().to_vec();
    let id = random_array();
    let invitation = Invitation {
        id,
        route: route.clone(),
        inviter: identity.card(),
        one_time_key,
        kem_public,
        expires_at,
        more_routes: Vec::new(),
        version: VERSION,
    };
    let pending = PendingInvitation {
        id,
        recv_id,
        recv_secret,
        route,
        one_time_key,
        kem_seed,
        expires_at,
        more: Vec::new(),
    };
    Ok((invitation, pending))
}

pub(crate) fn kem_keypair(seed: &[u8]) -> Result<mlkem768::MlKem768KeyPair> {
    let seed: [u8; 64] = seed.try_into().map_err(|_| ProtoError::ApiMisuse("KEM seed must be 64 bytes"))?;
    Ok(mlkem768::generate_key_pair(seed))
}

impl Invitation {
    pub fn to_text(&self) -> String {
        let mut w = Writer::default();
        w.raw(MAGIC).u8(VERSION).raw(&self.id);
        self.route.encode(&mut w);
        self.inviter.encode(&mut w);
        w.raw(&self.one_time_key).raw(&self.kem_public).u64(self.expires_at);
        w.u8(self.more_routes.len() as u8);
        self.more_routes.iter().for_each(|r| r.encode(&mut w));
        let check = sha256(&[&w.buf]);
        w.raw(&check[..4]);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&w.buf))
    }

    /// Parses an invitation text; whitespace and line breaks inside it are ignored, so a
    /// text wrapped by an e-mail client still reads.
    pub fn from_text(text: &str) -> Result<Self, InvitationError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let body = compact.strip_prefix(PREFIX).ok_or(InvitationError::NotAnInvitation)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| InvitationError::Damaged("not base64url"))?;
        if bytes.len() < 8 {
            return Err(InvitationError::Damaged("too short"));
        }
        let (content, check) = bytes.split_at(bytes.len() - 4);
        if sha256(&[content])[..4] != *check {
            return Err(InvitationError::Damaged("checksum mismatch"));
        }
        Self::decode(content)
    }

    fn decode(content: &[u8]) -> Result<Self, InvitationError> {
        let mut r = Reader::new(content);
        let bad = |_| InvitationError::Damaged("truncated or malformed");
        if r.take(3).map_err(bad)? != MAGIC {
            return Err(InvitationError::NotAnInvitation);
        }
        let version = r.u8().map_err(bad)?;
        if !(1..=VERSION).contains(&version) {
            return Err(InvitationError::NewerVersion);
        }
        let id = r.array().map_err(bad)?;
        let route = Route::decode(&mut r).map_err(|_| InvitationError::Damaged("bad route"))?;
        let inviter = Card::decode(&mut r).map_err(|_| InvitationError::Damaged("bad card"))?;
        let one_time_key = r.array().map_err(bad)?;
        let kem_public = r.take(KEM_PUBLIC_LEN).map_err(bad)?.to_vec();
        let expires_at = r.u64().map_err(bad)?;
        let mut more_routes = Vec::new();
        if version >= 2 {
            let n = r.u8().map_err(bad)? as usize;
            if n > MAX_MORE_ROUTES {
                return Err(InvitationError::Damaged("too many routes"));
            }
            for _ in 0..n {
                more_routes.push(Route::decode(&mut r).map_err(|_| InvitationError::Damaged("bad route"))?);
            }
        }
        r.finish().map_err(bad)?;
        let pk: [u8; KEM_PUBLIC_LEN] =
            kem_public.as_slice().try_into().map_err(|_| InvitationError::Damaged("bad key"))?;
        if !mlkem768::validate_public_key(&pk.into()) {
            return Err(InvitationError::Damaged("invalid ML-KEM public key"));
        }
        Ok(Self { id, route, inviter, one_time_key, kem_public, expires_at, more_routes, version })
    }

    pub fn check_not_expired(&self, now_secs: u64) -> Result<(), InvitationError> {
        if now_secs > self.expires_at { Err(InvitationError::Expired) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use proptest::prelude::*;

    pub(crate) fn sample() -> (Identity, Invitation, PendingInvitation) {
        let mut id = Identity::generate("Alice", "Delegation A").unwrap();
        let relay = backchannel_wire::RelayAddress::for_certificate("127.0.0.1", 4443, b"cert");
        let route = Route {
            relay,
            block_size: 4096,
            send_id: QueueId::random(),
            send_secret: QueueSecret::random(),
            block_key: SecretKey::random(),
        };
        let (inv, pending) =
            create(&mut id, route, QueueId::random(), QueueSecret::random(), 2_000_000_000).unwrap();
        (id, inv, pending)
    }

    #[test]
    fn text_round_trip_survives_wrapping() {
        let (_, inv, _) = sample();
        let text = inv.to_text();
        assert!(text.starts_with(PREFIX));
        assert_eq!(Invitation::from_text(&text).unwrap(), inv);
        let wrapped: String =
            text.as_bytes().chunks(70).map(|c| format!("{}\n", String::from_utf8_lossy(c))).collect();
        assert_eq!(Invitation::from_text(&wrapped).unwrap(), inv);
    }

    /// Several hosts in one text; a version 1 text (one route, from an earlier version)
    /// still reads, as version 1.
    #[test]
    fn more_routes_round_trip_and_version_one_still_reads() {
        let (_, mut inv, pending) = sample();
        inv.more_routes = vec![pending.route.clone(), pending.route.clone()];
        assert_eq!(Invitation::from_text(&inv.to_text()).unwrap(), inv);
        let mut w = Writer::default();
        w.raw(MAGIC).u8(1).raw(&inv.id);
        inv.route.encode(&mut w);
        inv.inviter.encode(&mut w);
        w.raw(&inv.one_time_key).raw(&inv.kem_public).u64(inv.expires_at);
        let check = sha256(&[&w.buf]);
        w.raw(&check[..4]);
        let old = Invitation::from_text(&format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&w.buf))).unwrap();
        assert_eq!((old.version, old.more_routes.len(), old.route), (1, 0, inv.route));
    }

    #[test]
    fn damage_is_reported() {
        let (_, inv, _) = sample();
        let text = inv.to_text();
        assert_eq!(Invitation::from_text("hello"), Err(InvitationError::NotAnInvitation));
        assert_eq!(Invitation::from_text("backchannel:!!"), Err(InvitationError::Damaged("not base64url")));
        let truncated = &text[..text.len() - 10];
        assert!(matches!(Invitation::from_text(truncated), Err(InvitationError::Damaged(_))));
        let mut flipped = text.clone().into_bytes();
        let i = flipped.len() / 2;
        flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            Invitation::from_text(&String::from_utf8(flipped).unwrap()),
            Err(InvitationError::Damaged("checksum mismatch"))
        );
    }

    #[test]
    fn expiry() {
        let (_, inv, _) = sample();
        assert!(inv.check_not_expired(inv.expires_at).is_ok());
        assert_eq!(inv.check_not_expired(inv.expires_at + 1), Err(InvitationError::Expired));
    }

    proptest! {
        #[test]
        fn from_text_never_panics(s in "backchannel:[A-Za-z0-9_-]{0,400}") {
            let _ = Invitation::from_text(&s);
        }
    }
}
