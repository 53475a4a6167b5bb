//! Private red-line probes end to end with the real binary: Alice creates a direct channel
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]
//! `talks` and adds Bao (sides A and B); probes are proposed, accepted or declined, each side
//! enters its input, and `sync` carries the rest. What a probe reveals, and what it must not,
//! is tested on the library too (crates/redline/tests, crates/client/src/probes/tests.rs).

mod support;

use serde_json::Value;
use support::{Pair, Party, contains};

const QUIET: &str = "sent 0, received 0, still queued 0";
const MAX: &str = "4294967296";

/// Alice and Bao in a direct channel `talks`, both synced.
fn talks() -> Pair {
    let pair = Pair::introduced();
    pair.alice.ok(&["channel", "create", "talks"]);
    pair.alice.ok(&["channel", "add", "talks", "Bao"]);
    settle(&pair);
    pair
}

/// Syncs both until a round is quiet; returns everything each printed.
fn settle(pair: &Pair) -> (String, String) {
    let (mut a, mut b) = (String::new(), String::new());
    for _ in 0..8 {
        let (sa, sb) = (pair.alice.ok(&["sync"]), pair.bao.ok(&["sync"]));
        let quiet = sa.trim_end().ends_with(QUIET) && sb.trim_end().ends_with(QUIET);
        a.push_str(&sa);
        b.push_str(&sb);
        if quiet {
            return (a, b);
        }
    }
    panic!("still exchanging after 8 rounds:\n{a}\n{b}");
}

/// Proposes a probe in `talks` with the other party; returns its id as printed.
fn propose(p: &Party, with: &str, terms: &[&str]) -> String {
    let out = p.ok(&[&["probe", "propose", "talks", "--with", with], terms].concat());
    let id = out.strip_prefix("proposed probe ").and_then(|r| r.split_whitespace().next()).unwrap();
    assert_eq!(id.len(), 8, "{out}");
    id.to_owned()
}

/// Single-value terms on `issue` over 0..=2^32: the proposer gives, the other side takes.
fn single(issue: &str) -> [&str; 8] {
    ["--issue", issue, "--max", MAX, "--gives", "me", "--takes", "them"]
}

/// A single-value probe on `issue`: Alice gives at most `x`, Bao takes at least `y`.
fn run_single(pair: &Pair, issue: &str, x: &str, y: &str) -> (String, String, String) {
    let id = propose(&pair.alice, "Bao", &single(issue));
    pair.alice.ok(&["probe", "input", "talks", &id, x]);
    let proposed = pair.bao.ok(&["sync"]);
    assert!(proposed.contains(&format!("proposes probe {id}")), "{proposed}");
    pair.bao.ok(&["probe", "accept", "talks", &id]);
    // Bao's number from standard input, so it stays out of the argument list.
    let out = pair.bao.run_with(&["probe", "input", "talks", &id, "-"], &pair.bao.passphrase, Some(y));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (a, b) = settle(pair);
    (id, a, b)
}

fn log(p: &Party) -> Vec<Value> {
    p.json(&["probe", "log", "talks", "--json"]).as_array().unwrap().clone()
}

fn probe<'a>(log: &'a [Value], id: &str) -> &'a Value {
    log.iter().find(|p| p["id"].as_str().unwrap().starts_with(id)).unwrap()
}

#[test]
fn single_value_probes_tell_both_sides_whether_the_positions_overlap_and_nothing_more() {
    let pair = talks();
    let (yes, a, b) = run_single(&pair, "months", "987654321", "123456789");
    assert!(a.contains(&format!("probe {yes} on \"months\": zone non-empty")), "Alice saw: {a}");
    assert!(b.contains(&format!("probe {yes} on \"months\": zone non-empty")), "Bao saw: {b}");
    let (no, a, b) = run_single(&pair, "troops", "111111111", "222222222");
    assert!(a.contains("zone empty") && !a.contains("zone non-empty"), "Alice saw: {a}");
    assert!(b.contains("zone empty") && !b.contains("zone non-empty"), "Bao saw: {b}");

    for p in [&pair.alice, &pair.bao] {
        let log = log(p);
        assert_eq!(log.len(), 2);
        assert_eq!(probe(&log, &yes)["status"], "done");
        assert_eq!(probe(&log, &yes)["result"], serde_json::json!({"Zone": {"non_empty": true}}));
        assert_eq!(probe(&log, &no)["result"], serde_json::json!({"Zone": {"non_empty": false}}));
        assert_eq!(probe(&log, &yes)["bytes"], 2_810, "query, reply and disclosure");
        let text = p.ok(&["probe", "log", "talks"]);
        assert!(text.contains("done: zone non-empty") && text.contains("done: zone empty"), "{text}");
        let timeline = p.ok(&["read", "talks"]);
        assert!(timeline.contains("zone non-empty"), "the channel timeline records the result: {timeline}");
        for secret in ["987654321", "123456789", "111111111", "222222222"] {
            assert!(!text.contains(secret) && !timeline.contains(secret), "an input is shown");
        }
    }
    assert!(pair.alice.ok(&["probe", "log", "talks"]).contains("proposed by you, you ask"));
    assert!(pair.bao.ok(&["probe", "log", "talks"]).contains("proposed by them, they ask"));

    // One more probe left on the relay mid-way, then everything it holds is searched.
    let id = propose(&pair.alice, "Bao", &single("ports"));
    pair.alice.ok(&["probe", "input", "talks", &id, "333333333"]);
    pair.bao.ok(&["sync"]);
    pair.bao.ok(&["probe", "accept", "talks", &id]);
    pair.bao.ok(&["probe", "input", "talks", &id, "444444444"]);
    pair.alice.ok(&["sync"]);
    let held = pair.relay.all_bytes();
    assert!(held.len() > 4096, "the relay holds the query");
    for secret in ["987654321", "123456789", "111111111", "222222222", "333333333", "444444444"] {
        assert!(!contains(&held, secret.as_bytes()), "the relay's files hold the input {secret}");
    }
}

#[test]
fn a_declined_probe_never_runs_and_inputs_outside_the_range_are_refused() {
    let pair = talks();
    let id = propose(
        &pair.alice,
        "Bao",
        &["--issue", "months", "--max", "120", "--gives", "them", "--takes", "me"],
    );
    let err = pair.alice.fails(&["probe", "input", "talks", &id, "121"]);
    assert!(err.contains("value outside the agreed range") && err.contains("0..=120"), "{err}");
    let err = pair.alice.fails(&["probe", "input", "talks", &id, "twelve"]);
    assert!(err.contains("whole number"), "{err}");
    pair.alice.ok(&["probe", "input", "talks", &id, "12"]);
    pair.bao.ok(&["sync"]);
    pair.bao.ok(&["probe", "decline", "talks", &id]);
    let (a, _) = settle(&pair);
    assert!(a.contains(&format!("Bao declined probe {id}")), "{a}");
    for p in [&pair.alice, &pair.bao] {
        assert_eq!(probe(&log(p), &id)["status"], "declined");
        let status = p.ok(&["probe", "status", "talks"]);
        assert!(status.contains("no open probes") && status.contains("none agreed yet"), "{status}");
    }
    let err = pair.bao.fails(&["probe", "accept", "talks", &id]);
    assert!(err.contains("already declined"), "{err}");
}

#[test]
fn the_budget_agreed_in_the_channel_refuses_a_side_that_keeps_probing() {
    let pair = talks();
    let terms = [&single("months")[..], &["--budget", "2/10"]].concat();
    let first = propose(&pair.alice, "Bao", &terms);
    pair.alice.ok(&["probe", "input", "talks", &first, "50"]);
    pair.bao.ok(&["sync"]);
    pair.bao.ok(&["probe", "accept", "talks", &first]);
    pair.bao.ok(&["probe", "input", "talks", &first, "40"]);
    settle(&pair);
    let status = pair.bao.ok(&["probe", "status", "talks"]);
    assert!(status.contains("budget: 2 per issue, 10 per phase (agreed"), "{status}");
    run_single(&pair, "months", "30", "40");
    for (p, with) in [(&pair.alice, "Bao"), (&pair.bao, "Alice")] {
        let args = [&["probe", "propose", "talks", "--with", with][..], &single("months")].concat();
        let err = p.fails(&args);
        assert!(err.contains("probe budget spent: 2 of 2 probes on issue \"months\""), "{err}");
        let status = p.ok(&["probe", "status", "talks"]);
        assert!(status.contains("issue \"months\": 2 used, 0 left"), "{status}");
    }
    let args =
        [&["probe", "propose", "talks", "--with", "Bao"][..], &single("troops"), &["--budget", "5/10"]]
            .concat();
    let err = pair.alice.fails(&args);
    assert!(err.contains("does not change"), "{err}");
    run_single(&pair, "troops", "1", "1");
}

#[test]
fn a_package_probe_through_the_cli_names_the_packages_both_accept() {
    let pair = talks();
    let id = propose(
        &pair.bao,
        "Alice",
        &["--issue", "monitor=UN,OSCE,joint", "--issue", "months=12,18,24", "--cap", "3", "--asker", "them"],
    );
    pair.bao.ok(&["probe", "input", "talks", &id, "--package", "joint,24;UN,12", "--package", "OSCE,18"]);
    pair.alice.ok(&["sync"]);
    let err = pair.alice.fails(&["probe", "input", "talks", &id, "--package", "UN,36"]);
    assert!(err.contains("option not in the option space"), "{err}");
    let accepted = pair.alice.ok(&["probe", "accept", "talks", &id]);
    assert!(accepted.contains("waiting for your input"), "{accepted}");
    pair.alice.ok(&["probe", "input", "talks", &id, "--package", "UN,12;joint,18;OSCE,18"]);
    let (a, b) = settle(&pair);
    let both = "2 package(s) acceptable to both: monitor=UN,months=12; monitor=OSCE,months=18";
    assert!(a.contains(both), "Alice saw: {a}");
    assert!(b.contains(both), "Bao saw: {b}");
    assert_eq!(probe(&log(&pair.alice), &id)["you_ask"], true);
}

#[test]
fn probes_are_refused_once_the_phase_disallows_them() {
    let pair = talks();
    for phase in ["drafting", "agreed"] {
        pair.alice.ok(&["phase", "propose", "talks", phase]);
        settle(&pair);
        pair.bao.ok(&["phase", "consent", "talks"]);
        settle(&pair);
    }
    assert_eq!(pair.bao.json(&["channel", "members", "talks", "--json"])["phase"], "agreed");
    let err =
        pair.alice.fails(&[&["probe", "propose", "talks", "--with", "Bao"][..], &single("months")].concat());
    assert!(err.contains("probes are not allowed in phase agreed of talks"), "{err}");
    let status = pair.bao.ok(&["probe", "status", "talks"]);
    assert!(status.contains("phase agreed, probes NOT allowed"), "{status}");
}
