//! Channels: a named conversation among a few parties, carried by pairwise fan-out over their
//! sessions. This module holds the channel's state and its rules (who is a member, who may
//! post, who receives what, when the phase moves) and the bodies of channel messages. It does
//! no I/O; the client applies it.
//!
//! The creator is the channel's authority on membership and phase: it alone publishes
//! [`ChannelState`], numbered by `version`, and members take only newer versions from it. The
//! members check every message against the state they hold: a sender that is not (or no longer)
//! a member is refused.

use backchannel_redline::{ProbeBudget, ProbeTerms};
use serde::{Deserialize, Serialize};

use crate::crypto::random_array;
use crate::error::{ProtoError, Result};
use crate::identity::{Card, PartyKey, validate_label};
use crate::message::ChannelId;

/// Most members a channel may have (pairwise fan-out costs one seal per member).
pub const MAX_MEMBERS: usize = 50;
/// Largest channel-message body we accept, in bytes (a non-paper or proposal of 1 MiB and more).
pub const MAX_CONTROL_BODY: usize = crate::message::MAX_BODY;
/// Longest title of a non-paper or proposal, in bytes.
pub const MAX_TITLE: usize = 200;

/// How members are told apart: a party's key (names and sides are only labels).
pub type MemberKey = PartyKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Everyone sees everyone's notes.
    Direct,
    /// A star around the creator (an intermediary): sides talk only to it, and what it
    /// passes on is marked as relayed by it.
    Shuttle,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Speaks for a side; its side's consent counts for phase changes.
    Principal,
    /// Trusted by several sides; may run a shuttle.
    Intermediary,
    /// Reads only.
    Observer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Exploratory,
    Drafting,
    Agreed,
    Public,
}

impl Phase {
    pub const ALL: [Phase; 4] = [Phase::Exploratory, Phase::Drafting, Phase::Agreed, Phase::Public];

    pub fn next(self) -> Option<Phase> {
        Self::ALL.get(self as usize + 1).copied()
    }

    pub fn name(self) -> &'static str {
        ["exploratory", "drafting", "agreed", "public"][self as usize]
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown phase {s:?}: exploratory, drafting, agreed or public"))
    }
}

/// What a phase allows: how long notes are kept, and whether probes may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhasePolicy {
    /// Clients delete notes older than this (seconds); `None` keeps them.
    pub retention_secs: Option<u64>,
    pub probes_allowed: bool,
}

impl PhasePolicy {
    /// Talk is kept briefly while it is exploratory (the relay's TTL, 14 days), longer while
    /// drafting; what was agreed is kept, and probes stop once terms are agreed.
    pub fn defaults() -> [PhasePolicy; 4] {
        let days = |d: u64| Some(d * 24 * 3600);
        [
            PhasePolicy { retention_secs: days(14), probes_allowed: true },
            PhasePolicy { retention_secs: days(60), probes_allowed: true },
            PhasePolicy { retention_secs: None, probes_allowed: false },
            PhasePolicy { retention_secs: None, probes_allowed: false },
        ]
    }
}

/// A hotline channel's line discipline: every member keeps heartbeats on every route with
/// every other member it has a session with, and tests every route end to end now and then.
/// Fixed at creation, like the phase policies: joining a hotline is consenting to it (its
/// heartbeats show hosts when a member's device is on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hotline {
    pub heartbeat_secs: u32,
    pub path_test_secs: u32,
}

impl Hotline {
    /// A heartbeat every 10 seconds, a path test every hour.
    pub const DEFAULT: Hotline = Hotline { heartbeat_secs: 10, path_test_secs: 3600 };

    pub fn check(&self) -> std::result::Result<(), Refused> {
        let ok = (1..=3600).contains(&self.heartbeat_secs)
            && (self.heartbeat_secs..=7 * 24 * 3600).contains(&self.path_test_secs);
        match ok {
            true => Ok(()),
            false => refuse(Refused::BadHotline),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub card: Card,
    pub role: Role,
    /// The state version that added it: later members introduce themselves to earlier ones.
    pub since: u64,
}

impl Member {
    pub fn key(&self) -> PartyKey {
        self.card.party()
    }
}

/// A channel as its creator publishes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    pub id: ChannelId,
    pub name: String,
    pub mode: Mode,
    pub creator: MemberKey,
    /// Bumped on every change; members ignore anything not newer than what they hold.
    pub version: u64,
    pub members: Vec<Member>,
    pub phase: Phase,
    pub policies: [PhasePolicy; 4],
    /// The phase change under vote and the sides that consented, as the creator tallied it
    /// (so members that do not hear each other, in a shuttle, still see the proposal).
    #[serde(default)]
    pub vote: PhaseVote,
    /// A hotline channel (see [`Hotline`]); channels of earlier versions are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotline: Option<Hotline>,
}

/// Why a channel rule said no. Data, not words: front ends say it in their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "refusal", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refused {
    #[error("channel name: {why}")]
    BadName { why: String },
    #[error("a shuttle channel runs around its creator, who must be the intermediary")]
    ShuttleNeedsIntermediary,
    #[error("{name} is already a member of {channel}")]
    AlreadyMember { name: String, channel: String },
    #[error("{channel} already has {max} members, the most a channel may have")]
    Full { channel: String, max: usize },
    #[error("the creator cannot leave its own channel")]
    CreatorStays,
    #[error("not a member of {channel} (or no longer)")]
    NotMember { channel: String },
    #[error("observers of {channel} read only")]
    ObserverReadsOnly { channel: String },
    #[error("in a direct channel everyone reads; recipients are named only by a shuttle's intermediary")]
    RecipientsInDirect,
    #[error("in a shuttle channel a side's notes go to the intermediary only")]
    SideNamesRecipients,
    #[error("the intermediary of shuttle {channel} must say which members receive a note")]
    HubNamesNoRecipient { channel: String },
    #[error("a named recipient is not another member of {channel}")]
    RecipientNotMember { channel: String },
    #[error("a channel update not from the channel's creator")]
    NotFromCreator,
    #[error("a channel state that is not well formed: {what}")]
    BadState { what: String },
    #[error("a channel update that changes {what}, which no update may change")]
    ImmutableChanged { what: String },
    #[error("only principals consent to phase changes; {name} is not one")]
    NotPrincipal { name: String },
    #[error("{channel} is in phase {phase:?}; the only next phase is {next:?}")]
    NotNextPhase { channel: String, phase: Phase, next: Option<Phase> },
    #[error("a title has 1 to {max} bytes and no control characters")]
    BadTitle { max: usize },
    #[error("a version number starts at 1")]
    BadVersion,
    #[error("a proposal names 1 to {max} signatory sides")]
    BadSignatories { max: usize },
    #[error("an oversized {what}")]
    Oversized { what: String },
    #[error("probe terms: {why}")]
    BadProbeTerms { why: String },
    #[error("a probe budget is 1 to {max} probes")]
    BadProbeBudget { max: u32 },
    #[error("{name}'s card is refused: {why}")]
    BadCard { name: String, why: String },
    #[error("a hotline heartbeat is 1 to 3600 seconds, and its path test at least as long, at most a week")]
    BadHotline,
    #[error("{name} is not a principal of {channel}: only principals ratify")]
    NotPrincipalRatifier { name: String, channel: String },
}

fn refuse<T>(why: Refused) -> std::result::Result<T, Refused> {
    Err(why)
}

impl ChannelState {
    /// A new channel with its creator as the only member.
    pub fn new(name: &str, mode: Mode, creator: Card, role: Role) -> std::result::Result<Self, Refused> {
        validate_label(name).map_err(|why| Refused::BadName { why: why.to_owned() })?;
        if mode == Mode::Shuttle && role != Role::Intermediary {
            return refuse(Refused::ShuttleNeedsIntermediary);
        }
        Ok(Self {
            id: ChannelId(random_array()),
            name: name.to_owned(),
            mode,
            creator: creator.party(),
            version: 1,
            members: vec![Member { card: creator, role, since: 1 }],
            phase: Phase::Exploratory,
            policies: PhasePolicy::defaults(),
            vote: PhaseVote::default(),
            hotline: None,
        })
    }

    pub fn member(&self, key: &MemberKey) -> Option<&Member> {
        self.members.iter().find(|m| &m.key() == key)
    }

    pub fn policy(&self) -> PhasePolicy {
        self.policies[self.phase as usize]
    }

    /// Adds a member (creator only; checked by the caller holding the state).
    pub fn add(&mut self, card: Card, role: Role) -> std::result::Result<(), Refused> {
        if self.member(&card.party()).is_some() {
            return refuse(Refused::AlreadyMember { name: card.name, channel: self.name.clone() });
        }
        if self.members.len() >= MAX_MEMBERS {
            return refuse(Refused::Full { channel: self.name.clone(), max: MAX_MEMBERS });
        }
        self.version += 1;
        self.members.push(Member { card, role, since: self.version });
        Ok(())
    }

    pub fn remove(&mut self, key: &MemberKey) -> std::result::Result<Member, Refused> {
        if key == &self.creator {
            return refuse(Refused::CreatorStays);
        }
        let Some(i) = self.members.iter().position(|m| &m.key() == key) else {
            return refuse(Refused::NotMember { channel: self.name.clone() });
        };
        self.version += 1;
        Ok(self.members.remove(i))
    }

    /// Takes a newer state from the creator. Returns false for an old or repeated version.
    /// What no update may change is checked here, so every member refuses the same forgeries:
    /// the channel's identity and mode, the policies fixed at creation, an existing member's
    /// card and role, and a phase moving other than one step forward.
    pub fn update_from(
        &mut self,
        sender: &MemberKey,
        new: ChannelState,
    ) -> std::result::Result<bool, Refused> {
        if sender != &self.creator || new.creator != self.creator || new.id != self.id {
            return refuse(Refused::NotFromCreator);
        }
        new.check()?;
        if new.version <= self.version {
            return Ok(false);
        }
        self.check_transition(&new)?;
        *self = new;
        Ok(true)
    }

    fn check_transition(&self, new: &ChannelState) -> std::result::Result<(), Refused> {
        let changed = |what: &str| refuse(Refused::ImmutableChanged { what: what.to_owned() });
        if new.mode != self.mode {
            return changed("the mode");
        }
        if new.name != self.name {
            return changed("the name");
        }
        if new.policies != self.policies {
            return changed("the phase policies");
        }
        if new.hotline != self.hotline {
            return changed("the hotline policy");
        }
        for old in &self.members {
            match new.member(&old.key()) {
                Some(m) if m.card != old.card => return changed("a member's card"),
                Some(m) if m.role != old.role || m.since != old.since => return changed("a member's role"),
                _ => {}
            }
        }
        if new.phase != self.phase && self.phase.next() != Some(new.phase) {
            return changed("the phase by more than one step forward");
        }
        Ok(())
    }

    /// Checks a state received for the first time (a peer could send anything).
    pub fn check(&self) -> std::result::Result<(), Refused> {
        validate_label(&self.name).map_err(|why| Refused::BadName { why: why.to_owned() })?;
        if self.members.is_empty() || self.members.len() > MAX_MEMBERS {
            return refuse(Refused::BadState { what: "no members, or too many".into() });
        }
        if self.member(&self.creator).is_none() {
            return refuse(Refused::BadState { what: "its creator is not a member".into() });
        }
        let mut keys: Vec<_> = self.members.iter().map(Member::key).collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.len() != self.members.len() {
            return refuse(Refused::BadState { what: "a member is listed twice".into() });
        }
        if self.mode == Mode::Shuttle
            && self.member(&self.creator).map(|m| m.role) != Some(Role::Intermediary)
        {
            return refuse(Refused::ShuttleNeedsIntermediary);
        }
        if let Some(h) = &self.hotline {
            h.check()?;
        }
        for m in &self.members {
            m.card.check().map_err(|e| Refused::BadCard { name: m.card.name.clone(), why: e.to_string() })?;
        }
        Ok(())
    }

    /// The hub of a shuttle channel (its creator); `None` in a direct channel.
    pub fn hub(&self) -> Option<&MemberKey> {
        (self.mode == Mode::Shuttle).then_some(&self.creator)
    }

    /// The member whose seal may count on a proposal: a principal (intermediaries and observers
    /// never ratify, whatever side their card names). The caller also checks the side.
    pub fn ratifier(&self, key: &MemberKey) -> std::result::Result<&Member, Refused> {
        match self.member(key) {
            None => refuse(Refused::NotMember { channel: self.name.clone() }),
            Some(m) if m.role != Role::Principal => refuse(Refused::NotPrincipalRatifier {
                name: m.card.name.clone(),
                channel: self.name.clone(),
            }),
            Some(m) => Ok(m),
        }
    }

    /// Whether `sender` may post a note now.
    pub fn may_post(&self, sender: &MemberKey) -> std::result::Result<(), Refused> {
        match self.member(sender) {
            None => refuse(Refused::NotMember { channel: self.name.clone() }),
            Some(m) if m.role == Role::Observer => {
                refuse(Refused::ObserverReadsOnly { channel: self.name.clone() })
            }
            Some(_) => Ok(()),
        }
    }

    /// Who receives a note from `sender`: everyone else in a direct channel; in a shuttle,
    /// a side reaches only the hub, and the hub reaches the members it names in `to`.
    pub fn note_recipients(
        &self,
        sender: &MemberKey,
        to: &[MemberKey],
    ) -> std::result::Result<Vec<&Member>, Refused> {
        self.may_post(sender)?;
        let others = self.members.iter().filter(|m| &m.key() != sender);
        match self.hub() {
            None if to.is_empty() => Ok(others.collect()),
            None => refuse(Refused::RecipientsInDirect),
            Some(hub) if hub != sender => {
                if !to.is_empty() {
                    return refuse(Refused::SideNamesRecipients);
                }
                Ok(others.filter(|m| &m.key() == hub).collect())
            }
            Some(_) if to.is_empty() => refuse(Refused::HubNamesNoRecipient { channel: self.name.clone() }),
            Some(_) => {
                let picked: Vec<&Member> = others.filter(|m| to.contains(&m.key())).collect();
                if picked.len() != to.len() {
                    return refuse(Refused::RecipientNotMember { channel: self.name.clone() });
                }
                Ok(picked)
            }
        }
    }

    /// Everyone but `sender`.
    pub fn everyone_but(&self, sender: &MemberKey) -> Vec<&Member> {
        self.members.iter().filter(|m| &m.key() != sender).collect()
    }

    /// Who receives a channel-wide item (consent, draft, proposal, ratification) from
    /// `sender`: every other member, except that a shuttle side reaches only the hub, which
    /// tallies consents and passes ratifications on.
    pub fn item_recipients(&self, sender: &MemberKey) -> Vec<&Member> {
        match self.hub() {
            Some(hub) if hub != sender => self.members.iter().filter(|m| &m.key() == hub).collect(),
            _ => self.everyone_but(sender),
        }
    }

    /// Members `me` must introduce itself to: those that were there before it and are not
    /// the creator (whose session it already has). Shuttle sides are not introduced: they
    /// talk only through the hub.
    pub fn to_introduce(&self, me: &MemberKey) -> Vec<&Member> {
        let Some(mine) = self.member(me) else { return Vec::new() };
        if self.mode == Mode::Shuttle {
            return Vec::new();
        }
        self.members
            .iter()
            .filter(|m| m.since < mine.since && m.key() != self.creator && &m.key() != me)
            .collect()
    }

    /// Which state this is, as every channel message names the state its sender holds: its
    /// version and a digest of all of it, so two members holding different states under one
    /// version (a creator showing each something else) see it at their next message.
    pub fn at(&self) -> StateAt {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"backchannel/channel-state/v1");
        h.update(serde_json::to_vec(self).unwrap_or_default());
        StateAt { version: self.version, digest: h.finalize().into() }
    }

    /// The sides whose consent moves the phase: every side with a principal in the channel.
    pub fn sides(&self) -> Vec<String> {
        let mut sides: Vec<String> =
            self.members.iter().filter(|m| m.role == Role::Principal).map(|m| m.card.side.clone()).collect();
        sides.sort();
        sides.dedup();
        sides
    }
}

/// The state a channel message's sender held when it sent it (see [`ChannelState::at`]).
/// Carried beside the body's fields as `state_at`; older peers neither send nor read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateAt {
    pub version: u64,
    #[serde(with = "digest_b64")]
    pub digest: [u8; 32],
}

/// What a member's [`StateAt`] says about ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compared {
    /// The same state, or one of us is behind the other by an update not yet arrived.
    Same,
    /// It holds a newer version than we do: an update from the creator has not reached us.
    Ahead,
    /// We hold a newer version: ours has not reached it yet.
    Behind,
    /// The same version, another state: the creator published two different states.
    Forked,
}

impl StateAt {
    pub fn compare(&self, ours: &ChannelState) -> Compared {
        let mine = ours.at();
        match self.version.cmp(&mine.version) {
            std::cmp::Ordering::Greater => Compared::Ahead,
            std::cmp::Ordering::Less => Compared::Behind,
            std::cmp::Ordering::Equal if self.digest != mine.digest => Compared::Forked,
            std::cmp::Ordering::Equal => Compared::Same,
        }
    }
}

mod digest_b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD_NO_PAD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let bytes = STANDARD_NO_PAD.decode(String::deserialize(d)?).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom("a state digest has 32 bytes"))
    }
}

/// A proposed phase change and the sides that consented so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseVote {
    pub to: Option<Phase>,
    pub consents: Vec<String>,
}

impl PhaseVote {
    /// Records `side`'s consent to `phase`. A proposal for another phase starts a new vote.
    pub fn consent(
        &mut self,
        state: &ChannelState,
        member: &MemberKey,
        phase: Phase,
    ) -> std::result::Result<(), Refused> {
        let Some(m) = state.member(member) else {
            return refuse(Refused::NotMember { channel: state.name.clone() });
        };
        if m.role != Role::Principal {
            return refuse(Refused::NotPrincipal { name: m.card.name.clone() });
        }
        if state.phase.next() != Some(phase) {
            return refuse(Refused::NotNextPhase {
                channel: state.name.clone(),
                phase: state.phase,
                next: state.phase.next(),
            });
        }
        if self.to != Some(phase) {
            *self = PhaseVote { to: Some(phase), consents: Vec::new() };
        }
        if !self.consents.contains(&m.card.side) {
            self.consents.push(m.card.side.clone());
        }
        Ok(())
    }

    /// The sides still to consent.
    pub fn missing(&self, state: &ChannelState) -> Vec<String> {
        state.sides().into_iter().filter(|s| !self.consents.contains(s)).collect()
    }

    /// The phase every side has consented to, if any.
    pub fn agreed(&self, state: &ChannelState) -> Option<Phase> {
        let to = self.to?;
        (state.phase.next() == Some(to) && !state.sides().is_empty() && self.missing(state).is_empty())
            .then_some(to)
    }
}

/// The body of a [`crate::message::Kind::Channel`] message (JSON inside the encryption).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelBody {
    /// The channel as the creator now publishes it.
    State { state: ChannelState },
    /// An invitation from a new member to an earlier one, passed through the creator (the
    /// two have no session yet). `to` is the earlier member, `from` the new one.
    Introduce { from: MemberKey, to: MemberKey, invitation: String },
    /// A note passed on by the shuttle's hub: `origin` is whom the hub says it came from.
    Relayed { origin: String, text: String, rephrased: bool },
    /// A principal's consent to moving to `phase` (proposing is consenting).
    PhaseConsent { phase: Phase },
    /// A version of a non-paper. No author: non-papers are unattributed.
    NonPaper { title: String, version: u32, text: String },
    /// A text put to ratification, fixed by its hash.
    Proposal { title: String, text: String, signatories: Vec<String> },
    /// A signatory's seal over a proposal (armored SSH signature over its statement, see
    /// [`crate::agreement::Statement`]). `signer` is set when a shuttle's hub passes on a side's
    /// seal (it verifies under that side's key). `signed_at` (seconds) is the statement's date;
    /// `possession` the signer's proof that it holds its seal key, for this channel. Both are
    /// absent from ratifications of older versions, which signed the bare text (refused now).
    Ratification {
        proposal: [u8; 32],
        signature: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signer: Option<MemberKey>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signed_at: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        possession: Option<String>,
    },
    /// A private red-line probe put to one member (the only one this is sealed to): its id,
    /// chosen by the proposer, its terms, and the probe budget the proposer asks the channel's
    /// probes to run under (the first accepted probe fixes it for the channel).
    ProbePropose { probe: ProbeRef, terms: ProbeTerms, budget: ProbeBudget },
    /// The member the probe was put to accepts its terms.
    ProbeAccept { probe: ProbeRef },
    /// Either side declines (or withdraws) a probe that has not run yet.
    ProbeDecline { probe: ProbeRef, reason: String },
    /// Step 1, asker → answerer: the encoded `backchannel_redline::Query`.
    ProbeQuery {
        probe: ProbeRef,
        #[serde(with = "probe_bytes")]
        query: Vec<u8>,
    },
    /// Step 2, answerer → asker: the encoded `Reply`.
    ProbeReply {
        probe: ProbeRef,
        #[serde(with = "probe_bytes")]
        reply: Vec<u8>,
    },
    /// Step 3, asker → answerer: the encoded `Disclosure` (the result both learn).
    ProbeDisclosure {
        probe: ProbeRef,
        #[serde(with = "probe_bytes")]
        disclosure: Vec<u8>,
    },
    /// A side ended a running probe (a message failed its checks, the phase moved on).
    ProbeAbort { probe: ProbeRef, reason: String },
}

/// Names one probe in a channel (16 random bytes from its proposer).
pub type ProbeRef = [u8; 16];
/// Longest reason a side gives for declining or aborting a probe.
pub const MAX_PROBE_REASON: usize = 1024;
/// The largest probe budget a channel may agree (per issue and per phase).
pub const MAX_PROBE_BUDGET: u32 = 1000;

/// Probe messages as base64 text inside the JSON body (arrays of numbers would triple them).
mod probe_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD_NO_PAD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        STANDARD_NO_PAD.decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl ChannelBody {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_CONTROL_BODY {
            return Err(ProtoError::PeerMisbehaved("channel message too large"));
        }
        let body: Self = serde_json::from_slice(bytes)
            .map_err(|_| ProtoError::PeerMisbehaved("unreadable channel message"))?;
        body.check().map_err(|_| ProtoError::PeerMisbehaved("channel message out of bounds"))?;
        Ok(body)
    }

    /// The body with the state its sender holds beside its fields (`state_at`).
    pub fn encode_at(&self, at: &StateAt) -> Vec<u8> {
        stamp(&self.encode(), at)
    }

    /// The state a received body says its sender held, if it says (older peers do not).
    pub fn state_at(bytes: &[u8]) -> Option<StateAt> {
        #[derive(Deserialize)]
        struct Stamp {
            state_at: Option<StateAt>,
        }
        serde_json::from_slice::<Stamp>(bytes).ok().and_then(|s| s.state_at)
    }

    /// Bounds a receiver enforces; a sender checks them first to give a clear error.
    pub fn check(&self) -> std::result::Result<(), Refused> {
        let title_ok =
            |t: &str| !t.trim().is_empty() && t.len() <= MAX_TITLE && !t.chars().any(char::is_control);
        match self {
            ChannelBody::State { state } => state.check(),
            ChannelBody::NonPaper { title, .. } if !title_ok(title) => {
                refuse(Refused::BadTitle { max: MAX_TITLE })
            }
            ChannelBody::NonPaper { version: 0, .. } => refuse(Refused::BadVersion),
            ChannelBody::Proposal { title, .. } if !title_ok(title) => {
                refuse(Refused::BadTitle { max: MAX_TITLE })
            }
            ChannelBody::Proposal { signatories, .. }
                if signatories.is_empty() || signatories.len() > MAX_MEMBERS =>
            {
                refuse(Refused::BadSignatories { max: MAX_MEMBERS })
            }
            ChannelBody::Introduce { invitation, .. } if invitation.len() > 16 * 1024 => {
                refuse(Refused::Oversized { what: "invitation".into() })
            }
            ChannelBody::Ratification { signature, possession, .. }
                if signature.len() > crate::agreement::MAX_SIGNATURE
                    || possession.as_ref().is_some_and(|p| p.len() > crate::agreement::MAX_SIGNATURE) =>
            {
                refuse(Refused::Oversized { what: "signature".into() })
            }
            ChannelBody::ProbePropose { terms, budget, .. } => {
                terms.validate().map_err(|e| Refused::BadProbeTerms { why: e.to_string() })?;
                let bounded = |n: u32| (1..=MAX_PROBE_BUDGET).contains(&n);
                match bounded(budget.per_issue) && bounded(budget.per_phase) {
                    true => Ok(()),
                    false => refuse(Refused::BadProbeBudget { max: MAX_PROBE_BUDGET }),
                }
            }
            ChannelBody::ProbeDecline { reason, .. } | ChannelBody::ProbeAbort { reason, .. }
                if reason.len() > MAX_PROBE_REASON =>
            {
                refuse(Refused::Oversized { what: "reason".into() })
            }
            _ => Ok(()),
        }
    }
}

/// Adds `state_at` to an encoded body (unchanged if it is not a JSON object).
pub fn stamp(body: &[u8], at: &StateAt) -> Vec<u8> {
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    let Ok(at) = serde_json::to_value(at) else { return body.to_vec() };
    fields.insert("state_at".into(), at);
    serde_json::to_vec(&fields).unwrap_or_else(|_| body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use proptest::prelude::*;

    fn card(name: &str, side: &str) -> Card {
        Identity::generate(name, side).unwrap().card()
    }

    fn direct() -> (ChannelState, Card, Card, Card) {
        let (a, b, c) = (card("Alice", "A"), card("Bao", "B"), card("Chen", "C"));
        let mut s = ChannelState::new("talks", Mode::Direct, a.clone(), Role::Principal).unwrap();
        s.add(b.clone(), Role::Principal).unwrap();
        s.add(c.clone(), Role::Observer).unwrap();
        (s, a, b, c)
    }

    #[test]
    fn direct_channel_fans_out_to_everyone_else_and_observers_read_only() {
        let (s, a, b, c) = direct();
        let to: Vec<_> =
            s.note_recipients(&a.party(), &[]).unwrap().iter().map(|m| m.card.name.clone()).collect();
        assert_eq!(to, ["Bao", "Chen"]);
        assert!(matches!(s.note_recipients(&c.party(), &[]), Err(Refused::ObserverReadsOnly { .. })));
        assert!(s.note_recipients(&b.party(), &[a.party()]).is_err());
        let stranger = card("Eve", "E");
        assert!(matches!(s.may_post(&stranger.party()), Err(Refused::NotMember { .. })));
    }

    #[test]
    fn shuttle_is_a_star_around_the_creator() {
        let (hub, a, b) = (card("Omar", "Oman"), card("Alice", "A"), card("Bao", "B"));
        assert!(ChannelState::new("s", Mode::Shuttle, hub.clone(), Role::Principal).is_err());
        let mut s = ChannelState::new("s", Mode::Shuttle, hub.clone(), Role::Intermediary).unwrap();
        s.add(a.clone(), Role::Principal).unwrap();
        s.add(b.clone(), Role::Principal).unwrap();
        let from_a = s.note_recipients(&a.party(), &[]).unwrap();
        assert_eq!(from_a.len(), 1);
        assert_eq!(from_a[0].card.party(), hub.party());
        assert!(s.note_recipients(&a.party(), &[b.party()]).is_err());
        assert!(s.note_recipients(&hub.party(), &[]).is_err(), "the hub must say whom to");
        let to_b = s.note_recipients(&hub.party(), &[b.party()]).unwrap();
        assert_eq!(to_b[0].card.name, "Bao");
        assert!(s.to_introduce(&b.party()).is_empty(), "shuttle sides never meet");
        let items: Vec<_> = s.item_recipients(&a.party()).iter().map(|m| m.card.name.clone()).collect();
        assert_eq!(items, ["Omar"], "a side's consents and seals go to the hub, which passes them on");
        assert_eq!(s.item_recipients(&hub.party()).len(), 2);
    }

    #[test]
    fn later_members_introduce_themselves_to_earlier_ones_but_not_the_creator() {
        let (s, a, b, c) = direct();
        assert!(s.to_introduce(&a.party()).is_empty());
        assert!(s.to_introduce(&b.party()).is_empty(), "only the creator came before Bao");
        let names: Vec<_> = s.to_introduce(&c.party()).iter().map(|m| m.card.name.clone()).collect();
        assert_eq!(names, ["Bao"]);
    }

    #[test]
    fn only_newer_states_from_the_creator_are_taken() {
        let (mut s, a, b, c) = direct();
        let mut newer = s.clone();
        newer.remove(&c.party()).unwrap();
        assert!(s.update_from(&b.party(), newer.clone()).is_err(), "not the creator");
        let old = s.clone();
        assert!(s.update_from(&a.party(), newer.clone()).unwrap());
        assert!(s.member(&c.party()).is_none());
        assert!(!s.update_from(&a.party(), old).unwrap(), "an older version is ignored");
        assert!(s.remove(&a.party()).is_err(), "the creator stays");
        let mut twice = newer;
        twice.version += 1;
        twice.members.push(twice.members[1].clone());
        assert!(s.update_from(&a.party(), twice).is_err());
    }

    /// What a creator may never change in an update, so every member refuses the same forgery
    /// (a swapped seal key, a promoted observer, a wiped retention, a skipped phase).
    #[test]
    fn updates_cannot_change_cards_roles_policies_or_skip_phases() {
        let (s, a, b, c) = direct();
        let refused = |change: &dyn Fn(&mut ChannelState)| {
            let mut new = s.clone();
            new.version += 1;
            change(&mut new);
            s.clone().update_from(&a.party(), new)
        };
        let immutable =
            |r: std::result::Result<bool, Refused>| matches!(r, Err(Refused::ImmutableChanged { .. }));
        let other_seal = card("Mallory", "B").seal_key;
        assert!(immutable(refused(&|n| n.members[1].card.seal_key = other_seal)), "a member's seal key");
        assert!(immutable(refused(&|n| n.members[1].card.side = "A".into())), "a member's side");
        assert!(immutable(refused(&|n| n.members[2].role = Role::Principal)), "an observer promoted");
        assert!(immutable(refused(&|n| n.policies[0].retention_secs = Some(1))), "retention wiped");
        assert!(immutable(refused(&|n| n.phase = Phase::Agreed)), "a phase skipped");
        assert!(refused(&|n| n.mode = Mode::Shuttle).is_err(), "the mode");
        assert_eq!(refused(&|n| n.phase = Phase::Drafting), Ok(true), "one step forward is an update");
        let mut later = s.clone();
        later.phase = Phase::Drafting;
        let mut back = later.clone();
        back.version += 1;
        back.phase = Phase::Exploratory;
        assert!(immutable(later.update_from(&a.party(), back)), "a phase moved back");
        let mut removed = s.clone();
        removed.version += 1;
        removed.remove(&c.party()).unwrap();
        removed.add(card("Chen", "C"), Role::Principal).unwrap();
        assert_eq!(s.clone().update_from(&a.party(), removed), Ok(true), "a new member may join");
        let _ = b;
    }

    /// Cards that arrive inside a channel state (JSON, not `Card::decode`) pass the same checks:
    /// no bidi or zero-width characters in names and sides, no weak seal keys (M8, H2).
    #[test]
    fn member_cards_in_a_state_are_checked() {
        let (s, ..) = direct();
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let mut bad_key = s.clone();
        bad_key.members[1].card.seal_key = weak;
        let mut bad_name = s.clone();
        bad_name.members[2].card.name = "Chen\u{202E}".into();
        for bad in [bad_key, bad_name] {
            assert!(bad.check().is_err());
            assert!(ChannelBody::decode(&ChannelBody::State { state: bad }.encode()).is_err());
        }
        assert!(ChannelBody::decode(&ChannelBody::State { state: s }.encode()).is_ok());
    }

    /// An older peer's ratification (no date, no proof) still decodes, so it can be refused
    /// with a message that says why rather than as unreadable.
    #[test]
    fn an_old_ratification_still_decodes() {
        let old = br#"{"type":"ratification","proposal":[7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7],"signature":"sig"}"#;
        let ChannelBody::Ratification { signed_at, possession, .. } = ChannelBody::decode(old).unwrap()
        else {
            panic!("not a ratification")
        };
        assert_eq!((signed_at, possession), (None, None));
    }

    /// Every channel message can name the state its sender holds (M5): a body stamped with it
    /// still decodes as before (older peers ignore the field), the stamp reads back, and a
    /// state that differs in anything under the same version is told apart from a newer one.
    #[test]
    fn a_stamped_body_names_its_senders_state_and_a_fork_is_told_from_a_lag() {
        let (s, ..) = direct();
        let body = ChannelBody::PhaseConsent { phase: Phase::Drafting };
        let stamped = body.encode_at(&s.at());
        assert_eq!(ChannelBody::decode(&stamped).unwrap(), body, "the body is unchanged");
        assert_eq!(ChannelBody::state_at(&stamped), Some(s.at()));
        assert_eq!(ChannelBody::state_at(&body.encode()), None, "an older peer's body names none");
        assert_eq!(s.at().compare(&s), Compared::Same);
        let mut other = s.clone();
        other.members[2].role = Role::Principal;
        assert_eq!(other.at().compare(&s), Compared::Forked, "same version, other members");
        let mut newer = s.clone();
        newer.version += 1;
        assert_eq!(newer.at().compare(&s), Compared::Ahead);
        assert_eq!(s.at().compare(&newer), Compared::Behind);
        let copy: ChannelState = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(copy.at(), s.at(), "a stored and reloaded state has the same digest");
        let mut bent = stamped.clone();
        let at = bent.windows(9).position(|w| w == b"digest\":\"").unwrap();
        bent[at + 9] ^= 1;
        assert_ne!(ChannelBody::state_at(&bent), Some(s.at()), "a bent stamp is not the state");
    }

    #[test]
    fn only_principals_ratify() {
        let (s, a, _, c) = direct();
        assert!(s.ratifier(&a.party()).is_ok());
        assert!(matches!(s.ratifier(&c.party()), Err(Refused::NotPrincipalRatifier { .. })));
        assert!(s.ratifier(&card("Eve", "E").party()).is_err());
    }

    #[test]
    fn members_are_capped_at_fifty() {
        let mut s = ChannelState::new("big", Mode::Direct, card("M0", "S"), Role::Principal).unwrap();
        for i in 1..MAX_MEMBERS {
            s.add(card(&format!("M{i}"), "S"), Role::Principal).unwrap();
        }
        assert_eq!(
            s.add(card("one too many", "S"), Role::Principal),
            Err(Refused::Full { channel: "big".into(), max: 50 })
        );
    }

    #[test]
    fn phase_moves_only_when_every_side_consents() {
        let (mut s, a, b, c) = direct();
        let mut vote = PhaseVote::default();
        assert!(vote.consent(&s, &a.party(), Phase::Agreed).is_err(), "phases are not skipped");
        vote.consent(&s, &a.party(), Phase::Drafting).unwrap();
        assert_eq!(vote.agreed(&s), None);
        assert_eq!(vote.missing(&s), ["B"]);
        assert!(vote.consent(&s, &c.party(), Phase::Drafting).is_err(), "observers have no say");
        vote.consent(&s, &b.party(), Phase::Drafting).unwrap();
        assert_eq!(vote.agreed(&s), Some(Phase::Drafting));
        s.phase = Phase::Drafting;
        assert_eq!(vote.agreed(&s), None, "an applied vote does not apply twice");
        assert!(s.policy().probes_allowed);
    }

    #[test]
    fn bodies_round_trip_and_bad_ones_are_refused() {
        let (s, ..) = direct();
        let bodies = [
            ChannelBody::State { state: s },
            ChannelBody::NonPaper { title: "Framework".into(), version: 2, text: "x\ny".into() },
            ChannelBody::PhaseConsent { phase: Phase::Drafting },
            ChannelBody::Ratification {
                proposal: [7; 32],
                signature: "sig".into(),
                signer: None,
                signed_at: Some(1_800_000_000),
                possession: Some("pop".into()),
            },
            ChannelBody::ProbePropose { probe: [3; 16], terms: probe_terms(120), budget: probe_budget(3) },
            ChannelBody::ProbeReply { probe: [3; 16], reply: vec![0, 255, 7] },
            ChannelBody::ProbeAbort { probe: [3; 16], reason: "transcript mismatch".into() },
        ];
        for b in bodies {
            assert_eq!(ChannelBody::decode(&b.encode()).unwrap(), b);
        }
        let bad = ChannelBody::NonPaper { title: " ".into(), version: 1, text: String::new() };
        assert!(ChannelBody::decode(&bad.encode()).is_err());
        assert!(ChannelBody::decode(b"{\"type\":\"nope\"}").is_err());
        let bad_range = ChannelBody::ProbePropose {
            probe: [1; 16],
            terms: probe_terms(1 << 33),
            budget: probe_budget(3),
        };
        assert!(ChannelBody::decode(&bad_range.encode()).is_err());
        let no_budget =
            ChannelBody::ProbePropose { probe: [1; 16], terms: probe_terms(9), budget: probe_budget(0) };
        assert!(ChannelBody::decode(&no_budget.encode()).is_err());
        let query = ChannelBody::ProbeQuery { probe: [1; 16], query: vec![9; 40] };
        assert!(String::from_utf8(query.encode()).unwrap().contains("CQkJ"), "probe bytes travel as base64");
    }

    fn probe_terms(max: u64) -> ProbeTerms {
        use backchannel_redline::{MayAsk, ProbeKind, SingleTerms};
        let s = SingleTerms { issue: "months".into(), max, gives: "A".into(), takes: "B".into() };
        ProbeTerms { phase: "exploratory".into(), may_ask: MayAsk::Either, kind: ProbeKind::Single(s) }
    }

    fn probe_budget(n: u32) -> ProbeBudget {
        ProbeBudget { per_issue: n, per_phase: 10 }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = ChannelBody::decode(&bytes);
        }
    }
}
