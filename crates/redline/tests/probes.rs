//! API tests: probes against ground truth, what the transcript shows, and every way a probe
//! must abort or be refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]

use backchannel_redline::*;
use proptest::prelude::*;

const BIG: ProbeBudget = ProbeBudget { per_issue: 1000, per_phase: 1000 };

fn single(max: u64) -> ProbeTerms {
    let s = SingleTerms { issue: "months".into(), max, gives: "A".into(), takes: "B".into() };
    ProbeTerms { phase: "exploratory".into(), may_ask: MayAsk::Either, kind: ProbeKind::Single(s) }
}

fn packages(issues: usize, options: usize, cap: u32) -> ProbeTerms {
    let issue = |i| IssueOptions {
        issue: format!("issue {i}"),
        options: (0..options).map(|o| format!("o{o}")).collect(),
    };
    let space = OptionSpace { issues: (0..issues).map(issue).collect() };
    ProbeTerms {
        phase: "drafting".into(),
        may_ask: MayAsk::Either,
        kind: ProbeKind::Package(PackageTerms { space, cap }),
    }
}

fn ledgers() -> (ProbeLedger, ProbeLedger) {
    (ProbeLedger::new("A", BIG), ProbeLedger::new("B", BIG))
}

/// One probe, A asking, through encoded bytes; returns both outcomes and the three messages.
fn run(terms: &ProbeTerms, a_in: ProbeInput, b_in: ProbeInput) -> (Outcome, Outcome, [Vec<u8>; 3]) {
    let (mut a, mut b) = ledgers();
    let (a_waits, q) = Initiator::start(&mut a, terms, &a_in).unwrap();
    let q = q.encode();
    let (b_waits, r) = Responder::respond(&mut b, terms, &b_in, &Query::decode(&q).unwrap()).unwrap();
    let r = r.encode();
    let (a_out, d) = a_waits.finish(&mut a, &Reply::decode(&r).unwrap()).unwrap();
    let d = d.encode();
    let b_out = b_waits.finish(&mut b, &Disclosure::decode(&d).unwrap()).unwrap();
    (a_out, b_out, [q, r, d])
}

fn pkgs(list: &[Vec<u32>]) -> Vec<Package> {
    list.iter().cloned().map(Package::new).collect()
}

/// A value in 0..=max, often one of the edges.
fn value(max: u64) -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(max), Just(max / 2), 0..=max]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn single_value_probe_says_exactly_whether_x_reaches_y(
        (max, x, y, equal) in prop_oneof![Just(1u64 << 32), Just(0), 1u64..200, 0..=1u64 << 32]
            .prop_flat_map(|m| (Just(m), value(m), value(m), any::<bool>())),
    ) {
        let y = if equal { x } else { y };
        let (a_out, b_out, _) = run(&single(max), ProbeInput::Value(x), ProbeInput::Value(y));
        prop_assert_eq!(&a_out.result, &ProbeResult::Zone { non_empty: x >= y });
        prop_assert_eq!(a_out, b_out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn package_probe_gives_exactly_the_intersection(
        a_set in proptest::collection::btree_set((0u32..4, 0u32..3, 0u32..2), 0..=12),
        b_set in proptest::collection::btree_set((0u32..4, 0u32..3, 0u32..2), 0..=12),
    ) {
        let as_list = |s: &std::collections::BTreeSet<(u32, u32, u32)>| -> Vec<Package> {
            s.iter().map(|&(i, j, k)| Package::new(vec![i, j, k])).collect()
        };
        let (a, b) = (as_list(&a_set), as_list(&b_set));
        let truth: Vec<Package> = a_set.intersection(&b_set).map(|&(i, j, k)| Package::new(vec![i, j, k])).collect();
        let terms = {
            let mut t = packages(3, 4, 12);
            if let ProbeKind::Package(p) = &mut t.kind { p.space.issues[2].options.truncate(2); p.space.issues[1].options.truncate(3); }
            t
        };
        let (a_out, b_out, _) = run(&terms, ProbeInput::Packages(a), ProbeInput::Packages(b));
        prop_assert_eq!(&a_out.result, &ProbeResult::Packages(truth));
        prop_assert_eq!(a_out, b_out);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn transcript_shows_no_input_value() {
    for (x, y) in [(3_000_000_007u64, 2_900_000_011u64), (1_234_567, 4_000_000_000), (1 << 32, 1 << 32)] {
        let (_, _, msgs) = run(&single(1 << 32), ProbeInput::Value(x), ProbeInput::Value(y));
        let all = msgs.concat();
        for v in [x, y, x + 1] {
            for needle in [v.to_le_bytes(), v.to_be_bytes()] {
                assert!(!contains(&all, &needle), "{v} appears in the transcript");
            }
            if let Ok(v32) = u32::try_from(v) {
                assert!(!contains(&all, &v32.to_le_bytes()) && !contains(&all, &v32.to_be_bytes()));
            }
        }
    }
    let a = pkgs(&[vec![7, 11, 13], vec![17, 19, 23]]);
    let b = pkgs(&[vec![7, 11, 13], vec![29, 31, 37]]);
    let (_, _, msgs) =
        run(&packages(3, 40, 8), ProbeInput::Packages(a.clone()), ProbeInput::Packages(b.clone()));
    let all = msgs.concat();
    for p in a.iter().chain(&b) {
        assert!(!contains(&all, &p.canonical_bytes()), "a package encoding appears in the transcript");
        let le: Vec<u8> = p.options().iter().flat_map(|o| o.to_le_bytes()).collect();
        assert!(!contains(&all, &le));
    }
}

#[test]
fn padding_hides_how_much_each_side_holds() {
    let lens = |m: &[Vec<u8>; 3]| m.iter().map(Vec::len).collect::<Vec<_>>();
    let (_, _, low) = run(&single(1 << 32), ProbeInput::Value(0), ProbeInput::Value(0));
    let (_, _, high) = run(&single(1 << 32), ProbeInput::Value(1 << 32), ProbeInput::Value((1 << 32) - 1));
    let (_, _, mixed) = run(&single(1 << 32), ProbeInput::Value(0x5555_5555), ProbeInput::Value(0xAAAA_AAAA));
    assert_eq!(lens(&low), lens(&high));
    assert_eq!(lens(&low), lens(&mixed));
    let terms = packages(2, 10, 20);
    let few = run(&terms, ProbeInput::Packages(pkgs(&[vec![1, 1]])), ProbeInput::Packages(vec![])).2;
    let all: Vec<Package> = (0..20).map(|i| Package::new(vec![i / 10, i % 10])).collect();
    let many = run(&terms, ProbeInput::Packages(all.clone()), ProbeInput::Packages(all)).2;
    assert_eq!(lens(&few), lens(&many));
    println!("single-value probe over 0..=2^32: {:?} bytes", lens(&low));
}

/// The error a receiver must report when one bit at `offset` of its message was flipped.
fn expected_error(offset: usize, is_query: bool) -> fn(&RedlineError) -> bool {
    match offset {
        0 => |e| matches!(e, RedlineError::UnsupportedVersion(_)),
        1 => |e| matches!(e, RedlineError::WrongStep { .. }),
        2 => |e| matches!(e, RedlineError::Malformed(_)),
        3..19 if !is_query => |e| *e == RedlineError::WrongProbe,
        3..51 => |e| *e == RedlineError::TranscriptMismatch,
        // Counts (the first here, later ones in the body) break the framing; the rest is
        // caught by the transcript hash before any point is used.
        51..55 => |e| matches!(e, RedlineError::Malformed(_) | RedlineError::Oversized { .. }),
        _ => |e| {
            matches!(
                e,
                RedlineError::TranscriptMismatch
                    | RedlineError::Malformed(_)
                    | RedlineError::Oversized { .. }
            )
        },
    }
}

fn flip(bytes: &[u8], offset: usize, bit: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[offset] ^= 1 << (bit % 8);
    b
}

#[test]
fn a_flipped_bit_anywhere_aborts_the_probe() {
    for terms in [single(10), packages(2, 3, 4)] {
        let a_in = || match terms.kind {
            ProbeKind::Single(_) => ProbeInput::Value(6),
            _ => ProbeInput::Packages(pkgs(&[vec![0, 1], vec![2, 2]])),
        };
        let b_in = || match terms.kind {
            ProbeKind::Single(_) => ProbeInput::Value(5),
            _ => ProbeInput::Packages(pkgs(&[vec![0, 1]])),
        };
        let (_, _, [q, r, d]) = run(&terms, a_in(), b_in());
        for offset in 0..q.len() {
            for bit in 0..8 {
                let (_, mut b) = ledgers();
                let got = Query::decode(&flip(&q, offset, bit))
                    .and_then(|m| Responder::respond(&mut b, &terms, &b_in(), &m).map(|_| ()));
                let err = got.expect_err("a flipped query must be refused");
                assert!(expected_error(offset, true)(&err), "query byte {offset}: {err}");
            }
        }
        for offset in 0..r.len() {
            let (mut a, mut b) = ledgers();
            let (a_waits, q) = Initiator::start(&mut a, &terms, &a_in()).unwrap();
            let (_, r) = Responder::respond(&mut b, &terms, &b_in(), &q).unwrap();
            let got = Reply::decode(&flip(&r.encode(), offset, offset))
                .and_then(|m| a_waits.finish(&mut a, &m).map(|_| ()));
            let err = got.expect_err("a flipped reply must abort");
            assert!(expected_error(offset, false)(&err), "reply byte {offset}: {err}");
        }
        for offset in 0..d.len() {
            let (mut a, mut b) = ledgers();
            let (a_waits, q) = Initiator::start(&mut a, &terms, &a_in()).unwrap();
            let (b_waits, r) = Responder::respond(&mut b, &terms, &b_in(), &q).unwrap();
            let (_, d) = a_waits.finish(&mut a, &r).unwrap();
            let got = Disclosure::decode(&flip(&d.encode(), offset, offset))
                .and_then(|m| b_waits.finish(&mut b, &m));
            let err = got.expect_err("a flipped disclosure must abort");
            assert!(expected_error(offset, false)(&err), "disclosure byte {offset}: {err}");
            if Disclosure::decode(&flip(&d.encode(), offset, offset)).is_ok() {
                let entry = &b.log().entries()[0];
                assert_eq!(entry.status, ProbeStatus::Aborted(err.to_string()), "the abort is logged");
            }
        }
    }
}

#[test]
fn truncated_messages_are_refused() {
    let (_, _, [q, r, d]) = run(&single(10), ProbeInput::Value(1), ProbeInput::Value(2));
    for cut in 0..q.len() {
        assert!(Query::decode(&q[..cut]).is_err());
    }
    for cut in 0..r.len() {
        assert!(Reply::decode(&r[..cut]).is_err());
    }
    for cut in 0..d.len() {
        assert!(Disclosure::decode(&d[..cut]).is_err());
    }
}

#[test]
fn replayed_and_misdirected_messages_abort() {
    let terms = single(100);
    let (mut a, mut b) = ledgers();
    let (a1, q1) = Initiator::start(&mut a, &terms, &ProbeInput::Value(50)).unwrap();
    let (a2, q2) = Initiator::start(&mut a, &terms, &ProbeInput::Value(50)).unwrap();
    let (b1, r1) = Responder::respond(&mut b, &terms, &ProbeInput::Value(40), &q1).unwrap();
    // The same query twice: answered once only.
    let again = Responder::respond(&mut b, &terms, &ProbeInput::Value(40), &q1).unwrap_err();
    assert_eq!(again, RedlineError::Replayed);
    let (b2, r2) = Responder::respond(&mut b, &terms, &ProbeInput::Value(40), &q2).unwrap();
    // A reply of probe 2 offered to probe 1.
    assert_eq!(a1.finish(&mut a, &r2).unwrap_err(), RedlineError::WrongProbe);
    let (_, d2) = a2.finish(&mut a, &r2).unwrap();
    // A disclosure of probe 2 offered to probe 1.
    assert_eq!(b1.finish(&mut b, &d2).unwrap_err(), RedlineError::WrongProbe);
    assert_eq!(b2.finish(&mut b, &d2).unwrap().result, ProbeResult::Zone { non_empty: true });
    // A message where another step is due.
    assert!(matches!(Query::decode(&r1.encode()), Err(RedlineError::WrongStep { expected: 1, got: 2 })));
    // The log shows all of it, on both sides.
    let statuses = |l: &ProbeLedger| {
        l.log().entries().iter().map(|e| matches!(e.status, ProbeStatus::Done(_))).collect::<Vec<_>>()
    };
    assert_eq!(statuses(&a), vec![false, true]);
    assert_eq!(statuses(&b), vec![false, true]);
    assert_eq!(a.log().entries()[0].status, ProbeStatus::Aborted(RedlineError::WrongProbe.to_string()));
}

#[test]
fn a_side_running_other_terms_is_detected() {
    let (mut a, mut b) = ledgers();
    let (_, q) = Initiator::start(&mut a, &single(100), &ProbeInput::Value(50)).unwrap();
    let got = Responder::respond(&mut b, &single(101), &ProbeInput::Value(40), &q).unwrap_err();
    assert_eq!(got, RedlineError::TranscriptMismatch);
    assert!(b.log().entries().is_empty(), "nothing is logged for a refused probe");
}

#[test]
fn budget_is_enforced_by_each_side() {
    let terms = single(100);
    let mut a = ProbeLedger::new("A", ProbeBudget { per_issue: 5, per_phase: 5 });
    let mut b = ProbeLedger::new("B", ProbeBudget { per_issue: 2, per_phase: 5 });
    for _ in 0..2 {
        let (w, q) = Initiator::start(&mut a, &terms, &ProbeInput::Value(50)).unwrap();
        let (bw, r) = Responder::respond(&mut b, &terms, &ProbeInput::Value(49), &q).unwrap();
        let (_, d) = w.finish(&mut a, &r).unwrap();
        bw.finish(&mut b, &d).unwrap();
    }
    // A would ask a third time (a binary search); B refuses.
    let (_, q) = Initiator::start(&mut a, &terms, &ProbeInput::Value(50)).unwrap();
    let refused = Responder::respond(&mut b, &terms, &ProbeInput::Value(49), &q).unwrap_err();
    assert!(matches!(refused, RedlineError::BudgetSpent { used: 2, limit: 2, .. }), "{refused}");
    assert_eq!(b.log().entries().len(), 2);
    // And B cannot ask either.
    assert!(matches!(
        Initiator::start(&mut b, &terms, &ProbeInput::Value(49)),
        Err(RedlineError::BudgetSpent { .. })
    ));
    assert_eq!(a.log().entries().len(), 3, "A logged the probe it started");
}

#[test]
fn inputs_outside_the_terms_are_refused_on_both_sides() {
    let (mut a, mut b) = ledgers();
    let bad = Initiator::start(&mut a, &single(100), &ProbeInput::Value(101)).unwrap_err();
    assert_eq!(bad, RedlineError::InvalidInput("value outside the agreed range"));
    let (_, q) = Initiator::start(&mut a, &single(100), &ProbeInput::Value(100)).unwrap();
    assert!(Responder::respond(&mut b, &single(100), &ProbeInput::Value(101), &q).is_err());
    let terms = packages(2, 3, 2);
    let over_cap = ProbeInput::Packages(pkgs(&[vec![0, 0], vec![0, 1], vec![0, 2]]));
    assert!(Initiator::start(&mut a, &terms, &over_cap).is_err());
    let outside = ProbeInput::Packages(pkgs(&[vec![0, 3]]));
    assert!(Initiator::start(&mut a, &terms, &outside).is_err());
    let (_, q) = Initiator::start(&mut a, &terms, &ProbeInput::Packages(pkgs(&[vec![0, 0]]))).unwrap();
    assert!(Responder::respond(&mut b, &terms, &over_cap, &q).is_err());
    assert!(Responder::respond(&mut b, &terms, &outside, &q).is_err());
    assert!(b.log().entries().is_empty());
    assert_eq!(a.log().entries().len(), 2, "refused starts are not logged");
}

#[test]
fn secret_bearing_values_print_no_secret() {
    let (mut a, _) = ledgers();
    let (waits, _) = Initiator::start(&mut a, &single(1 << 32), &ProbeInput::Value(3_141_592_653)).unwrap();
    let shown = format!("{waits:?} {:?}", ProbeInput::Value(3_141_592_653));
    assert!(!shown.contains("3141592653") && !shown.contains("key") && shown.contains("redacted"), "{shown}");
}

proptest! {
    #[test]
    fn no_input_bytes_make_a_state_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (mut a, mut b) = ledgers();
        let terms = single(10);
        let (waits, _) = Initiator::start(&mut a, &terms, &ProbeInput::Value(3)).unwrap();
        if let Ok(q) = Query::decode(&bytes) {
            let _ = Responder::respond(&mut b, &terms, &ProbeInput::Value(3), &q);
        }
        if let Ok(r) = Reply::decode(&bytes) {
            let _ = waits.finish(&mut a, &r);
        }
    }
}
