//! The body of [`crate::message::Kind::Control`] messages: the line's own upkeep between two
//! parties, sealed in their pairwise session like a note (so as deniable, never signed, and
//! as opaque to hosts: every one is a padded block like any other).
//!
//! ```text
//! control   = tag u8 | fields
//! 1 routes  = version u32 | n u8 | route × n | joins u8 | relay × joins | leaves u8 | relay × leaves
//! 2 ack     = version u32
//! 3 receipt = n u16 | frame_id[16] × n
//! 4 beat    = interval_ms u32 | n u8 | (send_id[16] | heard_ago_ms u32) × n
//! 5 test    = nonce[16]
//! 6 echo    = nonce[16] | via send_id[16]
//! relay     = len u16 | address text
//! ```
//!
//! A `routes` message is the sender's whole set of inboxes for the receiver, which replaces
//! the last one it sent (a larger `version` wins); `joins` asks the receiver to add an inbox
//! of its own on those hosts, `leaves` to move its inboxes off those. The sender deletes an
//! inbox it dropped only once the receiver acknowledged a version without it.

use backchannel_wire::codec::{Reader, Writer};
use backchannel_wire::{QueueId, RelayAddress};

use crate::block::FrameId;
use crate::error::{ProtoError, Result};
use crate::message::Route;

/// Most inboxes (routes) one party keeps for one contact.
pub const MAX_ROUTES: usize = 8;
/// Most frames one receipt confirms.
pub const MAX_RECEIPT: usize = 1024;
/// "Never heard" in a heartbeat's report.
pub const NEVER: u32 = u32::MAX;

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Control {
    /// The sender's inboxes for the receiver (all of them), and the hosts it asks the receiver
    /// to add inboxes on (`join`) or to leave (`leave`).
    Routes { version: u32, routes: Vec<Route>, join: Vec<RelayAddress>, leave: Vec<RelayAddress> },
    /// The receiver of `Routes { version }` now sends only to those routes.
    RoutesAck { version: u32 },
    /// Frames taken in (stored on the receiver's device): end-to-end delivery receipts.
    Receipt { frames: Vec<FrameId> },
    /// The line is alive; for each of the sender's inboxes (by the send id the receiver knows
    /// it by), how long ago the sender last heard the receiver there ([`NEVER`]: never).
    Heartbeat { interval_ms: u32, heard: Vec<(QueueId, u32)> },
    /// A path test: the receiver answers with [`Control::PathEcho`].
    PathTest { nonce: [u8; 16] },
    /// The answer to a path test that came in on the inbox the sender knows as `via`.
    PathEcho { nonce: [u8; 16], via: QueueId },
}

impl Control {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Control::Routes { version, routes, join, leave } => {
                w.u8(1).u32(*version).u8(routes.len() as u8);
                routes.iter().for_each(|r| r.encode(&mut w));
                for relays in [join, leave] {
                    w.u8(relays.len() as u8);
                    relays.iter().for_each(|r| {
                        w.bytes16(r.to_string().as_bytes());
                    });
                }
            }
            Control::RoutesAck { version } => {
                w.u8(2).u32(*version);
            }
            Control::Receipt { frames } => {
                w.u8(3).u16(frames.len() as u16);
                frames.iter().for_each(|f| {
                    w.raw(f);
                });
            }
            Control::Heartbeat { interval_ms, heard } => {
                w.u8(4).u32(*interval_ms).u8(heard.len() as u8);
                heard.iter().for_each(|(q, ago)| {
                    w.raw(&q.0).u32(*ago);
                });
            }
            Control::PathTest { nonce } => {
                w.u8(5).raw(nonce);
            }
            Control::PathEcho { nonce, via } => {
                w.u8(6).raw(nonce).raw(&via.0);
            }
        }
        w.buf
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let m = |e| ProtoError::malformed("control message")(e);
        let mut r = Reader::new(bytes);
        let control = match r.u8().map_err(m)? {
            1 => {
                let version = r.u32().map_err(m)?;
                let routes =
                    (0..count(&mut r, MAX_ROUTES)?).map(|_| Route::decode(&mut r)).collect::<Result<_>>()?;
                let join = relays(&mut r)?;
                let leave = relays(&mut r)?;
                Control::Routes { version, routes, join, leave }
            }
            2 => Control::RoutesAck { version: r.u32().map_err(m)? },
            3 => {
                let n = r.u16().map_err(m)? as usize;
                if n > MAX_RECEIPT {
                    return Err(ProtoError::PeerMisbehaved("receipt for too many frames"));
                }
                Control::Receipt { frames: (0..n).map(|_| r.array().map_err(m)).collect::<Result<_>>()? }
            }
            4 => {
                let interval_ms = r.u32().map_err(m)?;
                let heard = (0..count(&mut r, MAX_ROUTES)?)
                    .map(|_| Ok((QueueId(r.array().map_err(m)?), r.u32().map_err(m)?)))
                    .collect::<Result<_>>()?;
                Control::Heartbeat { interval_ms, heard }
            }
            5 => Control::PathTest { nonce: r.array().map_err(m)? },
            6 => Control::PathEcho { nonce: r.array().map_err(m)?, via: QueueId(r.array().map_err(m)?) },
            _ => return Err(ProtoError::PeerMisbehaved("unknown control message")),
        };
        r.finish().map_err(m)?;
        Ok(control)
    }
}

fn count(r: &mut Reader<'_>, max: usize) -> Result<usize> {
    let n = r.u8().map_err(ProtoError::malformed("control message"))? as usize;
    if n > max {
        return Err(ProtoError::PeerMisbehaved("control message lists too many routes"));
    }
    Ok(n)
}

fn relays(r: &mut Reader<'_>) -> Result<Vec<RelayAddress>> {
    (0..count(r, MAX_ROUTES)?)
        .map(|_| {
            let text = r.str16(512).map_err(ProtoError::malformed("control message"))?;
            text.parse().map_err(|_| ProtoError::PeerMisbehaved("bad relay address in control message"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use backchannel_wire::QueueSecret;
    use proptest::prelude::*;

    use super::*;
    use crate::crypto::SecretKey;

    fn route() -> Route {
        Route {
            relay: RelayAddress::for_certificate("127.0.0.1", 4443, b"cert"),
            block_size: 4096,
            send_id: QueueId::random(),
            send_secret: QueueSecret::random(),
            block_key: SecretKey::random(),
        }
    }

    #[test]
    fn every_control_message_round_trips() {
        let relay = RelayAddress::for_certificate("10.0.0.2", 443, b"other");
        let all = [
            Control::Routes {
                version: 3,
                routes: vec![route(), route()],
                join: vec![relay.clone()],
                leave: vec![],
            },
            Control::RoutesAck { version: 3 },
            Control::Receipt { frames: vec![[1; 16], [2; 16]] },
            Control::Heartbeat {
                interval_ms: 10_000,
                heard: vec![(QueueId([7; 16]), 1200), (QueueId([8; 16]), NEVER)],
            },
            Control::PathTest { nonce: [9; 16] },
            Control::PathEcho { nonce: [9; 16], via: QueueId([4; 16]) },
        ];
        for c in all {
            assert_eq!(Control::decode(&c.encode()).unwrap(), c);
        }
    }

    #[test]
    fn bounds_and_damage_are_refused() {
        let mut many = vec![3u8];
        many.extend_from_slice(&((MAX_RECEIPT + 1) as u16).to_be_bytes());
        many.extend(std::iter::repeat_n(0u8, 16 * (MAX_RECEIPT + 1)));
        assert!(matches!(Control::decode(&many), Err(ProtoError::PeerMisbehaved(_))));
        let beat = Control::Heartbeat { interval_ms: 1, heard: vec![] }.encode();
        assert!(Control::decode(&beat[..beat.len() - 1]).is_err());
        let mut trailing = beat.clone();
        trailing.push(0);
        assert!(Control::decode(&trailing).is_err());
        assert!(Control::decode(&[99]).is_err());
        assert!(Control::decode(&[]).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Control::decode(&bytes);
        }
    }
}
