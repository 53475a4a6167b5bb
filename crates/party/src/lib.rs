//! Backchannel's negotiation rules, sans I/O: contacts as the party sees them, gap tracking
//! of direct conversations, channels (membership, phases, shuttle forwarding, held messages),
//! non-papers and agreements, and private red-line probes.
//!
//! Every rule is a function of the state it changes, a [`Ctx`] (who we are, what time it is),
//! a read-only [`Lookup`] of what else the party holds, and an input. It returns a
//! [`Step`]: the effects the engine must carry out (seal a message to a party, add an entry
//! to a timeline, schedule network work, store a text), or a [`Why`] it refused. Nothing
//! here touches a clock, a disk or a socket; the engine (`backchannel-client`) applies each
//! step in one store transaction.
//!
//! ```
//! use backchannel_party::{Ctx, channel::Channel, event::Entry, step::Effect};
//! use backchannel_proto::channel::{Mode, Role};
//! use backchannel_proto::identity::Identity;
//!
//! let me = Identity::generate("Alice", "Delegation A").unwrap().card();
//! let ctx = Ctx { me: &me, now_ms: 1_800_000_000_000 };
//! let (channel, step) = Channel::create(&ctx, "muscat", Mode::Direct, Role::Principal, None, None).unwrap();
//! assert_eq!(channel.state.members.len(), 1);
//! assert!(matches!(step.effects.as_slice(), [Effect::Record { entry: Entry::Channel { .. }, .. }]));
//! ```
#![forbid(unsafe_code)]

pub mod channel;
pub mod contacts;
pub mod conversation;
pub mod documents;
pub mod event;
pub mod lookup;
pub mod probes;
pub mod step;
pub mod why;

mod b64;

pub use event::{ChannelEvent, Conversation, Entry, Event, ProbeEvent};
pub use lookup::Lookup;
pub use step::{Effect, Step, Task, TextId};
pub use why::Why;

use backchannel_proto::identity::Card;

/// Who we are and what time it is, as every rule sees them.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    pub me: &'a Card,
    /// Our clock, milliseconds since the Unix epoch.
    pub now_ms: u64,
}

/// A rule's answer: the effects to carry out, or why it refused.
pub type Outcome<T = Step> = Result<T, Why>;
