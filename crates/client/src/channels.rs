//! Channels as a party runs them: creating and changing one (creator), fanning notes out over
//! the members' pairwise sessions, introducing members to each other, and taking in what
//! members send. The rules themselves live in `backchannel_proto::channel`.

use backchannel_proto::channel::{
    ChannelBody, ChannelState, Member, MemberKey, Mode, Phase, PhasePolicy, PhaseVote, Role,
};
use backchannel_proto::identity::{Card, safety_number};
use backchannel_proto::message::{ChannelId, Kind, Message};
use backchannel_proto::session::Session;
use backchannel_wire::hex_encode;
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};
use crate::model::{CONTACT, ContactRecord, Entry, Event, OutboxItem};
use crate::party::{Party, find_contact, load_card, now_ms};
use crate::store::Tx;

pub(crate) const CHANNEL: &str = "channel";
/// Identity key (hex) → contact id, so fan-out finds each member's session without
/// opening every contact.
pub(crate) const KEYINDEX: &str = "keyindex";
pub(crate) const TASK: &str = "task";

/// A channel as this party holds it.
#[derive(Serialize, Deserialize)]
pub(crate) struct ChannelRecord {
    pub state: ChannelState,
    pub vote: PhaseVote,
    /// Messages for members we have no session with yet (their introduction is under way);
    /// sealed and sent when it completes.
    pub waiting: Vec<Waiting>,
    /// The creator removed us: we keep what was said, and send nothing more.
    pub removed: bool,
    #[serde(default)]
    pub papers: Vec<crate::documents::PaperVersion>,
    #[serde(default)]
    pub proposals: Vec<crate::documents::ProposalRecord>,
    /// Members removed so far: their late messages are refused, not held.
    #[serde(default)]
    pub former: Vec<MemberKey>,
    /// Ratifications that arrived before their proposal (they come over other sessions, maybe
    /// other relays); checked and counted when the proposal arrives.
    #[serde(default)]
    pub early_seals: Vec<crate::documents::EarlySeal>,
    /// Private red-line probes with other members: budget, log, and our secrets until used.
    #[serde(default)]
    pub probes: crate::probes::ChannelProbes,
}

impl ChannelRecord {
    fn new(state: ChannelState) -> Self {
        Self {
            state,
            vote: PhaseVote::default(),
            waiting: Vec::new(),
            removed: false,
            papers: Vec::new(),
            proposals: Vec::new(),
            early_seals: Vec::new(),
            former: Vec::new(),
            probes: Default::default(),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Waiting {
    pub to: MemberKey,
    pub kind: u8,
    #[serde(with = "crate::model::bytes_b64")]
    pub body: Vec<u8>,
}

/// Network work found while receiving (which runs inside a transaction, offline), done
/// after it: durable, so a crash only delays it.
#[derive(Serialize, Deserialize)]
pub(crate) enum Task {
    /// We joined after `to`: make an invitation for it and pass it through the creator.
    Introduce { channel: ChannelId, to: MemberKey },
    /// The creator passed us `from`'s invitation: accept it.
    AcceptIntroduction { channel: ChannelId, from: MemberKey, invitation: String },
}

/// A member as shown to the user.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
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
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ChannelView {
    pub name: String,
    pub mode: Mode,
    pub phase: Phase,
    pub policy: PhasePolicy,
    pub members: Vec<MemberView>,
    /// A phase change under consideration, and the sides that have not consented yet.
    pub proposed_phase: Option<(Phase, Vec<String>)>,
    pub removed: bool,
}

/// Where a channel note went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fanout {
    /// Sealed into the outbox, one per member reached.
    pub sealed: usize,
    /// Members still being introduced: their copy waits until the session exists.
    pub waiting: Vec<String>,
}

pub(crate) fn timeline_key(id: &ChannelId) -> String {
    format!("ch/{}", hex_encode(&id.0))
}

fn record_id(id: &ChannelId) -> String {
    hex_encode(&id.0)
}

fn event(tx: &Tx<'_>, state: &ChannelState, text: String) -> Result<Event> {
    tx.append_timeline(&timeline_key(&state.id), &Entry::Event { text: text.clone(), at: now_ms() })?;
    Ok(Event::Channel { channel: state.name.clone(), text })
}

/// The contact that holds a session with the party whose identity key is `key`.
pub(crate) fn contact_by_key(tx: &Tx<'_>, key: &MemberKey) -> Result<Option<(String, ContactRecord)>> {
    if let Some(id) = tx.get::<String>(KEYINDEX, &hex_encode(key))?
        && let Some(c) = tx.get::<ContactRecord>(CONTACT, &id)?
    {
        return Ok(Some((id, c)));
    }
    Ok(None)
}

pub(crate) fn index_contact(tx: &Tx<'_>, id: &str, card: &Card) -> Result<()> {
    tx.put(KEYINDEX, &hex_encode(&card.identity_key), &id.to_owned())
}

/// The name a channel's creator goes by (as its state lists it).
fn creator_name(rec: &ChannelRecord) -> &str {
    rec.state.member(&rec.state.creator).map_or("", |m| m.card.name.as_str())
}

/// Finds one of our channels by name (case-insensitive), or by `NAME@CREATOR` when several
/// creators gave their channels the same name.
pub(crate) fn find_channel(tx: &Tx<'_>, name: &str) -> Result<(String, ChannelRecord)> {
    let mut all = tx.all::<ChannelRecord>(CHANNEL)?;
    let named = |c: &ChannelRecord, n: &str| c.state.name.eq_ignore_ascii_case(n);
    let mut hits: Vec<usize> = (0..all.len()).filter(|&i| named(&all[i].1, name)).collect();
    if hits.is_empty()
        && let Some((channel, creator)) = name.rsplit_once('@')
    {
        hits = (0..all.len())
            .filter(|&i| named(&all[i].1, channel) && creator_name(&all[i].1).eq_ignore_ascii_case(creator))
            .collect();
    }
    match hits.as_slice() {
        [] => Err(ClientError::UnknownChannel(name.to_owned())),
        [one] => Ok(all.swap_remove(*one)),
        several => {
            let names: Vec<String> = several
                .iter()
                .map(|&i| format!("{}@{}", all[i].1.state.name, creator_name(&all[i].1)))
                .collect();
            Err(ClientError::Refused(format!(
                "you are in more than one channel called {name:?}; name one as CHANNEL@CREATOR: {}",
                names.join(", ")
            )))
        }
    }
}

/// Finds a member by `NAME` or `NAME@SIDE`.
pub(crate) fn find_member<'a>(state: &'a ChannelState, query: &str) -> Result<&'a Member> {
    let (name, side) = match query.rsplit_once('@') {
        Some((n, s)) => (n, Some(s)),
        None => (query, None),
    };
    let hits: Vec<&Member> = state
        .members
        .iter()
        .filter(|m| {
            m.card.name.eq_ignore_ascii_case(name) && side.is_none_or(|s| m.card.side.eq_ignore_ascii_case(s))
        })
        .collect();
    match hits.as_slice() {
        [one] => Ok(one),
        [] => Err(ClientError::Refused(format!("{query:?} is not a member of {}", state.name))),
        _ => Err(ClientError::Refused(format!(
            "{query:?} names several members of {}; use NAME@SIDE",
            state.name
        ))),
    }
}

/// Seals one message for a member into the outbox, or keeps it waiting when the member's
/// introduction has not completed. Returns whether it was sealed.
pub(crate) fn seal_to(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    to: &MemberKey,
    kind: Kind,
    body: &[u8],
) -> Result<bool> {
    let Some((cid, mut contact)) = contact_by_key(tx, to)? else {
        rec.waiting.push(Waiting { to: *to, kind: kind_byte(kind), body: body.to_vec() });
        return Ok(false);
    };
    let mut session = Session::from_pickle(contact.session);
    let sealed = session.seal(rec.state.id, kind, body.to_vec(), now_ms())?;
    tx.outbox_push(&OutboxItem::new(&cid, &session.send_route), &sealed.blocks)?;
    contact.session = session.pickle();
    tx.put(CONTACT, &cid, &contact)?;
    Ok(true)
}

fn kind_byte(kind: Kind) -> u8 {
    if kind == Kind::Channel { 3 } else { 2 }
}

/// Seals `body` for each of `to`; says who had to wait.
fn fan_out(tx: &Tx<'_>, rec: &mut ChannelRecord, to: &[Member], kind: Kind, body: &[u8]) -> Result<Fanout> {
    let mut out = Fanout::default();
    for m in to {
        if seal_to(tx, rec, &m.card.identity_key, kind, body)? {
            out.sealed += 1;
        } else {
            out.waiting.push(m.card.name.clone());
        }
    }
    Ok(out)
}

/// Seals a channel-wide item (state, consent, draft, proposal, ratification) for the members
/// it reaches from `sender` (everyone else; in a shuttle, a side reaches the hub).
pub(crate) fn broadcast(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    sender: &MemberKey,
    body: &ChannelBody,
) -> Result<Fanout> {
    let to: Vec<Member> = rec.state.item_recipients(sender).into_iter().cloned().collect();
    fan_out(tx, rec, &to, Kind::Channel, &body.encode())
}

/// Seals a channel item for the given members.
pub(crate) fn fan_out_to(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    to: &[Member],
    body: &ChannelBody,
) -> Result<Fanout> {
    fan_out(tx, rec, to, Kind::Channel, &body.encode())
}

/// Seals the creator's current state for every other member.
fn publish_state(tx: &Tx<'_>, rec: &mut ChannelRecord, me: &MemberKey) -> Result<Fanout> {
    let everyone: Vec<Member> = rec.state.everyone_but(me).into_iter().cloned().collect();
    fan_out(tx, rec, &everyone, Kind::Channel, &ChannelBody::State { state: rec.state.clone() }.encode())
}

/// Sends what waited for `key` in every channel, now that a session with it exists.
pub(crate) fn release_waiting(tx: &Tx<'_>, key: &MemberKey) -> Result<()> {
    for (id, mut rec) in tx.all::<ChannelRecord>(CHANNEL)? {
        if !rec.waiting.iter().any(|w| &w.to == key) {
            continue;
        }
        let (now, later): (Vec<Waiting>, Vec<Waiting>) = rec.waiting.drain(..).partition(|w| &w.to == key);
        rec.waiting = later;
        for w in now {
            let kind = if w.kind == 3 { Kind::Channel } else { Kind::Note };
            seal_to(tx, &mut rec, key, kind, &w.body)?;
        }
        tx.put(CHANNEL, &id, &rec)?;
    }
    Ok(())
}

/// Deletes channel notes older than the phase's retention allows. The relay's TTL bounds
/// what is never fetched; this bounds what was.
pub(crate) fn expire_notes(tx: &Tx<'_>, now: u64) -> Result<usize> {
    let mut removed = 0;
    for (_, rec) in tx.all::<ChannelRecord>(CHANNEL)? {
        let Some(keep) = rec.state.policy().retention_secs else { continue };
        let cutoff = now.saturating_sub(keep.saturating_mul(1000));
        for (n, entry) in tx.timeline_numbered::<Entry>(&timeline_key(&rec.state.id))? {
            if matches!(entry, Entry::Note { at, .. } if at < cutoff) {
                tx.timeline_remove(n)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

impl Party {
    /// Creates a channel with us as its creator and only member. `retention_secs` replaces
    /// the exploratory phase's default retention.
    pub fn channel_create(
        &mut self,
        name: &str,
        mode: Mode,
        role: Role,
        retention_secs: Option<u64>,
    ) -> Result<ChannelView> {
        self.store.tx(|tx| {
            if !matches!(find_channel(tx, name), Err(ClientError::UnknownChannel(_))) {
                return Err(ClientError::Refused(format!("you already have a channel called {name:?}")));
            }
            let mut state = ChannelState::new(name, mode, load_card(tx)?, role)?;
            if let Some(secs) = retention_secs {
                state.policies[Phase::Exploratory as usize].retention_secs = Some(secs);
            }
            let mode_name = if mode == Mode::Shuttle { "shuttle" } else { "direct" };
            event(tx, &state, format!("you created {name} ({mode_name} channel)"))?;
            let rec = ChannelRecord::new(state);
            tx.put(CHANNEL, &record_id(&rec.state.id), &rec)?;
            view_channel(tx, &rec)
        })
    }

    /// Adds a contact to a channel we created; every member learns the new membership, and
    /// the new member introduces itself to the others.
    pub fn channel_add(&mut self, name: &str, contact: &str, role: Role) -> Result<ChannelView> {
        self.change_membership(name, |tx, state| {
            let (_, c) = find_contact(tx, contact)?;
            state.add(c.card.clone(), role)?;
            Ok((format!("{} ({}) joined as {}", c.card.name, c.card.side, role_name(role)), None))
        })
    }

    /// Removes a member; it receives nothing sent after this (it is told it was removed).
    pub fn channel_remove(&mut self, name: &str, member: &str) -> Result<ChannelView> {
        self.change_membership(name, |_, state| {
            let key = find_member(state, member)?.card.identity_key;
            let gone = state.remove(&key)?;
            Ok((format!("{} ({}) was removed", gone.card.name, gone.card.side), Some(gone)))
        })
    }

    fn change_membership(
        &mut self,
        name: &str,
        change: impl FnOnce(&Tx<'_>, &mut ChannelState) -> Result<(String, Option<Member>)>,
    ) -> Result<ChannelView> {
        self.store.tx(|tx| {
            let (id, mut rec) = find_channel(tx, name)?;
            let me = load_card(tx)?.identity_key;
            if rec.state.creator != me {
                return Err(ClientError::Refused(format!("only the creator of {name} changes its members")));
            }
            let (what, removed) = change(tx, &mut rec.state)?;
            if let Some(gone) = &removed {
                rec.waiting.retain(|w| w.to != gone.card.identity_key);
                rec.former.push(gone.card.identity_key);
            }
            let body = ChannelBody::State { state: rec.state.clone() }.encode();
            let mut to: Vec<Member> = rec.state.everyone_but(&me).into_iter().cloned().collect();
            to.extend(removed);
            fan_out(tx, &mut rec, &to, Kind::Channel, &body)?;
            event(tx, &rec.state, what)?;
            tx.put(CHANNEL, &id, &rec)?;
            view_channel(tx, &rec)
        })
    }

    pub fn channel(&mut self, name: &str) -> Result<ChannelView> {
        self.store.tx(|tx| view_channel(tx, &find_channel(tx, name)?.1))
    }

    pub fn channels(&mut self) -> Result<Vec<ChannelView>> {
        self.store
            .tx(|tx| tx.all::<ChannelRecord>(CHANNEL)?.iter().map(|(_, r)| view_channel(tx, r)).collect())
    }

    /// Whether `name` is one of our channels (for commands that take a contact or a channel).
    pub fn is_channel(&mut self, name: &str) -> Result<bool> {
        self.store.tx(|tx| match find_channel(tx, name) {
            Ok(_) => Ok(true),
            Err(ClientError::UnknownChannel(_)) => Ok(false),
            Err(e) => Err(e),
        })
    }

    /// Seals a note to the channel's members as its mode says (in a shuttle, the hub names
    /// the members in `to`). Nothing is sent yet: flush the outbox.
    pub fn channel_note(&mut self, name: &str, text: &str, to: &[String]) -> Result<Fanout> {
        crate::outbox::check_note(text)?;
        self.store.tx(|tx| {
            let (id, mut rec) = find_channel(tx, name)?;
            let me = load_card(tx)?;
            if rec.removed {
                return Err(ClientError::Refused(format!("you were removed from {name}; nothing was sent")));
            }
            let members = note_recipients(&rec.state, &me.identity_key, to)?;
            let out = fan_out(tx, &mut rec, &members, Kind::Note, text.as_bytes())?;
            let now = now_ms();
            let note = Entry::Note {
                from: me.name.clone(),
                outgoing: true,
                text: text.to_owned(),
                sent_at: now,
                at: now,
                seq: 0,
                relayed_by: None,
                rephrased: false,
            };
            tx.append_timeline(&timeline_key(&rec.state.id), &note)?;
            tx.put(CHANNEL, &id, &rec)?;
            Ok(out)
        })
    }

    /// The hub of a shuttle passes a side's note on to other members, marked as relayed by
    /// it; `rephrased` replaces the wording (and says so).
    pub fn channel_forward(
        &mut self,
        name: &str,
        entry: usize,
        to: &[String],
        rephrased: Option<&str>,
    ) -> Result<Fanout> {
        self.store.tx(|tx| {
            let (id, mut rec) = find_channel(tx, name)?;
            let me = load_card(tx)?;
            if rec.state.hub() != Some(&me.identity_key) {
                return Err(ClientError::Refused(format!(
                    "only the intermediary running shuttle {name} forwards"
                )));
            }
            let entries: Vec<Entry> = tx.timeline(&timeline_key(&rec.state.id))?;
            let Some(Entry::Note { from, text, outgoing: false, .. }) = entries.get(entry.wrapping_sub(1))
            else {
                return Err(ClientError::Refused(format!(
                    "entry {entry} of {name} is not a received note; `backchannel read {name}` numbers them"
                )));
            };
            let text = rephrased.unwrap_or(text).to_owned();
            crate::outbox::check_note(&text)?;
            let members = note_recipients(&rec.state, &me.identity_key, to)?;
            let body = ChannelBody::Relayed { origin: from.clone(), text, rephrased: rephrased.is_some() };
            let out = fan_out(tx, &mut rec, &members, Kind::Channel, &body.encode())?;
            let names: Vec<&str> = members.iter().map(|m| m.card.name.as_str()).collect();
            let how = if rephrased.is_some() { "rephrased" } else { "as written" };
            event(
                tx,
                &rec.state,
                format!("you relayed {from}'s note (entry {entry}) to {} ({how})", names.join(", ")),
            )?;
            tx.put(CHANNEL, &id, &rec)?;
            Ok(out)
        })
    }

    /// Proposes moving to the next phase (or consents to the proposal in hand). The creator
    /// moves the channel when every side has consented.
    pub fn phase_consent(&mut self, name: &str, phase: Option<Phase>) -> Result<ChannelView> {
        self.store.tx(|tx| {
            let (id, mut rec) = find_channel(tx, name)?;
            let me = load_card(tx)?.identity_key;
            let phase = match phase.or(rec.vote.to) {
                Some(p) => p,
                None => return Err(ClientError::Refused(format!("no phase change is proposed in {name}"))),
            };
            rec.vote.consent(&rec.state, &me, phase)?;
            broadcast(tx, &mut rec, &me, &ChannelBody::PhaseConsent { phase })?;
            event(tx, &rec.state, format!("you consent to moving to {}", phase.name()))?;
            creator_tally(tx, &mut rec, &me)?;
            tx.put(CHANNEL, &id, &rec)?;
            view_channel(tx, &rec)
        })
    }
}

/// Who receives a note from `me`, with `to` naming members (NAME or NAME@SIDE) in a shuttle.
fn note_recipients(state: &ChannelState, me: &MemberKey, to: &[String]) -> Result<Vec<Member>> {
    let keys = to.iter().map(|q| Ok(find_member(state, q)?.card.identity_key)).collect::<Result<Vec<_>>>()?;
    Ok(state.note_recipients(me, &keys)?.into_iter().cloned().collect())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Principal => "principal",
        Role::Intermediary => "intermediary",
        Role::Observer => "observer",
    }
}

/// The creator publishes the tally: the new phase once every side consented, else the vote
/// so far (members that cannot hear each other, in a shuttle, learn of the proposal from it).
fn creator_tally(tx: &Tx<'_>, rec: &mut ChannelRecord, me: &MemberKey) -> Result<Option<Event>> {
    if &rec.state.creator != me {
        return Ok(None);
    }
    rec.state.version += 1;
    let Some(phase) = rec.vote.agreed(&rec.state) else {
        rec.state.vote = rec.vote.clone();
        publish_state(tx, rec, me)?;
        return Ok(None);
    };
    rec.state.phase = phase;
    rec.vote = PhaseVote::default();
    rec.state.vote = PhaseVote::default();
    publish_state(tx, rec, me)?;
    Ok(Some(event(tx, &rec.state, format!("every side consented: the phase is now {}", phase.name()))?))
}

fn view_channel(tx: &Tx<'_>, rec: &ChannelRecord) -> Result<ChannelView> {
    let me = load_card(tx)?;
    let members = rec
        .state
        .members
        .iter()
        .map(|m| {
            let you = m.card.identity_key == me.identity_key;
            let contact = if you { None } else { contact_by_key(tx, &m.card.identity_key)? };
            Ok(MemberView {
                name: m.card.name.clone(),
                side: m.card.side.clone(),
                role: m.role,
                you,
                creator: m.card.identity_key == rec.state.creator,
                safety_number: (!you).then(|| safety_number(&me, &m.card)),
                connected: contact.is_some(),
                verified: contact.is_some_and(|(_, c)| c.verified),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ChannelView {
        name: rec.state.name.clone(),
        mode: rec.state.mode,
        phase: rec.state.phase,
        policy: rec.state.policy(),
        members,
        proposed_phase: rec.vote.to.map(|p| (p, rec.vote.missing(&rec.state))),
        removed: rec.removed,
    })
}

/// Takes in one channel message from a contact (inside the receive transaction). The
/// contact's session and trackers are already saved.
pub(crate) fn receive(tx: &Tx<'_>, cid: &str, sender: &Card, msg: Message) -> Result<Vec<Event>> {
    let body = match msg.kind {
        Kind::Note => None,
        _ => match ChannelBody::decode(&msg.body) {
            Ok(b) => Some(b),
            Err(e) => return Ok(vec![crate::receive::reject(tx, cid, &format!("{e}; not shown"))?]),
        },
    };
    let is_state = matches!(body, Some(ChannelBody::State { .. }));
    let Some(mut rec) = tx.get::<ChannelRecord>(CHANNEL, &record_id(&msg.channel))? else {
        // Other members' messages can overtake the creator's state that adds us.
        if !is_state && hold(tx, None, cid, sender, &msg)? {
            return Ok(Vec::new());
        }
        return first_contact(tx, cid, sender, body);
    };
    let stranger =
        rec.state.member(&sender.identity_key).is_none() && !rec.former.contains(&sender.identity_key);
    // A new member's first words can overtake the state that admits it: held until a newer
    // state explains them (or refused then).
    if stranger && !is_state && hold(tx, Some(&rec), cid, sender, &msg)? {
        return Ok(Vec::new());
    }
    let events = checked(tx, &mut rec, sender, &msg, body)?;
    tx.put(CHANNEL, &record_id(&rec.state.id), &rec)?;
    Ok(events)
}

/// Runs a message through the channel's rules; a refusal is shown, not an error.
fn checked(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    sender: &Card,
    msg: &Message,
    body: Option<ChannelBody>,
) -> Result<Vec<Event>> {
    match on_message(tx, rec, sender, msg, body) {
        Ok(events) => Ok(events),
        Err(ClientError::Refused(why)) => {
            let detail = format!("{why}; a message from {} was refused", sender.name);
            tx.append_timeline(
                &timeline_key(&rec.state.id),
                &Entry::Rejected { from: sender.name.clone(), detail: detail.clone(), at: now_ms() },
            )?;
            Ok(vec![Event::Rejected {
                from: sender.name.clone(),
                detail: format!("[{}] {detail}", rec.state.name),
            }])
        }
        Err(e) => Err(e),
    }
}

/// A message from someone the channel does not (yet) list, kept until the next state.
#[derive(Serialize, Deserialize)]
pub(crate) struct Held {
    contact: String,
    sender: Card,
    kind: u8,
    seq: u64,
    sent_at: u64,
    #[serde(with = "crate::model::bytes_b64")]
    body: Vec<u8>,
}

pub(crate) const HELD: &str = "held";
/// Messages kept per channel while waiting for a state that explains them.
const MAX_HELD: usize = 64;
/// Channels we are not (yet) in for which messages may be kept.
const MAX_HELD_CHANNELS: usize = 16;

/// Keeps a message until the next state; false when the limits are reached (then it is
/// refused at once, so a stranger cannot fill the store).
fn hold(tx: &Tx<'_>, rec: Option<&ChannelRecord>, cid: &str, sender: &Card, msg: &Message) -> Result<bool> {
    let id = record_id(&msg.channel);
    let mut held: Vec<Held> = tx.get(HELD, &id)?.unwrap_or_default();
    if held.len() >= MAX_HELD
        || (rec.is_none() && held.is_empty() && tx.all::<Vec<Held>>(HELD)?.len() >= MAX_HELD_CHANNELS)
    {
        return Ok(false);
    }
    held.push(Held {
        contact: cid.to_owned(),
        sender: sender.clone(),
        kind: kind_byte(msg.kind),
        seq: msg.sender_seq,
        sent_at: msg.sent_at,
        body: msg.body.clone(),
    });
    tx.put(HELD, &id, &held)?;
    Ok(true)
}

/// After a new state: every held message is taken in now, or refused.
fn replay_held(tx: &Tx<'_>, rec: &mut ChannelRecord) -> Result<Vec<Event>> {
    let id = record_id(&rec.state.id);
    let Some(held) = tx.get::<Vec<Held>>(HELD, &id)? else { return Ok(Vec::new()) };
    tx.delete(HELD, &id)?;
    let mut events = Vec::new();
    for h in held {
        let kind = if h.kind == 3 { Kind::Channel } else { Kind::Note };
        let msg = Message::new(rec.state.id, h.seq, h.sent_at, kind, h.body);
        let body = match kind {
            Kind::Note => None,
            _ => match ChannelBody::decode(&msg.body) {
                Ok(b) => Some(b),
                Err(e) => {
                    events.push(crate::receive::reject(tx, &h.contact, &format!("{e}; not shown"))?);
                    continue;
                }
            },
        };
        events.extend(checked(tx, rec, &h.sender, &msg, body)?);
    }
    Ok(events)
}

/// A message for a channel we do not hold: only the creator's state that names us opens one.
fn first_contact(tx: &Tx<'_>, cid: &str, sender: &Card, body: Option<ChannelBody>) -> Result<Vec<Event>> {
    let me = load_card(tx)?.identity_key;
    let Some(ChannelBody::State { state }) = body else {
        let why = "a message for a channel you are not in was refused";
        return Ok(vec![crate::receive::reject(tx, cid, why)?]);
    };
    if state.creator != sender.identity_key || state.member(&me).is_none() {
        let why = "an invitation to a channel not from its creator, or not naming you, was refused";
        return Ok(vec![crate::receive::reject(tx, cid, why)?]);
    }
    let mut rec = ChannelRecord::new(state);
    merge_vote(&mut rec.vote, &rec.state.vote.clone());
    let names: Vec<String> = rec.state.members.iter().map(|m| m.card.name.clone()).collect();
    let mut events =
        vec![event(tx, &rec.state, format!("{} added you; members: {}", sender.name, names.join(", ")))?];
    events.extend(schedule_introductions(tx, &rec.state, &me)?);
    events.extend(replay_held(tx, &mut rec)?);
    tx.put(CHANNEL, &record_id(&rec.state.id), &rec)?;
    Ok(events)
}

fn schedule_introductions(tx: &Tx<'_>, state: &ChannelState, me: &MemberKey) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    for m in state.to_introduce(me) {
        if contact_by_key(tx, &m.card.identity_key)?.is_some() {
            continue;
        }
        let task = Task::Introduce { channel: state.id, to: m.card.identity_key };
        tx.put(TASK, &format!("intro/{}/{}", record_id(&state.id), hex_encode(&m.card.identity_key)), &task)?;
        events.push(event(tx, state, format!("introducing you to {} ({})", m.card.name, m.card.side))?);
    }
    Ok(events)
}

fn on_message(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    sender: &Card,
    msg: &Message,
    body: Option<ChannelBody>,
) -> Result<Vec<Event>> {
    let me = load_card(tx)?.identity_key;
    let from = &sender.identity_key;
    let Some(body) = body else {
        rec.state.may_post(from)?;
        if let Some(hub) = rec.state.hub()
            && hub != &me
            && hub != from
        {
            return Err(ClientError::Refused(
                "in a shuttle channel, sides do not write to each other".into(),
            ));
        }
        return Ok(vec![channel_note(tx, &rec.state, &sender.name, msg, None)?]);
    };
    if rec.state.member(from).is_none() {
        return Err(ClientError::Refused(format!("{} is not a member of {}", sender.name, rec.state.name)));
    }
    match body {
        ChannelBody::State { state } => on_state(tx, rec, from, state, &me),
        ChannelBody::Relayed { origin, text, rephrased } => {
            if rec.state.hub() != Some(from) {
                return Err(ClientError::Refused("only the shuttle's intermediary relays".into()));
            }
            let mut relayed = msg.clone();
            relayed.body = text.into_bytes();
            let by = Relay { hub: sender.name.clone(), rephrased };
            Ok(vec![channel_note(tx, &rec.state, &origin, &relayed, Some(by))?])
        }
        ChannelBody::Introduce { from: new, to, invitation } => {
            on_introduce(tx, rec, from, new, to, invitation, &me)
        }
        ChannelBody::PhaseConsent { phase } => {
            rec.vote.consent(&rec.state, from, phase)?;
            let mut events = vec![event(
                tx,
                &rec.state,
                format!("{} ({}) consents to moving to {}", sender.name, sender.side, phase.name()),
            )?];
            events.extend(creator_tally(tx, rec, &me)?);
            Ok(events)
        }
        probe @ (ChannelBody::ProbePropose { .. }
        | ChannelBody::ProbeAccept { .. }
        | ChannelBody::ProbeDecline { .. }
        | ChannelBody::ProbeQuery { .. }
        | ChannelBody::ProbeReply { .. }
        | ChannelBody::ProbeDisclosure { .. }
        | ChannelBody::ProbeAbort { .. }) => crate::probes::receive(tx, rec, sender, probe),
        other => crate::documents::receive(tx, rec, sender, other),
    }
}

/// Who passed a shuttle note on, and whether it says it reworded it.
struct Relay {
    hub: String,
    rephrased: bool,
}

fn channel_note(
    tx: &Tx<'_>,
    state: &ChannelState,
    from: &str,
    msg: &Message,
    relay: Option<Relay>,
) -> Result<Event> {
    let text = String::from_utf8_lossy(&msg.body).into_owned();
    let entry =
        Entry::received(from, msg, text.clone(), relay.as_ref().map(|r| (r.hub.clone(), r.rephrased)));
    tx.append_timeline(&timeline_key(&state.id), &entry)?;
    let relayed_by = relay.map(|r| if r.rephrased { format!("{}, rephrased", r.hub) } else { r.hub });
    Ok(Event::Note {
        from: from.to_owned(),
        text,
        sent_at: msg.sent_at,
        channel: Some(state.name.clone()),
        relayed_by,
    })
}

fn on_state(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    from: &MemberKey,
    state: ChannelState,
    me: &MemberKey,
) -> Result<Vec<Event>> {
    let before = rec.state.clone();
    if !rec.state.update_from(from, state)? {
        return Ok(Vec::new());
    }
    let mut events = Vec::new();
    if rec.state.member(me).is_none() {
        rec.removed = true;
        rec.waiting.clear();
        tx.delete(HELD, &record_id(&rec.state.id))?;
        return Ok(vec![event(
            tx,
            &rec.state,
            "you were removed from this channel; you will receive nothing more".into(),
        )?]);
    }
    rec.removed = false;
    for m in rec.state.members.iter().filter(|m| before.member(&m.card.identity_key).is_none()) {
        events.push(event(
            tx,
            &rec.state,
            format!("{} ({}) joined as {}", m.card.name, m.card.side, role_name(m.role)),
        )?);
    }
    for m in before.members.iter().filter(|m| rec.state.member(&m.card.identity_key).is_none()) {
        events.push(event(tx, &rec.state, format!("{} ({}) was removed", m.card.name, m.card.side))?);
        rec.former.push(m.card.identity_key);
    }
    let state = &rec.state;
    rec.waiting.retain(|w| state.member(&w.to).is_some());
    if before.phase != rec.state.phase {
        rec.vote = PhaseVote::default();
        events.push(event(tx, &rec.state, format!("the phase is now {}", rec.state.phase.name()))?);
    }
    merge_vote(&mut rec.vote, &rec.state.vote.clone());
    events.extend(schedule_introductions(tx, &rec.state, me)?);
    events.extend(replay_held(tx, rec)?);
    Ok(events)
}

/// Adds the creator's tally to what we heard ourselves (in a direct channel we also hear
/// each consent; in a shuttle only the tally).
fn merge_vote(ours: &mut PhaseVote, tally: &PhaseVote) {
    if tally.to.is_none() {
        return;
    }
    if ours.to != tally.to {
        *ours = tally.clone();
        return;
    }
    for side in &tally.consents {
        if !ours.consents.contains(side) {
            ours.consents.push(side.clone());
        }
    }
}

fn on_introduce(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    sender: &MemberKey,
    new: MemberKey,
    to: MemberKey,
    invitation: String,
    me: &MemberKey,
) -> Result<Vec<Event>> {
    let both_members = rec.state.member(&new).is_some() && rec.state.member(&to).is_some();
    if &rec.state.creator == me && sender == &new && both_members {
        // Pass it on: the two have no session yet, we have one with each.
        let body = ChannelBody::Introduce { from: new, to, invitation }.encode();
        seal_to(tx, rec, &to, Kind::Channel, &body)?;
        return Ok(Vec::new());
    }
    if sender == &rec.state.creator && &to == me && both_members {
        let task = Task::AcceptIntroduction { channel: rec.state.id, from: new, invitation };
        tx.put(TASK, &format!("accept/{}/{}", record_id(&rec.state.id), hex_encode(&new)), &task)?;
        return Ok(Vec::new());
    }
    Err(ClientError::Refused("an introduction that did not follow the rules was refused".into()))
}
