//! Which hosts this party talks to: those it chose (its own inboxes, the relays of the
//! invitations it made or accepted, its contacts' routes) and those the user allowed. A peer
//! cannot make it connect anywhere else (which would hand that peer its IP address and
//! online times): an introduction to another relay waits for the user's leave.

use serde::{Deserialize, Serialize};

use super::Contacts;
use super::invite::PendingRecord;
use crate::error::Result;
use crate::store::{Record, Tx};

/// Relays the user allowed by hand.
#[derive(Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct AllowedRelays(pub Vec<String>);

impl Record for AllowedRelays {
    const KIND: &'static str = "allowed_relays";
}

const ID: &str = "self";

/// Whether `relay` (an address as text) is one this party already uses or allowed.
pub(crate) fn known(tx: &Tx<'_>, contacts: &Contacts, relay: &str) -> Result<bool> {
    let ours = contacts.iter().any(|(_, c)| {
        c.inboxes.iter().any(|i| i.relay.to_string() == relay)
            || c.routes.iter().any(|r| !r.needs_allow && r.route.relay.to_string() == relay)
    });
    let pending = tx.load_all::<PendingRecord>()?.iter().any(|(_, p)| {
        p.0.route.relay.to_string() == relay || p.0.more.iter().any(|q| q.route.relay.to_string() == relay)
    });
    let allowed = tx.load::<AllowedRelays>(ID)?.is_some_and(|a| a.0.iter().any(|r| r == relay));
    Ok(ours || pending || allowed)
}

/// Adds `relay` to the relays the user allowed.
pub(crate) fn allow(tx: &Tx<'_>, relay: &str) -> Result<()> {
    let mut allowed = tx.load::<AllowedRelays>(ID)?.unwrap_or_default();
    if !allowed.0.iter().any(|r| r == relay) {
        allowed.0.push(relay.to_owned());
    }
    tx.save(ID, &allowed)
}
