//! Contacts as the engine keeps them: the record in the store (card, trust, inbox, delivery
//! trackers) and, in memory, the pairwise session, loaded once and written back in the same
//! transaction as whatever it sealed or opened.

use std::collections::{BTreeMap, HashMap};

use backchannel_party::contacts::{Found, find};
use backchannel_proto::delivery::SeqTracker;
use backchannel_proto::identity::{Card, PartyKey, safety_number};
use backchannel_proto::message::ChannelId;
use backchannel_proto::session::{Session, SessionPickle};
use backchannel_wire::{QueueId, QueueSecret, RelayAddress};
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};
use crate::store::{Record, Tx};

/// A receive queue of ours on some relay.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Inbox {
    pub relay: RelayAddress,
    pub recv_id: QueueId,
    pub recv_secret: QueueSecret,
}

/// A contact as stored: card, trust, inbox and delivery trackers. Its session is a record of
/// its own ([`SessionRecord`]); stores written before kept it here.
#[derive(Serialize, Deserialize)]
pub(crate) struct ContactRecord {
    pub card: Card,
    pub verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionPickle>,
    pub inbox: Inbox,
    pub trackers: Vec<(ChannelId, SeqTracker)>,
    pub added_at: u64,
}

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
    pub fn new(card: Card, inbox: Inbox, now: u64) -> Self {
        Self { card, verified: false, session: None, inbox, trackers: Vec::new(), added_at: now }
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
    pub relay: String,
}

impl ContactView {
    pub(crate) fn new(me: &Card, c: &ContactRecord) -> Self {
        Self {
            name: c.card.name.clone(),
            side: c.card.side.clone(),
            safety_number: safety_number(me, &c.card),
            verified: c.verified,
            relay: c.inbox.relay.to_string(),
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
