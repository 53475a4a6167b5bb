//! Two books driven in memory: every message goes through its wire encoding, and each book
//! goes through its stored (JSON) form after every step, as it would through the store.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use super::*;
use crate::probes::{Asker, ProbeSpec};
use crate::step::Effect;
use backchannel_proto::channel::{Mode, Phase, Role};
use backchannel_proto::identity::Identity;
use backchannel_redline::{Package, ProbeResult};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    A,
    B,
}

type Tamper = Box<dyn FnMut(&mut ChannelBody)>;

struct Side {
    card: Card,
    book: ChannelProbes,
    events: Vec<ProbeEvent>,
    /// What arrived and was refused.
    refused: Vec<Why>,
}

struct World {
    state: ChannelState,
    a: Side,
    b: Side,
    /// Lets a test see (and change) each message before it is delivered.
    tamper: Option<Tamper>,
    /// Every message delivered, in order, with its recipient.
    sent: Vec<(Who, ChannelBody)>,
    now_ms: u64,
}

fn card(name: &str, side: &str) -> Card {
    Identity::generate(name, side).unwrap().card()
}

fn side(card: Card) -> Side {
    Side { card, book: ChannelProbes::default(), events: Vec::new(), refused: Vec::new() }
}

/// The probe messages and entries a step holds.
fn split(step: Step) -> (Vec<ChannelBody>, Vec<ProbeEvent>) {
    let (mut out, mut events) = (Vec::new(), Vec::new());
    for effect in step.effects {
        match effect {
            Effect::Seal { body, .. } => out.push(ChannelBody::decode(&body).unwrap()),
            Effect::Record {
                entry: Entry::Channel { what: ChannelEvent::Probe { what, .. }, .. }, ..
            } => events.push(what),
            other => panic!("a probe step did {other:?}"),
        }
    }
    (out, events)
}

impl World {
    fn direct() -> World {
        let (a, b) = (card("Alice", "A"), card("Bao", "B"));
        let mut state = ChannelState::new("talks", Mode::Direct, a.clone(), Role::Principal).unwrap();
        state.add(b.clone(), Role::Principal).unwrap();
        World { state, a: side(a), b: side(b), tamper: None, sent: Vec::new(), now_ms: 1_000 }
    }

    fn side(&mut self, who: Who) -> &mut Side {
        match who {
            Who::A => &mut self.a,
            Who::B => &mut self.b,
        }
    }

    /// Runs one operation on `who`'s book, then delivers everything it set off.
    fn op<T>(
        &mut self,
        who: Who,
        f: impl FnOnce(&mut ChannelProbes, &ChannelState, &Ctx<'_>, &Card) -> Outcome<(T, Step)>,
    ) -> Outcome<T> {
        let other = self.side(other(who)).card.clone();
        let (state, now_ms) = (self.state.clone(), self.now_ms);
        let me = self.side(who);
        let ctx = Ctx { me: &me.card, now_ms };
        let (out, step) = f(&mut me.book, &state, &ctx, &other)?;
        self.persist();
        self.deliver(who, step);
        Ok(out)
    }

    /// Proposes from `who` to the other side; returns the probe's id prefix.
    fn propose(&mut self, who: Who, spec: ProbeSpec, budget: Option<ProbeBudget>) -> Outcome<String> {
        let req = ProbeRequest { with: String::new(), spec, asker: Asker::Me, budget };
        let i = self.op(who, |book, state, ctx, peer| book.propose(state, ctx, peer, &req))?;
        Ok(short(&self.side(who).book.list[i].id))
    }

    fn accept(&mut self, who: Who, id: &str) -> Outcome<()> {
        self.op(who, |book, state, ctx, _| Ok(((), book.accept(state, ctx, book.find("talks", id)?)?)))
    }

    fn decline(&mut self, who: Who, id: &str) -> Outcome<()> {
        self.op(who, |book, state, ctx, _| Ok(((), book.decline(state, ctx, book.find("talks", id)?)?)))
    }

    fn input(&mut self, who: Who, id: &str, input: ProbeInput) -> Outcome<()> {
        self.op(who, |book, state, ctx, _| Ok(((), book.input(state, ctx, book.find("talks", id)?, input)?)))
    }

    /// Sends `from`'s messages to the other side, and the answers back, until none is left.
    fn deliver(&mut self, from: Who, step: Step) {
        let (out, events) = split(step);
        self.side(from).events.extend(events);
        let mut queue: Vec<(Who, ChannelBody)> = out.into_iter().map(|b| (other(from), b)).collect();
        while !queue.is_empty() {
            let (to, mut body) = queue.remove(0);
            if let Some(t) = self.tamper.as_mut() {
                t(&mut body);
            }
            let body = ChannelBody::decode(&body.encode()).unwrap();
            self.sent.push((to, body.clone()));
            let (out, events) = split(self.receive(to, body));
            queue.extend(out.into_iter().map(|b| (other(to), b)));
            self.side(to).events.extend(events);
        }
    }

    /// One message to `to`, as the channel's receive takes it: a refusal is kept apart.
    fn receive(&mut self, to: Who, body: ChannelBody) -> Step {
        let sender = self.side(other(to)).card.clone();
        let (state, now_ms) = (self.state.clone(), self.now_ms);
        let me = self.side(to);
        let ctx = Ctx { me: &me.card, now_ms };
        let step = match me.book.receive(&state, &ctx, &sender, body) {
            Ok(step) => step,
            Err(why) => {
                me.refused.push(why);
                Step::none()
            }
        };
        self.persist();
        step
    }

    /// Both books through their stored form.
    fn persist(&mut self) {
        for who in [Who::A, Who::B] {
            let s = self.side(who);
            s.book = serde_json::from_str(&serde_json::to_string(&s.book).unwrap()).unwrap();
        }
    }

    fn probe(&mut self, who: Who, id: &str) -> ProbeView {
        let book = &self.side(who).book;
        book.list[book.find("talks", id).unwrap()].view()
    }

    fn saw(&mut self, who: Who, pred: impl Fn(&ProbeEvent) -> bool) -> bool {
        self.side(who).events.iter().any(pred)
    }

    /// A single-value probe, A asking and giving `x`, B taking `y`, run to the end.
    fn run_single(&mut self, issue: &str, x: u64, y: u64) -> String {
        let id = self.propose(Who::A, single(issue, 1 << 32), None).unwrap();
        self.input(Who::A, &id, ProbeInput::Value(x)).unwrap();
        self.accept(Who::B, &id).unwrap();
        self.input(Who::B, &id, ProbeInput::Value(y)).unwrap();
        id
    }
}

fn other(who: Who) -> Who {
    match who {
        Who::A => Who::B,
        Who::B => Who::A,
    }
}

fn single(issue: &str, max: u64) -> ProbeSpec {
    ProbeSpec::Single { issue: issue.into(), max, gives: "me".into(), takes: "them".into() }
}

fn refusal(r: Outcome<impl std::fmt::Debug>) -> Why {
    match r {
        Err(why) => why,
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

fn zone(view: &ProbeView) -> Option<bool> {
    match &view.status {
        ProbeStatus::Done { result: ProbeResult::Zone { non_empty } } => Some(*non_empty),
        _ => None,
    }
}

fn aborted(view: &ProbeView) -> &AbortReason {
    match &view.status {
        ProbeStatus::Aborted { reason } => reason,
        other => panic!("not aborted: {other:?}"),
    }
}

fn peer_said(reason: &AbortReason) -> Option<Why> {
    match reason {
        AbortReason::Peer { reason: PeerReason::Why(why), .. } => Some(why.clone()),
        _ => None,
    }
}

#[test]
fn a_single_value_probe_tells_both_sides_whether_the_positions_overlap() {
    for (x, y, expected) in [(18, 12, true), (12, 12, true), (11, 12, false)] {
        let mut w = World::direct();
        let id = w.run_single("months", x, y);
        for who in [Who::A, Who::B] {
            let view = w.probe(who, &id);
            assert_eq!(zone(&view), Some(expected), "{who:?}: {view:?}");
            let done = |e: &ProbeEvent| matches!(e, ProbeEvent::Done { result: ProbeResult::Zone { non_empty }, .. } if *non_empty == expected);
            assert!(w.saw(who, done));
        }
        let kinds: Vec<&str> = w.sent.iter().map(|(_, b)| body_kind(b)).collect();
        assert_eq!(kinds, ["propose", "accept", "query", "reply", "disclosure"]);
        assert_eq!(w.probe(Who::A, &id).bytes, 2_810, "query, reply and disclosure over 0..=2^32");
        assert_eq!(w.probe(Who::B, &id).bytes, 2_810);
    }
}

fn body_kind(b: &ChannelBody) -> &'static str {
    match b {
        ChannelBody::ProbePropose { .. } => "propose",
        ChannelBody::ProbeAccept { .. } => "accept",
        ChannelBody::ProbeDecline { .. } => "decline",
        ChannelBody::ProbeQuery { .. } => "query",
        ChannelBody::ProbeReply { .. } => "reply",
        ChannelBody::ProbeDisclosure { .. } => "disclosure",
        ChannelBody::ProbeAbort { .. } => "abort",
        _ => "other",
    }
}

#[test]
fn inputs_may_come_in_any_order_and_are_never_sent() {
    let mut w = World::direct();
    let id = w.propose(Who::A, single("months", 120), None).unwrap();
    w.accept(Who::B, &id).unwrap();
    assert_eq!(w.probe(Who::A, &id).status, ProbeStatus::Accepted);
    let b = w.probe(Who::B, &id);
    assert!(!b.input_given && b.status == ProbeStatus::Accepted, "B's view waits for its input: {b:?}");
    w.input(Who::A, &id, ProbeInput::Value(97)).unwrap();
    assert!(w.saw(Who::B, |e| matches!(e, ProbeEvent::QueryArrived { .. })));
    assert!(w.probe(Who::B, &id).query_waiting, "the query waits for B's input");
    w.input(Who::B, &id, ProbeInput::Value(96)).unwrap();
    assert_eq!(zone(&w.probe(Who::B, &id)), Some(true));
    let wire: String = w.sent.iter().map(|(_, b)| String::from_utf8(b.encode()).unwrap()).collect();
    // What both sides were shown, as data: the inputs are in none of it.
    let shown = serde_json::to_string(&(&w.a.events, &w.b.events)).unwrap();
    for secret in ["97", "96"] {
        assert!(!shown.contains(&format!(":{secret}")), "an event shows an input: {shown}");
        let stored = serde_json::to_string(&w.a.book).unwrap() + &serde_json::to_string(&w.b.book).unwrap();
        assert!(!stored.contains(&format!("\"Value\":{secret}")), "a used input is still stored");
    }
    assert!(!wire.contains("\"Value\""), "an input travelled");
}

#[test]
fn the_other_side_may_be_named_the_asker() {
    let mut w = World::direct();
    let req =
        ProbeRequest { with: String::new(), spec: single("months", 120), asker: Asker::Them, budget: None };
    let i = w.op(Who::A, |book, state, ctx, peer| book.propose(state, ctx, peer, &req)).unwrap();
    let id = short(&w.a.book.list[i].id);
    w.input(Who::A, &id, ProbeInput::Value(50)).unwrap();
    w.input(Who::B, &id, ProbeInput::Value(60)).unwrap();
    w.accept(Who::B, &id).unwrap();
    assert!(w.probe(Who::B, &id).you_ask);
    let kinds: Vec<&str> = w.sent.iter().map(|(_, b)| body_kind(b)).collect();
    assert_eq!(kinds, ["propose", "accept", "query", "reply", "disclosure"]);
    assert_eq!(w.sent[2].0, Who::A, "B asks: its query goes to A");
    assert_eq!(zone(&w.probe(Who::A, &id)), Some(false));
}

#[test]
fn a_declined_probe_never_runs() {
    let mut w = World::direct();
    let id = w.propose(Who::A, single("months", 120), None).unwrap();
    w.input(Who::A, &id, ProbeInput::Value(5)).unwrap();
    w.decline(Who::B, &id).unwrap();
    assert!(matches!(
        w.probe(Who::A, &id).status,
        ProbeStatus::Declined {
            by: DeclinedBy::Peer { reason: PeerReason::Why(Why::ProbeDeclinedByUser), .. }
        }
    ));
    assert_eq!(w.probe(Who::B, &id).status, ProbeStatus::Declined { by: DeclinedBy::You });
    assert!(
        w.saw(Who::A, |e| matches!(e, ProbeEvent::Declined { by_you: false, peer, .. } if peer == "Bao"))
    );
    assert!(matches!(refusal(w.accept(Who::B, &id)), Why::ProbeIs { status, .. } if status == "declined"));
    assert!(matches!(refusal(w.input(Who::A, &id, ProbeInput::Value(5))), Why::ProbeEnded { .. }));
    assert!(w.a.book.ledger.is_none(), "nothing was logged, no budget fixed");
    assert!(!w.sent.iter().any(|(_, b)| body_kind(b) == "query"));
}

#[test]
fn inputs_outside_the_terms_are_refused() {
    let mut w = World::direct();
    let id = w.propose(Who::A, single("months", 120), None).unwrap();
    let err = refusal(w.input(Who::A, &id, ProbeInput::Value(121)));
    assert!(
        matches!(&err, Why::ProbeInput { why, max: Some(120) } if why.contains("outside the agreed range")),
        "{err:?}"
    );
    let err = refusal(w.input(Who::A, &id, ProbeInput::Packages(vec![])));
    assert!(matches!(&err, Why::ProbeInput { why, .. } if why.contains("wrong kind")), "{err:?}");
    assert!(matches!(refusal(w.accept(Who::A, &id)), Why::NotYourProbeToAccept { .. }));
    assert!(matches!(refusal(w.accept(Who::B, "zz")), Why::BadProbeId { .. }));
}

#[test]
fn the_budget_refuses_a_side_that_keeps_probing_and_each_client_enforces_it() {
    let mut w = World::direct();
    let budget = ProbeBudget { per_issue: 2, per_phase: 3 };
    let two = Some(budget);
    let id = w.propose(Who::A, single("months", 1 << 32), two).unwrap();
    w.accept(Who::B, &id).unwrap();
    assert_eq!(w.a.book.budget, two, "the first accepted probe fixes the channel's budget");
    assert_eq!(w.b.book.budget, two);
    w.input(Who::A, &id, ProbeInput::Value(1 << 31)).unwrap();
    w.input(Who::B, &id, ProbeInput::Value(1 << 30)).unwrap();
    let changed = refusal(w.propose(Who::A, single("months", 9), Some(DEFAULT_BUDGET)));
    assert_eq!(changed, Why::BudgetFixed { budget });
    w.run_single("months", 1 << 29, 1 << 30);
    let spent_on_months = |why: &Why| matches!(why, Why::BudgetSpent { used: 2, limit: 2, issue: Some(i), .. } if i == "months");
    for who in [Who::A, Who::B] {
        let err = refusal(w.propose(who, single("months", 1 << 32), None));
        assert!(spent_on_months(&err), "{who:?}: {err:?}");
    }
    // A client that skips its own check (or a hostile one) meets the other's refusal.
    let terms = w.a.book.list[0].terms.clone();
    let forged = ChannelBody::ProbePropose { probe: [9; 16], terms: terms.clone(), budget };
    w.a.book.list.push(ProbeRecord::new([9; 16], &w.b.card, true, true, terms, budget, 1));
    let mut step = Step::none();
    step.seal(vec![w.b.card.party()], w.state.id, &forged);
    w.deliver(Who::A, step);
    let at_b = w.probe(Who::B, "09090909");
    assert!(
        matches!(&at_b.status, ProbeStatus::Declined { by: DeclinedBy::Rule { why } } if spent_on_months(why)),
        "{at_b:?}"
    );
    let at_a = w.probe(Who::A, "09090909");
    assert!(
        matches!(&at_a.status, ProbeStatus::Declined { by: DeclinedBy::Peer { name, reason: PeerReason::Why(why) } } if name == "Bao" && spent_on_months(why)),
        "{at_a:?}"
    );
    // Another issue has room; then the phase budget (3) is spent too.
    w.run_single("troops", 5, 4);
    let err = refusal(w.propose(Who::B, single("ports", 9), None));
    assert!(matches!(err, Why::BudgetSpent { used: 3, limit: 3, issue: None, .. }), "{err:?}");
    let view = w.a.book.view(&w.state);
    assert_eq!(view.used_in_phase, 3);
    assert!(view.issues.iter().any(|i| i.issue == "months" && i.used == 2 && i.left == 0), "{view:?}");
}

#[test]
fn proposals_beyond_the_budget_count_before_they_run() {
    let mut w = World::direct();
    let one = Some(ProbeBudget { per_issue: 1, per_phase: 5 });
    w.propose(Who::A, single("months", 9), one).unwrap();
    let err = refusal(w.propose(Who::A, single("months", 9), one));
    assert!(matches!(err, Why::BudgetSpent { used: 1, limit: 1, .. }), "{err:?}");
    let other_budget = refusal(w.propose(Who::A, single("troops", 9), None));
    assert!(matches!(other_budget, Why::PendingBudget { .. }), "{other_budget:?}");
}

/// M7 (client): the budget counts issues as the ledger does, normalised, so a pending probe
/// on "Months" leaves no room for one on " months" or "MONTHS" under a budget of one.
#[test]
fn a_relabelled_issue_spends_the_same_budget_before_it_runs() {
    let mut w = World::direct();
    let one = Some(ProbeBudget { per_issue: 1, per_phase: 5 });
    w.propose(Who::A, single("Months", 9), one).unwrap();
    for relabelled in [" months", "MONTHS", "months  "] {
        let err = refusal(w.propose(Who::A, single(relabelled, 9), one));
        assert!(matches!(err, Why::BudgetSpent { used: 1, limit: 1, .. }), "{relabelled:?}: {err:?}");
    }
    w.propose(Who::A, single("troops", 9), one).unwrap();
}

/// M7 (client): probes with the same counterpart side on the same issue in other channels
/// count against the budget, so a fresh channel is no fresh budget; other sides and issues
/// are not touched, and the responder's client counts its own channels too.
#[test]
fn probes_on_an_issue_with_a_side_in_other_channels_spend_the_budget() {
    let mut w = World::direct();
    let two = Some(ProbeBudget { per_issue: 2, per_phase: 5 });
    let elsewhere = |side: &str, issue: &str| {
        u32::from(side == "B" && backchannel_redline::normalise_label(issue) == "months")
    };
    let req = |issue: &str| ProbeRequest {
        with: String::new(),
        spec: single(issue, 9),
        asker: Asker::Me,
        budget: two,
    };
    let (r1, r2, r3) = (req("months"), req("Months"), req("troops"));
    w.op(Who::A, |book, state, ctx, peer| book.propose_counting(state, ctx, peer, &r1, &elsewhere)).unwrap();
    let err = refusal(
        w.op(Who::A, |book, state, ctx, peer| book.propose_counting(state, ctx, peer, &r2, &elsewhere)),
    );
    assert!(matches!(err, Why::BudgetSpent { used: 2, limit: 2, .. }), "one here and one elsewhere: {err:?}");
    w.op(Who::A, |book, state, ctx, peer| book.propose_counting(state, ctx, peer, &r3, &elsewhere)).unwrap();
    assert_eq!(w.a.book.spent_with("b", " MONTHS"), 1, "what another channel would count");
    assert_eq!(w.a.book.spent_with("C", "months"), 0);
    // Bao's client counts its own other channels: it cannot accept.
    let id = short(&w.b.book.list[0].id);
    let theirs = |side: &str, issue: &str| 2 * u32::from(side == "A" && issue == "months");
    let err = refusal(w.op(Who::B, |book, state, ctx, _| {
        let i = book.find("talks", &id)?;
        Ok(((), book.accept_counting(state, ctx, i, &theirs)?))
    }));
    assert!(matches!(err, Why::BudgetSpent { .. }), "{err:?}");
}

#[test]
fn a_tampered_reply_aborts_the_probe_on_both_sides() {
    let mut w = World::direct();
    w.tamper = Some(Box::new(|b| {
        if let ChannelBody::ProbeReply { reply, .. } = b {
            let last = reply.len() - 1;
            reply[last] ^= 1;
        }
    }));
    let id = w.run_single("months", 7, 3);
    let (a, b) = (w.probe(Who::A, &id), w.probe(Who::B, &id));
    let mismatch =
        |why: &Why| matches!(why, Why::ProbeProtocol { what } if what.contains("transcript mismatch"));
    assert!(matches!(aborted(&a), AbortReason::Ours { why } if mismatch(why)), "{a:?}");
    assert!(peer_said(aborted(&b)).is_some_and(|why| mismatch(&why)), "{b:?}");
    assert!(
        w.a.book.ledger.as_ref().unwrap().log().entries()[0].status
            != backchannel_redline::ProbeStatus::Running
    );
    assert_eq!(w.a.book.used("exploratory", Some("months"), None), 1, "an aborted probe still counts");
}

#[test]
fn a_replayed_query_is_refused_or_aborts_the_probe() {
    let mut w = World::direct();
    let id = w.run_single("months", 7, 3);
    let query = w.sent.iter().find(|(_, b)| body_kind(b) == "query").unwrap().1.clone();
    let step = w.receive(Who::B, query.clone());
    assert!(step.effects.is_empty());
    assert!(matches!(w.b.refused.last(), Some(Why::ProbeReplayed { .. })), "{:?}", w.b.refused);
    assert!(zone(&w.probe(Who::B, &id)).is_some(), "an ended probe stays as it ended");
    // While a probe waits for its disclosure, a second query aborts it.
    let id = w.propose(Who::A, single("troops", 9), None).unwrap();
    w.accept(Who::B, &id).unwrap();
    w.tamper = Some(Box::new(|b| {
        if let ChannelBody::ProbeDisclosure { disclosure, .. } = b {
            disclosure.clear();
        }
    }));
    w.input(Who::B, &id, ProbeInput::Value(4)).unwrap();
    w.input(Who::A, &id, ProbeInput::Value(5)).unwrap();
    let b = w.probe(Who::B, &id);
    assert!(
        matches!(aborted(&b), AbortReason::Ours { why: Why::ProbeProtocol { what } } if what.contains("malformed")),
        "an empty disclosure is refused: {b:?}"
    );
}

#[test]
fn probes_run_only_where_the_phase_allows_them() {
    let mut w = World::direct();
    let id = w.propose(Who::A, single("months", 9), None).unwrap();
    w.accept(Who::B, &id).unwrap();
    w.state.phase = Phase::Agreed;
    let err = refusal(w.propose(Who::A, single("months", 9), None));
    assert_eq!(err, Why::ProbesNotAllowed { phase: "agreed".into(), channel: "talks".into() });
    w.input(Who::A, &id, ProbeInput::Value(4)).unwrap();
    let a = w.probe(Who::A, &id);
    assert!(matches!(aborted(&a), AbortReason::Ours { why: Why::ProbesNotAllowed { .. } }), "{a:?}");
    let b = w.probe(Who::B, &id);
    assert!(matches!(peer_said(aborted(&b)), Some(Why::ProbesNotAllowed { .. })), "{b:?}");
    assert!(!w.sent.iter().any(|(_, b)| body_kind(b) == "query"));
    // A proposal sent under another phase's terms is declined by the receiver.
    w.state.phase = Phase::Drafting;
    let terms = w.a.book.list[0].terms.clone();
    let mut step = Step::none();
    step.seal(
        vec![w.b.card.party()],
        w.state.id,
        &ChannelBody::ProbePropose { probe: [7; 16], terms: terms.clone(), budget: DEFAULT_BUDGET },
    );
    w.a.book.list.push(ProbeRecord::new([7; 16], &w.b.card, true, true, terms, DEFAULT_BUDGET, 1));
    w.deliver(Who::A, step);
    let at_b = w.probe(Who::B, "07070707");
    assert!(
        matches!(&at_b.status, ProbeStatus::Declined { by: DeclinedBy::Rule { why: Why::ProbeOtherPhase { terms_phase, .. } } } if terms_phase == "exploratory"),
        "{at_b:?}"
    );
}

#[test]
fn sides_of_a_shuttle_do_not_probe_each_other() {
    let (omar, a, b) = (card("Omar", "Oman"), card("Alice", "A"), card("Bao", "B"));
    let mut state = ChannelState::new("talks", Mode::Shuttle, omar, Role::Intermediary).unwrap();
    state.add(a.clone(), Role::Principal).unwrap();
    state.add(b.clone(), Role::Principal).unwrap();
    let mut w = World { state, a: side(a), b: side(b), tamper: None, sent: Vec::new(), now_ms: 1 };
    let err = refusal(w.propose(Who::A, single("months", 9), None));
    assert_eq!(err, Why::ProbeInShuttle { channel: "talks".into() });
}

#[test]
fn a_package_probe_names_the_packages_both_accept() {
    let mut w = World::direct();
    let issues = vec![
        ("monitor".to_owned(), vec!["UN".to_owned(), "OSCE".to_owned(), "joint".to_owned()]),
        ("months".to_owned(), vec!["12".to_owned(), "18".to_owned(), "24".to_owned()]),
    ];
    let spec = ProbeSpec::Package { issues, cap: 3 };
    let id = w.propose(Who::B, spec, None).unwrap();
    w.accept(Who::A, &id).unwrap();
    let pkg = |o: [u32; 2]| Package::new(o.to_vec());
    w.input(Who::A, &id, ProbeInput::Packages(vec![pkg([0, 1]), pkg([2, 2])])).unwrap();
    w.input(Who::B, &id, ProbeInput::Packages(vec![pkg([2, 2]), pkg([1, 0]), pkg([0, 1])])).unwrap();
    for who in [Who::A, Who::B] {
        let view = w.probe(who, &id);
        let ProbeStatus::Done { result: ProbeResult::Packages(list) } = &view.status else {
            panic!("{view:?}")
        };
        let backchannel_redline::ProbeKind::Package(terms) = &view.terms.kind else { panic!() };
        let named: Vec<Vec<(&str, &str)>> = list.iter().map(|p| terms.space.describe(p).unwrap()).collect();
        assert_eq!(
            named,
            [vec![("monitor", "UN"), ("months", "18")], vec![("monitor", "joint"), ("months", "24")]],
            "{who:?}"
        );
    }
    let too_many = refusal(w.propose(
        Who::A,
        ProbeSpec::Package { issues: vec![("x".into(), vec!["1".into(), "2".into()])], cap: 2 },
        None,
    ));
    assert!(
        matches!(&too_many, Why::ProbeTerms { why } if why.contains("cap must be below the number of packages")),
        "{too_many:?}"
    );
}
