//! Replays the fuzzer's corpus (`fuzz/corpus/probe_messages/*`) through the probe message
//! decoders on stable Rust.

#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn probe_messages() {
    for input in replay::corpus("probe_messages") {
        let _ = backchannel_redline::Query::decode(&input);
        let _ = backchannel_redline::Reply::decode(&input);
        let _ = backchannel_redline::Disclosure::decode(&input);
    }
}

/// Writes seeds of the current message format (a single-value and a package probe's three
/// messages), so the fuzzer starts from valid messages.
#[test]
#[ignore = "writes fuzz/corpus/probe_messages/seed-*; run by hand after changing the format"]
fn write_probe_seeds() {
    use backchannel_redline::*;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/probe_messages");
    let single = ProbeTerms {
        phase: "exploratory".into(),
        may_ask: MayAsk::Either,
        kind: ProbeKind::Single(SingleTerms {
            issue: "months".into(),
            max: 120,
            gives: "A".into(),
            takes: "B".into(),
        }),
    };
    let space = OptionSpace {
        issues: vec![IssueOptions {
            issue: "seats".into(),
            options: vec!["2".into(), "3".into(), "4".into()],
        }],
    };
    let package = ProbeTerms {
        phase: "drafting".into(),
        may_ask: MayAsk::Either,
        kind: ProbeKind::Package(PackageTerms { space, cap: 2 }),
    };
    let budget = ProbeBudget { per_issue: 9, per_phase: 9 };
    for (name, terms, x, y) in [
        ("single", single, ProbeInput::Value(18), ProbeInput::Value(12)),
        (
            "package",
            package,
            ProbeInput::Packages(vec![Package::new(vec![1])]),
            ProbeInput::Packages(vec![Package::new(vec![1])]),
        ),
    ] {
        let (mut a, mut b) = (ProbeLedger::new("A", budget), ProbeLedger::new("B", budget));
        let (wa, q) = Initiator::start(&mut a, &terms, &x).unwrap();
        let (wb, r) = Responder::respond(&mut b, &terms, &y, &q).unwrap();
        let (_, d) = wa.finish(&mut a, &r).unwrap();
        wb.finish(&mut b, &d).unwrap();
        std::fs::write(dir.join(format!("seed-{name}-query")), q.encode()).unwrap();
        std::fs::write(dir.join(format!("seed-{name}-reply")), r.encode()).unwrap();
        std::fs::write(dir.join(format!("seed-{name}-disclosure")), d.encode()).unwrap();
    }
}
