//! Contacts as the engine keeps them: the record in the store (card, trust, routes both ways,
//! delivery trackers) and, in memory, the pairwise session, loaded once and written back in the same
//! transaction as whatever it sealed or opened.

use std::collections::{BTreeMap, HashMap};

use backchannel_party::contacts::{Found, find};
use backchannel_proto::delivery::SeqTracker;
use backchannel_proto::identity::{Card, PartyKey, safety_number};
use backchannel_proto::message::ChannelId;
use backchannel_proto::session::{Session, SessionPickle};
use serde::{Deserialize, Serialize};

use super::routes::{Inbox, Lines, OutRoute, RouteView};
use crate::error::{ClientError, Result};
use crate::store::{Record, Tx};

/// A contact as stored: card, trust, our inboxes for it and its routes, and delivery
/// trackers. Its session is a record of its own ([`SessionRecord`]); stores written before
/// kept it here, and one inbox (`inbox`) with the route in the session.
#[derive(Serialize, Deserialize)]
pub(crate) struct ContactRecord {
    pub card: Card,
    pub verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionPickle>,
    #[serde(default, rename = "inbox", skip_serializing)]
    pub legacy_inbox: Option<Inbox>,
    /// Our receive queues for this contact, one per host.
    #[serde(default)]
    pub inboxes: Vec<Inbox>,
    /// The contact's receive queues for us: every frame goes to each usable one.
    #[serde(default)]
    pub routes: Vec<OutRoute>,
    #[serde(default)]
    pub lines: Lines,
    pub trackers: Vec<(ChannelId, SeqTracker)>,
    /// Channels we were not in when this contact first sent for them, oldest first: their
    /// trackers are bounded ([`MAX_STRANGER_TRACKERS`]), so made-up channel ids cannot grow
    /// the record without end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strangers: Vec<ChannelId>,
    pub added_at: u64,
}

/// Most trackers one contact keeps for channels we are not in (their messages are held, a
/// few, or refused); beyond it the oldest is dropped.
pub(crate) const MAX_STRANGER_TRACKERS: usize = 16;

impl Record for ContactRecord {
    const KIND: &'static str = "contact";
}

/// A contact's session, in a record of its own: it changes with every message, the rest of
/// the contact seldom.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct SessionRecord(pub SessionPickle);

impl Record for SessionRecord {
    const KIND: &'static str = "session";
}

impl ContactRecord {
    pub fn new(card: Card, inboxes: Vec<Inbox>, routes: Vec<OutRoute>, now: u64) -> Self {
        Self {
            card,
            verified: false,
            session: None,
            legacy_inbox: None,
            inboxes,
            routes,
            lines: Lines::default(),
            trackers: Vec::new(),
            strangers: Vec::new(),
            added_at: now,
        }
    }

    /// The inbox of ours with this receive id.
    pub fn inbox_mut(&mut self, recv_id: &backchannel_wire::QueueId) -> Option<&mut Inbox> {
        self.inboxes.iter_mut().find(|i| i.recv_id == *recv_id)
    }

    /// The host we first reached this contact through (where introductions start).
    pub fn first_relay(&self) -> Option<&backchannel_wire::RelayAddress> {
        self.inboxes.iter().find(|i| i.current()).or(self.inboxes.first()).map(|i| &i.relay)
    }

    /// The tracker of a channel message: `ours` says whether we are in its channel (or it is
    /// the direct conversation). Trackers of channels we are not in are bounded.
    pub fn tracker_for(&mut self, channel: ChannelId, ours: bool) -> &mut SeqTracker {
        if ours {
            self.strangers.retain(|c| *c != channel);
        } else if !self.trackers.iter().any(|(c, _)| *c == channel) {
            self.strangers.push(channel);
            while self.strangers.len() > MAX_STRANGER_TRACKERS {
                let gone = self.strangers.remove(0);
                self.trackers.retain(|(c, _)| *c != gone);
            }
        }
        self.tracker(channel)
    }

    pub fn tracker(&mut self, channel: ChannelId) -> &mut SeqTracker {
        let i = match self.trackers.iter().position(|(c, _)| *c == channel) {
            Some(i) => i,
            None => {
                self.trackers.push((channel, SeqTracker::starting_at(1)));
                self.trackers.len() - 1
            }
        };
        &mut self.trackers[i].1
    }
}

/// A contact as shown to the user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContactView {
    pub name: String,
    pub side: String,
    pub safety_number: String,
    pub verified: bool,
    /// The host of our first inbox for this contact.
    pub relay: String,
    /// Every route, both ways, with its state.
    pub routes: Vec<RouteView>,
}

impl ContactView {
    /// `beat`: the heartbeat interval kept with this contact (in a hotline), if any.
    pub(crate) fn new(me: &Card, c: &ContactRecord, now: u64, beat: Option<u64>) -> Self {
        Self {
            name: c.card.name.clone(),
            side: c.card.side.clone(),
            safety_number: safety_number(me, &c.card),
            verified: c.verified,
            relay: c.first_relay().map(ToString::to_string).unwrap_or_default(),
            routes: super::routes::views(c, now, beat),
        }
    }
}

/// One contact in memory.
pub(crate) struct Contact {
    pub record: ContactRecord,
    session: Option<Session>,
}

/// Every contact, by id, with an index by party key; sessions load on first use.
#[derive(Default)]
pub(crate) struct Contacts {
    by_id: BTreeMap<String, Contact>,
    by_party: HashMap<PartyKey, String>,
    /// Which of our notes each frame still waiting for a receipt carries.
    pub frames: super::delivery::FrameIndex,
    /// Path tests on their way: when each was sent, by nonce.
    pub path_tests: super::routes::PathTests,
}

impl Contacts {
    /// Loads every contact record (not yet their sessions).
    pub fn load(tx: &Tx<'_>) -> Result<Self> {
        let mut all = Self::default();
        for (id, record) in tx.load_all::<ContactRecord>()? {
            all.insert(id, record, None);
        }
        Ok(all)
    }

    pub fn insert(&mut self, id: String, record: ContactRecord, session: Option<Session>) {
        self.by_party.insert(record.card.party(), id.clone());
        self.by_id.insert(id, Contact { record, session });
    }

    /// Forgets what memory holds for `id`, so the next use reads what the store committed.
    pub fn reload(&mut self, tx: &Tx<'_>, id: &str) -> Result<()> {
        self.by_id.remove(id);
        self.by_party.retain(|_, v| v != id);
        if let Some(record) = tx.load::<ContactRecord>(id)? {
            self.insert(id.to_owned(), record, None);
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&ContactRecord> {
        self.by_id.get(id).map(|c| &c.record)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut ContactRecord> {
        self.by_id.get_mut(id).map(|c| &mut c.record)
    }

    pub fn id_of(&self, party: &PartyKey) -> Option<&str> {
        self.by_party.get(party).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &ContactRecord)> {
        self.by_id.iter().map(|(id, c)| (id, &c.record))
    }

    /// A contact by `NAME` or `NAME@SIDE` (case-insensitive).
    pub fn find(&self, query: &str) -> Result<String> {
        match find(self.by_id.iter(), |(_, c)| &c.record.card, query) {
            Found::One((id, _)) => Ok(id.clone()),
            Found::None => Err(ClientError::UnknownContact { name: query.to_owned() }),
            Found::Several => Err(ClientError::AmbiguousContact { name: query.to_owned() }),
        }
    }

    /// The contact's session, loaded from the store the first time.
    pub fn session(&mut self, tx: &Tx<'_>, id: &str) -> Result<&mut Session> {
        let contact = self.by_id.get_mut(id).ok_or_else(|| tx.damaged(format!("contact {id} vanished")))?;
        if contact.session.is_none() {
            let pickle = match tx.load::<SessionRecord>(id)? {
                Some(SessionRecord(p)) => p,
                None => {
                    let legacy = tx.load::<ContactRecord>(id)?.and_then(|c| c.session);
                    legacy.ok_or_else(|| tx.damaged(format!("contact {id} has no session")))?
                }
            };
            contact.session = Some(Session::from_pickle(pickle));
        }
        contact.session.as_mut().ok_or_else(|| tx.damaged(format!("contact {id} has no session")))
    }

    /// Writes a contact's record back to the store.
    pub fn save_record(&self, tx: &Tx<'_>, id: &str) -> Result<()> {
        match self.by_id.get(id) {
            Some(c) => tx.save(id, &c.record),
            None => Ok(()),
        }
    }

    /// Writes a contact's session (if loaded) back to the store.
    pub fn save_session(&self, tx: &Tx<'_>, id: &str) -> Result<()> {
        match self.by_id.get(id).and_then(|c| c.session.as_ref()) {
            Some(session) => tx.save(id, &SessionRecord(session.pickle())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use backchannel_proto::identity::Identity;

    /// L4: a contact that sends for ever new made-up channel ids keeps at most
    /// `MAX_STRANGER_TRACKERS` trackers for them; the direct conversation's tracker and those
    /// of channels we are in stay, whatever it sends.
    #[test]
    fn trackers_for_channels_we_are_not_in_are_bounded() {
        let card = Identity::generate("Bao", "B").unwrap().card();
        let mut c = ContactRecord::new(card, Vec::new(), Vec::new(), 0);
        c.tracker_for(ChannelId::DIRECT, true);
        let ours = ChannelId([1; 16]);
        let _ = c.tracker_for(ours, true).record(5);
        for i in 0..1000u32 {
            let mut id = [9u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            let _ = c.tracker_for(ChannelId(id), false).record(1);
        }
        assert_eq!(c.trackers.len(), 2 + MAX_STRANGER_TRACKERS);
        assert_eq!(c.strangers.len(), MAX_STRANGER_TRACKERS);
        assert!(c.trackers.iter().any(|(ch, _)| *ch == ChannelId::DIRECT));
        let kept = c.trackers.iter().find(|(ch, _)| *ch == ours).map(|(_, t)| t.clone());
        assert_eq!(kept.map(|t| t.missing()), Some(vec![(1, 4)]), "our channel's tracker is untouched");
    }
}
