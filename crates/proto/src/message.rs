//! The typed message inside every encryption layer:
//! `version u8 | kind u8 | channel[16] | sender_seq u64 | msg_id[16] | sent_at u64 | body u32-prefixed`.

use backchannel_wire::codec::{Reader, Writer};
use backchannel_wire::{MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, QueueId, QueueSecret, RelayAddress};

use crate::crypto::{SecretKey, random_array};
use crate::error::{ProtoError, Result};
use crate::identity::Card;

pub const VERSION: u8 = 1;
/// Largest message body (a document split over many blocks).
pub const MAX_BODY: usize = 4 * 1024 * 1024 - 64 * 1024;
/// Frame bytes beyond the message body: headers of every layer, with room to spare.
pub const FRAME_OVERHEAD: usize = 512;

/// A conversation within a pairwise session. All zeros: the contact's own direct thread.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default, serde::Serialize, serde::Deserialize,
)]
pub struct ChannelId(pub [u8; 16]);

impl ChannelId {
    pub const DIRECT: ChannelId = ChannelId([0; 16]);
    /// Where [`Kind::Control`] messages are numbered, apart from notes: a heartbeat lost with
    /// its host is no gap in the conversation.
    pub const CONTROL: ChannelId = ChannelId([0xff; 16]);
}

/// A message id: random, so receivers can drop duplicates.
pub type MsgId = [u8; 16];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Kind {
    /// First message of a session: the acceptor's card and reply queue.
    Hello,
    /// An informal, deniable note (UTF-8 text).
    Note,
    /// Channel business: membership, introductions, relayed notes, phases, non-papers,
    /// proposals and ratifications (a JSON [`crate::channel::ChannelBody`]).
    Channel,
    /// The line's upkeep between two parties: routes, receipts, heartbeats, path tests (a
    /// [`crate::control::Control`]), in [`ChannelId::CONTROL`], whose numbers are not tracked.
    Control,
    /// A kind this version does not know; kept so newer peers do not break older ones.
    Unknown(u8),
}

impl Kind {
    fn to_byte(self) -> u8 {
        match self {
            Kind::Hello => 1,
            Kind::Note => 2,
            Kind::Channel => 3,
            Kind::Control => 4,
            Kind::Unknown(b) => b,
        }
    }

    fn from_byte(b: u8) -> Self {
        match b {
            1 => Kind::Hello,
            2 => Kind::Note,
            3 => Kind::Channel,
            4 => Kind::Control,
            other => Kind::Unknown(other),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    pub channel: ChannelId,
    pub sender_seq: u64,
    pub msg_id: MsgId,
    /// Sender's clock, milliseconds since the Unix epoch.
    pub sent_at: u64,
    pub kind: Kind,
    pub body: Vec<u8>,
}

impl Message {
    pub fn new(channel: ChannelId, sender_seq: u64, sent_at: u64, kind: Kind, body: Vec<u8>) -> Self {
        Self { channel, sender_seq, msg_id: random_array(), sent_at, kind, body }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(VERSION).u8(self.kind.to_byte()).raw(&self.channel.0);
        w.u64(self.sender_seq).raw(&self.msg_id).u64(self.sent_at).bytes32(&self.body);
        w.buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let m = || ProtoError::malformed("message");
        let mut r = Reader::new(bytes);
        if r.u8().map_err(m())? != VERSION {
            return Err(ProtoError::PeerMisbehaved("unsupported message version"));
        }
        let kind = Kind::from_byte(r.u8().map_err(m())?);
        let channel = ChannelId(r.array().map_err(m())?);
        let sender_seq = r.u64().map_err(m())?;
        let msg_id = r.array().map_err(m())?;
        let sent_at = r.u64().map_err(m())?;
        let body = r.bytes32(MAX_BODY).map_err(m())?.to_vec();
        r.finish().map_err(m())?;
        Ok(Self { channel, sender_seq, msg_id, sent_at, kind, body })
    }
}

/// Where and how to send to a party: its relay, the send capability of one of its receive
/// queues, and the key its blocks are sealed under.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Route {
    pub relay: RelayAddress,
    /// Size of every block that relay stores (fixed per deployment).
    pub block_size: u32,
    pub send_id: QueueId,
    pub send_secret: QueueSecret,
    pub block_key: SecretKey,
}

impl Route {
    /// Whether a message body of `len` bytes fits in one frame of this route's blocks.
    pub fn fits(&self, len: usize) -> bool {
        let capacity =
            crate::block::chunk_capacity(self.block_size as usize) * crate::block::MAX_FRAME_BLOCKS;
        len <= MAX_BODY && len + FRAME_OVERHEAD <= capacity
    }

    /// Cuts a frame into blocks sealed under this route's key, all of its block size.
    pub fn seal_blocks(&self, frame: &[u8]) -> Result<(crate::block::FrameId, Vec<Vec<u8>>)> {
        crate::block::seal_frame(frame, &self.block_key, self.block_size as usize)
    }

    pub fn encode(&self, w: &mut Writer) {
        w.bytes16(self.relay.to_string().as_bytes()).u32(self.block_size);
        w.raw(&self.send_id.0).raw(&self.send_secret.0).raw(&self.block_key.0);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let m = ProtoError::malformed;
        let relay_text = r.str16(512).map_err(m("route"))?;
        let relay =
            relay_text.parse().map_err(|_| ProtoError::PeerMisbehaved("bad relay address in route"))?;
        let block_size = r.u32().map_err(m("route"))?;
        if !(MIN_BLOCK_SIZE as u32..=MAX_BLOCK_SIZE as u32).contains(&block_size) {
            return Err(ProtoError::PeerMisbehaved("block size out of range in route"));
        }
        Ok(Self {
            relay,
            block_size,
            send_id: QueueId(r.array().map_err(m("route"))?),
            send_secret: QueueSecret(r.array().map_err(m("route"))?),
            block_key: SecretKey(r.array().map_err(m("route"))?),
        })
    }
}

/// Body of [`Kind::Hello`]: `card | reply | n u8 | route × n`. The tail (more reply routes,
/// on other hosts) is in Hellos answering version 2 invitations; it also says the acceptor
/// speaks [`Kind::Control`]. Hellos without it (`more: None`) come from earlier versions.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Hello {
    pub card: Card,
    pub reply: Route,
    pub more: Option<Vec<Route>>,
}

impl Hello {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.card.encode(&mut w);
        self.reply.encode(&mut w);
        if let Some(more) = &self.more {
            w.u8(more.len() as u8);
            more.iter().for_each(|r| r.encode(&mut w));
        }
        w.buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let m = ProtoError::malformed;
        let mut r = Reader::new(bytes);
        let card = Card::decode(&mut r)?;
        let reply = Route::decode(&mut r)?;
        let more = match r.remaining() {
            0 => None,
            _ => {
                let n = r.u8().map_err(m("hello"))? as usize;
                if n > crate::control::MAX_ROUTES - 1 {
                    return Err(ProtoError::PeerMisbehaved("hello with too many routes"));
                }
                Some((0..n).map(|_| Route::decode(&mut r)).collect::<Result<_>>()?)
            }
        };
        r.finish().map_err(m("hello"))?;
        Ok(Self { card, reply, more })
    }

    /// Every route the Hello names, its first reply route first.
    pub fn routes(&self) -> Vec<Route> {
        std::iter::once(self.reply.clone()).chain(self.more.iter().flatten().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_version_check() {
        let m = Message::new(ChannelId::DIRECT, 3, 1_700_000_000_000, Kind::Note, b"hi".to_vec());
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes).unwrap(), m);
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(matches!(Message::decode(&v2), Err(ProtoError::PeerMisbehaved(_))));
        assert!(Message::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    /// A Hello with more reply routes reads back with them; one without the tail (from an
    /// earlier version) reads as `more: None`, and a tail with too many is refused.
    #[test]
    fn hello_routes_tail() {
        let id = crate::identity::Identity::generate("Bao", "B").unwrap();
        let route = Route {
            relay: RelayAddress::for_certificate("127.0.0.1", 4443, b"cert"),
            block_size: 4096,
            send_id: QueueId::random(),
            send_secret: QueueSecret::random(),
            block_key: SecretKey::random(),
        };
        let hello = Hello { card: id.card(), reply: route.clone(), more: Some(vec![route.clone()]) };
        let back = Hello::decode(&hello.encode()).unwrap();
        assert_eq!((back.routes().len(), &back), (2, &hello));
        let old = Hello { more: None, ..hello.clone() };
        assert_eq!(Hello::decode(&old.encode()).unwrap().more, None);
        let many = Hello { more: Some(vec![route; 8]), ..hello };
        assert!(matches!(Hello::decode(&many.encode()), Err(ProtoError::PeerMisbehaved(_))));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Message::decode(&bytes);
            let _ = Hello::decode(&bytes);
        }

        #[test]
        fn any_message_round_trips(seq in any::<u64>(), at in any::<u64>(), kind in 0u8..8, body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let m = Message::new(ChannelId([kind; 16]), seq, at, Kind::from_byte(kind), body);
            prop_assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }
}
