//! A party's engine: one long-lived [`Engine`] per home that holds the encrypted local store,
//! the pairwise sessions in memory, the durable outbox and the connections to relays, and
//! carries out the decisions of the sans-IO rules (`backchannel-party`) in one store
//! transaction each. Front ends talk to it through [`Engine`]'s commands (or the same
//! [`Command`]s over the home's local socket) and hear what happens from
//! [`Engine::subscribe`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), backchannel_client::ClientError> {
//! use backchannel_client::{Engine, EngineConfig, Passphrase};
//! let pass = Passphrase::new("correct horse".into());
//! let alice = Engine::init("/tmp/alice".as_ref(), &pass, "Alice", "Delegation A", EngineConfig::default())?;
//! let relay = "bcr://127.0.0.1:4443#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".parse().unwrap();
//! let invitation = alice.invite(&[relay], 3600).await?;
//! let mut updates = alice.subscribe();
//! # let _ = (invitation, updates.try_recv()); Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod api;
mod b64;
mod command;
mod config;
mod engine;
mod error;
mod home;
mod local;
mod net;
mod store;

pub use api::{Delivery, Engine, EntryView, ProbeInputSpec};
pub use command::{Command, Reply};
pub use config::EngineConfig;
pub use engine::{
    ContactView, DeliveryStatus, DeliveryView, Direction, Fanout, FlushReport, QueuedView, RecipientView,
    RouteNote, RouteState, RouteView, SyncReport, TaskTrouble, Update,
};
pub use error::{ClientError, ErrorKind, Result};
pub use local::{Door, Remote, run_serving};
pub use store::Passphrase;

/// The vocabulary front ends show: the rules' views, events and refusal reasons.
pub use backchannel_party::{
    ChannelEvent, Conversation, Entry, Event, ProbeEvent, Why,
    channel::{ChannelView, MemberView},
    documents::{MAX_DOCUMENT, PaperVersion, ProposalView},
    event::{AbortReason, ConversationKind},
    probes::{
        Asker, DEFAULT_BUDGET, DeclinedBy, IssueBudget, MAX_CHANNEL_CAP, ProbeRequest, ProbeSpec,
        ProbeStatus, ProbeView, ProbesView,
    },
    why::{MessageFault, PeerReason},
};
pub use backchannel_proto::channel::{Hotline, Mode, Phase, PhasePolicy, Role};
pub use backchannel_redline::{ProbeBudget, ProbeResult, ProbeTerms};

/// Raw relay connections, for the benchmark harness only: not part of the engine's API.
#[doc(hidden)]
pub use net::{RelayClient, WsStream, connect_tls, connect_ws};
