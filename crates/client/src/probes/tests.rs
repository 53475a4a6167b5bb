//! Two books driven in memory: every message goes through its wire encoding, and each book
//! goes through its stored (JSON) form after every step, as it would through the store.

use super::*;
use crate::probes::{Asker, ProbeSpec};
use backchannel_proto::channel::{Mode, Phase, Role};
use backchannel_proto::identity::Identity;
use backchannel_redline::Package;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    A,
    B,
}

type Tamper = Box<dyn FnMut(&mut ChannelBody)>;

struct Side {
    card: Card,
    book: ChannelProbes,
    events: Vec<String>,
}

struct World {
    state: ChannelState,
    a: Side,
    b: Side,
    /// Lets a test see (and change) each message before it is delivered.
    tamper: Option<Tamper>,
    /// Every message delivered, in order, with its recipient.
    sent: Vec<(Who, ChannelBody)>,
}

fn card(name: &str, side: &str) -> Card {
    Identity::generate(name, side).unwrap().card()
}

fn side(card: Card) -> Side {
    Side { card, book: ChannelProbes::default(), events: Vec::new() }
}

impl World {
    fn direct() -> World {
        let (a, b) = (card("Alice", "A"), card("Bao", "B"));
        let mut state = ChannelState::new("talks", Mode::Direct, a.clone(), Role::Principal).unwrap();
        state.add(b.clone(), Role::Principal).unwrap();
        World { state, a: side(a), b: side(b), tamper: None, sent: Vec::new() }
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
        f: impl FnOnce(&mut ChannelProbes, &Ctx<'_>, &Card) -> Result<(T, Step)>,
    ) -> Result<T> {
        let other = self.side(other(who)).card.clone();
        let state = self.state.clone();
        let me = self.side(who);
        let ctx = Ctx { state: &state, me: &me.card };
        let (out, step) = f(&mut me.book, &ctx, &other)?;
        self.persist();
        self.deliver(who, step);
        Ok(out)
    }

    /// Proposes from `who` to the other side; returns the probe's id prefix.
    fn propose(&mut self, who: Who, spec: ProbeSpec, budget: Option<ProbeBudget>) -> Result<String> {
        let req = ProbeRequest { with: String::new(), spec, asker: Asker::Me, budget };
        let i = self.op(who, |book, ctx, peer| {
            let (i, step) = book.propose(ctx, peer, &req)?;
            Ok((i, step))
        })?;
        Ok(short(&self.side(who).book.list[i].id))
    }

    fn accept(&mut self, who: Who, id: &str) -> Result<()> {
        self.op(who, |book, ctx, _| Ok(((), book.accept(ctx, book.find("talks", id)?)?)))
    }

    fn decline(&mut self, who: Who, id: &str) -> Result<()> {
        self.op(who, |book, _, _| Ok(((), book.decline(book.find("talks", id)?)?)))
    }

    fn input(&mut self, who: Who, id: &str, input: ProbeInput) -> Result<()> {
        self.op(who, |book, ctx, _| Ok(((), book.input(ctx, book.find("talks", id)?, input)?)))
    }

    /// Sends `from`'s messages to the other side, and the answers back, until none is left.
    fn deliver(&mut self, from: Who, step: Step) {
        self.side(from).events.extend(step.events);
        let mut queue: Vec<(Who, ChannelBody)> =
            step.out.into_iter().map(|(_, b)| (other(from), b)).collect();
        while !queue.is_empty() {
            let (to, mut body) = queue.remove(0);
            if let Some(t) = self.tamper.as_mut() {
                t(&mut body);
            }
            let body = ChannelBody::decode(&body.encode()).unwrap();
            self.sent.push((to, body.clone()));
            let step = self.receive(to, body);
            queue.extend(step.out.into_iter().map(|(_, b)| (other(to), b)));
            self.side(to).events.extend(step.events);
        }
    }

    /// One message to `to`, as `channels::receive` takes it: a refusal becomes an event.
    fn receive(&mut self, to: Who, body: ChannelBody) -> Step {
        let sender = self.side(other(to)).card.clone();
        let state = self.state.clone();
        let me = self.side(to);
        let ctx = Ctx { state: &state, me: &me.card };
        let step = match me.book.receive(&ctx, &sender, body) {
            Ok(step) => step,
            Err(ClientError::Refused(why)) => Step::default().event(format!("REFUSED: {why}")),
            Err(e) => panic!("{e}"),
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
        book.list[book.find("talks", id).unwrap()].view("talks")
    }

    fn saw(&mut self, who: Who, text: &str) -> bool {
        self.side(who).events.iter().any(|e| e.contains(text))
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

fn refusal(r: Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

#[test]
fn a_single_value_probe_tells_both_sides_whether_the_positions_overlap() {
    for (x, y, expected) in [(18, 12, "zone non-empty"), (12, 12, "zone non-empty"), (11, 12, "zone empty")] {
        let mut w = World::direct();
        let id = w.run_single("months", x, y);
        for who in [Who::A, Who::B] {
            let view = w.probe(who, &id);
            assert_eq!(view.status, "done", "{who:?}: {view:?}");
            assert!(view.result.as_deref().unwrap().starts_with(expected), "{who:?}: {view:?}");
            assert!(w.saw(who, expected));
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
    assert_eq!(w.probe(Who::A, &id).status, "accepted");
    assert!(w.probe(Who::B, &id).detail.contains("waiting for your input"));
    w.input(Who::A, &id, ProbeInput::Value(97)).unwrap();
    assert!(w.saw(Who::B, "query arrived; enter your input"));
    assert_eq!(w.probe(Who::B, &id).status, "accepted", "the query waits for B's input");
    w.input(Who::B, &id, ProbeInput::Value(96)).unwrap();
    assert_eq!(w.probe(Who::B, &id).result.as_deref(), Some("zone non-empty: the positions overlap"));
    let wire: String = w.sent.iter().map(|(_, b)| String::from_utf8(b.encode()).unwrap()).collect();
    // The probe's id is random hex and may itself hold "97": take it out before searching.
    let shown: String =
        [&w.a.events, &w.b.events].into_iter().flatten().map(|e| e.replace(&id, "#")).collect();
    for secret in ["97", "96"] {
        assert!(!shown.contains(secret), "an event shows an input: {shown}");
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
    let i = w.op(Who::A, |book, ctx, peer| book.propose(ctx, peer, &req)).unwrap();
    let id = short(&w.a.book.list[i].id);
    w.input(Who::A, &id, ProbeInput::Value(50)).unwrap();
    w.input(Who::B, &id, ProbeInput::Value(60)).unwrap();
    w.accept(Who::B, &id).unwrap();
    assert!(w.probe(Who::B, &id).you_ask);
    let kinds: Vec<&str> = w.sent.iter().map(|(_, b)| body_kind(b)).collect();
    assert_eq!(kinds, ["propose", "accept", "query", "reply", "disclosure"]);
    assert_eq!(w.sent[2].0, Who::A, "B asks: its query goes to A");
    assert_eq!(w.probe(Who::A, &id).result.as_deref(), Some("zone empty: the positions do not overlap"));
}

#[test]
fn a_declined_probe_never_runs() {
    let mut w = World::direct();
    let id = w.propose(Who::A, single("months", 120), None).unwrap();
    w.input(Who::A, &id, ProbeInput::Value(5)).unwrap();
    w.decline(Who::B, &id).unwrap();
    assert_eq!(w.probe(Who::A, &id).status, "declined");
    assert_eq!(w.probe(Who::B, &id).status, "declined");
    assert!(w.saw(Who::A, "Bao declined probe"));
    assert!(refusal(w.accept(Who::B, &id)).contains("already declined"));
    assert!(refusal(w.input(Who::A, &id, ProbeInput::Value(5))).contains("ended"));
    assert!(w.a.book.ledger.is_none(), "nothing was logged, no budget fixed");
    assert!(!w.sent.iter().any(|(_, b)| body_kind(b) == "query"));
}

#[test]
fn inputs_outside_the_terms_are_refused() {
    let mut w = World::direct();
    let id = w.propose(Who::A, single("months", 120), None).unwrap();
    let err = refusal(w.input(Who::A, &id, ProbeInput::Value(121)));
    assert!(err.contains("outside the agreed range") && err.contains("0..=120"), "{err}");
    let err = refusal(w.input(Who::A, &id, ProbeInput::Packages(vec![])));
    assert!(err.contains("wrong kind"), "{err}");
    assert!(refusal(w.accept(Who::A, &id)).contains("you proposed"));
    assert!(refusal(w.accept(Who::B, "zz")).contains("4 hex digits"));
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
    assert!(changed.contains("does not change"), "{changed}");
    w.run_single("months", 1 << 29, 1 << 30);
    for who in [Who::A, Who::B] {
        let err = refusal(w.propose(who, single("months", 1 << 32), None));
        assert!(err.contains("probe budget spent: 2 of 2 probes on issue \"months\""), "{who:?}: {err}");
    }
    // A client that skips its own check (or a hostile one) meets the other's refusal.
    let terms = w.a.book.list[0].terms.clone();
    let forged = ChannelBody::ProbePropose { probe: [9; 16], terms, budget };
    let a = w.a.card.clone();
    w.a.book.list.push(ProbeRecord::new(
        [9; 16],
        &w.b.card,
        true,
        true,
        w.a.book.list[0].terms.clone(),
        budget,
    ));
    let step = Step { out: vec![(a.identity_key, forged)], events: Vec::new() };
    w.deliver(Who::A, step);
    let at_b = w.probe(Who::B, "09090909");
    assert_eq!(at_b.status, "declined");
    assert!(at_b.detail.contains("probe budget spent"), "{at_b:?}");
    assert!(w.probe(Who::A, "09090909").detail.contains("declined by Bao: probe budget spent"));
    // Another issue has room; then the phase budget (3) is spent too.
    w.run_single("troops", 5, 4);
    let err = refusal(w.propose(Who::B, single("ports", 9), None));
    assert!(err.contains("3 of 3 probes of any kind"), "{err}");
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
    assert!(err.contains("already run or pending"), "{err}");
    let other_budget = refusal(w.propose(Who::A, single("troops", 9), None));
    assert!(other_budget.contains("propose with the same budget"), "{other_budget}");
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
    assert_eq!((a.status.as_str(), b.status.as_str()), ("aborted", "aborted"));
    assert!(a.detail.contains("transcript mismatch"), "{a:?}");
    assert!(b.detail.contains("Alice aborted it: transcript mismatch"), "{b:?}");
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
    assert!(step.events[0].contains("REFUSED") && step.events[0].contains("replayed"), "{:?}", step.events);
    assert_eq!(w.probe(Who::B, &id).status, "done", "an ended probe stays as it ended");
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
    assert_eq!(w.probe(Who::B, &id).status, "aborted", "an empty disclosure is refused");
    assert!(w.probe(Who::B, &id).detail.contains("malformed"));
}

#[test]
fn probes_run_only_where_the_phase_allows_them() {
    let mut w = World::direct();
    let id = w.propose(Who::A, single("months", 9), None).unwrap();
    w.accept(Who::B, &id).unwrap();
    w.state.phase = Phase::Agreed;
    let err = refusal(w.propose(Who::A, single("months", 9), None));
    assert!(err.contains("probes are not allowed in phase agreed of talks"), "{err}");
    w.input(Who::A, &id, ProbeInput::Value(4)).unwrap();
    let a = w.probe(Who::A, &id);
    assert_eq!(a.status, "aborted", "an accepted probe does not start after the phase moved");
    assert!(a.detail.contains("not allowed in phase agreed"));
    assert!(w.probe(Who::B, &id).detail.contains("Alice aborted it: probes are not allowed"));
    assert!(!w.sent.iter().any(|(_, b)| body_kind(b) == "query"));
    // A proposal sent under another phase's terms is declined by the receiver.
    w.state.phase = Phase::Drafting;
    let terms = w.a.book.list[0].terms.clone();
    let step = Step {
        out: vec![([0; 32], ChannelBody::ProbePropose { probe: [7; 16], terms, budget: DEFAULT_BUDGET })],
        events: vec![],
    };
    w.a.book.list.push(ProbeRecord::new(
        [7; 16],
        &w.b.card,
        true,
        true,
        w.a.book.list[0].terms.clone(),
        DEFAULT_BUDGET,
    ));
    w.deliver(Who::A, step);
    assert!(w.probe(Who::B, "07070707").detail.contains("counts against phase exploratory"));
}

#[test]
fn sides_of_a_shuttle_do_not_probe_each_other() {
    let (omar, a, b) = (card("Omar", "Oman"), card("Alice", "A"), card("Bao", "B"));
    let mut state = ChannelState::new("talks", Mode::Shuttle, omar, Role::Intermediary).unwrap();
    state.add(a.clone(), Role::Principal).unwrap();
    state.add(b.clone(), Role::Principal).unwrap();
    let mut w = World { state, a: side(a), b: side(b), tamper: None, sent: Vec::new() };
    let err = refusal(w.propose(Who::A, single("months", 9), None));
    assert!(err.contains("sides have no session with each other"), "{err}");
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
        assert_eq!(
            view.result.as_deref(),
            Some("2 package(s) acceptable to both: monitor=UN,months=18; monitor=joint,months=24"),
            "{who:?}"
        );
    }
    let too_many = refusal(w.propose(
        Who::A,
        ProbeSpec::Package { issues: vec![("x".into(), vec!["1".into(), "2".into()])], cap: 2 },
        None,
    ));
    assert!(too_many.contains("cap must be below the number of packages"), "{too_many}");
}
