//! The pure part of probes in a channel: one side's book of probes (budget, ledger, records)
//! and every transition, each returning the messages to seal and the events to show.

use backchannel_proto::channel::{ChannelBody, ChannelState, MemberKey, ProbeRef};
use backchannel_proto::identity::Card;
use backchannel_redline::{
    Disclosure, InitiatorAwaitingReply, MayAsk, ProbeBudget, ProbeInput, ProbeKind, ProbeLedger, ProbeResult,
    ProbeTerms, Query, Reply, Responder, ResponderAwaitingResult,
};
use backchannel_wire::hex_encode;
use serde::{Deserialize, Serialize};

use super::rules::{admissible, build_terms, run_allowed};
use super::{
    DEFAULT_BUDGET, IssueBudget, ProbeRequest, ProbeView, ProbesView, budget_text, describe, issues_text,
    refused, result_text, short, truncate,
};
use crate::error::{ClientError, Result};
use crate::party::now_ms;

/// One channel's probes as this party keeps them (in the channel record, sealed in the store).
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct ChannelProbes {
    /// Fixed by the first accepted probe; every later probe must name the same.
    budget: Option<ProbeBudget>,
    /// This side's budget and log (created when the budget is fixed).
    ledger: Option<ProbeLedger>,
    list: Vec<ProbeRecord>,
}

#[derive(Serialize, Deserialize)]
struct ProbeRecord {
    id: ProbeRef,
    peer: MemberKey,
    peer_name: String,
    peer_side: String,
    proposed_by_us: bool,
    /// We start it (send the query), and learn the result first.
    we_ask: bool,
    terms: ProbeTerms,
    budget: ProbeBudget,
    status: Status,
    /// Our private input until it is used. Never sent, never shown.
    input: Option<ProbeInput>,
    /// The asker's query, when it came before our input.
    query: Option<Bytes>,
    waiting: Option<Waiting>,
    /// Bytes of the probe's messages (query, reply, disclosure) sent and received.
    bytes: usize,
    at: u64,
    /// The other side aborted after the probe had ended here.
    peer_note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Status {
    Proposed,
    Accepted,
    /// In this side's ledger: it counts against the budget from here on.
    Running,
    Done(ProbeResult),
    Declined(String),
    Aborted(String),
}

impl Status {
    fn open(&self) -> bool {
        matches!(self, Status::Proposed | Status::Accepted | Status::Running)
    }
    fn pending(&self) -> bool {
        matches!(self, Status::Proposed | Status::Accepted)
    }
    fn name(&self) -> &'static str {
        match self {
            Status::Proposed => "proposed",
            Status::Accepted => "accepted",
            Status::Running => "running",
            Status::Done(_) => "done",
            Status::Declined(_) => "declined",
            Status::Aborted(_) => "aborted",
        }
    }
}

#[derive(Serialize, Deserialize)]
enum Waiting {
    Reply(InitiatorAwaitingReply),
    Disclosure(ResponderAwaitingResult),
}

#[derive(Serialize, Deserialize)]
struct Bytes(#[serde(with = "crate::model::bytes_b64")] Vec<u8>);

/// What an operation asks the caller to do: seal these bodies to these members, show these.
#[derive(Default)]
pub(crate) struct Step {
    pub out: Vec<(MemberKey, ChannelBody)>,
    pub events: Vec<String>,
}

impl Step {
    fn event(mut self, text: String) -> Self {
        self.events.push(text);
        self
    }
    fn and(mut self, other: Step) -> Self {
        self.out.extend(other.out);
        self.events.extend(other.events);
        self
    }
}

/// The channel as the operation sees it, and who we are.
pub(crate) struct Ctx<'a> {
    pub state: &'a ChannelState,
    pub me: &'a Card,
}

impl ChannelProbes {
    /// Probes counted in `phase` (those touching `issue`, if given): logged in this side's
    /// ledger, or proposed or accepted and not run yet (but `except`).
    fn used(&self, phase: &str, issue: Option<&str>, except: Option<&ProbeRef>) -> u32 {
        let touches = |t: &ProbeTerms| t.phase == phase && issue.is_none_or(|i| t.issues().contains(&i));
        let logged = self.ledger.iter().flat_map(|l| l.log().entries()).filter(|e| touches(&e.terms)).count();
        let pending = self
            .list
            .iter()
            .filter(|p| p.status.pending() && Some(&p.id) != except && touches(&p.terms))
            .count();
        u32::try_from(logged + pending).unwrap_or(u32::MAX)
    }

    /// Refuses a probe the budget has no room for.
    fn check_room(&self, terms: &ProbeTerms, budget: ProbeBudget, except: Option<&ProbeRef>) -> Result<()> {
        let spent = |scope: String, used: u32, limit: u32| {
            refused(format!(
                "probe budget spent: {used} of {limit} probes {scope} in phase {} already run or pending \
                 (the channel's budget: {})",
                terms.phase,
                budget_text(budget)
            ))
        };
        let in_phase = self.used(&terms.phase, None, except);
        if in_phase >= budget.per_phase {
            return spent("of any kind".into(), in_phase, budget.per_phase);
        }
        for issue in terms.issues() {
            let used = self.used(&terms.phase, Some(issue), except);
            if used >= budget.per_issue {
                return spent(format!("on issue {issue:?}"), used, budget.per_issue);
            }
        }
        Ok(())
    }

    /// The budget a new proposal runs under.
    fn proposal_budget(&self, asked: Option<ProbeBudget>) -> Result<ProbeBudget> {
        if let Some(fixed) = self.budget {
            return match asked {
                Some(b) if b != fixed => refused(format!(
                    "the channel's probe budget was agreed with its first probe ({}); it does not change",
                    budget_text(fixed)
                )),
                _ => Ok(fixed),
            };
        }
        let budget = asked.unwrap_or(DEFAULT_BUDGET);
        match self.list.iter().find(|p| p.status.pending() && p.budget != budget) {
            Some(p) => refused(format!(
                "probe {} (not yet accepted) proposes a budget of {}; the first accepted probe fixes it, \
                 so propose with the same budget or decline that one first",
                short(&p.id),
                budget_text(p.budget)
            )),
            None => Ok(budget),
        }
    }

    /// Fixes the channel's budget (first acceptance) or checks it matches.
    fn fix_budget(&mut self, my_side: &str, budget: ProbeBudget) -> std::result::Result<(), String> {
        match self.budget {
            Some(fixed) if fixed != budget => Err(format!(
                "the channel's probe budget is {} (fixed by its first accepted probe); this probe asks {}",
                budget_text(fixed),
                budget_text(budget)
            )),
            Some(_) => Ok(()),
            None => {
                self.budget = Some(budget);
                self.ledger = Some(ProbeLedger::new(my_side, budget));
                Ok(())
            }
        }
    }

    /// A probe by (a unique prefix of) its hex id.
    pub(crate) fn find(&self, channel: &str, query: &str) -> Result<usize> {
        let q = query.to_ascii_lowercase();
        if q.len() < 4 || !q.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ClientError::InvalidInput {
                what: "probe id",
                why: format!(
                    "{query:?}: give at least 4 hex digits of it (`backchannel probe log {channel}`)"
                ),
            });
        }
        let hits: Vec<usize> =
            (0..self.list.len()).filter(|&i| hex_encode(&self.list[i].id).starts_with(&q)).collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => refused(format!(
                "no probe {query} in {channel}; `backchannel probe log {channel}` lists them"
            )),
            _ => refused(format!("{query} names several probes in {channel}; give more of its id")),
        }
    }

    /// How the `i`th probe looks to the user.
    pub(crate) fn view_of(&self, i: usize, channel: &str) -> Option<ProbeView> {
        self.list.get(i).map(|p| p.view(channel))
    }

    pub(crate) fn terms_of(&self, i: usize) -> Option<&ProbeTerms> {
        self.list.get(i).map(|p| &p.terms)
    }

    /// The probe a received message is about, which must be between us and its sender.
    fn find_from(&self, sender: &Card, id: &ProbeRef) -> Result<usize> {
        match self.list.iter().position(|p| &p.id == id) {
            Some(i) if self.list[i].peer == sender.identity_key => Ok(i),
            Some(_) => refused(format!(
                "{} sent a message about probe {}, which is not theirs",
                sender.name,
                short(id)
            )),
            None => refused(format!(
                "{} sent a message about probe {}, which you do not have",
                sender.name,
                short(id)
            )),
        }
    }

    /// Proposes a probe to `peer`; returns its index.
    pub(crate) fn propose(
        &mut self,
        ctx: &Ctx<'_>,
        peer: &Card,
        req: &ProbeRequest,
    ) -> Result<(usize, Step)> {
        let terms = build_terms(ctx, &peer.side, &req.spec, req.asker)?;
        admissible(ctx, &peer.identity_key, &terms).or_else(refused)?;
        let budget = self.proposal_budget(req.budget)?;
        self.check_room(&terms, budget, None)?;
        let id: ProbeRef = backchannel_proto::crypto::random_array();
        let we_ask = match &terms.may_ask {
            MayAsk::Only(side) => *side == ctx.me.side,
            MayAsk::Either => true,
        };
        let text = format!(
            "you proposed probe {} to {}: {}; enter your input with `backchannel probe input {} {}`",
            short(&id),
            peer.name,
            describe(&terms),
            ctx.state.name,
            short(&id)
        );
        let body = ChannelBody::ProbePropose { probe: id, terms: terms.clone(), budget };
        self.list.push(ProbeRecord::new(id, peer, true, we_ask, terms, budget));
        Ok((self.list.len() - 1, Step { out: vec![(peer.identity_key, body)], events: vec![text] }))
    }

    /// Accepts a probe the other side proposed; runs it if our input is in and we ask.
    pub(crate) fn accept(&mut self, ctx: &Ctx<'_>, i: usize) -> Result<Step> {
        let p = &self.list[i];
        if p.proposed_by_us || p.status != Status::Proposed {
            let why = match p.proposed_by_us {
                true => {
                    format!("you proposed probe {}; {} accepts or declines it", short(&p.id), p.peer_name)
                }
                false => format!("probe {} is already {}", short(&p.id), p.status.name()),
            };
            return refused(why);
        }
        admissible(ctx, &p.peer, &p.terms).or_else(refused)?;
        if let Some(fixed) = self.budget.filter(|b| *b != p.budget) {
            return refused(format!(
                "probe {} asks a budget of {}, but the channel's is {}; decline it",
                short(&p.id),
                budget_text(p.budget),
                budget_text(fixed)
            ));
        }
        self.check_room(&p.terms, p.budget, Some(&p.id))?;
        let (id, peer, budget) = (p.id, p.peer, p.budget);
        self.fix_budget(&ctx.me.side, budget).or_else(refused)?;
        self.list[i].status = Status::Accepted;
        let step = Step { out: vec![(peer, ChannelBody::ProbeAccept { probe: id })], events: Vec::new() };
        let step = step.event(format!("you accepted probe {}", short(&id)));
        Ok(step.and(self.try_run(ctx, i)))
    }

    /// Declines (or withdraws) a probe that has not run on this side.
    pub(crate) fn decline(&mut self, i: usize) -> Result<Step> {
        let p = &mut self.list[i];
        if !p.status.pending() {
            return refused(format!(
                "probe {} is {}; only a probe not yet run can be declined",
                short(&p.id),
                p.status.name()
            ));
        }
        p.end(Status::Declined("declined by you".into()));
        let body = ChannelBody::ProbeDecline { probe: p.id, reason: "declined".into() };
        Ok(Step { out: vec![(p.peer, body)], events: vec![format!("you declined probe {}", short(&p.id))] })
    }

    /// Takes this side's private input, checked against the terms; runs the probe if it can.
    pub(crate) fn input(&mut self, ctx: &Ctx<'_>, i: usize, input: ProbeInput) -> Result<Step> {
        let p = &mut self.list[i];
        if !p.status.pending() {
            let why = match p.status {
                Status::Running | Status::Done(_) => "your input was already used",
                _ => "it has ended",
            };
            return refused(format!("probe {} is {}: {why}", short(&p.id), p.status.name()));
        }
        if let Err(e) = p.terms.check_input(&ctx.me.side, &input) {
            let range = match &p.terms.kind {
                ProbeKind::Single(s) => format!(" (the range is 0..={})", s.max),
                ProbeKind::Package(_) => String::new(),
            };
            return Err(ClientError::InvalidInput { what: "probe input", why: format!("{e}{range}") });
        }
        p.input = Some(input);
        Ok(self.try_run(ctx, i))
    }

    /// Starts (as asker) or answers (with the query in hand) once everything is in.
    fn try_run(&mut self, ctx: &Ctx<'_>, i: usize) -> Step {
        let p = &self.list[i];
        if p.status != Status::Accepted || p.input.is_none() {
            return Step::default();
        }
        if let Err(why) = run_allowed(ctx.state, &p.terms) {
            return self.abort(i, why, true);
        }
        match (p.we_ask, p.query.is_some()) {
            (true, _) => self.start(i),
            (false, true) => self.respond(i),
            (false, false) => Step::default(),
        }
    }

    fn start(&mut self, i: usize) -> Step {
        if self.ledger.is_none() {
            return self.abort(i, "no probe budget agreed in the channel".into(), true);
        }
        let Self { ledger, list, .. } = self;
        let p = &mut list[i];
        let (Some(ledger), Some(input)) = (ledger.as_mut(), p.input.take()) else { return Step::default() };
        match backchannel_redline::Initiator::start(ledger, &p.terms, &input) {
            Ok((waits, query)) => {
                let query = query.encode();
                p.bytes += query.len();
                p.status = Status::Running;
                p.waiting = Some(Waiting::Reply(waits));
                let text = format!("probe {}: query sent to {}", short(&p.id), p.peer_name);
                Step {
                    out: vec![(p.peer, ChannelBody::ProbeQuery { probe: p.id, query })],
                    events: vec![text],
                }
            }
            Err(e) => self.abort(i, e.to_string(), true),
        }
    }

    fn respond(&mut self, i: usize) -> Step {
        if self.ledger.is_none() {
            return self.abort(i, "no probe budget agreed in the channel".into(), true);
        }
        let Self { ledger, list, .. } = self;
        let p = &mut list[i];
        let (Some(ledger), Some(input), Some(query)) = (ledger.as_mut(), p.input.take(), p.query.take())
        else {
            return Step::default();
        };
        let answered = Query::decode(&query.0).and_then(|q| Responder::respond(ledger, &p.terms, &input, &q));
        match answered {
            Ok((waits, reply)) => {
                let reply = reply.encode();
                p.bytes += reply.len();
                p.status = Status::Running;
                p.waiting = Some(Waiting::Disclosure(waits));
                let text = format!("probe {}: reply sent to {}", short(&p.id), p.peer_name);
                Step {
                    out: vec![(p.peer, ChannelBody::ProbeReply { probe: p.id, reply })],
                    events: vec![text],
                }
            }
            Err(e) => self.abort(i, e.to_string(), true),
        }
    }

    /// Ends an open probe: its waiting state is abandoned in the ledger (a probe that ran still
    /// counts), the other side is told when `notify`.
    fn abort(&mut self, i: usize, reason: String, notify: bool) -> Step {
        let p = &mut self.list[i];
        if let (Some(waiting), Some(ledger)) = (p.waiting.take(), self.ledger.as_mut()) {
            // The state is consumed either way; an error only means the log already has it.
            let _ = match waiting {
                Waiting::Reply(w) => w.abandon(ledger, &reason),
                Waiting::Disclosure(w) => w.abandon(ledger, &reason),
            };
        }
        let reason = truncate(reason);
        p.end(Status::Aborted(reason.clone()));
        let mut step = Step::default().event(format!("probe {} aborted: {reason}", short(&p.id)));
        if notify {
            step.out.push((p.peer, ChannelBody::ProbeAbort { probe: p.id, reason }));
        }
        step
    }

    /// A message that does not fit the probe's state: a running probe aborts; one that has
    /// ended refuses it.
    fn out_of_order(&mut self, i: usize, what: &str) -> Result<Step> {
        let p = &self.list[i];
        match p.status.open() {
            true => Ok(self.abort(i, format!("{what} arrived out of order (replayed or misdirected)"), true)),
            false => {
                refused(format!("{what} for probe {}, which has ended, was refused (replayed)", short(&p.id)))
            }
        }
    }

    /// Takes in a probe message from `sender`.
    pub(crate) fn receive(&mut self, ctx: &Ctx<'_>, sender: &Card, body: ChannelBody) -> Result<Step> {
        match body {
            ChannelBody::ProbePropose { probe, terms, budget } => {
                Ok(self.on_propose(ctx, sender, probe, terms, budget))
            }
            ChannelBody::ProbeAccept { probe } => self.on_accept(ctx, sender, &probe),
            ChannelBody::ProbeDecline { probe, reason } => self.on_decline(sender, &probe, &reason),
            ChannelBody::ProbeQuery { probe, query } => self.on_query(ctx, sender, &probe, query),
            ChannelBody::ProbeReply { probe, reply } => self.on_reply(sender, &probe, &reply),
            ChannelBody::ProbeDisclosure { probe, disclosure } => {
                self.on_disclosure(sender, &probe, &disclosure)
            }
            ChannelBody::ProbeAbort { probe, reason } => self.on_abort(sender, &probe, &reason),
            _ => refused("an unexpected channel message"),
        }
    }

    /// A proposal is kept either way, so both logs show it: refused ones are declined at once.
    fn on_propose(
        &mut self,
        ctx: &Ctx<'_>,
        sender: &Card,
        id: ProbeRef,
        terms: ProbeTerms,
        budget: ProbeBudget,
    ) -> Step {
        if self.list.iter().any(|p| p.id == id) {
            return Step::default().event(format!(
                "a repeated proposal of probe {} from {} was ignored",
                short(&id),
                sender.name
            ));
        }
        let we_ask = match &terms.may_ask {
            MayAsk::Only(side) => *side == ctx.me.side,
            MayAsk::Either => false,
        };
        let check = admissible(ctx, &sender.identity_key, &terms)
            .and_then(|()| match self.budget {
                Some(fixed) if fixed != budget => Err(format!(
                    "the channel's probe budget is {} (fixed by its first accepted probe); this proposal asks {}",
                    budget_text(fixed),
                    budget_text(budget)
                )),
                _ => Ok(()),
            })
            .and_then(|()| self.check_room(&terms, budget, None).map_err(|e| e.to_string()));
        let what = describe(&terms);
        self.list.push(ProbeRecord::new(id, sender, false, we_ask, terms, budget));
        let i = self.list.len() - 1;
        match check {
            Ok(()) => Step::default().event(format!(
                "{} ({}) proposes probe {}: {what}. `backchannel probe accept {} {}`, or `probe decline`",
                sender.name,
                sender.side,
                short(&id),
                ctx.state.name,
                short(&id)
            )),
            Err(why) => {
                let why = truncate(why);
                self.list[i].end(Status::Declined(format!("declined automatically: {why}")));
                let body = ChannelBody::ProbeDecline { probe: id, reason: why.clone() };
                let text = format!(
                    "{} proposed probe {}: {what}; declined automatically: {why}",
                    sender.name,
                    short(&id)
                );
                Step { out: vec![(sender.identity_key, body)], events: vec![text] }
            }
        }
    }

    fn on_accept(&mut self, ctx: &Ctx<'_>, sender: &Card, id: &ProbeRef) -> Result<Step> {
        let i = self.find_from(sender, id)?;
        let p = &self.list[i];
        if !p.proposed_by_us || p.status != Status::Proposed {
            return self.out_of_order(i, "an acceptance");
        }
        let budget = p.budget;
        if let Err(why) = self.fix_budget(&ctx.me.side, budget) {
            return Ok(self.abort(i, why, true));
        }
        self.list[i].status = Status::Accepted;
        let step = Step::default().event(format!("{} accepted probe {}", sender.name, short(id)));
        Ok(step.and(self.try_run(ctx, i)))
    }

    fn on_decline(&mut self, sender: &Card, id: &ProbeRef, reason: &str) -> Result<Step> {
        let i = self.find_from(sender, id)?;
        let p = &mut self.list[i];
        match p.status {
            Status::Proposed | Status::Accepted => {
                p.end(Status::Declined(format!("declined by {}: {reason}", sender.name)));
                Ok(Step::default().event(format!("{} declined probe {}: {reason}", sender.name, short(id))))
            }
            Status::Running => {
                Ok(self.abort(i, format!("{} declined it after accepting: {reason}", sender.name), false))
            }
            _ => Ok(Step::default()),
        }
    }

    fn on_query(&mut self, ctx: &Ctx<'_>, sender: &Card, id: &ProbeRef, query: Vec<u8>) -> Result<Step> {
        let i = self.find_from(sender, id)?;
        let p = &mut self.list[i];
        if p.we_ask || p.status != Status::Accepted || p.query.is_some() {
            return self.out_of_order(i, "a query");
        }
        p.bytes += query.len();
        p.query = Some(Bytes(query));
        if p.input.is_some() {
            return Ok(self.try_run(ctx, i));
        }
        Ok(Step::default().event(format!(
            "probe {}: {}'s query arrived; enter your input with `backchannel probe input {} {}`",
            short(id),
            sender.name,
            ctx.state.name,
            short(id)
        )))
    }

    fn on_reply(&mut self, sender: &Card, id: &ProbeRef, bytes: &[u8]) -> Result<Step> {
        let i = self.find_from(sender, id)?;
        if self.ledger.is_none() || !matches!(self.list[i].waiting, Some(Waiting::Reply(_))) {
            return self.out_of_order(i, "a reply");
        }
        let Self { ledger, list, .. } = self;
        let p = &mut list[i];
        let (Some(ledger), Some(Waiting::Reply(waits))) = (ledger.as_mut(), p.waiting.take()) else {
            return refused("internal: probe state changed");
        };
        p.bytes += bytes.len();
        let reply = match Reply::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                p.waiting = Some(Waiting::Reply(waits));
                return Ok(self.abort(i, e.to_string(), true));
            }
        };
        match waits.finish(ledger, &reply) {
            Ok((outcome, disclosure)) => {
                let disclosure = disclosure.encode();
                p.bytes += disclosure.len();
                let text = result_text(&p.terms, &outcome.result);
                p.end(Status::Done(outcome.result));
                let body = ChannelBody::ProbeDisclosure { probe: *id, disclosure };
                let event = format!("probe {} on {}: {text}", short(id), issues_text(&p.terms));
                Ok(Step { out: vec![(p.peer, body)], events: vec![event] })
            }
            Err(e) => Ok(self.abort(i, e.to_string(), true)),
        }
    }

    fn on_disclosure(&mut self, sender: &Card, id: &ProbeRef, bytes: &[u8]) -> Result<Step> {
        let i = self.find_from(sender, id)?;
        if self.ledger.is_none() || !matches!(self.list[i].waiting, Some(Waiting::Disclosure(_))) {
            return self.out_of_order(i, "a disclosure");
        }
        let Self { ledger, list, .. } = self;
        let p = &mut list[i];
        let (Some(ledger), Some(Waiting::Disclosure(waits))) = (ledger.as_mut(), p.waiting.take()) else {
            return refused("internal: probe state changed");
        };
        p.bytes += bytes.len();
        let disclosure = match Disclosure::decode(bytes) {
            Ok(d) => d,
            Err(e) => {
                p.waiting = Some(Waiting::Disclosure(waits));
                return Ok(self.abort(i, e.to_string(), true));
            }
        };
        match waits.finish(ledger, &disclosure) {
            Ok(outcome) => {
                let text = result_text(&p.terms, &outcome.result);
                p.end(Status::Done(outcome.result));
                Ok(Step::default().event(format!("probe {} on {}: {text}", short(id), issues_text(&p.terms))))
            }
            Err(e) => Ok(self.abort(i, e.to_string(), true)),
        }
    }

    fn on_abort(&mut self, sender: &Card, id: &ProbeRef, reason: &str) -> Result<Step> {
        let i = self.find_from(sender, id)?;
        let p = &mut self.list[i];
        if p.status.open() {
            return Ok(self.abort(i, format!("{} aborted it: {reason}", sender.name), false));
        }
        p.peer_note = Some(truncate(format!("{} aborted it on their side: {reason}", sender.name)));
        Ok(Step::default().event(format!(
            "{} reports probe {} aborted on their side: {reason}",
            sender.name,
            short(id)
        )))
    }

    /// Every probe and the budget, as shown to the user.
    pub(crate) fn view(&self, state: &ChannelState) -> ProbesView {
        let phase = state.phase.name();
        let mut issues: Vec<&str> =
            self.list.iter().filter(|p| p.terms.phase == phase).flat_map(|p| p.terms.issues()).collect();
        issues.sort_unstable();
        issues.dedup();
        let budget = self.budget.unwrap_or(DEFAULT_BUDGET);
        let used_in_phase = self.used(phase, None, None);
        let issues = issues
            .into_iter()
            .map(|issue| {
                let used = self.used(phase, Some(issue), None);
                let left =
                    budget.per_issue.saturating_sub(used).min(budget.per_phase.saturating_sub(used_in_phase));
                IssueBudget { issue: issue.to_owned(), used, left }
            })
            .collect();
        ProbesView {
            channel: state.name.clone(),
            phase: phase.to_owned(),
            probes_allowed: state.policy().probes_allowed,
            budget: self.budget,
            used_in_phase,
            issues,
            probes: self.list.iter().map(|p| p.view(&state.name)).collect(),
        }
    }
}

impl ProbeRecord {
    fn new(
        id: ProbeRef,
        peer: &Card,
        proposed_by_us: bool,
        we_ask: bool,
        terms: ProbeTerms,
        budget: ProbeBudget,
    ) -> Self {
        Self {
            id,
            peer: peer.identity_key,
            peer_name: peer.name.clone(),
            peer_side: peer.side.clone(),
            proposed_by_us,
            we_ask,
            terms,
            budget,
            status: Status::Proposed,
            input: None,
            query: None,
            waiting: None,
            bytes: 0,
            at: now_ms(),
            peer_note: None,
        }
    }

    /// Ends the probe here; secrets (input, waiting state) are dropped, and zeroed.
    fn end(&mut self, status: Status) {
        self.status = status;
        self.input = None;
        self.query = None;
        self.waiting = None;
    }

    fn view(&self, channel: &str) -> ProbeView {
        let (id, peer) = (short(&self.id), &self.peer_name);
        let detail = match (&self.status, self.we_ask) {
            (Status::Proposed, _) if self.proposed_by_us => format!("waiting for {peer} to accept"),
            (Status::Proposed, _) => {
                format!("accept with `backchannel probe accept {channel} {id}`, or decline")
            }
            (Status::Accepted, _) if self.input.is_none() => format!(
                "waiting for your input: `backchannel probe input {channel} {id} {}`",
                if matches!(self.terms.kind, ProbeKind::Single(_)) { "VALUE" } else { "--package ..." }
            ),
            (Status::Accepted, _) => format!("waiting for {peer}'s query"),
            (Status::Running, true) => format!("query sent; waiting for {peer}'s reply"),
            (Status::Running, false) => format!("reply sent; waiting for {peer} to disclose the result"),
            (Status::Done(r), _) => result_text(&self.terms, r),
            (Status::Declined(why) | Status::Aborted(why), _) => why.clone(),
        };
        let detail = match &self.peer_note {
            Some(note) => format!("{detail} ({note})"),
            None => detail,
        };
        ProbeView {
            id: hex_encode(&self.id),
            with: format!("{} ({})", self.peer_name, self.peer_side),
            proposed_by_you: self.proposed_by_us,
            you_ask: self.we_ask,
            phase: self.terms.phase.clone(),
            terms: describe(&self.terms),
            status: self.status.name().to_owned(),
            result: match &self.status {
                Status::Done(r) => Some(result_text(&self.terms, r)),
                _ => None,
            },
            detail,
            input_given: self.input.is_some() || !self.status.pending(),
            bytes: self.bytes,
            at: self.at,
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
