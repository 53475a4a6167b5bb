//! Routes: the hosts a contact and we reach each other over, several at once. Each of our
//! inboxes for a contact is a receive queue on one host; each of the contact's is a route we
//! send to. Every frame goes over every route (the receiver takes it in once), so losing a
//! host loses nothing; how each route is doing (last heard, stored, failed) is kept here, and
//! its state (`up`, `down`, `unknown`) is worked out from those times alone.

use backchannel_proto::crypto::SecretKey;
use backchannel_proto::message::Route;
use backchannel_wire::{QueueId, QueueSecret, RelayAddress};
use serde::{Deserialize, Serialize};

/// A receive queue of ours on some relay, for one contact (or an invitation).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Inbox {
    pub relay: RelayAddress,
    pub recv_id: QueueId,
    pub recv_secret: QueueSecret,
    /// The route the contact reaches it by (send capability, block size and key): what we
    /// announce. Unknown for inboxes made by earlier versions (their key is the session's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// When a frame from the contact last came in here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_ms: Option<u64>,
    /// Left out of our routes as of this version of them: deleted once the contact confirms
    /// that version (until then it may still send here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<u32>,
    /// The contact confirmed the version that dropped it: deleted at its host next.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

impl Inbox {
    pub fn new(relay: RelayAddress, recv_id: QueueId, recv_secret: QueueSecret, route: &Route) -> Self {
        Self {
            relay,
            recv_id,
            recv_secret,
            route: Some(route.clone()),
            heard_ms: None,
            retired: None,
            released: false,
        }
    }

    /// Still one of the routes we give the contact.
    pub fn current(&self) -> bool {
        self.retired.is_none()
    }

    /// The send id the contact knows this inbox by (its heartbeats name inboxes by it).
    pub fn send_id(&self) -> Option<QueueId> {
        self.route.as_ref().map(|r| r.send_id)
    }

    /// What its blocks are sealed under, if not the session's.
    pub fn block_key(&self) -> Option<&SecretKey> {
        self.route.as_ref().map(|r| &r.block_key)
    }
}

/// One of the contact's inboxes, which we send to, and how it has done.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct OutRoute {
    pub route: Route,
    /// When the contact last heard us there (as its heartbeat reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_ms: Option<u64>,
    /// When its host last stored a block of ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_ms: Option<u64>,
    /// The last failure to deliver there, if later than the last success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Failure>,
    /// On a host this party does not use and the user has not allowed: not used until they do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_allow: bool,
    /// The last path test that came back, and how long the round trip took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tested_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Failure {
    pub at: u64,
    pub why: String,
    /// The host refused the queue (it is gone there): only a new route helps.
    pub refused: bool,
}

impl OutRoute {
    pub fn new(route: Route) -> Self {
        Self {
            route,
            heard_ms: None,
            stored_ms: None,
            failed: None,
            needs_allow: false,
            tested_ms: None,
            rtt_ms: None,
        }
    }

    /// Frames go here: allowed, and its host has not refused the queue.
    pub fn usable(&self) -> bool {
        !self.needs_allow && !self.failed.as_ref().is_some_and(|f| f.refused)
    }

    pub fn stored(&mut self, now: u64) {
        self.stored_ms = Some(now);
        self.failed = None;
    }

    pub fn fail(&mut self, now: u64, why: String, refused: bool) {
        self.failed = Some(Failure { at: now, why, refused });
    }
}

/// What the two parties know of their routes to each other.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Lines {
    /// The version of our routes we last announced.
    #[serde(default)]
    pub version: u32,
    /// The newest version of the contact's routes we took.
    #[serde(default)]
    pub peer_version: u32,
    /// That version and its routes, if we have not confirmed it yet (none of its routes was
    /// usable: the old ones stay in use until the user allows a host of the new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconfirmed: Option<(u32, Vec<QueueId>)>,
    /// The contact speaks control messages (routes, receipts, heartbeats): it said so in its
    /// invitation or Hello, or sent one. Contacts of earlier versions are not sent any.
    #[serde(default)]
    pub control: bool,
    /// Our routes were announced once to a contact made by an earlier version (so it can
    /// answer, and show that it speaks control messages).
    #[serde(default)]
    pub announced: bool,
    /// The heartbeat interval the contact last said it keeps with us (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_interval_ms: Option<u64>,
    /// Hosts the contact asked us to add an inbox on that we do not use: added once the user
    /// allows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asked_join: Vec<RelayAddress>,
    /// The latest sealing time among our frames it confirmed: an older frame still
    /// unconfirmed was most likely lost.
    #[serde(default)]
    pub confirmed_through_ms: u64,
}

/// How a route is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    Up,
    Down,
    /// Nothing expected recently (no heartbeats kept on this line) and nothing heard.
    Unknown,
}

/// Heartbeats missed before a route is down.
pub(crate) const MISSED_BEATS: u64 = 3;
/// Without heartbeats, a route heard within this long is up.
const RECENT_MS: u64 = 5 * 60 * 1000;

/// A route's state from its times: down after a failure later than any success, or (where
/// heartbeats are kept, every `interval` ms) after [`MISSED_BEATS`] of them went unheard;
/// up when heard recently.
pub(crate) fn state(
    now: u64,
    heard: Option<u64>,
    failed: Option<&Failure>,
    interval: Option<u64>,
) -> RouteState {
    if failed.is_some_and(|f| heard.is_none_or(|h| f.at > h)) {
        return RouteState::Down;
    }
    match (heard, interval) {
        (Some(h), Some(i)) if now.saturating_sub(h) <= MISSED_BEATS * i => RouteState::Up,
        (_, Some(_)) => RouteState::Down,
        (Some(h), None) if now.saturating_sub(h) <= RECENT_MS => RouteState::Up,
        _ => RouteState::Unknown,
    }
}

/// Which way a route carries frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The contact to us: one of our inboxes.
    In,
    /// Us to the contact: one of its inboxes.
    Out,
}

/// A route as shown to the user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteView {
    pub relay: String,
    pub direction: Direction,
    pub state: RouteState,
    /// When it last carried something that arrived (ms since the Unix epoch): for an inbox of
    /// ours, a frame from the contact; for one of theirs, the contact hearing us there.
    pub last_heard_ms: Option<u64>,
    /// Why it is down, if a delivery there failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Being left (dropped; deleted once the contact confirms), or waiting for the user's leave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<RouteNote>,
    /// The last end-to-end path test over it: when it came back, and its round trip (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tested_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RouteNote {
    Leaving,
    NeedsAllow,
}

/// Every route of a contact, ours first, with their states at `now`. `beat` is the heartbeat
/// interval we keep with the contact (none outside hotlines).
pub(crate) fn views(c: &super::ContactRecord, now: u64, beat: Option<u64>) -> Vec<RouteView> {
    let peer_beat = beat.and(c.lines.peer_interval_ms);
    let ins = c.inboxes.iter().filter(|i| !i.released).map(|i| RouteView {
        relay: i.relay.to_string(),
        direction: Direction::In,
        state: state(now, i.heard_ms, None, peer_beat),
        last_heard_ms: i.heard_ms,
        detail: None,
        note: i.retired.map(|_| RouteNote::Leaving),
        tested_ms: None,
        rtt_ms: None,
    });
    // Our reports come with the contact's heartbeats: theirs set how fresh they can be.
    let out_beat = beat.map(|b| b.max(c.lines.peer_interval_ms.unwrap_or(b)));
    let outs = c.routes.iter().map(|r| RouteView {
        relay: r.route.relay.to_string(),
        direction: Direction::Out,
        state: state(
            now,
            r.heard_ms.max(r.stored_ms.filter(|_| out_beat.is_none())),
            r.failed.as_ref(),
            out_beat,
        ),
        last_heard_ms: r.heard_ms,
        detail: r.failed.as_ref().map(|f| f.why.clone()),
        note: r.needs_allow.then_some(RouteNote::NeedsAllow),
        tested_ms: r.tested_ms,
        rtt_ms: r.rtt_ms,
    });
    ins.chain(outs).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_down_after_three_missed_beats_or_a_later_failure() {
        let beat = Some(1_000);
        assert_eq!(state(10_000, Some(7_000), None, beat), RouteState::Up);
        assert_eq!(state(10_001, Some(7_000), None, beat), RouteState::Down);
        assert_eq!(state(10_000, None, None, beat), RouteState::Down);
        assert_eq!(state(10_000, None, None, None), RouteState::Unknown);
        assert_eq!(state(10_000, Some(9_000), None, None), RouteState::Up);
        assert_eq!(state(10_000_000, Some(9_000), None, None), RouteState::Unknown);
        let failed = Failure { at: 9_500, why: "refused".into(), refused: false };
        assert_eq!(state(10_000, Some(9_000), Some(&failed), beat), RouteState::Down);
        assert_eq!(state(10_000, Some(9_900), Some(&failed), beat), RouteState::Up, "heard since");
    }
}

/// One of our receive queues and what its blocks are sealed under.
#[derive(Clone, Debug)]
pub(crate) struct InboxRef {
    /// Contact id (or, before the handshake arrives, the pending invitation's id): frames are
    /// taken in once per contact, whichever of its inboxes brings them.
    pub id: String,
    pub inbox: Inbox,
    pub key: SecretKey,
}

impl InboxRef {
    /// This queue alone: frames are reassembled per queue (routes may cut them differently).
    pub fn queue(&self) -> String {
        backchannel_wire::hex_encode(&self.inbox.recv_id.0)
    }
}

/// Path tests in flight, by nonce: when each went out (kept in memory only).
pub(crate) type PathTests = std::collections::HashMap<[u8; 16], u64>;
