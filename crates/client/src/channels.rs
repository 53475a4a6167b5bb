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

/// Finds one of our channels by name (case-insensitive).
pub(crate) fn find_channel(tx: &Tx<'_>, name: &str) -> Result<(String, ChannelRecord)> {
    let mut hits: Vec<(String, ChannelRecord)> = tx
        .all::<ChannelRecord>(CHANNEL)?
        .into_iter()
        .filter(|(_, c)| c.state.name.eq_ignore_ascii_case(name))
        .collect();
    match hits.len() {
        0 => Err(ClientError::UnknownChannel(name.to_owned())),
        1 => Ok(hits.remove(0)),
        _ => Err(ClientError::Refused(format!(
            "you are in more than one channel called {name:?}; ask their creators to rename one"
        ))),
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
    tx.outbox_push(&OutboxItem::new(&cid, &session.send_route, sealed.blocks))?;
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

/// Seals a channel-wide item (state, consent, draft, proposal, ratification) for every
/// member but `sender`, whatever the mode.
pub(crate) fn broadcast(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    sender: &MemberKey,
    body: &ChannelBody,
) -> Result<Fanout> {
    let everyone: Vec<Member> = rec.state.everyone_but(sender).into_iter().cloned().collect();
    fan_out(tx, rec, &everyone, Kind::Channel, &body.encode())
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
            if find_channel(tx, name).is_ok() {
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
            let keys = to
                .iter()
                .map(|q| Ok(find_member(&rec.state, q)?.card.identity_key))
                .collect::<Result<Vec<_>>>()?;
            let members: Vec<Member> =
                rec.state.note_recipients(&me.identity_key, &keys)?.into_iter().cloned().collect();
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
            let keys = to
                .iter()
                .map(|q| Ok(find_member(&rec.state, q)?.card.identity_key))
                .collect::<Result<Vec<_>>>()?;
            let members: Vec<Member> =
                rec.state.note_recipients(&me.identity_key, &keys)?.into_iter().cloned().collect();
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
            advance_phase(tx, &mut rec, &me)?;
            tx.put(CHANNEL, &id, &rec)?;
            view_channel(tx, &rec)
        })
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Principal => "principal",
        Role::Intermediary => "intermediary",
        Role::Observer => "observer",
    }
}

/// The creator moves the phase once every side consented, and tells everyone.
fn advance_phase(tx: &Tx<'_>, rec: &mut ChannelRecord, me: &MemberKey) -> Result<Option<Event>> {
    let Some(phase) = rec.vote.agreed(&rec.state).filter(|_| &rec.state.creator == me) else {
        return Ok(None);
    };
    rec.state.phase = phase;
    rec.state.version += 1;
    rec.vote = PhaseVote::default();
    broadcast(tx, rec, me, &ChannelBody::State { state: rec.state.clone() })?;
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
    let Some((id, mut rec)) =
        tx.get::<ChannelRecord>(CHANNEL, &record_id(&msg.channel))?.map(|r| (record_id(&msg.channel), r))
    else {
        return first_contact(tx, cid, sender, body);
    };
    let events = match on_message(tx, &mut rec, sender, &msg, body) {
        Ok(events) => events,
        Err(ClientError::Refused(why)) => {
            let detail = format!("{why}; a message from {} was refused", sender.name);
            tx.append_timeline(
                &timeline_key(&rec.state.id),
                &Entry::Rejected { from: sender.name.clone(), detail: detail.clone(), at: now_ms() },
            )?;
            vec![Event::Rejected {
                from: sender.name.clone(),
                detail: format!("[{}] {detail}", rec.state.name),
            }]
        }
        Err(e) => return Err(e),
    };
    tx.put(CHANNEL, &id, &rec)?;
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
    let rec = ChannelRecord::new(state);
    let names: Vec<String> = rec.state.members.iter().map(|m| m.card.name.clone()).collect();
    let mut events =
        vec![event(tx, &rec.state, format!("{} added you; members: {}", sender.name, names.join(", ")))?];
    events.extend(schedule_introductions(tx, &rec.state, &me)?);
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
            events.extend(advance_phase(tx, rec, &me)?);
            Ok(events)
        }
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
    let entry = Entry::Note {
        from: from.to_owned(),
        outgoing: false,
        text: text.clone(),
        sent_at: msg.sent_at,
        at: now_ms(),
        seq: msg.sender_seq,
        relayed_by: relay.as_ref().map(|r| r.hub.clone()),
        rephrased: relay.as_ref().is_some_and(|r| r.rephrased),
    };
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
    }
    let state = &rec.state;
    rec.waiting.retain(|w| state.member(&w.to).is_some());
    if before.phase != rec.state.phase {
        rec.vote = PhaseVote::default();
        events.push(event(tx, &rec.state, format!("the phase is now {}", rec.state.phase.name()))?);
    }
    events.extend(schedule_introductions(tx, &rec.state, me)?);
    Ok(events)
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
