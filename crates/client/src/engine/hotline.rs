//! Hotline channels, as the engine carries them out: their traffic is flash (first out of the
//! outbox, and a note is kept until its receipt comes, sent again over every route each time
//! the bound passes without one), and every member keeps heartbeats on every route with every
//! other member it has a session with.

use std::collections::HashMap;

use backchannel_party::channel::Channel;
use backchannel_proto::control::{Control, MAX_ROUTES, NEVER};
use backchannel_proto::message::ChannelId;
use backchannel_wire::QueueId;

use super::delivery::ORDINARY_BOUND_MS;
use super::ops::channel_by_id;
use super::routes::{Direction, MISSED_BEATS, RouteState};
use super::seal::Shape;
use super::{Batch, Contacts, Shared, Update, now_ms};
use crate::error::Result;
use crate::store::Tx;

/// How a message in one channel travels.
pub(crate) struct LinePolicy {
    pub flash: bool,
    /// A receipt is expected within this long; past it the note shows as not confirmed.
    pub bound_ms: u64,
    /// A hotline note stays in the outbox for its receipt this long at a time.
    pub keep_for_receipt: Option<u64>,
}

impl Batch<'_, '_> {
    /// The line policy of `channel` (direct conversations have none).
    pub fn line(&mut self, channel: ChannelId) -> Result<LinePolicy> {
        let hotline = match self.hotlines.get(&channel) {
            Some(h) => *h,
            None => {
                let h = match channel == ChannelId::DIRECT {
                    true => None,
                    false => channel_by_id(self.tx, &channel)?.and_then(|c: Channel| c.state.hotline),
                };
                self.hotlines.insert(channel, h);
                h
            }
        };
        Ok(match hotline {
            Some(h) => {
                let bound = MISSED_BEATS * u64::from(h.heartbeat_secs) * 1000;
                LinePolicy { flash: true, bound_ms: bound, keep_for_receipt: Some(bound) }
            }
            None => LinePolicy { flash: false, bound_ms: ORDINARY_BOUND_MS, keep_for_receipt: None },
        })
    }
}

/// How often a running engine looks at its lines (each thing acts only when due).
pub(crate) const LINE_TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// The hotline peers are worked out again from the channels this often.
const PEERS_FRESH_MS: u64 = 2_000;

/// The line discipline kept with one contact: the shortest of its hotlines'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Discipline {
    pub beat_ms: u64,
    pub test_ms: u64,
}

/// What the engine keeps in memory about its lines.
#[derive(Default)]
pub(crate) struct LineMemory {
    peers: Option<(u64, HashMap<String, Discipline>)>,
    /// When a heartbeat, and a path test, last went out on each route.
    beat_sent: HashMap<QueueId, u64>,
    test_sent: HashMap<QueueId, u64>,
    /// The state each route was last told in.
    told: HashMap<(String, String, Direction), RouteState>,
}

/// Every contact we share a hotline channel with (and are still in), with its discipline.
fn hotline_peers(tx: &Tx<'_>, contacts: &Contacts) -> Result<HashMap<String, Discipline>> {
    let mut peers: HashMap<String, Discipline> = HashMap::new();
    for (_, channel) in tx.load_all::<Channel>()? {
        let Some(h) = channel.state.hotline.filter(|_| !channel.removed) else { continue };
        let d = Discipline {
            beat_ms: u64::from(h.heartbeat_secs) * 1000,
            test_ms: u64::from(h.path_test_secs) * 1000,
        };
        for m in &channel.state.members {
            let Some(id) = contacts.id_of(&m.key()) else { continue };
            let e = peers.entry(id.to_owned()).or_insert(d);
            e.beat_ms = e.beat_ms.min(d.beat_ms);
            e.test_ms = e.test_ms.min(d.test_ms);
        }
    }
    Ok(peers)
}

/// Heartbeats and path tests due on one contact's routes at `now`.
fn due(c: &super::ContactRecord, d: Discipline, mem: &LineMemory, now: u64) -> (Vec<QueueId>, Vec<QueueId>) {
    let since =
        |map: &HashMap<QueueId, u64>, r: &QueueId| now.saturating_sub(map.get(r).copied().unwrap_or(0));
    let routes = c.routes.iter().filter(|r| r.usable()).map(|r| r.route.send_id);
    let beats = routes.clone().filter(|r| since(&mem.beat_sent, r) >= d.beat_ms).collect();
    let tests = routes.filter(|r| since(&mem.test_sent, r) >= d.test_ms).collect();
    (beats, tests)
}

impl Shared {
    /// The heartbeat interval kept with each contact (hotline peers only).
    pub fn beats(&self) -> Result<HashMap<String, u64>> {
        Ok(self.peers()?.into_iter().map(|(id, d)| (id, d.beat_ms)).collect())
    }

    fn peers(&self) -> Result<HashMap<String, Discipline>> {
        let now = now_ms();
        self.with_lines(|tx, contacts, mem| {
            if let Some((_, peers)) =
                mem.peers.as_ref().filter(|(at, _)| now.saturating_sub(*at) < PEERS_FRESH_MS)
            {
                return Ok(peers.clone());
            }
            let peers = hotline_peers(tx, contacts)?;
            mem.peers = Some((now, peers.clone()));
            Ok(peers)
        })
    }

    /// Keeps the lines: heartbeats and path tests that are due go out (one route each, once),
    /// and route states that changed are told to subscribers.
    pub async fn keep_lines(&self) -> Result<()> {
        let peers = self.peers()?;
        if peers.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let work: Vec<(String, Discipline, Vec<QueueId>, Vec<QueueId>)> =
            self.with_lines(|_, contacts, mem| {
                Ok(peers
                    .iter()
                    .filter_map(|(id, d)| {
                        let (beats, tests) = due(contacts.get(id)?, *d, mem, now);
                        (!beats.is_empty() || !tests.is_empty()).then(|| (id.clone(), *d, beats, tests))
                    })
                    .collect())
            })?;
        if !work.is_empty() {
            self.batch(|b| {
                for (id, d, beats, tests) in &work {
                    b.beat(id, *d, beats, tests)?;
                }
                Ok(())
            })?;
            self.with_lines(|_, _, mem| {
                for (_, _, beats, tests) in &work {
                    beats.iter().for_each(|r| {
                        mem.beat_sent.insert(*r, now);
                    });
                    tests.iter().for_each(|r| {
                        mem.test_sent.insert(*r, now);
                    });
                }
                Ok(())
            })?;
            self.flush_where(|item| item.ephemeral || item.flash).await?;
        }
        self.tell_route_changes(&peers, now)
    }

    fn tell_route_changes(&self, peers: &HashMap<String, Discipline>, now: u64) -> Result<()> {
        let changes = self.with_lines(|_, contacts, mem| {
            let mut changes = Vec::new();
            for (id, d) in peers {
                let Some(c) = contacts.get(id) else { continue };
                for v in super::routes::views(c, now, Some(d.beat_ms)) {
                    let key = (id.clone(), v.relay.clone(), v.direction);
                    if mem.told.insert(key, v.state) != Some(v.state) {
                        changes.push(Update::Route {
                            contact: c.card.name.clone(),
                            relay: v.relay,
                            direction: v.direction,
                            state: v.state,
                        });
                    }
                }
            }
            Ok(changes)
        })?;
        changes.into_iter().for_each(|u| self.tell(u));
        Ok(())
    }
}

impl Batch<'_, '_> {
    /// One heartbeat on each route in `beats` (with what we last heard of the contact on each
    /// of our inboxes), and one path test on each route in `tests`.
    fn beat(&mut self, id: &str, d: Discipline, beats: &[QueueId], tests: &[QueueId]) -> Result<()> {
        let now = self.now_ms;
        let Some(c) = self.contacts.get(id) else { return Ok(()) };
        let heard: Vec<(QueueId, u32)> = c
            .inboxes
            .iter()
            .filter(|i| i.current())
            .filter_map(|i| {
                let ago =
                    i.heard_ms.map_or(NEVER, |h| u32::try_from(now.saturating_sub(h)).unwrap_or(NEVER - 1));
                Some((i.send_id()?, ago))
            })
            .take(MAX_ROUTES)
            .collect();
        let interval_ms = u32::try_from(d.beat_ms).unwrap_or(u32::MAX);
        for route in beats {
            let beat = Control::Heartbeat { interval_ms, heard: heard.clone() };
            self.seal_control(id, &beat, Shape::only(*route))?;
        }
        for route in tests {
            let nonce: [u8; 16] = backchannel_proto::crypto::random_array();
            self.contacts.path_tests.insert(nonce, now);
            self.seal_control(id, &Control::PathTest { nonce }, Shape::only(*route))?;
        }
        Ok(())
    }
}
