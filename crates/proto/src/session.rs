//! Pairwise sessions: Olm (vodozemac) inside, the post-quantum chain around it, blocks
//! outside. A frame is `0x01 | ML-KEM ciphertext[1088] | pq-sealed` for the handshake and
//! `0x02 | pq-sealed` afterwards; pq-sealed holds `olm_type u8 | olm message`.

use backchannel_wire::codec::Reader;
use libcrux_ml_kem::mlkem768;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use vodozemac::Curve25519PublicKey;
use vodozemac::olm::{OlmMessage, SessionConfig, SessionKeys};
use zeroize::Zeroizing;

use crate::block::FrameId;
use crate::crypto::{SecretKey, random_array, sha256};
use crate::error::{ProtoError, Result};
use crate::identity::{Card, Identity};
use crate::invitation::{Invitation, KEM_CIPHERTEXT_LEN, PendingInvitation, kem_keypair};
use crate::message::{ChannelId, Hello, Kind, MAX_BODY, Message, Route};
use crate::pq::{PqChains, Role};

const FRAME_HANDSHAKE: u8 = 1;
const FRAME_NORMAL: u8 = 2;
/// The key confirmation at the start of the handshake's sealed plaintext.
const CONFIRM_LEN: usize = 32;

/// An established pairwise session with one contact.
pub struct Session {
    pub peer: Card,
    /// Where our frames to the peer go.
    pub send_route: Route,
    /// The key of our own receive queue's blocks.
    pub recv_block_key: SecretKey,
    olm: vodozemac::olm::Session,
    pq: PqChains,
    next_seq: Vec<(ChannelId, u64)>,
}

/// A message sealed for a party (Olm inside the post-quantum chain), before any route's
/// block layer: the same frame can go over several routes.
pub struct Frame {
    pub message: Message,
    pub bytes: Vec<u8>,
}

/// A message sealed for the host: the blocks to put in the peer's queue.
pub struct Sealed {
    pub message: Message,
    pub frame_id: FrameId,
    pub blocks: Vec<Vec<u8>>,
    /// The frame the blocks were cut from (to cut it again for another route).
    pub frame: Vec<u8>,
}

/// Persisted form of a [`Session`]; encrypted by the client store.
#[derive(Serialize, Deserialize)]
pub struct SessionPickle {
    peer: Card,
    send_route: Route,
    recv_block_key: SecretKey,
    olm: vodozemac::olm::SessionPickle,
    pq: PqChains,
    next_seq: Vec<(ChannelId, u64)>,
}

/// Accepts an invitation: makes the session and the handshake frame (a Hello carrying our
/// card and `reply`, the route to our new receive queue). Consumes the invitation.
pub fn accept(
    invitation: Invitation,
    identity: &Identity,
    reply: Route,
    now_ms: u64,
) -> Result<(Session, Sealed)> {
    let more = (invitation.version >= 2).then(Vec::new);
    accept_with(invitation, identity, reply, more, now_ms)
}

/// [`accept`], with the reply routes on other hosts (`more`; `None` for an inviter of an
/// earlier version, whose Hello has no such tail).
pub fn accept_with(
    invitation: Invitation,
    identity: &Identity,
    reply: Route,
    more: Option<Vec<Route>>,
    now_ms: u64,
) -> Result<(Session, Sealed)> {
    invitation.check_not_expired(now_ms / 1000).map_err(|_| ProtoError::InvitationExpired)?;
    let their_identity = Curve25519PublicKey::from_bytes(invitation.inviter.identity_key);
    let otk = Curve25519PublicKey::from_bytes(invitation.one_time_key);
    let olm = identity
        .account
        .create_outbound_session(SessionConfig::version_1(), their_identity, otk)
        .map_err(|_| ProtoError::PeerMisbehaved("invitation keys are not usable"))?;
    let pk: [u8; 1184] = invitation
        .kem_public
        .as_slice()
        .try_into()
        .map_err(|_| ProtoError::PeerMisbehaved("bad ML-KEM key"))?;
    let randomness = Zeroizing::new(random_array::<32>());
    let (ct, ss) = mlkem768::encapsulate(&pk.into(), *randomness);
    let ss = Zeroizing::new(ss);
    let opening =
        opening_transcript(&invitation.id, &invitation.inviter, &invitation.kem_public, ct.as_slice());
    let card = identity.card();
    let bound = transcript(&opening, &card, &olm.session_keys());
    let mut handshake = PqChains::derive(ss.as_slice(), &opening, Role::Acceptor);
    let mut session = Session {
        peer: invitation.inviter,
        send_route: invitation.route,
        recv_block_key: reply.block_key.clone(),
        olm,
        pq: PqChains::derive(ss.as_slice(), &bound, Role::Acceptor),
        next_seq: vec![(ChannelId::DIRECT, 1)],
    };
    let hello = Hello { card, reply, more };
    let message = Message::new(ChannelId::DIRECT, 0, now_ms, Kind::Hello, hello.encode());
    let mut sealed = Zeroizing::new(PqChains::confirmation(ss.as_slice(), &bound).0.to_vec());
    sealed.extend_from_slice(&session.encrypt_olm(&message)?);
    let mut frame = vec![FRAME_HANDSHAKE];
    frame.extend_from_slice(ct.as_slice());
    frame.extend_from_slice(&handshake.seal(&sealed));
    let (frame_id, blocks) = session.seal_blocks(&frame)?;
    Ok((session, Sealed { message, frame_id, blocks, frame }))
}

/// The inviter's side: turns the handshake frame that arrived on the invitation's queue into
/// a session. On error the identity is unchanged; on success the caller persists it (its
/// one-time key is used up).
pub fn answer(
    pending: &PendingInvitation,
    identity: &mut Identity,
    frame: &[u8],
) -> Result<(Session, Hello)> {
    let m = ProtoError::malformed;
    let mut r = Reader::new(frame);
    if r.u8().map_err(m("frame"))? != FRAME_HANDSHAKE {
        return Err(ProtoError::PeerMisbehaved("expected a handshake on an invitation queue"));
    }
    let ct: [u8; KEM_CIPHERTEXT_LEN] = r.array().map_err(m("handshake"))?;
    let keypair = kem_keypair(&pending.kem_seed)?;
    let ss = Zeroizing::new(mlkem768::decapsulate(keypair.private_key(), &ct.into()));
    let opening = opening_transcript(&pending.id, &identity.card(), keypair.pk(), &ct);
    let mut handshake = PqChains::derive(ss.as_slice(), &opening, Role::Inviter);
    let plaintext = Zeroizing::new(handshake.open(r.take(r.remaining()).map_err(m("handshake"))?)?);
    if plaintext.len() < CONFIRM_LEN {
        return Err(ProtoError::PeerMisbehaved("handshake without key confirmation"));
    }
    let (confirm, olm_bytes) = plaintext.split_at(CONFIRM_LEN);
    let OlmMessage::PreKey(prekey) = decode_olm(olm_bytes)? else {
        return Err(ProtoError::PeerMisbehaved("handshake without a pre-key message"));
    };
    if prekey.one_time_key().to_bytes() != pending.one_time_key {
        return Err(ProtoError::PeerMisbehaved("handshake for another invitation"));
    }
    let created = identity
        .account
        .create_inbound_session(SessionConfig::version_1(), prekey.identity_key(), &prekey)
        .map_err(|_| ProtoError::Forged("handshake"))?;
    let message = Message::decode(&created.plaintext)?;
    if message.kind != Kind::Hello || message.sent_at / 1000 > pending.expires_at {
        return Err(ProtoError::PeerMisbehaved("handshake is not a timely hello"));
    }
    let hello = Hello::decode(&message.body)?;
    if hello.card.identity_key != prekey.identity_key().to_bytes() {
        return Err(ProtoError::PeerMisbehaved("hello card does not match the session key"));
    }
    let bound = transcript(&opening, &hello.card, &prekey.session_keys());
    let expected = PqChains::confirmation(ss.as_slice(), &bound);
    if !bool::from(expected.0.ct_eq(confirm)) {
        return Err(ProtoError::PeerMisbehaved(
            "handshake transcript mismatch: the hello's card or Olm keys are not the ones its sender bound",
        ));
    }
    let session = Session {
        peer: hello.card.clone(),
        send_route: hello.reply.clone(),
        recv_block_key: pending.route.block_key.clone(),
        olm: created.session,
        pq: PqChains::derive(ss.as_slice(), &bound, Role::Inviter),
        next_seq: vec![(ChannelId::DIRECT, 1)],
    };
    Ok((session, hello))
}

/// What both ends know before the handshake is opened: this invitation and this KEM exchange.
/// Keys the handshake message itself.
fn opening_transcript(
    invitation_id: &[u8; 16],
    inviter: &Card,
    kem_public: &[u8],
    kem_ct: &[u8],
) -> [u8; 32] {
    sha256(&[
        b"backchannel/handshake/v2",
        invitation_id,
        &inviter.identity_key,
        &sha256(&[kem_public]),
        kem_ct,
    ])
}

/// The whole handshake: the opening transcript, the acceptor's identity key and card, and the
/// Olm base key and one-time key of the session. Keys the session's post-quantum chains, so
/// the two layers and the acceptor are bound together.
fn transcript(opening: &[u8; 32], acceptor: &Card, olm: &SessionKeys) -> [u8; 32] {
    let mut card = backchannel_wire::codec::Writer::default();
    acceptor.encode(&mut card);
    sha256(&[
        b"backchannel/transcript/v2",
        opening,
        &acceptor.identity_key,
        &sha256(&[&card.buf]),
        &olm.base_key.to_bytes(),
        &olm.one_time_key.to_bytes(),
    ])
}

fn decode_olm(bytes: &[u8]) -> Result<OlmMessage> {
    let (kind, body) = bytes.split_first().ok_or(ProtoError::Forged("olm message"))?;
    OlmMessage::from_parts(usize::from(*kind), body)
        .map_err(|_| ProtoError::PeerMisbehaved("undecodable olm message"))
}

/// True when `frame` is a handshake (the first frame on an invitation's queue).
pub fn is_handshake(frame: &[u8]) -> bool {
    frame.first() == Some(&FRAME_HANDSHAKE)
}

impl Session {
    /// Seals a message of `kind` for the peer over its send route, numbering it in its channel.
    pub fn seal(&mut self, channel: ChannelId, kind: Kind, body: Vec<u8>, now_ms: u64) -> Result<Sealed> {
        if !self.send_route.fits(body.len()) {
            return Err(ProtoError::ApiMisuse("message too large"));
        }
        let frame = self.seal_frame(channel, kind, body, now_ms)?;
        let (frame_id, blocks) = self.send_route.seal_blocks(&frame.bytes)?;
        Ok(Sealed { message: frame.message, frame_id, blocks, frame: frame.bytes })
    }

    /// Seals a message for the peer, numbering it in its channel; the caller cuts it into
    /// blocks for each route ([`Route::seal_blocks`]), having checked that it fits
    /// ([`Route::fits`]): a frame that fits no route leaves a gap in the peer's numbering.
    pub fn seal_frame(
        &mut self,
        channel: ChannelId,
        kind: Kind,
        body: Vec<u8>,
        now_ms: u64,
    ) -> Result<Frame> {
        if body.len() > MAX_BODY {
            return Err(ProtoError::ApiMisuse("message too large"));
        }
        let seq = self.take_seq(channel);
        let message = Message::new(channel, seq, now_ms, kind, body);
        let mut bytes = vec![FRAME_NORMAL];
        bytes.extend_from_slice(&self.seal_olm(&message)?);
        Ok(Frame { message, bytes })
    }

    fn seal_blocks(&self, frame: &[u8]) -> Result<(FrameId, Vec<Vec<u8>>)> {
        self.send_route.seal_blocks(frame)
    }

    fn seal_olm(&mut self, message: &Message) -> Result<Vec<u8>> {
        let bytes = self.encrypt_olm(message)?;
        Ok(self.pq.seal(&bytes))
    }

    /// `olm_type u8 | olm message`, not yet sealed by the post-quantum layer.
    fn encrypt_olm(&mut self, message: &Message) -> Result<Vec<u8>> {
        let olm =
            self.olm.encrypt(message.encode()).map_err(|_| ProtoError::ApiMisuse("olm encryption failed"))?;
        let (kind, body) = olm.to_parts();
        let mut bytes = vec![kind as u8];
        bytes.extend_from_slice(&body);
        Ok(bytes)
    }

    fn take_seq(&mut self, channel: ChannelId) -> u64 {
        if let Some((_, next)) = self.next_seq.iter_mut().find(|(c, _)| *c == channel) {
            *next += 1;
            return *next - 1;
        }
        self.next_seq.push((channel, 2));
        1
    }

    /// Opens a whole frame from the peer. A handshake frame seen again (the host replaying the
    /// first message, or a second party using the same invitation) is refused. On error the
    /// session is unchanged.
    pub fn open(&mut self, frame: &[u8]) -> Result<Message> {
        let (kind, rest) = frame.split_first().ok_or(ProtoError::Malformed {
            what: "frame",
            source: backchannel_wire::DecodeError::Truncated { needed: 1 },
        })?;
        let sealed = match *kind {
            FRAME_NORMAL => rest,
            FRAME_HANDSHAKE => {
                return Err(ProtoError::PeerMisbehaved(
                    "a second handshake on an established session (a replay, or a reused invitation)",
                ));
            }
            _ => return Err(ProtoError::Forged("frame")),
        };
        let mut pq = self.pq.clone();
        let olm_bytes = pq.open(sealed)?;
        let olm_message = decode_olm(&olm_bytes)?;
        // The post-quantum layer already proved the frame is the peer's (the host holds no key
        // of it), so an Olm failure here is a message held back until its ratchet key was gone
        // (Olm keeps 40 skipped keys and 5 receiving chains), not an alteration.
        let plaintext = self.olm.decrypt(&olm_message).map_err(|_| ProtoError::TooLate)?;
        self.pq = pq;
        Message::decode(&plaintext)
    }

    pub fn pickle(&self) -> SessionPickle {
        SessionPickle {
            peer: self.peer.clone(),
            send_route: self.send_route.clone(),
            recv_block_key: self.recv_block_key.clone(),
            olm: self.olm.pickle(),
            pq: self.pq.clone(),
            next_seq: self.next_seq.clone(),
        }
    }

    pub fn from_pickle(p: SessionPickle) -> Self {
        Self {
            peer: p.peer,
            send_route: p.send_route,
            recv_block_key: p.recv_block_key,
            olm: vodozemac::olm::Session::from_pickle(p.olm),
            pq: p.pq,
            next_seq: p.next_seq,
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("peer", &self.peer.name).field("pq", &self.pq).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SessionPickle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionPickle(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Reassembler, open_block};
    use crate::invitation;
    use backchannel_wire::{QueueId, QueueSecret, RelayAddress};
    use vodozemac::Curve25519PublicKey;

    const BS: usize = 1024;

    fn route() -> Route {
        let relay = RelayAddress::for_certificate("127.0.0.1", 1, b"c");
        Route {
            relay,
            block_size: BS as u32,
            send_id: QueueId::random(),
            send_secret: QueueSecret::random(),
            block_key: SecretKey::random(),
        }
    }

    fn frame(blocks: &[Vec<u8>], key: &SecretKey) -> Vec<u8> {
        let mut r = Reassembler::default();
        blocks.iter().find_map(|b| r.push(open_block(b, key).unwrap()).unwrap()).unwrap().1
    }

    /// Alice invites, Bao accepts; returns (alice, bao) sessions and the handshake frame.
    fn pair() -> (Session, Session, Vec<u8>) {
        let mut alice = Identity::generate("Alice", "A").unwrap();
        let bao = Identity::generate("Bao", "B").unwrap();
        let (inv, pending) =
            invitation::create(&mut alice, route(), QueueId::random(), QueueSecret::random(), 100).unwrap();
        let (bao_s, hello) = accept(inv, &bao, route(), 5_000).unwrap();
        let hs = frame(&hello.blocks, &pending.route.block_key);
        let (alice_s, got) = answer(&pending, &mut alice, &hs).unwrap();
        assert_eq!(got.card, bao.card());
        assert_eq!(alice_s.peer, bao.card());
        assert_eq!(bao_s.peer, alice.card());
        (alice_s, bao_s, hs)
    }

    fn note(s: &mut Session, text: &str) -> Vec<u8> {
        let sealed = s.seal(ChannelId::DIRECT, Kind::Note, text.as_bytes().to_vec(), 1).unwrap();
        frame(&sealed.blocks, &s.send_route.block_key)
    }

    #[test]
    fn both_directions_in_any_order_then_replay_refused() {
        let (mut alice, mut bao, _) = pair();
        let b1 = note(&mut bao, "b1");
        let a1 = note(&mut alice, "a1");
        let a2 = note(&mut alice, "a2");
        assert_eq!(alice.open(&b1).unwrap().body, b"b1");
        assert_eq!(bao.open(&a2).unwrap().body, b"a2");
        let m1 = bao.open(&a1).unwrap();
        assert_eq!((m1.body.as_slice(), m1.sender_seq), (&b"a1"[..], 1));
        assert_eq!(bao.open(&a1).unwrap_err(), ProtoError::Replayed);
        assert_eq!(alice.open(&note(&mut bao, "b2")).unwrap().sender_seq, 2);
    }

    /// What a delay costs, as docs/protocol.md §13 and §16.5 say: Olm keeps the key of a held-
    /// back message only if the message that overtakes it is at most 40 ahead (and until 40
    /// later skipped keys push it out). A note whose key is gone is refused as too late (the
    /// post-quantum layer already showed it is the peer's), never as altered; the others open.
    #[test]
    fn a_note_held_back_past_olms_kept_keys_is_too_late_not_forged() {
        let (mut alice, mut bao, _) = pair();
        let notes: Vec<Vec<u8>> = (0..42).map(|i| note(&mut alice, &format!("n{i}"))).collect();
        assert_eq!(bao.open(&notes[41]).unwrap().body, b"n41", "41 ahead of the first");
        assert_eq!(bao.open(&notes[0]).unwrap_err(), ProtoError::TooLate);
        for (i, n) in notes.iter().enumerate().take(41).skip(1) {
            assert_eq!(bao.open(n).unwrap().body, format!("n{i}").as_bytes(), "note {i}");
        }
        assert_eq!(bao.open(&notes[0]).unwrap_err(), ProtoError::TooLate, "still too late, and no panic");

        // Overtaken one by one by many more than 40 later notes, a note still opens: its key
        // was kept when the first of them arrived, and in-order arrivals skip no key.
        let (mut alice, mut bao, _) = pair();
        let notes: Vec<Vec<u8>> = (0..60).map(|i| note(&mut alice, &format!("m{i}"))).collect();
        for n in &notes[1..] {
            bao.open(n).unwrap();
        }
        assert_eq!(bao.open(&notes[0]).unwrap().body, b"m0");
    }

    #[test]
    fn tampered_frames_leave_the_session_usable() {
        let (mut alice, mut bao, hs) = pair();
        let a1 = note(&mut alice, "a1");
        for i in [0, 3, a1.len() / 2, a1.len() - 1] {
            let mut bad = a1.clone();
            bad[i] ^= 0x20;
            assert!(bao.open(&bad).is_err(), "flip at {i}");
        }
        assert!(bao.open(&a1[..a1.len() - 3]).is_err());
        assert_eq!(bao.open(&a1).unwrap().body, b"a1");
        assert!(matches!(alice.open(&hs), Err(ProtoError::PeerMisbehaved(_))), "handshake replay");
    }

    #[test]
    fn handshake_is_bound_to_its_invitation() {
        let mut alice = Identity::generate("Alice", "A").unwrap();
        let bao = Identity::generate("Bao", "B").unwrap();
        let (inv1, pending1) =
            invitation::create(&mut alice, route(), QueueId::random(), QueueSecret::random(), 100).unwrap();
        let (_, pending2) =
            invitation::create(&mut alice, route(), QueueId::random(), QueueSecret::random(), 100).unwrap();
        let (_, hello) = accept(inv1, &bao, route(), 5_000).unwrap();
        let hs = frame(&hello.blocks, &pending1.route.block_key);
        assert!(answer(&pending2, &mut alice, &hs).is_err());
        assert!(answer(&pending1, &mut alice, &hs).is_ok());
        assert!(answer(&pending1, &mut alice, &hs).is_err(), "one-time key is used up");
    }

    /// A handshake as someone holding the ML-KEM shared secret would build it: `acceptor`'s
    /// Olm session and Hello, but key confirmation over the transcript of `bound_card` (and of
    /// `bound_keys`, if given, instead of the session's own Olm keys).
    fn handshake_binding(
        inv: Invitation,
        acceptor: &Identity,
        bound_card: &Card,
        bound_keys: Option<SessionKeys>,
    ) -> Vec<u8> {
        let pk: [u8; 1184] = inv.kem_public.as_slice().try_into().unwrap();
        let (ct, ss) = mlkem768::encapsulate(&pk.into(), random_array());
        let opening = opening_transcript(&inv.id, &inv.inviter, &inv.kem_public, ct.as_slice());
        let olm = acceptor
            .account
            .create_outbound_session(
                SessionConfig::version_1(),
                Curve25519PublicKey::from_bytes(inv.inviter.identity_key),
                Curve25519PublicKey::from_bytes(inv.one_time_key),
            )
            .unwrap();
        let bound = transcript(&opening, bound_card, &bound_keys.unwrap_or(olm.session_keys()));
        let mut session = Session {
            peer: inv.inviter.clone(),
            send_route: inv.route.clone(),
            recv_block_key: SecretKey::random(),
            olm,
            pq: PqChains::derive(&ss, &bound, Role::Acceptor),
            next_seq: vec![],
        };
        let hello = Hello { card: acceptor.card(), reply: route(), more: None };
        let message = Message::new(ChannelId::DIRECT, 0, 5_000, Kind::Hello, hello.encode());
        let mut sealed = PqChains::confirmation(&ss, &bound).0.to_vec();
        sealed.extend_from_slice(&session.encrypt_olm(&message).unwrap());
        let mut frame = vec![FRAME_HANDSHAKE];
        frame.extend_from_slice(ct.as_slice());
        frame.extend_from_slice(&PqChains::derive(&ss, &opening, Role::Acceptor).seal(&sealed));
        frame
    }

    /// M3 binding: the post-quantum keys are bound to the acceptor's identity key and card and
    /// to the Olm base and one-time keys. A Hello whose card or identity is not the one the
    /// handshake was bound to (by someone holding the ML-KEM secret and mixing another
    /// acceptor's Olm session in) is refused; under the v1 transcript (invitation, inviter, KEM
    /// only) each of these was accepted.
    #[test]
    fn a_hello_with_a_swapped_card_or_identity_fails() {
        let fresh = || {
            let mut alice = Identity::generate("Alice", "A").unwrap();
            let (inv, pending) =
                invitation::create(&mut alice, route(), QueueId::random(), QueueSecret::random(), 100)
                    .unwrap();
            (alice, inv, pending)
        };
        let (bao, eve) = (Identity::generate("Bao", "B").unwrap(), Identity::generate("Eve", "B").unwrap());
        let renamed = Card { name: "Bao".into(), ..eve.card() };
        let mixes: [(&Identity, Card, Option<SessionKeys>); 3] = [
            (&eve, bao.card(), None), // Eve's session and Hello, bound to Bao's card and key
            (&eve, renamed, None),    // Eve's key, bound to a card with another name
            (
                &eve,
                eve.card(),
                Some(SessionKeys {
                    identity_key: Curve25519PublicKey::from_bytes(eve.card().identity_key),
                    base_key: Curve25519PublicKey::from_bytes([9; 32]),
                    one_time_key: Curve25519PublicKey::from_bytes([9; 32]),
                }),
            ), // bound to other Olm keys
        ];
        for (acceptor, card, keys) in mixes {
            let (mut alice, inv, pending) = fresh();
            let frame = handshake_binding(inv, acceptor, &card, keys);
            let err = answer(&pending, &mut alice, &frame).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("handshake transcript mismatch"), "{err}");
        }
        let (mut alice, inv, pending) = fresh();
        let frame = handshake_binding(inv, &eve, &eve.card(), None);
        assert!(
            answer(&pending, &mut alice, &frame).is_ok(),
            "the same construction, bound honestly, is accepted"
        );
    }

    #[test]
    fn expired_invitation_and_late_hello_are_refused() {
        let mut alice = Identity::generate("Alice", "A").unwrap();
        let bao = Identity::generate("Bao", "B").unwrap();
        let (inv, pending) =
            invitation::create(&mut alice, route(), QueueId::random(), QueueSecret::random(), 100).unwrap();
        assert_eq!(
            accept(inv.clone(), &bao, route(), 101_000).err().map(|e| e.to_string()),
            Some(ProtoError::InvitationExpired.to_string())
        );
        let (_, hello) = accept(inv, &bao, route(), 100_000).unwrap();
        let hs = frame(&hello.blocks, &pending.route.block_key);
        assert!(answer(&pending, &mut alice, &hs).is_ok());
    }

    #[test]
    fn pickles_continue_the_session() {
        let (alice, mut bao, _) = pair();
        let mut alice = Session::from_pickle(alice.pickle());
        let a1 = note(&mut alice, "after restore");
        let mut bao2 = Session::from_pickle(bao.pickle());
        assert_eq!(bao2.open(&a1).unwrap().body, b"after restore");
        assert!(bao.open(&a1).is_ok(), "the old copy still has its keys: stores must replace, not fork");
    }
}
