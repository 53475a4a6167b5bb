//! Private red-line probes in a channel: terms put to one member, who accepts or declines;
//! each side's private input, entered locally and kept only in its encrypted store; the three
//! PSI messages carried over the pairwise session; the channel's probe budget and the log both
//! sides keep. The protocol is `backchannel_redline`; this module is its bookkeeping.
//!
//! [`ChannelProbes`] is the pure part: each operation takes the channel state and returns the
//! messages to seal and the events to show, so two books can be driven in memory (probes/tests.rs).
//! The `Party` methods wrap one operation each in one store transaction, which also
//! seals its messages (stage, then commit).
//!
//! Rules (docs/probes.md, "In a channel"): a probe runs between two members of different sides
//! that share a session (in a shuttle, only with the intermediary); only while the channel's
//! phase allows probes; the side named as asker starts it once the terms are accepted and its
//! input is in; the first accepted probe fixes the channel's budget, and each client refuses a
//! probe beyond it, counting probes run and probes proposed or accepted but not yet run.

mod book;
mod rules;

use backchannel_proto::channel::{ChannelBody, MAX_PROBE_REASON, ProbeRef};
use backchannel_proto::identity::Card;
use backchannel_proto::message::Kind;
use backchannel_redline::{MayAsk, Package, ProbeBudget, ProbeInput, ProbeKind, ProbeResult, ProbeTerms};
use backchannel_wire::hex_encode;
use serde::Serialize;

pub(crate) use book::ChannelProbes;
use book::{Ctx, Step};

use crate::channels::{
    CHANNEL, ChannelRecord, contact_by_key, find_channel, find_member, seal_to, timeline_key,
};
use crate::error::{ClientError, Result};
use crate::model::{Entry, Event};
use crate::party::{Party, load_card, now_ms};
use crate::store::Tx;

/// The budget a channel's first probe proposes when its proposer names none.
pub const DEFAULT_BUDGET: ProbeBudget = ProbeBudget { per_issue: 3, per_phase: 10 };
/// Largest package cap in a channel: the reply (48 bytes an item, as base64) must fit in one
/// channel message.
pub const MAX_CHANNEL_CAP: u32 = 60_000;

/// The terms of a probe as the user gives them. A side is its label, `me` or `them`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeSpec {
    /// Is there a zone of agreement on one number in `0..=max`? `gives` holds the most it can
    /// give, `takes` the least it can take.
    Single { issue: String, max: u64, gives: String, takes: String },
    /// Which packages (one option per issue) are acceptable to both? Each lists at most `cap`.
    Package { issues: Vec<(String, Vec<String>)>, cap: u32 },
}

/// Who starts the probe (and learns the result first, then discloses it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Asker {
    #[default]
    Me,
    Them,
    /// The terms let either side ask; the proposer asks this one.
    Either,
}

/// A probe to propose: to whom, on what terms, who asks, and (first probe only) the budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRequest {
    pub with: String,
    pub spec: ProbeSpec,
    pub asker: Asker,
    pub budget: Option<ProbeBudget>,
}

/// A probe as shown to the user (never its input).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ProbeView {
    /// 32 hex digits; any unique prefix of 4 or more names it.
    pub id: String,
    pub with: String,
    pub proposed_by_you: bool,
    pub you_ask: bool,
    pub phase: String,
    pub terms: String,
    /// proposed, accepted, running, done, declined or aborted.
    pub status: String,
    /// What it waits for, its result, or why it ended.
    pub detail: String,
    /// Set when done: what both sides learned.
    pub result: Option<String>,
    pub input_given: bool,
    pub bytes: usize,
    pub at: u64,
}

/// Budget use on one issue in the current phase.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct IssueBudget {
    pub issue: String,
    pub used: u32,
    pub left: u32,
}

/// A channel's probes: policy, budget and every probe this side took part in.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ProbesView {
    pub channel: String,
    pub phase: String,
    pub probes_allowed: bool,
    /// The channel's budget; `None` until the first probe is accepted.
    pub budget: Option<ProbeBudget>,
    /// Probes run, or proposed and not yet run, in the current phase.
    pub used_in_phase: u32,
    pub issues: Vec<IssueBudget>,
    pub probes: Vec<ProbeView>,
}

fn refused<T>(why: impl Into<String>) -> Result<T> {
    Err(ClientError::Refused(why.into()))
}

fn refused_err(why: &str) -> ClientError {
    ClientError::Refused(why.to_owned())
}

fn short(id: &ProbeRef) -> String {
    hex_encode(&id[..4])
}

fn budget_text(b: ProbeBudget) -> String {
    format!("{} per issue, {} per phase", b.per_issue, b.per_phase)
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_PROBE_REASON {
        let mut end = MAX_PROBE_REASON;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn issues_text(terms: &ProbeTerms) -> String {
    let names: Vec<String> = terms.issues().iter().map(|i| format!("{i:?}")).collect();
    names.join(", ")
}

/// The terms in words (no input).
fn describe(terms: &ProbeTerms) -> String {
    let asker = match &terms.may_ask {
        MayAsk::Only(side) => format!("{side} asks"),
        MayAsk::Either => "either may ask".to_owned(),
    };
    match &terms.kind {
        ProbeKind::Single(s) => format!(
            "is there a zone of agreement on {:?} in 0..={}? {} gives (the most it can give), {} takes \
             (the least it can take); {asker}",
            s.issue, s.max, s.gives, s.takes
        ),
        ProbeKind::Package(p) => {
            let issues: Vec<String> =
                p.space.issues.iter().map(|i| format!("{}={}", i.issue, i.options.join(","))).collect();
            format!("packages acceptable to both over {}; at most {} each; {asker}", issues.join(" "), p.cap)
        }
    }
}

/// What both sides learned, in words.
fn result_text(terms: &ProbeTerms, result: &ProbeResult) -> String {
    match (result, &terms.kind) {
        (ProbeResult::Zone { non_empty: true }, _) => "zone non-empty: the positions overlap".into(),
        (ProbeResult::Zone { non_empty: false }, _) => "zone empty: the positions do not overlap".into(),
        (ProbeResult::Packages(list), _) if list.is_empty() => "no package is acceptable to both".into(),
        (ProbeResult::Packages(list), ProbeKind::Package(p)) => {
            let named: Vec<String> = list
                .iter()
                .map(|pkg| match p.space.describe(pkg) {
                    Some(names) => {
                        names.iter().map(|(i, o)| format!("{i}={o}")).collect::<Vec<_>>().join(",")
                    }
                    None => "(unknown package)".into(),
                })
                .collect();
            format!("{} package(s) acceptable to both: {}", list.len(), named.join("; "))
        }
        (ProbeResult::Packages(list), _) => format!("{} package(s) acceptable to both", list.len()),
    }
}

/// Seals an operation's messages and records its events in the channel timeline.
fn apply(tx: &Tx<'_>, rec: &mut ChannelRecord, step: Step) -> Result<Vec<Event>> {
    for (to, body) in step.out {
        seal_to(tx, rec, &to, Kind::Channel, &body.encode())?;
    }
    let mut events = Vec::new();
    for text in step.events {
        tx.append_timeline(&timeline_key(&rec.state.id), &Entry::Event { text: text.clone(), at: now_ms() })?;
        events.push(Event::Channel { channel: rec.state.name.clone(), text });
    }
    Ok(events)
}

/// Takes in a probe message from a member (inside the receive transaction).
pub(crate) fn receive(
    tx: &Tx<'_>,
    rec: &mut ChannelRecord,
    sender: &Card,
    body: ChannelBody,
) -> Result<Vec<Event>> {
    let me = load_card(tx)?;
    let ctx = Ctx { state: &rec.state, me: &me };
    let step = rec.probes.receive(&ctx, sender, body)?;
    apply(tx, rec, step)
}

impl Party {
    /// Runs one probe operation on a channel in one transaction; returns the probe's view.
    fn probe_op(
        &mut self,
        channel: &str,
        op: impl FnOnce(&Tx<'_>, &mut ChannelRecord, &Card) -> Result<(usize, Step)>,
    ) -> Result<ProbeView> {
        self.store.tx(|tx| {
            let (key, mut rec) = find_channel(tx, channel)?;
            if rec.removed {
                return refused(format!("you were removed from {channel}"));
            }
            let me = load_card(tx)?;
            let (i, step) = op(tx, &mut rec, &me)?;
            apply(tx, &mut rec, step)?;
            let view = rec.probes.view_of(i, &rec.state.name).ok_or_else(|| refused_err("no such probe"))?;
            tx.put(CHANNEL, &key, &rec)?;
            Ok(view)
        })
    }

    /// Proposes a probe to a member of the channel. Nothing is sent yet: flush the outbox.
    pub fn probe_propose(&mut self, channel: &str, req: &ProbeRequest) -> Result<ProbeView> {
        self.probe_op(channel, |tx, rec, me| {
            let peer = find_member(&rec.state, &req.with)?.card.clone();
            if peer.identity_key == me.identity_key {
                return refused("a probe needs another member");
            }
            if contact_by_key(tx, &peer.identity_key)?.is_none() {
                return refused(format!(
                    "no session with {} yet (the introduction is under way): sync, then try again",
                    peer.name
                ));
            }
            let ctx = Ctx { state: &rec.state, me };
            rec.probes.propose(&ctx, &peer, req)
        })
    }

    /// Accepts a probe another member proposed (by id prefix).
    pub fn probe_accept(&mut self, channel: &str, id: &str) -> Result<ProbeView> {
        self.probe_op(channel, |_, rec, me| {
            let i = rec.probes.find(&rec.state.name, id)?;
            let ctx = Ctx { state: &rec.state, me };
            Ok((i, rec.probes.accept(&ctx, i)?))
        })
    }

    /// Declines a proposed probe, or withdraws our own before it runs.
    pub fn probe_decline(&mut self, channel: &str, id: &str) -> Result<ProbeView> {
        self.probe_op(channel, |_, rec, _| {
            let i = rec.probes.find(&rec.state.name, id)?;
            Ok((i, rec.probes.decline(i)?))
        })
    }

    /// Our number in a single-value probe. Kept in the encrypted store until the probe runs;
    /// never sent.
    pub fn probe_input_value(&mut self, channel: &str, id: &str, value: u64) -> Result<ProbeView> {
        self.probe_op(channel, |_, rec, me| {
            let i = rec.probes.find(&rec.state.name, id)?;
            let ctx = Ctx { state: &rec.state, me };
            Ok((i, rec.probes.input(&ctx, i, ProbeInput::Value(value))?))
        })
    }

    /// Our acceptable packages in a package probe, each as option names in the issues' order.
    pub fn probe_input_packages(
        &mut self,
        channel: &str,
        id: &str,
        packages: &[Vec<String>],
    ) -> Result<ProbeView> {
        self.probe_op(channel, |_, rec, me| {
            let i = rec.probes.find(&rec.state.name, id)?;
            let terms = rec.probes.terms_of(i).ok_or_else(|| refused_err("no such probe"))?;
            let ProbeKind::Package(package_terms) = &terms.kind else {
                return refused(format!("probe {id} is a single-value probe: give a VALUE"));
            };
            let list = packages
                .iter()
                .map(|names| {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    package_terms.space.package(&names).map_err(|e| ClientError::InvalidInput {
                        what: "probe input",
                        why: format!(
                            "{e}: {:?} (one option per issue, in the order {})",
                            names.join(","),
                            issues_text(terms)
                        ),
                    })
                })
                .collect::<Result<Vec<Package>>>()?;
            let ctx = Ctx { state: &rec.state, me };
            Ok((i, rec.probes.input(&ctx, i, ProbeInput::Packages(list))?))
        })
    }

    /// The channel's probes: policy, budget, and every probe with its status or result.
    pub fn probes(&mut self, channel: &str) -> Result<ProbesView> {
        self.store.tx(|tx| {
            let (_, rec) = find_channel(tx, channel)?;
            Ok(rec.probes.view(&rec.state))
        })
    }
}
