//! One side's book of probes in a channel (budget, ledger, records) and every transition,
//! each returning the messages to seal and the entries to record.

use backchannel_proto::channel::{ChannelBody, ChannelState, MemberKey, ProbeRef};
use backchannel_proto::identity::Card;
use backchannel_redline::{
    Disclosure, InitiatorAwaitingReply, MayAsk, ProbeBudget, ProbeInput, ProbeKind, ProbeLedger, ProbeTerms,
    Query, Reply, Responder, ResponderAwaitingResult,
};
use backchannel_wire::hex_encode;
use serde::{Deserialize, Serialize};

use super::rules::{admissible, build_terms, run_allowed};
use super::{
    DEFAULT_BUDGET, DeclinedBy, IssueBudget, ProbeRequest, ProbeStatus, ProbeView, ProbesView, short,
    truncate,
};
use crate::event::{AbortReason, ChannelEvent, Conversation, Entry, ProbeEvent};
use crate::step::Step;
use crate::why::{PeerReason, Why};
use crate::{Ctx, Outcome};

/// One channel's probes as this party keeps them (in the channel record, sealed in the store).
#[derive(Default, Serialize, Deserialize)]
pub struct ChannelProbes {
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
    #[serde(default)]
    peer_note: Option<PeerNote>,
}

/// How earlier versions kept a peer's note: as text.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PeerNote {
    Said { name: String, reason: PeerReason },
    Legacy(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Status {
    Proposed,
    Accepted,
    /// In this side's ledger: it counts against the budget from here on.
    Running,
    Done(backchannel_redline::ProbeResult),
    /// As earlier versions stored an end: in words.
    Declined(String),
    Aborted(String),
    DeclinedBy(DeclinedBy),
    AbortedBy(AbortReason),
}

impl Status {
    fn open(&self) -> bool {
        matches!(self, Status::Proposed | Status::Accepted | Status::Running)
    }
    fn pending(&self) -> bool {
        matches!(self, Status::Proposed | Status::Accepted)
    }
    fn shown(&self) -> ProbeStatus {
        match self {
            Status::Proposed => ProbeStatus::Proposed,
            Status::Accepted => ProbeStatus::Accepted,
            Status::Running => ProbeStatus::Running,
            Status::Done(result) => ProbeStatus::Done { result: result.clone() },
            Status::Declined(text) => ProbeStatus::Declined { by: DeclinedBy::Legacy { text: text.clone() } },
            Status::Aborted(text) => {
                ProbeStatus::Aborted { reason: AbortReason::Legacy { text: text.clone() } }
            }
            Status::DeclinedBy(by) => ProbeStatus::Declined { by: by.clone() },
            Status::AbortedBy(reason) => ProbeStatus::Aborted { reason: reason.clone() },
        }
    }
    fn name(&self) -> String {
        self.shown().name().to_owned()
    }
}

#[derive(Serialize, Deserialize)]
enum Waiting {
    Reply(InitiatorAwaitingReply),
    Disclosure(ResponderAwaitingResult),
}

#[derive(Serialize, Deserialize)]
struct Bytes(#[serde(with = "crate::b64")] Vec<u8>);

/// The channel as an operation sees it, and who we are.
struct Op<'a> {
    state: &'a ChannelState,
    ctx: &'a Ctx<'a>,
    step: Step,
}

impl<'a> Op<'a> {
    fn new(state: &'a ChannelState, ctx: &'a Ctx<'a>) -> Self {
        Self { state, ctx, step: Step::none() }
    }

    fn send(&mut self, to: MemberKey, body: ChannelBody) {
        self.step.seal(vec![to], self.state.id, &body);
    }

    fn tell(&mut self, probe: &ProbeRef, what: ProbeEvent) {
        let event = ChannelEvent::Probe { probe: short(probe), what };
        self.step.record(&Conversation::channel(self.state), Entry::channel(event, self.ctx.now_ms));
    }
}

impl ChannelProbes {
    /// Probes counted in `phase` (those touching `issue`, if given): logged in this side's
    /// ledger, or proposed or accepted and not run yet (but `except`).
    fn used(&self, phase: &str, issue: Option<&str>, except: Option<&ProbeRef>) -> u32 {
        // Labels compare normalised, as the ledger counts them: "Months" and " months" are one
        // issue, and a pending proposal under either spends the same budget.
        let norm = backchannel_redline::normalise_label;
        let (phase, issue) = (norm(phase), issue.map(norm));
        let touches = |t: &ProbeTerms| {
            norm(&t.phase) == phase && issue.as_ref().is_none_or(|i| t.issues().iter().any(|x| norm(x) == *i))
        };
        let logged = self.ledger.iter().flat_map(|l| l.log().entries()).filter(|e| touches(&e.terms)).count();
        let pending = self
            .list
            .iter()
            .filter(|p| p.status.pending() && Some(&p.id) != except && touches(&p.terms))
            .count();
        u32::try_from(logged + pending).unwrap_or(u32::MAX)
    }

    /// Probes of this channel with a member of `side` that touch `issue` (both normalised),
    /// run, running or still to run (declined ones never ran): what a budget kept across
    /// channels counts.
    pub fn spent_with(&self, side: &str, issue: &str) -> u32 {
        let norm = backchannel_redline::normalise_label;
        let (side, issue) = (norm(side), norm(issue));
        let n = self
            .list
            .iter()
            .filter(|p| !matches!(p.status, Status::Declined(_) | Status::DeclinedBy(_)))
            .filter(|p| norm(&p.peer_side) == side && p.terms.issues().iter().any(|x| norm(x) == issue))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Refuses a probe the budget has no room for. `elsewhere` counts the probes on an issue
    /// with the same counterpart side in our other channels: a new channel starts no new budget.
    fn check_room(
        &self,
        terms: &ProbeTerms,
        budget: ProbeBudget,
        except: Option<&ProbeRef>,
        elsewhere: &dyn Fn(&str) -> u32,
    ) -> Outcome<()> {
        let spent = |issue: Option<&str>, used: u32, limit: u32| {
            Err(Why::BudgetSpent {
                used,
                limit,
                issue: issue.map(str::to_owned),
                phase: terms.phase.clone(),
                budget,
            })
        };
        let in_phase = self.used(&terms.phase, None, except);
        if in_phase >= budget.per_phase {
            return spent(None, in_phase, budget.per_phase);
        }
        for issue in terms.issues() {
            let used = self.used(&terms.phase, Some(issue), except).saturating_add(elsewhere(issue));
            if used >= budget.per_issue {
                return spent(Some(issue), used, budget.per_issue);
            }
        }
        Ok(())
    }

    /// The budget a new proposal runs under.
    fn proposal_budget(&self, asked: Option<ProbeBudget>) -> Outcome<ProbeBudget> {
        if let Some(fixed) = self.budget {
            return match asked {
                Some(b) if b != fixed => Err(Why::BudgetFixed { budget: fixed }),
                _ => Ok(fixed),
            };
        }
        let budget = asked.unwrap_or(DEFAULT_BUDGET);
        match self.list.iter().find(|p| p.status.pending() && p.budget != budget) {
            Some(p) => Err(Why::PendingBudget { probe: short(&p.id), budget: p.budget }),
            None => Ok(budget),
        }
    }

    /// Fixes the channel's budget (first acceptance) or checks it matches.
    fn fix_budget(&mut self, my_side: &str, budget: ProbeBudget) -> Outcome<()> {
        match self.budget {
            Some(fixed) if fixed != budget => Err(Why::BudgetMismatch { fixed, asked: budget }),
            Some(_) => Ok(()),
            None => {
                self.budget = Some(budget);
                self.ledger = Some(ProbeLedger::new(my_side, budget));
                Ok(())
            }
        }
    }

    /// A probe by (a unique prefix of) its hex id.
    pub fn find(&self, channel: &str, query: &str) -> Outcome<usize> {
        let q = query.to_ascii_lowercase();
        if q.len() < 4 || !q.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Why::BadProbeId { query: query.to_owned(), channel: channel.to_owned() });
        }
        let hits: Vec<usize> =
            (0..self.list.len()).filter(|&i| hex_encode(&self.list[i].id).starts_with(&q)).collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(Why::NoProbe { query: query.to_owned(), channel: channel.to_owned() }),
            _ => Err(Why::AmbiguousProbe { query: query.to_owned(), channel: channel.to_owned() }),
        }
    }

    /// How the `i`th probe looks to the user.
    pub fn view_of(&self, i: usize) -> Option<ProbeView> {
        self.list.get(i).map(ProbeRecord::view)
    }

    pub fn terms_of(&self, i: usize) -> Option<&ProbeTerms> {
        self.list.get(i).map(|p| &p.terms)
    }

    /// The probe a received message is about, which must be between us and its sender.
    fn find_from(&self, sender: &Card, id: &ProbeRef) -> Outcome<usize> {
        match self.list.iter().position(|p| &p.id == id) {
            Some(i) if self.list[i].peer == sender.party() => Ok(i),
            Some(_) => Err(Why::ProbeNotTheirs { name: sender.name.clone(), probe: short(id) }),
            None => Err(Why::ProbeUnknown { name: sender.name.clone(), probe: short(id) }),
        }
    }

    /// Proposes a probe to `peer`; returns its index.
    pub fn propose(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        peer: &Card,
        req: &ProbeRequest,
    ) -> Outcome<(usize, Step)> {
        self.propose_counting(state, ctx, peer, req, &|_, _| 0)
    }

    /// [`Self::propose`], with `elsewhere(side, issue)` the probes on that issue with that
    /// counterpart side in our other channels (the engine counts them in its store).
    pub fn propose_counting(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        peer: &Card,
        req: &ProbeRequest,
        elsewhere: &dyn Fn(&str, &str) -> u32,
    ) -> Outcome<(usize, Step)> {
        let terms = build_terms(state, ctx, &peer.side, &req.spec, req.asker)?;
        admissible(state, ctx, &peer.party(), &terms)?;
        let budget = self.proposal_budget(req.budget)?;
        self.check_room(&terms, budget, None, &|issue| elsewhere(&peer.side, issue))?;
        let id: ProbeRef = backchannel_proto::crypto::random_array();
        let we_ask = match &terms.may_ask {
            MayAsk::Only(side) => *side == ctx.me.side,
            MayAsk::Either => true,
        };
        let mut op = Op::new(state, ctx);
        let what = ProbeEvent::Proposed {
            by_you: true,
            peer: peer.name.clone(),
            peer_side: peer.side.clone(),
            terms: terms.clone(),
        };
        op.tell(&id, what);
        op.send(peer.party(), ChannelBody::ProbePropose { probe: id, terms: terms.clone(), budget });
        self.list.push(ProbeRecord::new(id, peer, true, we_ask, terms, budget, ctx.now_ms));
        Ok((self.list.len() - 1, op.step))
    }

    /// Accepts a probe the other side proposed; runs it if our input is in and we ask.
    pub fn accept(&mut self, state: &ChannelState, ctx: &Ctx<'_>, i: usize) -> Outcome {
        self.accept_counting(state, ctx, i, &|_, _| 0)
    }

    /// [`Self::accept`], counting the probes in our other channels as
    /// [`Self::propose_counting`] does.
    pub fn accept_counting(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        i: usize,
        elsewhere: &dyn Fn(&str, &str) -> u32,
    ) -> Outcome {
        let p = &self.list[i];
        if p.proposed_by_us {
            return Err(Why::NotYourProbeToAccept { probe: short(&p.id), peer: p.peer_name.clone() });
        }
        if p.status != Status::Proposed {
            return Err(Why::ProbeIs { probe: short(&p.id), status: p.status.name() });
        }
        admissible(state, ctx, &p.peer, &p.terms)?;
        if let Some(fixed) = self.budget.filter(|b| *b != p.budget) {
            return Err(Why::BudgetMismatch { fixed, asked: p.budget });
        }
        self.check_room(&p.terms, p.budget, Some(&p.id), &|issue| elsewhere(&p.peer_side, issue))?;
        let (id, peer, budget, peer_name) = (p.id, p.peer, p.budget, p.peer_name.clone());
        self.fix_budget(&ctx.me.side, budget)?;
        self.list[i].status = Status::Accepted;
        let mut op = Op::new(state, ctx);
        op.send(peer, ChannelBody::ProbeAccept { probe: id });
        op.tell(&id, ProbeEvent::Accepted { by_you: true, peer: peer_name });
        self.try_run(&mut op, i);
        Ok(op.step)
    }

    /// Declines (or withdraws) a probe that has not run on this side.
    pub fn decline(&mut self, state: &ChannelState, ctx: &Ctx<'_>, i: usize) -> Outcome {
        let p = &mut self.list[i];
        if !p.status.pending() {
            return Err(Why::ProbeIs { probe: short(&p.id), status: p.status.name() });
        }
        p.end(Status::DeclinedBy(DeclinedBy::You));
        let (id, peer, peer_name) = (p.id, p.peer, p.peer_name.clone());
        let mut op = Op::new(state, ctx);
        op.send(peer, ChannelBody::ProbeDecline { probe: id, reason: Why::ProbeDeclinedByUser.to_wire() });
        op.tell(&id, ProbeEvent::Declined { by_you: true, peer: peer_name, reason: None });
        Ok(op.step)
    }

    /// Takes this side's private input, checked against the terms; runs the probe if it can.
    pub fn input(&mut self, state: &ChannelState, ctx: &Ctx<'_>, i: usize, input: ProbeInput) -> Outcome {
        let p = &mut self.list[i];
        if !p.status.pending() {
            return Err(match p.status {
                Status::Running | Status::Done(_) => {
                    Why::ProbeInputUsed { probe: short(&p.id), status: p.status.name() }
                }
                _ => Why::ProbeEnded { probe: short(&p.id) },
            });
        }
        if let Err(e) = p.terms.check_input(&ctx.me.side, &input) {
            let max = match &p.terms.kind {
                ProbeKind::Single(s) => Some(s.max),
                ProbeKind::Package(_) => None,
            };
            return Err(Why::ProbeInput { why: e.to_string(), max });
        }
        p.input = Some(input);
        let mut op = Op::new(state, ctx);
        self.try_run(&mut op, i);
        Ok(op.step)
    }

    /// Starts (as asker) or answers (with the query in hand) once everything is in.
    fn try_run(&mut self, op: &mut Op<'_>, i: usize) {
        let p = &self.list[i];
        if p.status != Status::Accepted || p.input.is_none() {
            return;
        }
        if let Err(why) = run_allowed(op.state, &p.terms) {
            return self.abort(op, i, why, true);
        }
        match (p.we_ask, p.query.is_some()) {
            (true, _) => self.start(op, i),
            (false, true) => self.respond(op, i),
            (false, false) => {}
        }
    }

    fn start(&mut self, op: &mut Op<'_>, i: usize) {
        if self.ledger.is_none() {
            return self.abort(op, i, Why::NoBudgetAgreed, true);
        }
        let Self { ledger, list, .. } = self;
        let p = &mut list[i];
        let (Some(ledger), Some(input)) = (ledger.as_mut(), p.input.take()) else { return };
        match backchannel_redline::Initiator::start(ledger, &p.terms, &input) {
            Ok((waits, query)) => {
                let query = query.encode();
                p.bytes += query.len();
                p.status = Status::Running;
                p.waiting = Some(Waiting::Reply(waits));
                let (id, peer, peer_name) = (p.id, p.peer, p.peer_name.clone());
                op.send(peer, ChannelBody::ProbeQuery { probe: id, query });
                op.tell(&id, ProbeEvent::QuerySent { peer: peer_name });
            }
            Err(e) => self.abort(op, i, Why::ProbeProtocol { what: e.to_string() }, true),
        }
    }

    fn respond(&mut self, op: &mut Op<'_>, i: usize) {
        if self.ledger.is_none() {
            return self.abort(op, i, Why::NoBudgetAgreed, true);
        }
        let Self { ledger, list, .. } = self;
        let p = &mut list[i];
        let (Some(ledger), Some(input), Some(query)) = (ledger.as_mut(), p.input.take(), p.query.take())
        else {
            return;
        };
        let answered = Query::decode(&query.0).and_then(|q| Responder::respond(ledger, &p.terms, &input, &q));
        match answered {
            Ok((waits, reply)) => {
                let reply = reply.encode();
                p.bytes += reply.len();
                p.status = Status::Running;
                p.waiting = Some(Waiting::Disclosure(waits));
                let (id, peer, peer_name) = (p.id, p.peer, p.peer_name.clone());
                op.send(peer, ChannelBody::ProbeReply { probe: id, reply });
                op.tell(&id, ProbeEvent::ReplySent { peer: peer_name });
            }
            Err(e) => self.abort(op, i, Why::ProbeProtocol { what: e.to_string() }, true),
        }
    }

    /// Ends an open probe because of us: its waiting state is abandoned in the ledger (a probe
    /// that ran still counts); the other side is told.
    fn abort(&mut self, op: &mut Op<'_>, i: usize, why: Why, notify: bool) {
        let reason = AbortReason::Ours { why: why.clone() };
        self.end_aborted(op, i, reason, notify.then(|| why.to_wire()));
    }

    fn end_aborted(&mut self, op: &mut Op<'_>, i: usize, reason: AbortReason, tell_peer: Option<String>) {
        let p = &mut self.list[i];
        if let (Some(waiting), Some(ledger)) = (p.waiting.take(), self.ledger.as_mut()) {
            let note = serde_json::to_string(&reason).unwrap_or_default();
            // The state is consumed either way; an error only means the log already has it.
            let _ = match waiting {
                Waiting::Reply(w) => w.abandon(ledger, &truncate(note)),
                Waiting::Disclosure(w) => w.abandon(ledger, &truncate(note)),
            };
        }
        p.end(Status::AbortedBy(reason.clone()));
        let (id, peer) = (p.id, p.peer);
        op.tell(&id, ProbeEvent::Aborted { reason });
        if let Some(text) = tell_peer {
            op.send(peer, ChannelBody::ProbeAbort { probe: id, reason: truncate(text) });
        }
    }

    /// A message that does not fit the probe's state: a running probe aborts; one that has
    /// ended refuses it.
    fn out_of_order(&mut self, op: &mut Op<'_>, i: usize, what: &'static str) -> Outcome<()> {
        match self.list[i].status.open() {
            true => {
                self.abort(op, i, Why::ProbeOutOfOrder { what: what.to_owned() }, true);
                Ok(())
            }
            false => Err(Why::ProbeReplayed { what: what.to_owned(), probe: short(&self.list[i].id) }),
        }
    }

    /// Takes in a probe message from `sender`.
    pub fn receive(
        &mut self,
        state: &ChannelState,
        ctx: &Ctx<'_>,
        sender: &Card,
        body: ChannelBody,
    ) -> Outcome {
        let mut op = Op::new(state, ctx);
        match body {
            ChannelBody::ProbePropose { probe, terms, budget } => {
                self.on_propose(&mut op, sender, probe, terms, budget)
            }
            ChannelBody::ProbeAccept { probe } => self.on_accept(&mut op, sender, &probe)?,
            ChannelBody::ProbeDecline { probe, reason } => {
                self.on_decline(&mut op, sender, &probe, &reason)?
            }
            ChannelBody::ProbeQuery { probe, query } => self.on_query(&mut op, sender, &probe, query)?,
            ChannelBody::ProbeReply { probe, reply } => self.on_reply(&mut op, sender, &probe, &reply)?,
            ChannelBody::ProbeDisclosure { probe, disclosure } => {
                self.on_disclosure(&mut op, sender, &probe, &disclosure)?
            }
            ChannelBody::ProbeAbort { probe, reason } => self.on_abort(&mut op, sender, &probe, &reason)?,
            _ => return Err(Why::UnexpectedMessage),
        }
        Ok(op.step)
    }

    /// A proposal is kept either way, so both logs show it: refused ones are declined at once.
    fn on_propose(
        &mut self,
        op: &mut Op<'_>,
        sender: &Card,
        id: ProbeRef,
        terms: ProbeTerms,
        budget: ProbeBudget,
    ) {
        if self.list.iter().any(|p| p.id == id) {
            return op.tell(&id, ProbeEvent::RepeatedIgnored { peer: sender.name.clone() });
        }
        let we_ask = match &terms.may_ask {
            MayAsk::Only(side) => *side == op.ctx.me.side,
            MayAsk::Either => false,
        };
        let check = admissible(op.state, op.ctx, &sender.party(), &terms)
            .and_then(|()| match self.budget {
                Some(fixed) if fixed != budget => Err(Why::BudgetMismatch { fixed, asked: budget }),
                _ => Ok(()),
            })
            .and_then(|()| self.check_room(&terms, budget, None, &|_| 0));
        self.list.push(ProbeRecord::new(id, sender, false, we_ask, terms.clone(), budget, op.ctx.now_ms));
        let i = self.list.len() - 1;
        match check {
            Ok(()) => {
                let what = ProbeEvent::Proposed {
                    by_you: false,
                    peer: sender.name.clone(),
                    peer_side: sender.side.clone(),
                    terms,
                };
                op.tell(&id, what);
            }
            Err(why) => {
                self.list[i].end(Status::DeclinedBy(DeclinedBy::Rule { why: why.clone() }));
                op.send(
                    sender.party(),
                    ChannelBody::ProbeDecline { probe: id, reason: truncate(why.to_wire()) },
                );
                op.tell(&id, ProbeEvent::AutoDeclined { peer: sender.name.clone(), terms, why });
            }
        }
    }

    fn on_accept(&mut self, op: &mut Op<'_>, sender: &Card, id: &ProbeRef) -> Outcome<()> {
        let i = self.find_from(sender, id)?;
        let p = &self.list[i];
        if !p.proposed_by_us || p.status != Status::Proposed {
            return self.out_of_order(op, i, "an acceptance");
        }
        if let Err(why) = self.fix_budget(&op.ctx.me.side, p.budget) {
            self.abort(op, i, why, true);
            return Ok(());
        }
        self.list[i].status = Status::Accepted;
        op.tell(id, ProbeEvent::Accepted { by_you: false, peer: sender.name.clone() });
        self.try_run(op, i);
        Ok(())
    }

    fn on_decline(&mut self, op: &mut Op<'_>, sender: &Card, id: &ProbeRef, reason: &str) -> Outcome<()> {
        let i = self.find_from(sender, id)?;
        let reason = PeerReason::parse(reason);
        let p = &mut self.list[i];
        match p.status {
            Status::Proposed | Status::Accepted => {
                p.end(Status::DeclinedBy(DeclinedBy::Peer {
                    name: sender.name.clone(),
                    reason: reason.clone(),
                }));
                op.tell(
                    id,
                    ProbeEvent::Declined { by_you: false, peer: sender.name.clone(), reason: Some(reason) },
                );
            }
            Status::Running => {
                let reason = AbortReason::Peer { name: sender.name.clone(), reason };
                self.end_aborted(op, i, reason, None);
            }
            _ => {}
        }
        Ok(())
    }

    fn on_query(&mut self, op: &mut Op<'_>, sender: &Card, id: &ProbeRef, query: Vec<u8>) -> Outcome<()> {
        let i = self.find_from(sender, id)?;
        let p = &mut self.list[i];
        if p.we_ask || p.status != Status::Accepted || p.query.is_some() {
            return self.out_of_order(op, i, "a query");
        }
        p.bytes += query.len();
        p.query = Some(Bytes(query));
        if p.input.is_some() {
            self.try_run(op, i);
            return Ok(());
        }
        op.tell(id, ProbeEvent::QueryArrived { peer: sender.name.clone() });
        Ok(())
    }

    fn on_reply(&mut self, op: &mut Op<'_>, sender: &Card, id: &ProbeRef, bytes: &[u8]) -> Outcome<()> {
        let i = self.find_from(sender, id)?;
        if self.ledger.is_none() || !matches!(self.list[i].waiting, Some(Waiting::Reply(_))) {
            return self.out_of_order(op, i, "a reply");
        }
        let Self { ledger, list, .. } = self;
        let p = &mut list[i];
        let (Some(ledger), Some(Waiting::Reply(waits))) = (ledger.as_mut(), p.waiting.take()) else {
            return Err(Why::ProbeOutOfOrder { what: "a reply".into() });
        };
        p.bytes += bytes.len();
        let reply = match Reply::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                p.waiting = Some(Waiting::Reply(waits));
                self.abort(op, i, Why::ProbeProtocol { what: e.to_string() }, true);
                return Ok(());
            }
        };
        match waits.finish(ledger, &reply) {
            Ok((outcome, disclosure)) => {
                let disclosure = disclosure.encode();
                p.bytes += disclosure.len();
                let (peer, terms) = (p.peer, p.terms.clone());
                p.end(Status::Done(outcome.result.clone()));
                op.send(peer, ChannelBody::ProbeDisclosure { probe: *id, disclosure });
                op.tell(id, ProbeEvent::Done { terms, result: outcome.result });
            }
            Err(e) => self.abort(op, i, Why::ProbeProtocol { what: e.to_string() }, true),
        }
        Ok(())
    }

    fn on_disclosure(&mut self, op: &mut Op<'_>, sender: &Card, id: &ProbeRef, bytes: &[u8]) -> Outcome<()> {
        let i = self.find_from(sender, id)?;
        if self.ledger.is_none() || !matches!(self.list[i].waiting, Some(Waiting::Disclosure(_))) {
            return self.out_of_order(op, i, "a disclosure");
        }
        let Self { ledger, list, .. } = self;
        let p = &mut list[i];
        let (Some(ledger), Some(Waiting::Disclosure(waits))) = (ledger.as_mut(), p.waiting.take()) else {
            return Err(Why::ProbeOutOfOrder { what: "a disclosure".into() });
        };
        p.bytes += bytes.len();
        let disclosure = match Disclosure::decode(bytes) {
            Ok(d) => d,
            Err(e) => {
                p.waiting = Some(Waiting::Disclosure(waits));
                self.abort(op, i, Why::ProbeProtocol { what: e.to_string() }, true);
                return Ok(());
            }
        };
        match waits.finish(ledger, &disclosure) {
            Ok(outcome) => {
                let terms = p.terms.clone();
                p.end(Status::Done(outcome.result.clone()));
                op.tell(id, ProbeEvent::Done { terms, result: outcome.result });
            }
            Err(e) => self.abort(op, i, Why::ProbeProtocol { what: e.to_string() }, true),
        }
        Ok(())
    }

    fn on_abort(&mut self, op: &mut Op<'_>, sender: &Card, id: &ProbeRef, reason: &str) -> Outcome<()> {
        let i = self.find_from(sender, id)?;
        let reason = PeerReason::parse(reason);
        if self.list[i].status.open() {
            self.end_aborted(op, i, AbortReason::Peer { name: sender.name.clone(), reason }, None);
            return Ok(());
        }
        self.list[i].peer_note = Some(PeerNote::Said { name: sender.name.clone(), reason: reason.clone() });
        op.tell(id, ProbeEvent::PeerAborted { peer: sender.name.clone(), reason });
        Ok(())
    }

    /// Every probe and the budget, as shown to the user.
    pub fn view(&self, state: &ChannelState) -> ProbesView {
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
            probes: self.list.iter().map(ProbeRecord::view).collect(),
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
        at: u64,
    ) -> Self {
        Self {
            id,
            peer: peer.party(),
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
            at,
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

    fn view(&self) -> ProbeView {
        ProbeView {
            id: hex_encode(&self.id),
            with: self.peer_name.clone(),
            with_side: self.peer_side.clone(),
            proposed_by_you: self.proposed_by_us,
            you_ask: self.we_ask,
            phase: self.terms.phase.clone(),
            terms: self.terms.clone(),
            status: self.status.shown(),
            input_given: self.input.is_some() || !self.status.pending(),
            query_waiting: self.query.is_some(),
            bytes: self.bytes,
            at: self.at,
            peer_note: match &self.peer_note {
                Some(PeerNote::Said { name, reason }) => Some((name.clone(), reason.clone())),
                Some(PeerNote::Legacy(text)) => Some((String::new(), PeerReason::Text(text.clone()))),
                None => None,
            },
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
