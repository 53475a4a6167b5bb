//! An in-memory world of parties holding channels, driven only through the crate's public API.
//! Each party keeps what the engine (`backchannel-client`) keeps: its channels and held messages
//! in their stored (JSON) form, reloaded for every step; the texts `PutText` stored; its
//! contacts (the parties it holds a pairwise session with); and what waits for a session
//! (`Seal` to a party without one parks it, `ForgetWaiting` drops it). Every `Seal` becomes a
//! [`Message`] on the wire, numbered per sender, recipient and channel as a session numbers
//! it; a test may take, drop, reorder, duplicate or alter messages there before delivering
//! them. Delivery runs what the engine runs: the sequence tracker (duplicates dropped, gaps
//! shown), then `channel::receive`. Introductions run as the engine's tasks do: the newer
//! member's invitation goes through the creator, and the earlier member accepting it gives the
//! two a session.

#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::collections::{BTreeMap, HashMap, VecDeque};

use backchannel_party::channel::{Channel, ChannelView, HeldMessages, Incoming, receive};
use backchannel_party::conversation::track;
use backchannel_party::documents::ProposalView;
use backchannel_party::event::{Conversation, channel_key};
use backchannel_party::{ChannelEvent, Ctx, Effect, Entry, Event, Lookup, Outcome, Step, Task, TextId, Why};
use backchannel_proto::agreement::Agreement;
use backchannel_proto::channel::{ChannelBody, Mode, Phase, Role};
use backchannel_proto::delivery::{Arrival, SeqTracker};
use backchannel_proto::identity::{Card, Identity, PartyKey};
use backchannel_proto::message::{ChannelId, Kind, Message};

/// The world's clock at the start (every step moves it on by 1 ms).
pub const T0: u64 = 1_800_000_000_000;

/// A party, by its place in the world.
pub type Who = usize;

/// One message on its way.
pub struct Envelope {
    pub from: Who,
    pub to: Who,
    pub msg: Message,
}

impl Envelope {
    /// Its channel body (`None` for a note, or bytes that do not decode).
    pub fn body(&self) -> Option<ChannelBody> {
        match self.msg.kind {
            Kind::Channel => ChannelBody::decode(&self.msg.body).ok(),
            _ => None,
        }
    }

    pub fn is_state(&self) -> bool {
        matches!(self.body(), Some(ChannelBody::State { .. }))
    }
}

/// What a party's `Lookup` answers from.
#[derive(Default)]
pub struct Book {
    /// The parties we hold a session with, and the card each gave us (and whether its
    /// safety number was compared).
    pub contacts: BTreeMap<PartyKey, (Card, bool)>,
    /// Texts stored by `PutText`, by `TextId::key`.
    pub texts: HashMap<String, String>,
}

struct View<'a> {
    book: &'a Book,
    held_channels: usize,
}

impl Lookup for View<'_> {
    fn has_session(&self, party: &PartyKey) -> bool {
        self.book.contacts.contains_key(party)
    }
    fn contact(&self, party: &PartyKey) -> Option<(Card, bool)> {
        self.book.contacts.get(party).cloned()
    }
    fn text(&self, id: &TextId) -> Option<String> {
        self.book.texts.get(&id.key()).cloned()
    }
    fn held_channels(&self) -> usize {
        self.held_channels
    }
}

/// A message for a party we have no session with yet.
pub struct Parked {
    pub to: PartyKey,
    pub channel: ChannelId,
    pub kind: Kind,
    pub body: Vec<u8>,
}

pub struct Party {
    pub identity: Identity,
    pub card: Card,
    /// Channels, in their stored form.
    pub channels: BTreeMap<ChannelId, String>,
    /// Held messages per channel, in their stored form (absent when none).
    pub held: BTreeMap<ChannelId, String>,
    pub book: Book,
    /// Every entry recorded, in order, with its conversation.
    pub log: Vec<(Conversation, Entry)>,
    pub notified: Vec<Event>,
    /// Every task scheduled, in order.
    pub scheduled: Vec<Task>,
    /// Every `ForgetWaiting` applied.
    pub forgot: Vec<(ChannelId, PartyKey)>,
    pub parked: Vec<Parked>,
    /// Copies the sequence tracker dropped before the channel saw them.
    pub duplicates: usize,
    trackers: HashMap<(PartyKey, ChannelId), SeqTracker>,
    next_seq: HashMap<(PartyKey, ChannelId), u64>,
}

impl Party {
    /// Channels we are not in that hold messages for strangers.
    fn held_channels(&self) -> usize {
        self.held.keys().filter(|ch| !self.channels.contains_key(ch)).count()
    }

    fn view(&self) -> View<'_> {
        View { book: &self.book, held_channels: self.held_channels() }
    }
}

pub struct World {
    pub parties: Vec<Party>,
    /// Messages sealed and not yet delivered, oldest first.
    pub wire: VecDeque<Envelope>,
    tasks: VecDeque<(Who, Task)>,
    pub now_ms: u64,
    /// Every message delivered: sender, recipient, kind, body (for a channel message).
    pub delivered: Vec<(Who, Who, Kind, Option<ChannelBody>)>,
}

/// The contact id under which others know `who`.
pub fn contact_id(who: Who) -> String {
    format!("contact-{who}")
}

fn load<T: serde::de::DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).unwrap()
}

fn save<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

/// The invitation `who` makes to introduce itself (checked when the earlier member accepts).
fn invitation_of(card: &Card) -> String {
    format!("invitation from {}", backchannel_wire::hex_encode(&card.identity_key))
}

impl World {
    /// Parties by (name, side), with no sessions between them.
    pub fn new(people: &[(&str, &str)]) -> World {
        let parties = people
            .iter()
            .map(|(name, side)| {
                let identity = Identity::generate(name, side).unwrap();
                Party {
                    card: identity.card(),
                    identity,
                    channels: BTreeMap::new(),
                    held: BTreeMap::new(),
                    book: Book::default(),
                    log: Vec::new(),
                    notified: Vec::new(),
                    scheduled: Vec::new(),
                    forgot: Vec::new(),
                    parked: Vec::new(),
                    duplicates: 0,
                    trackers: HashMap::new(),
                    next_seq: HashMap::new(),
                }
            })
            .collect();
        World { parties, wire: VecDeque::new(), tasks: VecDeque::new(), now_ms: T0, delivered: Vec::new() }
    }

    /// A channel created by party 0 (as `creator_role`), which holds a session with every
    /// other party and adds each with its role; everything delivered and every introduction
    /// done.
    pub fn channel_of(
        people: &[(&str, &str)],
        mode: Mode,
        creator_role: Role,
        roles: &[Role],
    ) -> (World, ChannelId) {
        let mut w = World::new(people);
        for i in 1..people.len() {
            w.connect(0, i);
        }
        let ch = w.create(0, "muscat", mode, creator_role);
        for (i, role) in roles.iter().enumerate() {
            w.add(0, ch, i + 1, *role).unwrap();
            w.settle();
        }
        (w, ch)
    }

    fn tick(&mut self) -> u64 {
        self.now_ms += 1;
        self.now_ms
    }

    pub fn card(&self, who: Who) -> Card {
        self.parties[who].card.clone()
    }

    pub fn key(&self, who: Who) -> PartyKey {
        self.parties[who].card.party()
    }

    pub fn name(&self, who: Who) -> String {
        self.parties[who].card.name.clone()
    }

    fn index_of(&self, key: &PartyKey) -> Who {
        self.parties.iter().position(|p| p.card.party() == *key).unwrap()
    }

    pub fn has_session(&self, a: Who, b: Who) -> bool {
        self.parties[a].book.contacts.contains_key(&self.key(b))
    }

    /// `a` and `b` become contacts with a session (each learns the other's card from itself);
    /// what waited for that session is sealed now.
    pub fn connect(&mut self, a: Who, b: Who) {
        for (x, y) in [(a, b), (b, a)] {
            let card = self.card(y);
            self.parties[x].book.contacts.insert(card.party(), (card, false));
        }
        for (x, y) in [(a, b), (b, a)] {
            let key = self.key(y);
            let (now, waiting): (Vec<Parked>, Vec<Parked>) =
                std::mem::take(&mut self.parties[x].parked).into_iter().partition(|p| p.to == key);
            self.parties[x].parked = waiting;
            for p in now {
                self.enqueue(x, y, p.channel, p.kind, p.body);
            }
        }
    }

    pub fn create(&mut self, who: Who, name: &str, mode: Mode, role: Role) -> ChannelId {
        let now_ms = self.tick();
        let party = &mut self.parties[who];
        let ctx = Ctx { me: &party.card, now_ms };
        let (channel, step) = Channel::create(&ctx, name, mode, role, None, None).unwrap();
        let id = channel.state.id;
        party.channels.insert(id, save(&channel));
        self.apply(who, step);
        id
    }

    pub fn holds(&self, who: Who, ch: ChannelId) -> bool {
        self.parties[who].channels.contains_key(&ch)
    }

    /// The channel as `who` stored it.
    pub fn channel(&self, who: Who, ch: ChannelId) -> Channel {
        load(&self.parties[who].channels[&ch])
    }

    /// Its stored form.
    pub fn stored(&self, who: Who, ch: ChannelId) -> Option<String> {
        self.parties[who].channels.get(&ch).cloned()
    }

    /// How many messages `who` holds for `ch`.
    pub fn held(&self, who: Who, ch: ChannelId) -> usize {
        self.parties[who].held.get(&ch).map_or(0, |h| load::<HeldMessages>(h).0.len())
    }

    /// Runs one of `who`'s commands on its channel `ch`; on success the channel is stored and
    /// the step applied (nothing is sent until the wire is delivered), on refusal nothing.
    pub fn op<T>(
        &mut self,
        who: Who,
        ch: ChannelId,
        f: impl FnOnce(&mut Channel, &Ctx<'_>, &dyn Lookup, &Identity) -> Outcome<(T, Step)>,
    ) -> Outcome<T> {
        let now_ms = self.tick();
        let party = &mut self.parties[who];
        let mut channel: Channel = load(&party.channels[&ch]);
        let ctx = Ctx { me: &party.card, now_ms };
        let (out, step) = f(&mut channel, &ctx, &party.view(), &party.identity)?;
        party.channels.insert(ch, save(&channel));
        // As the engine does: every channel message names the state its sender holds.
        self.apply(who, channel.stamp(step));
        Ok(out)
    }

    pub fn add(&mut self, who: Who, ch: ChannelId, member: Who, role: Role) -> Outcome<()> {
        let card = self.card(member);
        self.op(who, ch, |c, ctx, _, _| Ok(((), c.add(ctx, card, role)?)))
    }

    pub fn remove(&mut self, who: Who, ch: ChannelId, query: &str) -> Outcome<()> {
        self.op(who, ch, |c, ctx, _, _| Ok(((), c.remove(ctx, query)?)))
    }

    /// A note; returns the names of its recipients.
    pub fn note(&mut self, who: Who, ch: ChannelId, text: &str, to: &[&str]) -> Outcome<Vec<String>> {
        let to: Vec<String> = to.iter().map(|s| (*s).to_owned()).collect();
        self.op(who, ch, |c, ctx, _, _| {
            let (members, step) = c.note(ctx, text, &to)?;
            Ok((members.into_iter().map(|m| m.card.name).collect(), step))
        })
    }

    pub fn consent(&mut self, who: Who, ch: ChannelId, phase: Option<Phase>) -> Outcome<()> {
        self.op(who, ch, |c, ctx, _, _| Ok(((), c.consent(ctx, phase)?)))
    }

    /// The hub passes on the note at `entry` (1-based) of its timeline of `ch`.
    pub fn forward(
        &mut self,
        who: Who,
        ch: ChannelId,
        entry: usize,
        to: &[&str],
        rephrased: Option<&str>,
    ) -> Outcome<()> {
        let note = self.timeline(who, ch).get(entry - 1).cloned();
        let to: Vec<String> = to.iter().map(|s| (*s).to_owned()).collect();
        self.op(who, ch, |c, ctx, _, _| {
            let (_, step) = c.forward(ctx, entry, note.as_ref(), &to, rephrased)?;
            Ok(((), step))
        })
    }

    pub fn put_paper(&mut self, who: Who, ch: ChannelId, title: &str, text: &str) -> Outcome<u32> {
        self.op(who, ch, |c, ctx, _, _| c.docs.put_paper(&c.state, ctx, title, text))
    }

    pub fn propose(
        &mut self,
        who: Who,
        ch: ChannelId,
        title: &str,
        text: &str,
        sides: &[&str],
    ) -> Outcome<ProposalView> {
        let sides: Vec<String> = sides.iter().map(|s| (*s).to_owned()).collect();
        self.op(who, ch, |c, ctx, lookup, _| c.docs.propose(&c.state, ctx, lookup, title, text, &sides))
    }

    pub fn ratify(&mut self, who: Who, ch: ChannelId, query: &str) -> Outcome<ProposalView> {
        self.op(who, ch, |c, ctx, _, identity| c.docs.ratify(&c.state, ctx, identity, query))
    }

    /// Puts a channel body from `from` to `to` on the wire, whatever `from`'s rules say (a
    /// forgery, or a client that does not follow them).
    pub fn send(&mut self, from: Who, to: Who, ch: ChannelId, body: &ChannelBody) {
        self.enqueue(from, to, ch, Kind::Channel, body.encode());
    }

    /// Puts a note from `from` to `to` on the wire, whatever `from`'s rules say.
    pub fn send_note(&mut self, from: Who, to: Who, ch: ChannelId, text: &str) {
        self.enqueue(from, to, ch, Kind::Note, text.as_bytes().to_vec());
    }

    /// Numbers a message as `from`'s session with `to` would, and puts it on the wire.
    pub fn enqueue(&mut self, from: Who, to: Who, ch: ChannelId, kind: Kind, body: Vec<u8>) {
        let sent_at = self.now_ms;
        let key = self.key(to);
        let seq = self.parties[from].next_seq.entry((key, ch)).or_insert(0);
        *seq += 1;
        let msg = Message::new(ch, *seq, sent_at, kind, body);
        self.wire.push_back(Envelope { from, to, msg });
    }

    /// Carries out a step of `who`'s, as the engine applies it.
    pub fn apply(&mut self, who: Who, step: Step) {
        for effect in step.effects {
            match effect {
                Effect::Seal { to, channel, kind, body } => {
                    for key in to {
                        let j = self.index_of(&key);
                        assert_ne!(j, who, "a party sealed to itself");
                        match self.parties[who].book.contacts.contains_key(&key) {
                            true => self.enqueue(who, j, channel, kind, body.clone()),
                            false => self.parties[who].parked.push(Parked {
                                to: key,
                                channel,
                                kind,
                                body: body.clone(),
                            }),
                        }
                    }
                }
                Effect::Record { conversation, entry } => self.parties[who].log.push((conversation, entry)),
                Effect::Notify(event) => self.parties[who].notified.push(event),
                Effect::Schedule(task) => {
                    self.parties[who].scheduled.push(task.clone());
                    self.tasks.push_back((who, task));
                }
                Effect::PutText { id, text } => {
                    self.parties[who].book.texts.insert(id.key(), text);
                }
                Effect::ForgetWaiting { channel, to } => {
                    let party = &mut self.parties[who];
                    party.parked.retain(|p| !(p.to == to && p.channel == channel));
                    party.forgot.push((channel, to));
                }
            }
        }
    }

    /// Delivers one message as the engine takes it in: numbered (a duplicate is dropped, a
    /// gap shown), then through the channel's rules, the channel stored only if it changed.
    pub fn deliver(&mut self, env: Envelope) {
        let now_ms = self.tick();
        let Envelope { from, to, msg } = env;
        let sender = self.card(from);
        let contact = contact_id(from);
        self.delivered.push((
            from,
            to,
            msg.kind,
            (msg.kind == Kind::Channel).then(|| ChannelBody::decode(&msg.body).ok()).flatten(),
        ));
        let party = &mut self.parties[to];
        let name =
            party.channels.get(&msg.channel).map_or_else(String::new, |c| load::<Channel>(c).state.name);
        let ctx = Ctx { me: &party.card, now_ms };
        let tracker =
            party.trackers.entry((sender.party(), msg.channel)).or_insert_with(|| SeqTracker::starting_at(1));
        let (arrival, step) = track(&ctx, tracker, &contact, &sender.name, Some(&name), &msg);
        self.apply(to, step);
        let party = &mut self.parties[to];
        if arrival == Arrival::Duplicate {
            party.duplicates += 1;
            return;
        }
        let before = party.channels.get(&msg.channel).cloned();
        let channel: Option<Channel> = before.as_deref().map(load);
        let mut held: HeldMessages =
            party.held.get(&msg.channel).map_or_else(HeldMessages::default, |h| load(h));
        let ctx = Ctx { me: &party.card, now_ms };
        let incoming = Incoming { contact: &contact, sender: &sender, msg: &msg };
        let received = receive(&ctx, &party.view(), channel, &mut held, incoming);
        let after = received.channel.as_ref().map(save);
        match received.changed {
            true => party.channels.insert(msg.channel, after.unwrap()),
            // Not stored: the channel must be exactly as it was (a refusal changes nothing).
            false => {
                assert_eq!(after, before, "a message that did not change the channel changed it");
                None
            }
        };
        match held.is_empty() {
            true => party.held.remove(&msg.channel),
            false => party.held.insert(msg.channel, save(&held)),
        };
        self.apply(to, received.step);
    }

    /// Delivers the oldest message on the wire.
    pub fn deliver_next(&mut self) -> bool {
        match self.wire.pop_front() {
            Some(env) => {
                self.deliver(env);
                true
            }
            None => false,
        }
    }

    /// Delivers everything on the wire (and what that sets off), running no task.
    pub fn flush(&mut self) {
        while self.deliver_next() {}
    }

    /// Delivers everything and runs every task, until nothing is left to do.
    pub fn settle(&mut self) {
        loop {
            self.flush();
            let Some((who, task)) = self.tasks.pop_front() else { return };
            self.run_task(who, task);
        }
    }

    /// Takes the first message on the wire that `pred` picks (it must exist).
    pub fn take(&mut self, pred: impl Fn(&Envelope) -> bool) -> Envelope {
        let i = self.wire.iter().position(pred).unwrap();
        self.wire.remove(i).unwrap()
    }

    /// Takes every message on the wire that `pred` picks.
    pub fn take_all(&mut self, pred: impl Fn(&Envelope) -> bool) -> Vec<Envelope> {
        let (taken, left): (Vec<Envelope>, Vec<Envelope>) = self.wire.drain(..).partition(|e| pred(e));
        self.wire = left.into();
        taken
    }

    /// A task, as the engine runs it after its transaction.
    pub fn run_task(&mut self, who: Who, task: Task) {
        match task {
            Task::Introduce { channel, to } => {
                let Some(json) = self.parties[who].channels.get(&channel) else { return };
                let ch: Channel = load(json);
                let j = self.index_of(&to);
                if ch.removed || ch.state.member(&to).is_none() || self.has_session(who, j) {
                    return;
                }
                let body = ChannelBody::Introduce {
                    from: self.key(who),
                    to,
                    invitation: invitation_of(&self.card(who)),
                };
                let creator = self.index_of(&ch.state.creator);
                let mut step = Step::none();
                step.push(Effect::Seal {
                    to: vec![self.key(creator)],
                    channel,
                    kind: Kind::Channel,
                    body: body.encode(),
                });
                self.apply(who, step);
            }
            Task::AcceptIntroduction { channel, from, invitation } => {
                let Some(json) = self.parties[who].channels.get(&channel) else { return };
                let ch: Channel = load(json);
                let j = self.index_of(&from);
                let Some(member) = ch.state.member(&from).cloned() else { return };
                if invitation != invitation_of(&self.card(j)) || self.has_session(who, j) {
                    return;
                }
                self.connect(who, j);
                let now_ms = self.tick();
                let party = &self.parties[who];
                let step = ch.connected(&Ctx { me: &party.card, now_ms }, &member.card);
                self.apply(who, step);
            }
        }
    }

    /// The agreement `who` would export for proposal `query` of `ch`.
    pub fn agreement(&self, who: Who, ch: ChannelId, query: &str) -> Outcome<Agreement> {
        let c = self.channel(who, ch);
        c.docs.agreement(&c.state, &self.parties[who].view(), query)
    }

    /// How `who` shows channel `ch`.
    pub fn view(&self, who: Who, ch: ChannelId) -> ChannelView {
        self.channel(who, ch).view(&self.parties[who].card, &self.parties[who].view())
    }

    /// Forgets what was recorded so far (to look at what comes next).
    pub fn clear(&mut self) {
        for p in &mut self.parties {
            p.log.clear();
            p.notified.clear();
            p.scheduled.clear();
            p.forgot.clear();
            p.duplicates = 0;
        }
        self.delivered.clear();
    }

    /// `who`'s timeline of channel `ch`.
    pub fn timeline(&self, who: Who, ch: ChannelId) -> Vec<Entry> {
        let key = channel_key(&ch);
        self.parties[who].log.iter().filter(|(c, _)| c.key == key).map(|(_, e)| e.clone()).collect()
    }

    /// The channel events in `who`'s timeline of `ch`.
    pub fn events(&self, who: Who, ch: ChannelId) -> Vec<ChannelEvent> {
        self.timeline(who, ch)
            .into_iter()
            .filter_map(|e| match e {
                Entry::Channel { what, .. } => Some(what),
                _ => None,
            })
            .collect()
    }

    /// The notes `who` received in `ch`: (from, text).
    pub fn notes(&self, who: Who, ch: ChannelId) -> Vec<(String, String)> {
        self.timeline(who, ch)
            .into_iter()
            .filter_map(|e| match e {
                Entry::Note { from, text, outgoing: false, .. } => Some((from, text)),
                _ => None,
            })
            .collect()
    }

    /// Every refusal `who` recorded, in any conversation.
    pub fn rejections(&self, who: Who) -> Vec<Why> {
        self.parties[who]
            .log
            .iter()
            .filter_map(|(_, e)| match e {
                Entry::Rejected { why, .. } => why.clone(),
                _ => None,
            })
            .collect()
    }

    /// Every entry `who` recorded, in any conversation.
    pub fn entries(&self, who: Who) -> Vec<Entry> {
        self.parties[who].log.iter().map(|(_, e)| e.clone()).collect()
    }
}
