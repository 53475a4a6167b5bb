//! The read port: what a rule may ask about the rest of the party's state. The engine
//! implements it over its store and the sessions it holds; tests implement it in memory.

use backchannel_proto::identity::{Card, PartyKey};
use backchannel_proto::message::ChannelId;

use crate::step::TextId;

pub trait Lookup {
    /// Whether we hold a pairwise session with `party` (a contact of ours).
    fn has_session(&self, party: &PartyKey) -> bool;
    /// The card of a contact we hold a session with, and whether its safety number was
    /// compared: a key learned from the contact itself, not from a channel's creator.
    fn contact(&self, party: &PartyKey) -> Option<(Card, bool)>;
    /// A stored document text.
    fn text(&self, id: &TextId) -> Option<String>;
    /// How many channels we are not in hold messages for strangers now.
    fn held_channels(&self) -> usize;
    /// Probes on `issue` with a member of side `side` in our channels other than `channel`
    /// (see `ChannelProbes::spent_with`): a probe budget is kept per counterpart side across
    /// channels.
    fn probes_elsewhere(&self, channel: &ChannelId, side: &str, issue: &str) -> u32 {
        let _ = (channel, side, issue);
        0
    }
}

/// A party that knows nothing beyond what a rule is given (no contacts, no texts).
pub struct Nothing;

impl Lookup for Nothing {
    fn has_session(&self, _: &PartyKey) -> bool {
        false
    }
    fn contact(&self, _: &PartyKey) -> Option<(Card, bool)> {
        None
    }
    fn text(&self, _: &TextId) -> Option<String> {
        None
    }
    fn held_channels(&self) -> usize {
        0
    }
}
