//! The relay API, as types and a byte codec shared by the relay (the host) and the client.
//!
//! Everything here is what a host may see: queue ids, capability secrets (bearer tokens that
//! let one send into, or read from, a queue), and opaque fixed-size blocks. No plaintext, no
//! names, no identity keys. The crate does no I/O.
//!
//! ```
//! use backchannel_wire::{QueueSecret, SendItem, SendBatch, QueueId};
//! let item = SendItem { send_id: QueueId::random(), secret: QueueSecret::random(), block: vec![7; 64] };
//! let bytes = SendBatch { items: vec![item] }.encode();
//! let back = SendBatch::decode(&bytes, 64).unwrap();
//! assert_eq!(back.items.len(), 1);
//! ```
#![forbid(unsafe_code)]

mod address;
mod api;
pub mod codec;
mod ids;

pub use address::{AddressError, MAX_FINGERPRINTS, MAX_NODES, RelayAddress, RelayNode};
pub use api::{
    AckRequest, ApiError, ApiErrorBody, CreateQueueRequest, CreateQueueResponse, Delivered, FetchResponse,
    SendBatch, SendItem, SendOutcome, SendResponse, WsClientMessage, WsServerMessage, ws_delivery_decode,
    ws_delivery_encode,
};
pub use codec::DecodeError;
pub use ids::{QueueId, QueueSecret, SecretHash, SecretHex, hex_encode};

/// Default size of every block a relay stores: all envelopes look alike to the host.
pub const DEFAULT_BLOCK_SIZE: usize = 4096;
/// Smallest and largest block sizes a deployment may configure.
pub const MIN_BLOCK_SIZE: usize = 1024;
pub const MAX_BLOCK_SIZE: usize = 65536;
/// Most items in one send batch or one fetch answer.
pub const MAX_BATCH: usize = 1024;
/// API version prefix of every path.
pub const API_PREFIX: &str = "/v1";
