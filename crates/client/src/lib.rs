//! A party's engine: the encrypted local store, the durable outbox, connections to relays,
//! and the glue that drives the sans-IO protocol core (`backchannel-proto`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), backchannel_client::ClientError> {
//! use backchannel_client::{Party, Passphrase};
//! let pass = Passphrase::new("correct horse".into());
//! let mut alice = Party::init("/tmp/alice".as_ref(), &pass, "Alice", "Delegation A")?;
//! let relay = "bcr://127.0.0.1:4443#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".parse().unwrap();
//! let invitation = alice.invite(&relay, 3600).await?;
//! # let _ = invitation; Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod channels;
mod documents;
mod error;
mod introductions;
mod invite;
mod model;
mod outbox;
mod party;
mod probes;
mod receive;
mod store;
mod transport;
mod watch;

pub use backchannel_redline::ProbeBudget;
pub use channels::{ChannelView, Fanout, MemberView};
pub use documents::{MAX_DOCUMENT, PaperVersion, ProposalView};
pub use error::{ClientError, Result};
pub use model::{ContactView, Entry, EntryView, Event, Inbox, SyncReport, format_ranges};
pub use outbox::{FlushReport, MAX_NOTE};
pub use party::Party;
pub use probes::{
    Asker, DEFAULT_BUDGET, IssueBudget, MAX_CHANNEL_CAP, ProbeRequest, ProbeSpec, ProbeView, ProbesView,
};
pub use store::Passphrase;
pub use transport::{RelayClient, WsStream, connect_tls, connect_ws};
pub use watch::WatchStatus;
