//! The probe as a state machine whose transitions consume `self`:
//!
//! ```text
//! Initiator::start                  → InitiatorAwaitingReply, Query        (step 1)
//! Responder::respond(Query)         → ResponderAwaitingResult, Reply       (step 2)
//! InitiatorAwaitingReply::finish(Reply)        → Outcome, Disclosure       (step 3)
//! ResponderAwaitingResult::finish(Disclosure)  → Outcome
//! ```
//! Each transition takes the side's [`ProbeLedger`]: starting and answering check the terms,
//! the input and the budget, stage the whole computation, and only then log the probe;
//! finishing records the result, or the error that aborted the probe.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::encoding::{Element, package_elements};
use crate::error::{RedlineError, Result};
use crate::group::{self, SecretScalar};
use crate::ledger::{AskedBy, ProbeLedger, ProbeStatus};
use crate::messages::{Disclosure, Header, ProbeId, Query, Reply, Tag, opening_transcript};
use crate::terms::{Package, ProbeInput, ProbeKind, ProbeTerms};
use crate::{package, single};

/// What a probe revealed, to both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeResult {
    /// Single-value probe: is `x >= y`, i.e. is the zone of agreement non-empty?
    Zone { non_empty: bool },
    /// Package probe: the packages both sides listed, sorted.
    Packages(Vec<Package>),
}

/// A finished probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub probe_id: ProbeId,
    pub result: ProbeResult,
}

/// Starts probes.
#[derive(Debug)]
pub struct Initiator;

/// Answers probes.
#[derive(Debug)]
pub struct Responder;

/// The initiator after sending its query. Holds its secret scalar; Debug prints none of it.
///
/// Serialisable, so a client can keep it (in its encrypted store) until the reply comes: the
/// serialised form holds the secret scalar and the side's own packages, and must be stored
/// as a secret.
#[derive(Serialize, Deserialize)]
pub struct InitiatorAwaitingReply {
    terms: ProbeTerms,
    probe_id: ProbeId,
    key: SecretScalar,
    own: Vec<Option<Package>>,
    transcript: [u8; 32],
}

/// The responder after sending its reply, waiting to be told the result. Serialisable like
/// [`InitiatorAwaitingReply`]; its own (private) package list is in the serialised form.
#[derive(Serialize, Deserialize)]
pub struct ResponderAwaitingResult {
    terms: ProbeTerms,
    probe_id: ProbeId,
    own: Vec<Option<Package>>,
    transcript: [u8; 32],
}

impl std::fmt::Debug for InitiatorAwaitingReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitiatorAwaitingReply").field("probe_id", &self.probe_id).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ResponderAwaitingResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponderAwaitingResult").field("probe_id", &self.probe_id).finish_non_exhaustive()
    }
}

/// A side's padded set in the order it is sent, with the package behind each element
/// (`None` for dummies; empty for single-value probes, whose elements are never named).
struct OwnSet {
    elements: Zeroizing<Vec<Element>>,
    packages: Vec<Option<Package>>,
}

impl OwnSet {
    /// Encodes, pads and shuffles a side's input, so no position says anything about it.
    fn build(terms: &ProbeTerms, me: &str, id: &ProbeId, input: &ProbeInput) -> Result<Self> {
        let (elements, packages) = match (&terms.kind, input) {
            (ProbeKind::Single(s), ProbeInput::Value(v)) => (single::elements(s, me, id, *v)?, Vec::new()),
            (ProbeKind::Package(p), ProbeInput::Packages(list)) => {
                let elements = package_elements(id, list, p.cap as usize);
                let named = list.iter().cloned().map(Some).chain(std::iter::repeat(None));
                (elements, named.take(p.cap as usize).collect())
            }
            _ => return Err(RedlineError::InvalidInput("input of the wrong kind for these terms")),
        };
        let order = group::random_permutation(elements.len());
        let packages = if packages.is_empty() { packages } else { group::permute(&packages, &order) };
        Ok(Self { elements: Zeroizing::new(group::permute(&elements, &order)), packages })
    }
}

/// Refuses terms or input before anything is computed or logged.
fn admit(ledger: &ProbeLedger, terms: &ProbeTerms, input: &ProbeInput) -> Result<()> {
    terms.validate()?;
    terms.check_input(ledger.me(), input)
}

fn header(step: u8, terms: &ProbeTerms, probe_id: ProbeId) -> Header {
    Header { step, kind: terms.kind_tag(), probe_id, transcript: [0; 32] }
}

/// Checks that a message continues this probe: same probe, same kind, unaltered transcript.
fn check_continues(
    got: &Header,
    expected_transcript: [u8; 32],
    id: &ProbeId,
    terms: &ProbeTerms,
) -> Result<()> {
    if got.probe_id != *id {
        return Err(RedlineError::WrongProbe);
    }
    if got.kind != terms.kind_tag() || got.transcript != expected_transcript {
        return Err(RedlineError::TranscriptMismatch);
    }
    Ok(())
}

/// Refuses a set that holds one point twice: an honest set never does (its elements are
/// distinct hashes), and repeats would let an asker weight its elements so that the count of
/// matches tells which one matched.
fn check_distinct(points: &[crate::messages::PointBytes]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(points.len());
    match points.iter().all(|p| seen.insert(p)) {
        true => Ok(()),
        false => Err(RedlineError::PeerMisbehaved("sent the same point twice")),
    }
}

fn check_size(n: usize, terms: &ProbeTerms) -> Result<()> {
    match n == terms.set_size() {
        true => Ok(()),
        false => Err(RedlineError::PeerMisbehaved("sent a set of the wrong size for the terms")),
    }
}

impl Initiator {
    /// Starts a probe under `terms` with this side's private `input`.
    pub fn start(
        ledger: &mut ProbeLedger,
        terms: &ProbeTerms,
        input: &ProbeInput,
    ) -> Result<(InitiatorAwaitingReply, Query)> {
        admit(ledger, terms, input)?;
        ledger.check_start(terms)?;
        let probe_id = ProbeId::random();
        let set = OwnSet::build(terms, ledger.me(), &probe_id, input)?;
        let key = SecretScalar::random();
        let query = Query { header: header(1, terms, probe_id), points: group::blind(&set.elements, &key)? };
        let query = query.sealed(&opening_transcript(&probe_id, terms));
        ledger.open(probe_id, terms, AskedBy::Us);
        let transcript = query.header.transcript;
        Ok((
            InitiatorAwaitingReply { terms: terms.clone(), probe_id, key, own: set.packages, transcript },
            query,
        ))
    }
}

impl Responder {
    /// Answers the probe `query` under `terms` (as accepted by this side) with `input`.
    pub fn respond(
        ledger: &mut ProbeLedger,
        terms: &ProbeTerms,
        input: &ProbeInput,
        query: &Query,
    ) -> Result<(ResponderAwaitingResult, Reply)> {
        admit(ledger, terms, input)?;
        let id = query.probe_id();
        check_continues(
            &query.header,
            query.expected_transcript(&opening_transcript(&id, terms)),
            &id,
            terms,
        )?;
        ledger.check_answer(terms, &id)?;
        check_size(query.points.len(), terms)?;
        check_distinct(&query.points)?;
        let set = OwnSet::build(terms, ledger.me(), &id, input)?;
        let key = SecretScalar::random();
        let mut tags = group::reblind_tags(&query.points, &key)?;
        if matches!(terms.kind, ProbeKind::Single(_)) {
            // Cardinality only: the initiator must not link a match to one of its elements.
            tags = group::permute(&tags, &group::random_permutation(tags.len()));
        }
        let reply = Reply { header: header(2, terms, id), tags, points: group::blind(&set.elements, &key)? };
        let reply = reply.sealed(&query.header.transcript);
        ledger.open(id, terms, AskedBy::Them);
        let transcript = reply.header.transcript;
        Ok((
            ResponderAwaitingResult { terms: terms.clone(), probe_id: id, own: set.packages, transcript },
            reply,
        ))
    }
}

impl InitiatorAwaitingReply {
    pub fn probe_id(&self) -> ProbeId {
        self.probe_id
    }

    /// Gives up waiting (the reply never came); the log records why.
    pub fn abandon(self, ledger: &mut ProbeLedger, reason: &str) -> Result<()> {
        ledger.close(&self.probe_id, ProbeStatus::Aborted(reason.to_owned()))
    }

    /// Reads the reply, learns the result, and returns the disclosure that tells the responder.
    pub fn finish(self, ledger: &mut ProbeLedger, reply: &Reply) -> Result<(Outcome, Disclosure)> {
        let id = self.probe_id;
        let staged = self.compute(reply);
        let status = match &staged {
            Ok((outcome, _)) => ProbeStatus::Done(outcome.result.clone()),
            Err(e) => ProbeStatus::Aborted(e.to_string()),
        };
        ledger.close(&id, status)?;
        staged
    }

    fn compute(self, reply: &Reply) -> Result<(Outcome, Disclosure)> {
        let expected = reply.expected_transcript(&self.transcript);
        check_continues(&reply.header, expected, &self.probe_id, &self.terms)?;
        check_size(reply.tags.len(), &self.terms)?;
        check_size(reply.points.len(), &self.terms)?;
        let theirs: Vec<Tag> = group::reblind_tags(&reply.points, &self.key)?;
        let (result, body) = match &self.terms.kind {
            ProbeKind::Single(_) => {
                let non_empty = single::zone_non_empty(&reply.tags, &theirs)?;
                (ProbeResult::Zone { non_empty }, single::disclosure(non_empty))
            }
            ProbeKind::Package(_) => {
                let (agreed, bitmap) = package::intersect(&self.own, &reply.tags, &theirs)?;
                (ProbeResult::Packages(agreed), bitmap)
            }
        };
        let disclosure = Disclosure { header: header(3, &self.terms, self.probe_id), result: body };
        let disclosure = disclosure.sealed(&reply.header.transcript);
        Ok((Outcome { probe_id: self.probe_id, result }, disclosure))
    }
}

impl ResponderAwaitingResult {
    pub fn probe_id(&self) -> ProbeId {
        self.probe_id
    }

    /// Gives up waiting (the disclosure never came: the initiator may have learned the result
    /// and kept it); the log records why.
    pub fn abandon(self, ledger: &mut ProbeLedger, reason: &str) -> Result<()> {
        ledger.close(&self.probe_id, ProbeStatus::Aborted(reason.to_owned()))
    }

    /// Reads the initiator's disclosure: the result both sides now know.
    pub fn finish(self, ledger: &mut ProbeLedger, disclosure: &Disclosure) -> Result<Outcome> {
        let id = self.probe_id;
        let staged = self.compute(disclosure);
        let status = match &staged {
            Ok(outcome) => ProbeStatus::Done(outcome.result.clone()),
            Err(e) => ProbeStatus::Aborted(e.to_string()),
        };
        ledger.close(&id, status)?;
        staged
    }

    fn compute(self, disclosure: &Disclosure) -> Result<Outcome> {
        let expected = disclosure.expected_transcript(&self.transcript);
        check_continues(&disclosure.header, expected, &self.probe_id, &self.terms)?;
        let result = match &self.terms.kind {
            ProbeKind::Single(_) => {
                ProbeResult::Zone { non_empty: single::read_disclosure(&disclosure.result)? }
            }
            ProbeKind::Package(_) => {
                ProbeResult::Packages(package::read_disclosure(&self.own, &disclosure.result)?)
            }
        };
        Ok(Outcome { probe_id: self.probe_id, result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::ProbeBudget;
    use crate::terms::tests::{packages, single};
    use curve25519_dalek::ristretto::RistrettoPoint;

    fn ledgers() -> (ProbeLedger, ProbeLedger) {
        let budget = ProbeBudget { per_issue: 9, per_phase: 9 };
        (ProbeLedger::new("A", budget), ProbeLedger::new("B", budget))
    }

    /// A query for `terms` with these points, sealed as an honest initiator would seal it.
    fn forged_query(terms: &ProbeTerms, points: Vec<[u8; 32]>) -> Query {
        let id = ProbeId::random();
        Query { header: header(1, terms, id), points }.sealed(&opening_transcript(&id, terms))
    }

    #[test]
    fn responder_refuses_a_set_larger_than_the_cap() {
        let terms = packages(2, 3, 4);
        let (mut a, mut b) = ledgers();
        let (_, honest) = Initiator::start(&mut a, &terms, &ProbeInput::Packages(vec![])).unwrap();
        let mut points = honest.points.clone();
        points.push(points[0]);
        let err =
            Responder::respond(&mut b, &terms, &ProbeInput::Packages(vec![]), &forged_query(&terms, points));
        assert_eq!(
            err.unwrap_err(),
            RedlineError::PeerMisbehaved("sent a set of the wrong size for the terms")
        );
        assert!(b.log().entries().is_empty());
    }

    /// M7: the budget counts issues normalised: a relabelled issue ("Months ") is the same one.
    #[test]
    fn a_relabelled_issue_shares_its_budget() {
        let budget = ProbeBudget { per_issue: 1, per_phase: 9 };
        let mut a = ProbeLedger::new("A", budget);
        Initiator::start(&mut a, &single(10), &ProbeInput::Value(3)).unwrap();
        let mut again = single(10);
        if let ProbeKind::Single(s) = &mut again.kind {
            s.issue = " MONTHS".into();
        }
        again.phase = "Exploratory".into();
        let err = Initiator::start(&mut a, &again, &ProbeInput::Value(3)).unwrap_err();
        assert!(matches!(err, RedlineError::BudgetSpent { .. }), "{err}");
    }

    /// M7: a query that repeats a point is refused before anything is computed or logged.
    #[test]
    fn responder_refuses_a_repeated_query_point() {
        for terms in [single(1000), packages(2, 3, 4)] {
            let (mut a, mut b) = ledgers();
            let input = match terms.kind {
                ProbeKind::Single(_) => ProbeInput::Value(3),
                ProbeKind::Package(_) => ProbeInput::Packages(vec![]),
            };
            let (_, honest) = Initiator::start(&mut a, &terms, &input).unwrap();
            let mut points = honest.points.clone();
            points[1] = points[0];
            let got = Responder::respond(&mut b, &terms, &input, &forged_query(&terms, points));
            assert_eq!(got.unwrap_err(), RedlineError::PeerMisbehaved("sent the same point twice"));
            assert!(b.log().entries().is_empty());
        }
    }

    #[test]
    fn responder_refuses_the_identity_and_non_points() {
        let terms = single(10);
        let (mut a, mut b) = ledgers();
        let (_, honest) = Initiator::start(&mut a, &terms, &ProbeInput::Value(3)).unwrap();
        for bad in [RistrettoPoint::default().compress().to_bytes(), [0xff; 32]] {
            let mut points = honest.points.clone();
            points[1] = bad;
            let got =
                Responder::respond(&mut b, &terms, &ProbeInput::Value(3), &forged_query(&terms, points));
            assert!(matches!(got, Err(RedlineError::PeerMisbehaved(_))), "{got:?}");
        }
        assert!(b.log().entries().is_empty(), "a refused query is not logged");
    }

    #[test]
    fn initiator_refuses_a_reply_of_the_wrong_size_and_logs_the_abort() {
        let terms = single(10);
        let (mut a, mut b) = ledgers();
        let (waits, q) = Initiator::start(&mut a, &terms, &ProbeInput::Value(3)).unwrap();
        let (_, r) = Responder::respond(&mut b, &terms, &ProbeInput::Value(3), &q).unwrap();
        let mut short =
            Reply { header: r.header.clone(), tags: r.tags[1..].to_vec(), points: r.points.clone() };
        short = short.sealed(&q.header.transcript);
        let err = waits.finish(&mut a, &short).unwrap_err();
        assert!(matches!(err, RedlineError::PeerMisbehaved(_)));
        assert_eq!(a.log().entries()[0].status, ProbeStatus::Aborted(err.to_string()));
    }

    #[test]
    fn an_abandoned_probe_is_logged_and_still_counts() {
        let terms = single(10);
        let (mut a, mut b) = ledgers();
        let (waits, q) = Initiator::start(&mut a, &terms, &ProbeInput::Value(3)).unwrap();
        let (b_waits, _) = Responder::respond(&mut b, &terms, &ProbeInput::Value(3), &q).unwrap();
        b_waits.abandon(&mut b, "no result within a day").unwrap();
        waits.abandon(&mut a, "no reply").unwrap();
        assert_eq!(b.log().entries()[0].status, ProbeStatus::Aborted("no result within a day".into()));
        assert_eq!(a.remaining("exploratory", "months"), 8);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<ProbeLedger>(&json).unwrap(), b, "the client can store the ledger");
    }

    #[test]
    fn a_responder_that_repeats_a_point_is_caught() {
        let terms = single(10);
        let (mut a, mut b) = ledgers();
        let (waits, q) = Initiator::start(&mut a, &terms, &ProbeInput::Value(3)).unwrap();
        let (_, r) = Responder::respond(&mut b, &terms, &ProbeInput::Value(3), &q).unwrap();
        let mut points = r.points.clone();
        points[1] = points[0];
        let forged =
            Reply { header: r.header.clone(), tags: r.tags.clone(), points }.sealed(&q.header.transcript);
        assert_eq!(
            waits.finish(&mut a, &forged).unwrap_err(),
            RedlineError::PeerMisbehaved("repeated a point")
        );
    }

    /// Where the one match sits in the query (by the initiator's element) and in the reply.
    fn match_positions(x: u64, y: u64) -> (usize, usize) {
        let terms = single(1000);
        let (mut a, mut b) = ledgers();
        let (waits, q) = Initiator::start(&mut a, &terms, &ProbeInput::Value(x)).unwrap();
        let (_, r) = Responder::respond(&mut b, &terms, &ProbeInput::Value(y), &q).unwrap();
        let ProbeKind::Single(s) = &terms.kind else { unreachable!() };
        let ours = single::elements(s, "A", &q.probe_id(), x).unwrap();
        let theirs = single::elements(s, "B", &q.probe_id(), y).unwrap();
        let shared = ours.iter().find(|e| theirs.contains(e)).unwrap();
        let sent = group::blind(std::slice::from_ref(shared), &waits.key).unwrap()[0];
        let i = q.points.iter().position(|p| *p == sent).unwrap();
        let their_tags = group::reblind_tags(&r.points, &waits.key).unwrap();
        let j = r.tags.iter().position(|t| their_tags.contains(t)).unwrap();
        (i, j)
    }

    #[test]
    fn a_single_value_reply_does_not_say_which_element_matched() {
        let moved = (0..12).filter(|_| {
            let (i, j) = match_positions(700, 300);
            i != j
        });
        assert!(moved.count() > 0, "the responder returns its tags in the query's order");
    }

    #[test]
    fn waiting_states_survive_serialisation() {
        let terms = packages(2, 3, 4);
        let (mut a, mut b) = ledgers();
        let p = |v: &[[u32; 2]]| ProbeInput::Packages(v.iter().map(|o| Package::new(o.to_vec())).collect());
        let (a_waits, q) = Initiator::start(&mut a, &terms, &p(&[[0, 1], [2, 2]])).unwrap();
        let (b_waits, r) = Responder::respond(&mut b, &terms, &p(&[[2, 2], [1, 0]]), &q).unwrap();
        let a_waits: InitiatorAwaitingReply =
            serde_json::from_str(&serde_json::to_string(&a_waits).unwrap()).unwrap();
        let b_waits: ResponderAwaitingResult =
            serde_json::from_str(&serde_json::to_string(&b_waits).unwrap()).unwrap();
        let (a_out, d) = a_waits.finish(&mut a, &r).unwrap();
        assert_eq!(a_out.result, ProbeResult::Packages(vec![Package::new(vec![2, 2])]));
        assert_eq!(b_waits.finish(&mut b, &d).unwrap(), a_out);
        let input: ProbeInput = serde_json::from_str(&serde_json::to_string(&p(&[[1, 1]])).unwrap()).unwrap();
        assert!(format!("{input:?}").contains("redacted"));
    }

    #[test]
    fn elements_are_shuffled_before_sending() {
        // Same input, same probe id: the order of the sent set differs between two builds.
        let terms = single(1 << 32);
        let id = ProbeId::random();
        let one = OwnSet::build(&terms, "B", &id, &ProbeInput::Value(12_345)).unwrap();
        let two = OwnSet::build(&terms, "B", &id, &ProbeInput::Value(12_345)).unwrap();
        assert_ne!(*one.elements, *two.elements);
        let common = one.elements.iter().filter(|e| two.elements.contains(e)).count();
        assert_eq!(common, 33 - 12_345u32.count_ones() as usize, "the 0-encoding agrees, dummies do not");
    }
}
