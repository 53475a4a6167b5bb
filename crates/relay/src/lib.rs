//! The Backchannel relay (the "host"): stores and forwards fixed-size sealed blocks.
//!
//! A relay knows queues, not people. A queue has a receive id and a send id, each opened by
//! its own 32-byte secret that the client makes; the relay keeps only the secrets' SHA-256
//! hashes. Senders post batches of blocks (`POST /v1/send`); the receiver fetches
//! (`GET /v1/queues/{id}/blocks`) or follows over a WebSocket (`GET /v1/ws`), and acknowledges
//! blocks, which deletes them. Everything is served over TLS with a self-signed certificate
//! whose fingerprint is part of the relay address, so clients pin it. Blocks are stored in
//! SQLite (embedded) or PostgreSQL, committed to disk before a send is answered, with group
//! commit so one fsync covers every send in flight.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), backchannel_relay::RelayError> {
//! use backchannel_relay::{RelayOptions, start};
//!
//! let dir = tempfile::tempdir().map_err(|e| backchannel_relay::RelayError::Server(e.to_string()))?;
//! let relay = start(RelayOptions::new("127.0.0.1:0".parse().unwrap(), dir.path())).await?;
//! println!("give clients this address: {}", relay.address());
//! assert_eq!(relay.stats().await?.queues, 0);
//! relay.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Code map: `server` (accept loop, connection limit, graceful shutdown), `routes` (one
//! handler per API operation), `ws` (WebSocket follow and ack), `error` (the one mapping from
//! errors to HTTP statuses), `limits` (rate and size), [`store`] (the store interface, its two
//! engines, group commit, and the conformance suite), `tls`, `metrics`.
#![forbid(unsafe_code)]

mod config;
mod error;
mod lean_tls;
mod limits;
mod metrics;
mod notify;
mod routes;
mod server;
pub mod store;
mod tls;
mod ws;

pub use config::{MetricsToken, RelayConfig, RelayOptions, StoreSpec, TlsFiles};
pub use error::{RelayError, StoreError};
pub use server::{RunningRelay, run, shutdown_signal, start};
pub use store::{AnyStore, PostgresStore, SqliteStore, StoreOptions, StoreStats};
pub use tls::load_or_create_tls;
