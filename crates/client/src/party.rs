//! The party: opens its store and answers the simple questions (who am I, who are my
//! contacts, what was said). Sending, receiving and invitations live in their own modules.

use std::collections::HashMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use backchannel_proto::identity::{Card, Identity, IdentityPickle};
use backchannel_proto::message::ChannelId;
use backchannel_wire::RelayAddress;

use crate::channels::{expire_notes, find_channel, timeline_key};
use crate::error::{ClientError, Result};
use crate::model::{CARD, CONTACT, ContactRecord, ContactView, Entry, EntryView, IDENTITY};
use crate::store::{Passphrase, Store, Tx};
use crate::transport::RelayClient;

/// One party on one device.
pub struct Party {
    pub(crate) store: Store,
    /// Open connections, reused across operations (a TLS handshake per note would dominate).
    relays: HashMap<String, RelayClient>,
}

impl std::fmt::Debug for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Party").field("store", &self.store).finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Party {
    /// Creates a new party (identity keys and an empty store) in `home`.
    pub fn init(home: &Path, passphrase: &Passphrase, name: &str, side: &str) -> Result<Self> {
        let identity = Identity::generate(name, side)
            .map_err(|why| ClientError::InvalidInput { what: "name or side", why: why.to_owned() })?;
        let mut store = Store::create(home, passphrase)?;
        store.tx(|tx| {
            tx.put(IDENTITY.0, IDENTITY.1, &identity.pickle())?;
            tx.put(CARD.0, CARD.1, &identity.card())
        })?;
        Ok(Self { store, relays: HashMap::new() })
    }

    pub fn open(home: &Path, passphrase: &Passphrase) -> Result<Self> {
        Ok(Self { store: Store::open(home, passphrase)?, relays: HashMap::new() })
    }

    /// A connection to `relay`: a kept one if it is still open, else a new one. Give it back
    /// with [`Party::keep_relay`] after a successful exchange.
    pub(crate) async fn take_relay(&mut self, relay: &RelayAddress) -> Result<RelayClient> {
        match self.relays.remove(&relay.to_string()) {
            Some(client) if !client.is_closed() => Ok(client),
            _ => RelayClient::connect(relay).await,
        }
    }

    pub(crate) fn keep_relay(&mut self, client: RelayClient) {
        self.relays.insert(client.address().to_string(), client);
    }

    pub fn home(&self) -> &Path {
        self.store.dir()
    }

    /// This party's public card.
    pub fn me(&mut self) -> Result<Card> {
        self.store.tx(|tx| load_card(tx))
    }

    pub fn contacts(&mut self) -> Result<Vec<ContactView>> {
        self.store.tx(|tx| {
            let me = load_card(tx)?;
            let all = tx.all::<ContactRecord>(CONTACT)?;
            Ok(all.iter().map(|(_, c)| ContactView::new(&me, c)).collect())
        })
    }

    /// Every contact's seal key, with its `NAME (SIDE)`: for checking an agreement's seals.
    pub fn seal_keys(&mut self) -> Result<Vec<(String, [u8; 32])>> {
        self.store.tx(|tx| {
            let all = tx.all::<ContactRecord>(CONTACT)?;
            Ok(all
                .into_iter()
                .map(|(_, c)| (format!("{} ({})", c.card.name, c.card.side), c.card.seal_key))
                .collect())
        })
    }

    /// Marks a contact verified, after the humans compared safety numbers out of band.
    pub fn verify(&mut self, name: &str) -> Result<ContactView> {
        self.store.tx(|tx| {
            let me = load_card(tx)?;
            let (id, mut contact) = find_contact(tx, name)?;
            contact.verified = true;
            tx.put(CONTACT, &id, &contact)?;
            Ok(ContactView::new(&me, &contact))
        })
    }

    /// The conversation with a contact or in a channel, oldest first, with gaps marked open
    /// or closed. Channel notes past the phase's retention are deleted first.
    pub fn read(&mut self, name: &str) -> Result<Vec<EntryView>> {
        self.store.tx(|tx| {
            let (timeline, direct) = match find_channel(tx, name) {
                Ok((_, rec)) => {
                    expire_notes(tx, now_ms())?;
                    (timeline_key(&rec.state.id), None)
                }
                Err(ClientError::UnknownChannel(_)) => {
                    let (id, _) = find_contact(tx, name).map_err(|e| match e {
                        ClientError::UnknownContact(n) => ClientError::UnknownName(n),
                        other => other,
                    })?;
                    (id.clone(), Some(id))
                }
                Err(e) => return Err(e),
            };
            let entries: Vec<Entry> = tx.timeline(&timeline)?;
            entries.into_iter().map(|entry| view(tx, entry, direct.as_deref())).collect()
        })
    }
}

/// A gap is open while some of its numbers are still missing from its sender's tracker.
fn view(tx: &Tx<'_>, entry: Entry, direct: Option<&str>) -> Result<EntryView> {
    let still_missing = match &entry {
        Entry::Gap { first, last, source, .. } => {
            let (id, channel) = match (source, direct) {
                (Some((id, channel)), _) => (id.as_str(), *channel),
                (None, Some(id)) => (id, ChannelId::DIRECT),
                (None, None) => ("", ChannelId::DIRECT),
            };
            let missing = match tx.get::<ContactRecord>(CONTACT, id)? {
                Some(mut contact) => contact.tracker(channel).missing(),
                None => Vec::new(),
            };
            let overlap = missing.iter().filter(|(a, b)| a <= last && b >= first);
            Some(overlap.map(|(a, b)| (*a.max(first), *b.min(last))).collect::<Vec<_>>())
        }
        _ => None,
    };
    Ok(EntryView { open: still_missing.as_ref().map(|m| !m.is_empty()), entry, still_missing })
}

pub(crate) fn load_card(tx: &Tx<'_>) -> Result<Card> {
    tx.get(CARD.0, CARD.1)?
        .ok_or_else(|| ClientError::Store { path: String::new(), why: "card missing".into() })
}

pub(crate) fn load_identity(tx: &Tx<'_>) -> Result<Identity> {
    let pickle: IdentityPickle = tx
        .get(IDENTITY.0, IDENTITY.1)?
        .ok_or_else(|| ClientError::Store { path: String::new(), why: "identity missing".into() })?;
    Ok(Identity::from_pickle(pickle))
}

/// Finds a contact by `NAME` or `NAME@SIDE` (case-insensitive).
pub(crate) fn find_contact(tx: &Tx<'_>, query: &str) -> Result<(String, ContactRecord)> {
    let (name, side) = match query.rsplit_once('@') {
        Some((n, s)) => (n, Some(s)),
        None => (query, None),
    };
    let mut hits: Vec<(String, ContactRecord)> = tx
        .all::<ContactRecord>(CONTACT)?
        .into_iter()
        .filter(|(_, c)| {
            c.card.name.eq_ignore_ascii_case(name) && side.is_none_or(|s| c.card.side.eq_ignore_ascii_case(s))
        })
        .collect();
    match hits.len() {
        0 => Err(ClientError::UnknownContact(query.to_owned())),
        1 => Ok(hits.remove(0)),
        _ => Err(ClientError::AmbiguousContact(query.to_owned())),
    }
}
