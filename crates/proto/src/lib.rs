//! Backchannel's protocol core, sans I/O: identities and safety numbers, one-time
//! invitations, pairwise sessions (vodozemac Olm inside a post-quantum ML-KEM-768 chain),
//! fixed-size blocks for the host, typed messages, and delivery tracking. Time and
//! randomness come in from outside or from the OS generator; no sockets, files or clocks.
//!
//! ```
//! use backchannel_proto::{identity::Identity, invitation, session, message::*, crypto::SecretKey};
//! use backchannel_proto::block::{open_block, Reassembler};
//! use backchannel_wire::{QueueId, QueueSecret, RelayAddress};
//!
//! let relay = RelayAddress::for_certificate("127.0.0.1", 4443, b"cert");
//! let route = |k| Route { relay: relay.clone(), block_size: 4096, send_id: QueueId::random(), send_secret: QueueSecret::random(), block_key: k };
//! let mut alice = Identity::generate("Alice", "Delegation A").unwrap();
//! let bao = Identity::generate("Bao", "Delegation B").unwrap();
//! let (inv, pending) = invitation::create(&mut alice, route(SecretKey::random()), QueueId::random(), QueueSecret::random(), u64::MAX).unwrap();
//! let text = inv.to_text();
//! let inv = invitation::Invitation::from_text(&text).unwrap();
//! let (mut bao_session, hello) = session::accept(inv, &bao, route(SecretKey::random()), 0).unwrap();
//!
//! let frame = |blocks: &[Vec<u8>], key: &SecretKey| {
//!     let mut r = Reassembler::default();
//!     blocks.iter().find_map(|b| r.push(open_block(b, key).unwrap()).unwrap()).unwrap().1
//! };
//! let (mut alice_session, _) = session::answer(&pending, &mut alice, &frame(&hello.blocks, &pending.route.block_key)).unwrap();
//! let note = alice_session.seal(ChannelId::DIRECT, Kind::Note, b"an opening".to_vec(), 1).unwrap();
//! let got = bao_session.open(&frame(&note.blocks, &bao_session.recv_block_key)).unwrap();
//! assert_eq!(got.body, b"an opening");
//! ```
#![forbid(unsafe_code)]

pub mod agreement;
pub mod block;
pub mod channel;
pub mod control;
pub mod crypto;
pub mod delivery;
pub mod error;
pub mod identity;
pub mod invitation;
pub mod message;
pub mod pq;
pub mod session;

pub use error::ProtoError;
