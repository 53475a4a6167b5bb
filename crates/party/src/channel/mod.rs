//! Channels as a party runs them: the aggregate it keeps for each ([`Channel`]), the creator's
//! commands, notes and their fan-out, and taking in what members send. The state and its
//! rules of who may do what live in `backchannel_proto::channel`; here is what a member does
//! with them.

mod hold;
mod membership;
mod phase;
mod receive;
mod shuttle;

use backchannel_proto::channel::{
    ChannelState, Compared, Hotline, Member, MemberKey, Mode, Phase, PhasePolicy, PhaseVote, Role, StateAt,
};
use backchannel_proto::identity::{Card, safety_number};
use backchannel_proto::message::Kind;
use serde::{Deserialize, Serialize};

pub use hold::{Held, HeldMessages, MAX_HELD, MAX_HELD_BYTES, MAX_HELD_CHANNELS};
pub use receive::{Incoming, Received, body_of, receive, receive_held};

use crate::contacts::{Found, find};
use crate::documents::Documents;
use crate::event::{ChannelEvent, Conversation, Entry};
use crate::lookup::Lookup;
use crate::probes::ChannelProbes;
use crate::step::{Effect, Step};
use crate::why::Why;
use crate::{Ctx, Outcome};

/// A channel as this party holds it: the creator's state and what this member adds to it.
#[derive(Serialize, Deserialize)]
pub struct Channel {
    pub state: ChannelState,
    /// The phase vote as this member heard it (each consent, in a direct channel; the
    /// creator's tally, in a shuttle).
    pub vote: PhaseVote,
    /// The creator removed us: we keep what was said, and send nothing more.
    pub removed: bool,
    /// Members removed so far: their late messages are refused, not held.
    #[serde(default)]
    pub former: Vec<MemberKey>,
    #[serde(flatten)]
    pub docs: Documents,
    /// Private red-line probes with other members: budget, log, and our secrets until used.
    #[serde(default)]
    pub probes: ChannelProbes,
    /// Messages earlier versions kept here for members without a session yet; the engine
    /// moves them to its own queue when it opens the channel.
    #[serde(default, rename = "waiting", skip_serializing_if = "Vec::is_empty")]
    pub legacy_waiting: Vec<LegacyWaiting>,
    /// A member whose messages say it holds a newer state than ours (its name and that
    /// version): an update from the creator has not reached us yet, or was kept from us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ahead: Option<(String, u64)>,
    /// The last version at which a member was found holding another state than ours (told
    /// once per version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_at: Option<u64>,
}

/// A message an earlier version kept for a member without a session.
#[derive(Clone, Serialize, Deserialize)]
pub struct LegacyWaiting {
    pub to: MemberKey,
    pub kind: u8,
    #[serde(with = "crate::b64")]
    pub body: Vec<u8>,
}

impl LegacyWaiting {
    pub fn kind(&self) -> Kind {
        if self.kind == 3 { Kind::Channel } else { Kind::Note }
    }
}

/// A member as shown to the user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberView {
    pub name: String,
    pub side: String,
    pub role: Role,
    pub you: bool,
    pub creator: bool,
    /// Compare it with this member out of band (absent for yourself).
    pub safety_number: Option<String>,
    /// Whether a pairwise session exists yet (introductions take a sync or two).
    pub connected: bool,
    pub verified: bool,
}

/// A channel as shown to the user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChannelView {
    pub name: String,
    pub mode: Mode,
    pub phase: Phase,
    pub policy: PhasePolicy,
    pub members: Vec<MemberView>,
    /// A phase change under consideration, and the sides that have not consented yet.
    pub proposed_phase: Option<(Phase, Vec<String>)>,
    pub removed: bool,
    /// A member holds a newer state than ours (its name and version): the creator's update
    /// has not reached us yet, or was kept from us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behind: Option<(String, u64)>,
}

impl Channel {
    pub fn new(state: ChannelState) -> Self {
        Self {
            state,
            vote: PhaseVote::default(),
            removed: false,
            former: Vec::new(),
            docs: Documents::default(),
            probes: ChannelProbes::default(),
            legacy_waiting: Vec::new(),
            ahead: None,
            forked_at: None,
        }
    }

    /// Stamps this channel's messages in `step` with the state we hold (its version and
    /// digest), so members that hold another state see it (M5). A message to someone no longer
    /// a member (the notice to a removed member) is not stamped: the digest would let it test
    /// guesses of who remains.
    pub fn stamp(&self, mut step: Step) -> Step {
        let at = self.state.at();
        for effect in &mut step.effects {
            if let Effect::Seal { to, channel, kind: Kind::Channel, body } = effect
                && *channel == self.state.id
                && to.iter().all(|k| self.state.member(k).is_some())
            {
                *body = backchannel_proto::channel::stamp(body, &at);
            }
        }
        step
    }

    /// What a member's message says about the state it holds, against ours: a newer version
    /// is remembered (shown in the channel's view until ours catches up); the same version
    /// with another digest means the creator published two states, and is told. Returns
    /// whether the channel changed, and what to record.
    pub fn heard_state(&mut self, ctx: &Ctx<'_>, sender: &Card, at: &StateAt) -> (bool, Step) {
        let mut step = Step::none();
        let before = (self.ahead.clone(), self.forked_at);
        if self.state.member(&sender.party()).is_some() && !self.removed {
            match at.compare(&self.state) {
                Compared::Ahead if self.ahead.as_ref().is_none_or(|(_, v)| *v < at.version) => {
                    self.ahead = Some((sender.name.clone(), at.version));
                }
                Compared::Forked if self.forked_at != Some(at.version) => {
                    self.forked_at = Some(at.version);
                    let what = ChannelEvent::StateForked {
                        name: sender.name.clone(),
                        side: sender.side.clone(),
                        version: at.version,
                    };
                    self.tell(&mut step, ctx, what);
                }
                _ => {}
            }
        }
        if self.ahead.as_ref().is_some_and(|(_, v)| *v <= self.state.version) {
            self.ahead = None;
        }
        ((self.ahead.clone(), self.forked_at) != before, step)
    }

    /// Creates a channel with us as its creator and only member. `retention_secs` replaces
    /// the exploratory phase's default retention.
    pub fn create(
        ctx: &Ctx<'_>,
        name: &str,
        mode: Mode,
        role: Role,
        retention_secs: Option<u64>,
        hotline: Option<Hotline>,
    ) -> Outcome<(Channel, Step)> {
        let mut state = ChannelState::new(name, mode, ctx.me.clone(), role)?;
        if let Some(secs) = retention_secs {
            state.policies[Phase::Exploratory as usize].retention_secs = Some(secs);
        }
        if let Some(h) = hotline {
            h.check()?;
            state.hotline = Some(h);
        }
        let channel = Channel::new(state);
        let mut step = Step::none();
        channel.tell(&mut step, ctx, ChannelEvent::Created { mode });
        Ok((channel, step))
    }

    pub fn conversation(&self) -> Conversation {
        Conversation::channel(&self.state)
    }

    fn tell(&self, step: &mut Step, ctx: &Ctx<'_>, what: ChannelEvent) {
        step.record(&self.conversation(), Entry::channel(what, ctx.now_ms));
    }

    /// The name the channel's creator goes by (as its state lists it).
    pub fn creator_name(&self) -> &str {
        self.state.member(&self.state.creator).map_or("", |m| m.card.name.as_str())
    }

    /// A member by `NAME` or `NAME@SIDE`.
    pub fn find_member(&self, query: &str) -> Outcome<&Member> {
        let not = |query: &str| (query.to_owned(), self.state.name.clone());
        match find(self.state.members.iter(), |m| &m.card, query) {
            Found::One(m) => Ok(m),
            Found::None => {
                let (query, channel) = not(query);
                Err(Why::NoSuchMember { query, channel })
            }
            Found::Several => {
                let (query, channel) = not(query);
                Err(Why::AmbiguousMember { query, channel })
            }
        }
    }

    fn not_removed(&self) -> Outcome<()> {
        match self.removed {
            true => Err(Why::RemovedFromChannel { channel: self.state.name.clone() }),
            false => Ok(()),
        }
    }

    /// Seals a note to the channel's members as its mode says (in a shuttle, the hub names
    /// the members in `to`). Returns who it goes to.
    pub fn note(&self, ctx: &Ctx<'_>, text: &str, to: &[String]) -> Outcome<(Vec<Member>, Step)> {
        self.not_removed()?;
        let members = self.note_recipients(ctx, to)?;
        let mut step = Step::none();
        let keys = members.iter().map(Member::key).collect();
        let body = text.as_bytes().to_vec();
        step.push(Effect::Seal { to: keys, channel: self.state.id, kind: Kind::Note, body });
        step.record(&self.conversation(), crate::conversation::sent(ctx, text, 0));
        Ok((members, step))
    }

    /// Who receives a note from us, with `to` naming members (NAME or NAME@SIDE) in a shuttle.
    fn note_recipients(&self, ctx: &Ctx<'_>, to: &[String]) -> Outcome<Vec<Member>> {
        let keys = to.iter().map(|q| Ok(self.find_member(q)?.key())).collect::<Outcome<Vec<_>>>()?;
        Ok(self.state.note_recipients(&ctx.me.party(), &keys)?.into_iter().cloned().collect())
    }

    /// How the channel looks to the user.
    pub fn view(&self, me: &Card, lookup: &dyn Lookup) -> ChannelView {
        let members = self
            .state
            .members
            .iter()
            .map(|m| {
                let you = m.key() == me.party();
                let contact = if you { None } else { lookup.contact(&m.key()) };
                MemberView {
                    name: m.card.name.clone(),
                    side: m.card.side.clone(),
                    role: m.role,
                    you,
                    creator: m.key() == self.state.creator,
                    safety_number: (!you).then(|| safety_number(me, &m.card)),
                    connected: contact.is_some(),
                    verified: contact.is_some_and(|(_, verified)| verified),
                }
            })
            .collect();
        ChannelView {
            name: self.state.name.clone(),
            mode: self.state.mode,
            phase: self.state.phase,
            policy: self.state.policy(),
            members,
            proposed_phase: self.vote.to.map(|p| (p, self.vote.missing(&self.state))),
            removed: self.removed,
            behind: self.ahead.clone(),
        }
    }

    /// Channel notes older than the phase's retention allows, to delete: the relay's TTL bounds
    /// what is never fetched; this bounds what was.
    pub fn expired(&self, now_ms: u64, entry: &Entry) -> bool {
        let Some(keep) = self.state.policy().retention_secs else { return false };
        let cutoff = now_ms.saturating_sub(keep.saturating_mul(1000));
        matches!(entry, Entry::Note { at, .. } if *at < cutoff)
    }
}
