//! Private red-line probes in a channel: terms put to one member, who accepts or declines;
//! each side's private input, entered locally and kept only in its encrypted store; the three
//! PSI messages carried over the pairwise session; the channel's probe budget and the log both
//! sides keep. The protocol is `backchannel_redline`; this module is its bookkeeping, and each
//! operation returns the messages to seal and the entries to record as a [`crate::Step`].
//!
//! Rules (docs/probes.md, "In a channel"): a probe runs between two members of different sides
//! that share a session (in a shuttle, only with the intermediary); only while the channel's
//! phase allows probes; the side named as asker starts it once the terms are accepted and its
//! input is in; the first accepted probe fixes the channel's budget, and each client refuses a
//! probe beyond it, counting probes run and probes proposed or accepted but not yet run.

mod book;
mod rules;

use backchannel_proto::channel::{MAX_PROBE_REASON, ProbeRef};
use backchannel_redline::{ProbeBudget, ProbeResult, ProbeTerms};
use backchannel_wire::hex_encode;
use serde::{Deserialize, Serialize};

pub use book::ChannelProbes;

use crate::event::AbortReason;
use crate::why::{PeerReason, Why};

/// The budget a channel's first probe proposes when its proposer names none.
pub const DEFAULT_BUDGET: ProbeBudget = ProbeBudget { per_issue: 3, per_phase: 10 };
/// Largest package cap in a channel: the reply (48 bytes an item, as base64) must fit in one
/// channel message.
pub const MAX_CHANNEL_CAP: u32 = 60_000;

/// The terms of a probe as the user gives them. A side is its label, `me` or `them`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeSpec {
    /// Is there a zone of agreement on one number in `0..=max`? `gives` holds the most it can
    /// give, `takes` the least it can take.
    Single { issue: String, max: u64, gives: String, takes: String },
    /// Which packages (one option per issue) are acceptable to both? Each lists at most `cap`.
    Package { issues: Vec<(String, Vec<String>)>, cap: u32 },
}

/// Who starts the probe (and learns the result first, then discloses it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Asker {
    #[default]
    Me,
    Them,
    /// The terms let either side ask; the proposer asks this one.
    Either,
}

/// A probe to propose: to whom, on what terms, who asks, and (first probe only) the budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    pub with: String,
    pub spec: ProbeSpec,
    pub asker: Asker,
    pub budget: Option<ProbeBudget>,
}

/// Where a probe is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ProbeStatus {
    Proposed,
    Accepted,
    Running,
    Done { result: ProbeResult },
    Declined { by: DeclinedBy },
    Aborted { reason: AbortReason },
}

impl ProbeStatus {
    pub fn name(&self) -> &'static str {
        match self {
            ProbeStatus::Proposed => "proposed",
            ProbeStatus::Accepted => "accepted",
            ProbeStatus::Running => "running",
            ProbeStatus::Done { .. } => "done",
            ProbeStatus::Declined { .. } => "declined",
            ProbeStatus::Aborted { .. } => "aborted",
        }
    }
}

/// Who declined a probe, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum DeclinedBy {
    You,
    Peer {
        name: String,
        reason: PeerReason,
    },
    /// Refused on arrival, by a rule of ours.
    Rule {
        why: Why,
    },
    /// As an earlier version wrote it.
    Legacy {
        text: String,
    },
}

/// A probe as shown to the user (never its input).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProbeView {
    /// 32 hex digits; any unique prefix of 4 or more names it.
    pub id: String,
    pub with: String,
    pub with_side: String,
    pub proposed_by_you: bool,
    pub you_ask: bool,
    pub phase: String,
    pub terms: ProbeTerms,
    #[serde(flatten)]
    pub status: ProbeStatus,
    /// Whether our input is in (or was used).
    pub input_given: bool,
    /// Whether the asker's query is here, waiting for our input.
    pub query_waiting: bool,
    pub bytes: usize,
    pub at: u64,
    /// The other side aborted after the probe had ended here.
    pub peer_note: Option<(String, PeerReason)>,
}

/// Budget use on one issue in the current phase.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssueBudget {
    pub issue: String,
    pub used: u32,
    pub left: u32,
}

/// A channel's probes: policy, budget and every probe this side took part in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
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

/// The first four bytes of a probe's id, as people name it.
pub fn short(id: &ProbeRef) -> String {
    hex_encode(&id[..4])
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
