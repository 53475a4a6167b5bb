//! Channels end to end with the real binary: a relay process, an intermediary (Omar, for Oman)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]
//! who creates the channels, and the sides' principals. Each test starts one relay; `settle`
//! syncs everyone until a whole round is quiet (introductions take a few rounds). The last test
//! drives the library directly, to post as a member that was removed but has not heard yet.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{Party, Relay, contains, introduce};

/// A relay, Omar, and the sides he knows (each has accepted an invitation from him).
struct Cast {
    relay: Relay,
    omar: Party,
    sides: Vec<Party>,
    names: Vec<String>,
    /// Holds every directory; dropped last.
    tmp: tempfile::TempDir,
}

impl Cast {
    fn new(sides: &[(&str, &str)]) -> Cast {
        let tmp = tempfile::tempdir().unwrap();
        let relay = Relay::start(&tmp.path().join("relay"), 0);
        let omar = Party::new(tmp.path(), "Omar", "Oman");
        let parties = sides
            .iter()
            .map(|(name, side)| {
                let party = Party::new(tmp.path(), name, side);
                introduce(&omar, &party, &relay);
                party
            })
            .collect();
        let names = sides_names(sides);
        Cast { relay, omar, sides: parties, names, tmp }
    }

    /// Omar creates `name` (as the intermediary) and adds every side as a principal.
    fn channel(&self, name: &str, mode: &str) {
        self.omar.ok(&["channel", "create", name, "--mode", mode, "--role", "intermediary"]);
        for side in &self.names {
            self.omar.ok(&["channel", "add", name, side]);
        }
    }

    /// Omar first, then the sides in the order they joined.
    fn everyone(&self) -> Vec<&Party> {
        std::iter::once(&self.omar).chain(&self.sides).collect()
    }
}

fn sides_names(sides: &[(&str, &str)]) -> Vec<String> {
    sides.iter().map(|(name, _)| (*name).to_owned()).collect()
}

const QUIET: &str = "sent 0, received 0, still queued 0";

/// Syncs everyone, round after round, until a whole round brings and sends nothing.
fn settle(parties: &[&Party]) {
    for _ in 0..6 {
        let mut quiet = true;
        for p in parties {
            quiet &= p.ok(&["sync"]).trim() == QUIET;
        }
        if quiet {
            return;
        }
    }
    panic!("the parties still exchange messages after 6 sync rounds");
}

fn entries(p: &Party, channel: &str) -> Vec<Value> {
    p.json(&["read", channel, "--json"]).as_array().unwrap().clone()
}

fn notes(p: &Party, channel: &str) -> Vec<Value> {
    entries(p, channel).into_iter().filter(|e| e["kind"] == "note").collect()
}

fn with_text<'a>(notes: &'a [Value], text: &str) -> Vec<&'a Value> {
    notes.iter().filter(|n| n["text"] == text).collect()
}

fn members(p: &Party, channel: &str) -> Value {
    p.json(&["channel", "members", channel, "--json"])
}

fn member<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed in {view}"))
}

fn contact_names(p: &Party) -> Vec<String> {
    let all = p.json(&["contacts", "--json"]);
    all.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn a_direct_channel_introduces_its_members_and_every_note_reaches_every_other_member_once() {
    let cast = Cast::new(&[("Alice", "Delegation A"), ("Bao", "Delegation B"), ("Chen", "Delegation C")]);
    cast.channel("talks", "direct");
    let everyone = cast.everyone();
    // Chen, the last to join, writes at once: its copies for Alice and Bao wait for the
    // introductions, and go when they complete.
    let chen = &cast.sides[2];
    chen.ok(&["sync"]);
    let eager = "Chen, before anyone was introduced: hello all.";
    let out = chen.ok(&["send", "talks", eager]);
    assert!(out.contains("sent to 1 member(s) of talks; waiting for introductions to Alice, Bao"), "{out}");
    settle(&everyone);

    let names = ["Omar", "Alice", "Bao", "Chen"];
    let views: Vec<Value> = everyone.iter().map(|p| members(p, "talks")).collect();
    for (me, view) in names.iter().zip(&views) {
        assert_eq!(view["members"].as_array().unwrap().len(), 4, "{me}: {view}");
        for other in names {
            let m = member(view, other);
            if other == *me {
                assert_eq!(m["you"], true);
            } else {
                assert_eq!(m["connected"], true, "{me} is not connected to {other}: {view}");
                assert!(m["safety_number"].as_str().is_some_and(|s| !s.is_empty()));
            }
        }
        assert_eq!(member(view, "Omar")["creator"], true);
        assert_eq!(view["phase"], "exploratory");
    }
    // Each pair sees the same safety number for each other, and it is the contact's.
    for (i, a) in names.iter().enumerate() {
        for (j, b) in names.iter().enumerate().filter(|(j, _)| *j != i) {
            let ab = &member(&views[i], b)["safety_number"];
            assert_eq!(ab, &member(&views[j], a)["safety_number"], "{a}/{b} safety numbers differ");
        }
    }
    let alice_contacts = cast.sides[0].json(&["contacts", "--json"]);
    let chen_at_alice = alice_contacts.as_array().unwrap().iter().find(|c| c["name"] == "Chen").unwrap();
    assert_eq!(chen_at_alice["safety_number"], member(&views[1], "Chen")["safety_number"]);
    for (side, others) in
        cast.sides.iter().zip([["Bao", "Chen", "Omar"], ["Alice", "Chen", "Omar"], ["Alice", "Bao", "Omar"]])
    {
        let mut contacts = contact_names(side);
        contacts.sort();
        assert_eq!(contacts, others, "the introduced members are contacts now");
    }

    for (p, name) in everyone.iter().zip(names) {
        let out = p.ok(&["send", "talks", &format!("{name} says: shall we meet on the 14th?")]);
        assert!(out.contains("sent to 3 member(s) of talks"), "{out}");
    }
    settle(&everyone);
    for (p, me) in everyone.iter().zip(names) {
        let got = notes(p, "talks");
        assert_eq!(got.len(), 5, "{me} holds each note once: {got:?}");
        let early = with_text(&got, eager);
        assert_eq!(early.len(), 1, "{me}: {got:?}");
        assert_eq!(early[0]["from"], "Chen");
        for sender in names {
            let text = format!("{sender} says: shall we meet on the 14th?");
            let hits = with_text(&got, &text);
            assert_eq!(hits.len(), 1, "{me} got {text:?} {} times", hits.len());
            assert_eq!(hits[0]["from"], sender);
            assert_eq!(hits[0]["outgoing"], sender == me);
        }
    }

    // A note waiting on the relay: the host holds neither it nor the channel's name.
    let pending = "Pending on the relay: the venue is Muscat.";
    cast.sides[0].ok(&["send", "talks", pending]);
    let held = cast.relay.all_bytes();
    for needle in [pending, "the venue is Muscat", "talks", "Delegation C"] {
        assert!(!contains(&held, needle.as_bytes()), "the relay's files hold {needle:?}");
    }
    // (the search can fail: Alice's own store, sealed too, holds the note only encrypted)
    assert!(!contains(&std::fs::read(cast.sides[0].home.join("party.db")).unwrap(), pending.as_bytes()));
}

#[test]
fn a_late_member_sees_nothing_earlier_and_a_removed_member_nothing_later() {
    let cast = Cast::new(&[("Alice", "Delegation A"), ("Bao", "Delegation B"), ("Chen", "Delegation C")]);
    let (omar, alice, bao, chen) = (&cast.omar, &cast.sides[0], &cast.sides[1], &cast.sides[2]);
    omar.ok(&["channel", "create", "talks", "--role", "intermediary"]);
    omar.ok(&["channel", "add", "talks", "Alice"]);
    omar.ok(&["channel", "add", "talks", "Bao"]);
    settle(&[omar, alice, bao]);
    let early = "Said before Chen joined: our red line is the river.";
    alice.ok(&["send", "talks", early]);
    settle(&[omar, alice, bao]);
    assert_eq!(with_text(&notes(bao, "talks"), early).len(), 1);

    omar.ok(&["channel", "add", "talks", "Chen", "--role", "observer"]);
    let everyone = [omar, alice, bao, chen];
    settle(&everyone);
    let at_chen = members(chen, "talks");
    assert_eq!(member(&at_chen, "Chen")["role"], "observer");
    assert_eq!(member(&at_chen, "Alice")["connected"], true, "{at_chen}");
    assert_eq!(member(&at_chen, "Bao")["connected"], true, "{at_chen}");
    let chen_all = serde_json::to_string(&entries(chen, "talks")).unwrap();
    assert!(!chen_all.contains("red line"), "Chen sees what was said before it joined: {chen_all}");
    let err = chen.fails(&["send", "talks", "an observer's opinion"]);
    assert!(err.contains("observers of talks read only"), "{err}");

    let during = "Said while everyone is in: Thursday suits us.";
    bao.ok(&["send", "talks", during]);
    settle(&everyone);
    assert_eq!(with_text(&notes(chen, "talks"), during).len(), 1, "the observer reads");

    let out = omar.ok(&["channel", "remove", "talks", "Bao"]);
    assert!(out.contains("removed Bao"), "{out}");
    let after = "Said after Bao left: Thursday at ten.";
    // Alice's send takes in the removal first, so Bao is not among its recipients.
    let out = alice.ok(&["send", "talks", after]);
    assert!(out.contains("sent to 2 member(s) of talks"), "{out}");
    let from_hub = "From the chair, after Bao left.";
    let out = omar.ok(&["send", "talks", from_hub]);
    assert!(out.contains("sent to 2 member(s) of talks"), "{out}");
    settle(&everyone);

    let bao_entries = entries(bao, "talks");
    let bao_all = serde_json::to_string(&bao_entries).unwrap();
    assert!(bao_all.contains(during), "Bao keeps what was said while it was in");
    assert!(!bao_all.contains(after) && !bao_all.contains(from_hub), "Bao got a later note: {bao_all}");
    assert!(
        bao_entries.iter().any(|e| e["kind"] == "channel" && e["what"]["event"] == "removed_you"),
        "Bao is told it was removed: {bao_all}"
    );
    let shown = bao.ok(&["read", "talks"]);
    assert!(shown.contains("you were removed from this channel"), "{shown}");
    assert_eq!(members(bao, "talks")["removed"], true);
    let err = bao.fails(&["send", "talks", "but we were not finished"]);
    assert!(err.contains("you were removed from talks"), "{err}");
    for p in [omar, alice, chen] {
        let view = members(p, "talks");
        let names: Vec<&str> =
            view["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Omar", "Alice", "Chen"], "{view}");
        assert!(!serde_json::to_string(&entries(p, "talks")).unwrap().contains("but we were not finished"));
    }
    assert_eq!(with_text(&notes(chen, "talks"), after).len(), 1);
    assert_eq!(with_text(&notes(alice, "talks"), from_hub).len(), 1);
}

#[test]
fn a_shuttle_keeps_the_sides_apart_and_marks_what_the_intermediary_relays() {
    let cast = Cast::new(&[("Alice", "Delegation A"), ("Bao", "Delegation B")]);
    let (omar, alice, bao) = (&cast.omar, &cast.sides[0], &cast.sides[1]);
    cast.channel("muscat", "shuttle");
    settle(&cast.everyone());
    assert_eq!(contact_names(alice), ["Omar"], "shuttle sides are never introduced");
    assert_eq!(member(&members(alice, "muscat"), "Bao")["connected"], false);

    let opening = "We could consider a phased withdrawal.";
    let secret = "Between us: we would accept 24 months, but start at 12.";
    let answer = "Phasing is of interest; who verifies?";
    let unforwarded = "Bao's aside that Omar keeps to himself.";
    for text in [opening, secret] {
        let out = alice.ok(&["send", "muscat", text]);
        assert!(out.contains("sent to 1 member(s) of muscat"), "only the hub receives: {out}");
    }
    bao.ok(&["send", "muscat", answer]);
    bao.ok(&["send", "muscat", unforwarded]);
    settle(&cast.everyone());

    let at_omar = entries(omar, "muscat");
    let number = |text: &str| {
        let i = at_omar.iter().position(|e| e["kind"] == "note" && e["text"] == text).unwrap();
        (i + 1).to_string()
    };
    let at_bao = serde_json::to_string(&entries(bao, "muscat")).unwrap();
    assert!(!at_bao.contains(opening) && !at_bao.contains(secret), "a side's note reached the other");
    let at_alice = serde_json::to_string(&entries(alice, "muscat")).unwrap();
    assert!(!at_alice.contains(answer), "a side's note reached the other");

    let rephrased = "Delegation A is open to a phased withdrawal over a longer period.";
    omar.ok(&["forward", "muscat", &number(opening), "--to", "Bao"]);
    omar.ok(&["forward", "muscat", &number(secret), "--to", "Bao", "--rephrase", rephrased]);
    omar.ok(&["forward", "muscat", &number(answer), "--to", "Alice"]);
    let own = "Omar's own question to both: Geneva or Muscat?";
    let out = omar.ok(&["send", "muscat", "--to", "Alice,Bao", own]);
    assert!(out.contains("sent to 2 member(s) of muscat"), "{out}");
    settle(&cast.everyone());

    let bao_entries = entries(bao, "muscat");
    let bao_notes: Vec<Value> = bao_entries.iter().filter(|e| e["kind"] == "note").cloned().collect();
    let as_written = with_text(&bao_notes, opening);
    assert_eq!(as_written.len(), 1, "{bao_notes:?}");
    assert_eq!(as_written[0]["from"], "Alice");
    assert_eq!(as_written[0]["relayed_by"], "Omar");
    assert!(as_written[0]["rephrased"].is_null() || as_written[0]["rephrased"] == false);
    let reworded = with_text(&bao_notes, rephrased);
    assert_eq!(reworded.len(), 1, "{bao_notes:?}");
    assert_eq!(reworded[0]["relayed_by"], "Omar");
    assert_eq!(reworded[0]["rephrased"], true);
    let direct = with_text(&bao_notes, own);
    assert_eq!(direct.len(), 1);
    assert_eq!(direct[0]["from"], "Omar");
    assert!(direct[0]["relayed_by"].is_null(), "the hub's own note is not marked relayed");
    let bao_all = serde_json::to_string(&bao_entries).unwrap();
    assert!(!bao_all.contains(secret), "Bao's timeline holds Alice's original wording: {bao_all}");
    let plain = bao.ok(&["read", "muscat"]);
    assert!(plain.contains(&format!("Alice (relayed by Omar): {opening}")), "{plain}");
    assert!(plain.contains(&format!("Alice (relayed by Omar, rephrased): {rephrased}")), "{plain}");

    let alice_notes = notes(alice, "muscat");
    let relayed = with_text(&alice_notes, answer);
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0]["from"], "Bao");
    assert_eq!(relayed[0]["relayed_by"], "Omar");
    assert_eq!(with_text(&alice_notes, own).len(), 1);
    let alice_all = serde_json::to_string(&entries(alice, "muscat")).unwrap();
    assert!(!alice_all.contains(unforwarded), "Alice got a note Omar never forwarded");

    let err = alice.fails(&["send", "muscat", "--to", "Bao", "psst"]);
    assert!(err.contains("your notes go to the intermediary only"), "{err}");
    let err = alice.fails(&["send", "muscat", "--to", "Omar", "psst"]);
    assert!(err.contains("your notes go to the intermediary only"), "{err}");
    let err = omar.fails(&["send", "muscat", "to whom?"]);
    assert!(err.contains("--to MEMBER"), "{err}");
    let err = alice.fails(&["forward", "muscat", "1", "--to", "Bao"]);
    assert!(err.contains("only the intermediary running shuttle muscat forwards"), "{err}");
    let err = omar.fails(&["forward", "muscat", "1", "--to", "Bao"]);
    assert!(err.contains("entry 1 of muscat is not a received note"), "{err}");
    let err = bao.fails(&["nonpaper", "put", "muscat", "--title", "Mine", &write(cast.tmp.path(), "d", "x")]);
    assert!(err.contains("only the intermediary puts drafts"), "{err}");
    let after = serde_json::to_string(&entries(bao, "muscat")).unwrap();
    assert!(!after.contains("psst"), "a refused note reached Bao");
}

#[test]
fn in_a_shuttle_each_side_learns_of_the_others_phase_consent_and_ratification() {
    let cast = Cast::new(&[("Alice", "Delegation A"), ("Bao", "Delegation B")]);
    let (omar, alice, bao) = (&cast.omar, &cast.sides[0], &cast.sides[1]);
    cast.channel("muscat", "shuttle");
    let everyone = cast.everyone();
    settle(&everyone);
    let mut wrong = Vec::new();
    alice.ok(&["phase", "propose", "muscat", "drafting"]);
    settle(&everyone);
    let at_bao = members(bao, "muscat");
    if at_bao["proposed_phase"].is_null() {
        wrong.push(format!("Bao is not told that Alice proposed drafting: {at_bao}"));
    }
    let consent = bao.run(&["phase", "consent", "muscat"]);
    if !consent.status.success() {
        wrong.push(format!("Bao cannot consent: {}", String::from_utf8_lossy(&consent.stderr)));
        bao.ok(&["phase", "propose", "muscat", "drafting"]); // the workaround: propose it too
    }
    settle(&everyone);
    let file = write(cast.tmp.path(), "framework.txt", "1. Talks resume in Geneva.\n");
    omar.ok(&["propose", "muscat", &file, "--signatories", "Delegation A,Delegation B"]);
    settle(&everyone);
    alice.ok(&["ratify", "muscat", "1"]);
    bao.ok(&["ratify", "muscat", "1"]);
    settle(&everyone);
    let status = omar.ok(&["agreement", "status", "muscat"]);
    if !status.contains("RATIFIED") {
        wrong.push(format!("the intermediary, who got both seals first-hand, does not count them: {status}"));
    }
    // Each side hears the other's seal only through the intermediary, who publishes the cards:
    // it is shown, and not counted (the intermediary could have made it).
    for (who, p, other) in [("Alice", alice, "Bao (Delegation B)"), ("Bao", bao, "Alice (Delegation A)")] {
        let status = p.ok(&["agreement", "status", "muscat"]);
        let through_hub =
            format!("signed with a key known only through the intermediary (not counted): {other}");
        if status.contains("RATIFIED") || !status.contains(&through_hub) {
            wrong.push(format!(
                "{who} does not see the other side's seal as known only through the hub: {status}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_phase_moves_only_when_every_side_consents_and_only_to_the_next_phase() {
    let cast = Cast::new(&[("Alice", "Delegation A"), ("Bao", "Delegation B")]);
    let (omar, alice, bao) = (&cast.omar, &cast.sides[0], &cast.sides[1]);
    cast.channel("talks", "direct");
    let everyone = cast.everyone();
    settle(&everyone);
    let text = write(cast.tmp.path(), "framework.txt", "1. Talks resume in Geneva.\n");

    let err = alice.fails(&["propose", "talks", &text, "--signatories", "Delegation A,Delegation B"]);
    assert!(err.contains("talks is in phase exploratory"), "{err}");
    assert!(err.contains("phase propose talks drafting"), "says how to move on: {err}");
    let err = alice.fails(&["phase", "propose", "talks", "agreed"]);
    assert!(err.contains("the only next phase is drafting"), "{err}");
    let err = omar.fails(&["phase", "propose", "talks", "drafting"]);
    assert!(err.contains("only principals consent"), "{err}");
    let err = bao.fails(&["phase", "consent", "talks"]);
    assert!(err.contains("no phase change is proposed"), "{err}");

    let out = alice.ok(&["phase", "propose", "talks", "drafting"]);
    assert!(out.contains("move to drafting awaits Delegation B"), "{out}");
    settle(&everyone);
    for p in &everyone {
        let view = members(p, "talks");
        assert_eq!(view["phase"], "exploratory", "moved without every side: {view}");
        assert_eq!(view["proposed_phase"], serde_json::json!(["drafting", ["Delegation B"]]), "{view}");
    }
    let out = bao.ok(&["phase", "consent", "talks"]);
    assert!(out.contains("every side consents to drafting"), "{out}");
    settle(&everyone);
    for p in &everyone {
        let view = members(p, "talks");
        assert_eq!(view["phase"], "drafting", "{view}");
        assert!(view["proposed_phase"].is_null(), "{view}");
        assert_eq!(view["policy"]["retention_secs"], 60 * 24 * 3600, "drafting keeps notes 60 days");
        let events = serde_json::to_string(&entries(p, "talks")).unwrap();
        assert!(events.contains("drafting"), "{events}");
    }
    let err = alice.fails(&["phase", "propose", "talks", "public"]);
    assert!(err.contains("the only next phase is agreed"), "{err}");
    alice.ok(&["propose", "talks", &text, "--signatories", "Delegation A,Delegation B"]);
}

#[test]
fn non_papers_keep_versions_diff_and_carry_a_large_text_intact_without_an_author() {
    let cast = Cast::new(&[("Alice", "Delegation A"), ("Bao", "Delegation B")]);
    let (omar, alice, bao) = (&cast.omar, &cast.sides[0], &cast.sides[1]);
    cast.channel("talks", "direct");
    settle(&cast.everyone());
    let dir = cast.tmp.path();
    let v1 = "Framework for talks\n\n1. Phased withdrawal over 12 months.\n2. Verification by a neutral monitor.\n3. Talks resume in Geneva.\n";
    let v2 = "Framework for talks\n\n1. Phased withdrawal over 18 months.\n2. Verification by a neutral monitor.\n3. Talks resume in Geneva.\n";
    let out = alice.ok(&["nonpaper", "put", "talks", "--title", "Framework", &write(dir, "v1.txt", v1)]);
    assert!(out.contains("\"Framework\" v1"), "{out}");
    let out = alice.ok(&["nonpaper", "put", "talks", "--title", "Framework", &write(dir, "v2.txt", v2)]);
    assert!(out.contains("\"Framework\" v2"), "{out}");
    let err = alice.fails(&["nonpaper", "put", "talks", "--title", "Framework", &write(dir, "v2b.txt", v2)]);
    assert!(err.contains("already a version"), "{err}");

    let mut big = String::new();
    let mut n = 0;
    while big.len() < 1_200_000 {
        n += 1;
        big.push_str(&format!("Article {n}. The parties agree to paragraph {n} of the annex, as amended.\n"));
    }
    let big_path = write(dir, "annex.txt", &big);
    alice.ok(&["nonpaper", "put", "talks", "--title", "Annex", &big_path]);
    settle(&cast.everyone());

    let list = bao.run(&["nonpaper", "list", "talks"]);
    assert!(list.status.success());
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(
        lines.iter().any(|l| l.starts_with("\"Framework\" v1") && l.contains(&format!("{} bytes", v1.len())))
    );
    assert!(lines.iter().any(|l| l.starts_with("\"Framework\" v2")), "{listed}");
    assert!(
        lines.iter().any(|l| l.starts_with("\"Annex\" v1") && l.contains(&format!("{} bytes", big.len())))
    );

    let show = |p: &Party, args: &[&str]| {
        let out = p.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (old, old_err) = show(bao, &["nonpaper", "show", "talks", "Framework", "--version", "1"]);
    assert_eq!(old, v1, "v1 as put (the CLI ends it with one newline)");
    let (latest, _) = show(bao, &["nonpaper", "show", "talks", "Framework"]);
    assert_eq!(latest, v2);
    let (diff, _) = show(bao, &["nonpaper", "diff", "talks", "Framework", "1", "2"]);
    assert!(diff.contains("-1. Phased withdrawal over 12 months."), "{diff}");
    assert!(diff.contains("+1. Phased withdrawal over 18 months."), "{diff}");
    assert!(diff.contains(" 2. Verification by a neutral monitor."), "unchanged lines are context: {diff}");
    assert!(!diff.contains("-2.") && !diff.contains("+2."), "{diff}");
    let (same, _) = show(bao, &["nonpaper", "diff", "talks", "Framework", "2", "2"]);
    assert!(same.contains("identical"), "{same}");
    let err = bao.fails(&["nonpaper", "show", "talks", "Framework", "--version", "3"]);
    assert!(err.contains("versions 1 to 2"), "{err}");

    for p in [bao, omar] {
        let (text, _) = show(p, &["nonpaper", "show", "talks", "Annex"]);
        assert_eq!(text.len(), big.len(), "the 1.2 MiB annex arrives whole");
        assert!(text == big, "the annex arrives byte for byte");
    }

    let said = listed + &old_err + &diff;
    assert!(!said.contains("Alice"), "non-paper output names its author: {said}");
    let arrivals: Vec<String> = entries(bao, "talks")
        .iter()
        .filter(|e| e["kind"] == "channel" && e["what"]["event"] == "paper_put")
        .map(|e| e.to_string())
        .collect();
    assert_eq!(arrivals.len(), 3, "{arrivals:?}");
    assert!(arrivals.iter().all(|t| t.contains("\"yours\":false") && !t.contains("Alice")), "{arrivals:?}");
    let shown = bao.ok(&["read", "talks"]);
    assert_eq!(shown.matches("arrived (").count(), 3, "{shown}");
}

/// Runs `ssh-keygen -Y verify` for `principal` in an export folder; `None` if it is not installed.
fn ssh_keygen_verify(dir: &Path, principal: &str) -> Option<std::process::Output> {
    let child = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(dir.join("allowed_signers"))
        .args(["-I", principal, "-n", "backchannel-agreement", "-s"])
        .arg(dir.join(format!("{principal}.sig")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run ssh-keygen: {e}"),
    };
    // A signature covers its signatory's statement (which names the text by its sha256).
    let text = std::fs::read(dir.join(format!("{principal}.statement"))).unwrap();
    // ssh-keygen may stop reading early when it fails; a broken pipe is its answer, not ours.
    let _ = child.stdin.take().unwrap().write_all(&text);
    Some(child.wait_with_output().unwrap())
}

fn have_ssh_keygen() -> bool {
    let found = Command::new("ssh-keygen").arg("-?").output().is_ok();
    if !found {
        assert!(
            std::env::var("BACKCHANNEL_REQUIRE_SSH_KEYGEN").as_deref() != Ok("1"),
            "BACKCHANNEL_REQUIRE_SSH_KEYGEN=1 but ssh-keygen is not on PATH"
        );
        eprintln!("notice: ssh-keygen is not on PATH; skipping the OpenSSH checks");
    }
    found
}

fn principals(dir: &Path) -> Vec<String> {
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["signatories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["principal"].as_str().unwrap().to_owned())
        .collect()
}

/// The base64 key a principal's line in allowed_signers holds.
fn principals_key(dir: &Path, principal: &str) -> String {
    let allowed = std::fs::read_to_string(dir.join("allowed_signers")).unwrap();
    let line = allowed.lines().find(|l| l.starts_with(&format!("{principal} "))).unwrap();
    line.split(' ').nth(3).unwrap().to_owned()
}

/// The review's forged SSHSIG: the identity point as key, R = identity, s = 0, which a
/// cofactorless verifier (and `ssh-keygen -Y verify` of OpenSSH 9.2) accepts for any text.
fn forged_signature() -> String {
    use base64::Engine;
    let s = |b: &[u8]| [&(b.len() as u32).to_be_bytes()[..], b].concat();
    let mut pk = [0u8; 32];
    pk[0] = 1;
    let pubblob = [s(b"ssh-ed25519"), s(&pk)].concat();
    let sigblob = [s(b"ssh-ed25519"), s(&[&pk[..], &[0u8; 32]].concat())].concat();
    let blob = [
        b"SSHSIG".to_vec(),
        1u32.to_be_bytes().to_vec(),
        s(&pubblob),
        s(b"backchannel-agreement"),
        s(b""),
        s(b"sha512"),
        s(&sigblob),
    ]
    .concat();
    let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
    let lines: Vec<&str> = b64.as_bytes().chunks(70).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN SSH SIGNATURE-----\n{}\n-----END SSH SIGNATURE-----\n", lines.join("\n"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

#[test]
fn an_agreement_is_ratified_by_both_sides_exported_and_verified_anywhere() {
    let cast = Cast::new(&[("Alice", "Delegation A"), ("Bao", "Delegation B")]);
    let (omar, alice, bao) = (&cast.omar, &cast.sides[0], &cast.sides[1]);
    cast.channel("talks", "direct");
    let everyone = cast.everyone();
    settle(&everyone);
    alice.ok(&["phase", "propose", "talks", "drafting"]);
    settle(&everyone);
    bao.ok(&["phase", "consent", "talks"]);
    settle(&everyone);
    let dir = cast.tmp.path();
    let text = "Framework for talks\n\n1. Phased withdrawal over 18 months.\n2. Talks resume in Geneva.\n";
    let file = write(dir, "framework.txt", text);

    let err = omar.fails(&["propose", "talks", &file, "--signatories", "Delegation A,Delegation Z"]);
    assert!(err.contains("\"Delegation Z\" is not a side"), "{err}");
    let out = omar.ok(&[
        "propose",
        "talks",
        &file,
        "--signatories",
        "Delegation A,Delegation B",
        "--title",
        "Framework",
    ]);
    let id = out.split("sha256 ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    assert_eq!(id.len(), 64, "{out}");
    settle(&everyone);

    let err = omar.fails(&["ratify", "talks", "1"]);
    assert!(err.contains("Oman is not a signatory of \"Framework\""), "{err}");
    let out = alice.ok(&["ratify", "talks", "Framework"]);
    assert!(out.contains("still to ratify: Delegation B"), "{out}");
    let err = alice.fails(&["ratify", "talks", &id[..8]]);
    assert!(err.contains("you already ratified \"Framework\""), "{err}");
    let early = dir.join("early");
    let out = alice.ok(&["agreement", "export", "talks", "1", early.to_str().unwrap()]);
    assert!(out.contains("not yet a complete agreement"), "{out}");
    assert!(out.contains("Delegation B has not signed"), "{out}");
    let err = alice.fails(&["agreement", "verify", early.to_str().unwrap()]);
    assert!(err.contains("does NOT verify") && err.contains("side Delegation B has not signed"), "{err}");

    let out = bao.ok(&["ratify", "talks", &id[..8]]);
    assert!(out.contains("every signatory has ratified"), "{out}");
    settle(&everyone);
    for p in &everyone {
        let status = p.ok(&["agreement", "status", "talks"]);
        assert!(status.contains("RATIFIED"), "{status}");
        let by = status.lines().find(|l| l.trim_start().starts_with("ratified by")).unwrap();
        assert!(by.contains("Alice (Delegation A)") && by.contains("Bao (Delegation B)"), "{status}");
    }

    let export = dir.join("agreement");
    let exported = export.to_str().unwrap();
    let out = omar.ok(&["agreement", "export", "talks", "1", exported]);
    assert!(out.contains("check it anywhere"), "{out}");
    assert_eq!(std::fs::read_to_string(export.join("agreement.txt")).unwrap(), text);
    let verified = omar.ok(&["agreement", "verify", exported]);
    assert!(verified.contains("agreement \"Framework\" holds"), "{verified}");
    assert!(verified.contains(&format!("text sha256 {id}")), "{verified}");
    assert!(
        verified.contains("Alice (Delegation A)") && verified.contains("Bao (Delegation B)"),
        "{verified}"
    );

    let mut signers = principals(&export);
    signers.sort();
    assert_eq!(signers, ["alice@delegation-a", "bao@delegation-b"]);
    let ssh = have_ssh_keygen();
    if ssh {
        for principal in &signers {
            let out = ssh_keygen_verify(&export, principal).unwrap();
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && said.contains("Good"),
                "{principal}: {said} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // One changed byte in the text.
    let changed = dir.join("changed");
    copy_dir(&export, &changed);
    std::fs::write(changed.join("agreement.txt"), text.replace("18 months", "19 months")).unwrap();
    let err = alice.fails(&["agreement", "verify", changed.to_str().unwrap()]);
    assert!(err.contains("the text was changed after signing"), "{err}");
    if ssh {
        // ssh-keygen checks the statement, which still verifies; it names the text by a hash
        // that the changed text no longer has.
        let out = ssh_keygen_verify(&changed, "alice@delegation-a").unwrap();
        assert!(out.status.success(), "the statement is unchanged");
        let statement = std::fs::read_to_string(changed.join("alice@delegation-a.statement")).unwrap();
        assert!(statement.contains(&format!("text-sha256: {id}\n")), "{statement}");
        let changed_hash = backchannel_wire::hex_encode(&backchannel_proto::agreement::text_hash(
            &std::fs::read(changed.join("agreement.txt")).unwrap(),
        ));
        assert_ne!(changed_hash, id);
    }

    // A signature file removed.
    let unsigned = dir.join("unsigned");
    copy_dir(&export, &unsigned);
    std::fs::remove_file(unsigned.join("bao@delegation-b.sig")).unwrap();
    let err = alice.fails(&["agreement", "verify", unsigned.to_str().unwrap()]);
    assert!(err.contains("bao@delegation-b.sig is missing"), "{err}");

    // A signatory dropped from the folder altogether.
    let dropped = dir.join("dropped");
    copy_dir(&export, &dropped);
    std::fs::remove_file(dropped.join("bao@delegation-b.sig")).unwrap();
    let allowed = std::fs::read_to_string(dropped.join("allowed_signers")).unwrap();
    let kept: String = allowed.lines().filter(|l| !l.starts_with("bao@")).map(|l| format!("{l}\n")).collect();
    std::fs::write(dropped.join("allowed_signers"), kept).unwrap();
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(dropped.join("manifest.json")).unwrap()).unwrap();
    manifest["signatories"].as_array_mut().unwrap().retain(|s| s["name"] != "Bao");
    std::fs::write(dropped.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let err = alice.fails(&["agreement", "verify", dropped.to_str().unwrap()]);
    assert!(err.contains("side Delegation B has not signed"), "{err}");

    // A foreign key in Bao's place: Omar's seal, in allowed_signers and the manifest.
    let foreign = dir.join("foreign");
    copy_dir(&export, &foreign);
    let (_, omar_seal) = omar.identity_keys();
    let omar_key =
        backchannel_proto::agreement::seal_public_key_openssh(&omar_seal.try_into().unwrap(), "").unwrap();
    let allowed = std::fs::read_to_string(foreign.join("allowed_signers")).unwrap();
    let swapped: String = allowed
        .lines()
        .map(|l| match l.strip_prefix("bao@delegation-b ") {
            Some(_) => format!("bao@delegation-b namespaces=\"backchannel-agreement\" {}\n", omar_key.trim()),
            None => format!("{l}\n"),
        })
        .collect();
    assert_ne!(swapped, allowed);
    std::fs::write(foreign.join("allowed_signers"), swapped).unwrap();
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(foreign.join("manifest.json")).unwrap()).unwrap();
    for s in manifest["signatories"].as_array_mut().unwrap() {
        if s["name"] == "Bao" {
            s["public_key"] = Value::String(format!("{} Bao (Delegation B)", omar_key.trim()));
        }
    }
    std::fs::write(foreign.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let err = alice.fails(&["agreement", "verify", foreign.to_str().unwrap()]);
    assert!(
        err.contains("Bao's signature (side Delegation B) was made by a key not in allowed_signers"),
        "{err}"
    );
    if ssh {
        let out = ssh_keygen_verify(&foreign, "bao@delegation-b").unwrap();
        assert!(!out.status.success(), "ssh-keygen accepts a foreign key");
    }

    // Bao's signature replaced by Alice's (signed by another identity).
    let resigned = dir.join("resigned");
    copy_dir(&export, &resigned);
    std::fs::copy(resigned.join("alice@delegation-a.sig"), resigned.join("bao@delegation-b.sig")).unwrap();
    let err = alice.fails(&["agreement", "verify", resigned.to_str().unwrap()]);
    assert!(err.contains("was made with Alice's key, not Bao's"), "{err}");
    if ssh {
        let out = ssh_keygen_verify(&resigned, "bao@delegation-b").unwrap();
        assert!(!out.status.success(), "ssh-keygen accepts another identity's signature");
    }

    // Issue 10, H2: Bao's key and signature replaced by a small-order key and the signature
    // (R = identity, s = 0) that fits any text (the review's forgery).
    let weak = dir.join("weak");
    copy_dir(&export, &weak);
    let weak_key = {
        let mut k = [0u8; 32];
        k[0] = 1;
        backchannel_proto::agreement::seal_public_key_openssh(&k, "").unwrap()
    };
    let bao_key = principals_key(&export, "bao@delegation-b");
    for file in ["allowed_signers", "manifest.json"] {
        let content = std::fs::read_to_string(weak.join(file)).unwrap();
        std::fs::write(weak.join(file), content.replace(&bao_key, weak_key.split(' ').nth(1).unwrap()))
            .unwrap();
    }
    std::fs::write(weak.join("bao@delegation-b.sig"), forged_signature()).unwrap();
    let err = alice.fails(&["agreement", "verify", weak.to_str().unwrap()]);
    assert!(err.contains("does NOT verify") && err.contains("Bao's seal key (side Delegation B)"), "{err}");
    assert!(err.contains(&format!("ssh-ed25519 01{}", "00".repeat(31))) && err.contains("weak"), "{err}");

    // Issue 10, M6: the manifest narrowed to one side, Bao and his files removed, retitled.
    let narrowed = dir.join("narrowed");
    copy_dir(&dropped, &narrowed);
    std::fs::remove_file(narrowed.join("bao@delegation-b.statement")).unwrap();
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(narrowed.join("manifest.json")).unwrap()).unwrap();
    manifest["required_sides"] = serde_json::json!(["Delegation A"]);
    manifest["title"] = Value::String("Framework (Delegation A's terms)".into());
    std::fs::write(narrowed.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let err = alice.fails(&["agreement", "verify", narrowed.to_str().unwrap()]);
    assert!(err.contains("does NOT verify") && err.contains("Alice signed the title \"Framework\""), "{err}");

    // Checked against the verifier's contacts.
    let out = omar.ok(&["agreement", "verify", exported, "--contacts"]);
    assert!(
        out.contains("Alice (Delegation A): matches the seal of your contact Alice (Delegation A)"),
        "{out}"
    );
    assert!(out.contains("Bao (Delegation B): matches the seal of your contact Bao (Delegation B)"), "{out}");
    let out = alice.ok(&["agreement", "verify", exported, "--contacts"]);
    assert!(out.contains("Alice (Delegation A): your own seal"), "{out}");
    assert!(out.contains("Bao (Delegation B): matches the seal of your contact Bao (Delegation B)"), "{out}");
    let stranger = Party::new(dir, "Eve", "Elsewhere");
    let err = stranger.fails(&["agreement", "verify", exported, "--contacts"]);
    assert!(err.contains("is not the seal of any of your contacts"), "{err}");
}

/// Runs a command that must fail saying `says`, then checks the store still works.
fn refused(p: &Party, args: &[&str], says: &str) {
    let err = p.fails(args);
    assert!(err.contains(says), "{args:?} should say {says:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    p.ok(&["channel", "list", "--json"]);
}

#[test]
fn bad_input_is_refused_clearly_and_leaves_the_stores_working() {
    let cast = Cast::new(&[("Alice", "Delegation A"), ("Bao", "Delegation B")]);
    let (omar, alice) = (&cast.omar, &cast.sides[0]);
    omar.ok(&["channel", "create", "talks"]);
    omar.ok(&["channel", "add", "talks", "Alice"]);
    alice.ok(&["sync"]);

    refused(
        omar,
        &["read", "NOPE"],
        "no contact or channel named \"NOPE\"; `backchannel contacts` and `backchannel channel list` list them",
    );
    refused(
        omar,
        &["channel", "members", "NOPE"],
        "no channel named \"NOPE\"; `backchannel channel list` lists them",
    );
    refused(omar, &["send", "NOPE", "hello"], "\"NOPE\"");
    refused(omar, &["channel", "remove", "talks", "Nobody"], "\"Nobody\" is not a member of talks");
    refused(omar, &["channel", "remove", "talks", "Bao"], "\"Bao\" is not a member of talks");
    refused(omar, &["channel", "remove", "talks", "Omar"], "the creator cannot leave");
    refused(alice, &["channel", "add", "talks", "Omar"], "only the creator of talks changes its members");
    refused(alice, &["channel", "remove", "talks", "Omar"], "only the creator of talks changes its members");
    refused(omar, &["channel", "add", "talks", "Zed"], "no contact named \"Zed\"");
    refused(omar, &["channel", "add", "talks", "Alice"], "Alice is already a member of talks");
    refused(
        omar,
        &["channel", "add", "talks", "Bao", "--role", "king"],
        "a role is principal, intermediary or observer",
    );
    refused(omar, &["channel", "create", "other", "--mode", "garbage"], "--mode is direct or shuttle");
    refused(
        omar,
        &["channel", "create", "other", "--mode", "shuttle", "--role", "principal"],
        "must be the intermediary",
    );
    refused(omar, &["channel", "create", "other", "--retention", "soon"], "not a duration");
    refused(omar, &["channel", "create", "TALKS"], "you already have a channel called");
    refused(omar, &["send", "talks", "--to", "Alice", "hi"], "--to is for the intermediary of a shuttle");
    refused(omar, &["forward", "talks", "1", "--to", "Alice"], "only the intermediary running shuttle talks");
    refused(alice, &["phase", "propose", "talks", "someday"], "unknown phase \"someday\"");
    refused(alice, &["nonpaper", "show", "talks", "Missing"], "no non-paper titled \"Missing\" in talks");
    refused(alice, &["ratify", "talks", "1"], "no proposal \"1\" in talks");

    let only = omar.json(&["channel", "list", "--json"]);
    assert_eq!(only.as_array().unwrap().len(), 1, "a refused create left a channel: {only}");
    let view = members(omar, "talks");
    assert_eq!(view["members"].as_array().unwrap().len(), 2, "{view}");
    let sent = omar.ok(&["send", "talks", "still talking after all that"]);
    assert!(sent.contains("sent to 1 member(s) of talks"), "{sent}");
    let got = alice.ok(&["sync"]);
    let at_alice = notes(alice, "talks");
    assert_eq!(with_text(&at_alice, "still talking after all that").len(), 1, "{got} {at_alice:?}");

    // Bao, who also knows Alice, gives his channel the same name: Alice names each by its creator.
    let bao = &cast.sides[1];
    introduce(bao, alice, &cast.relay);
    bao.ok(&["channel", "create", "talks"]);
    bao.ok(&["channel", "add", "talks", "Alice"]);
    alice.ok(&["sync"]);
    let err = alice.fails(&["read", "talks"]);
    assert!(err.contains("more than one channel called \"talks\""), "{err}");
    assert!(err.contains("talks@Omar") && err.contains("talks@Bao"), "says how to name each: {err}");
    refused(alice, &["channel", "create", "talks"], "you already have a channel called \"talks\"");
    let out = alice.ok(&["send", "talks@bao", "to Bao's talks only"]);
    assert!(out.contains("sent to 1 member(s) of talks@bao"), "{out}");
    bao.ok(&["sync"]);
    assert_eq!(with_text(&notes(bao, "talks"), "to Bao's talks only").len(), 1);
    assert_eq!(with_text(&notes(alice, "talks@Omar"), "to Bao's talks only").len(), 0);
    assert_eq!(with_text(&notes(alice, "talks@Bao"), "to Bao's talks only").len(), 1);
    assert_eq!(alice.json(&["channel", "list", "--json"]).as_array().unwrap().len(), 2);
}

#[test]
fn notes_past_the_channels_retention_are_deleted_at_both_ends() {
    let cast = Cast::new(&[("Alice", "Delegation A")]);
    let (omar, alice) = (&cast.omar, &cast.sides[0]);
    // Long enough that a `read` right after the `sync` (a new process deriving the store key
    // on a loaded machine) still finds the note.
    omar.ok(&["channel", "create", "brief", "--retention", "5s"]);
    omar.ok(&["channel", "add", "brief", "Alice"]);
    alice.ok(&["sync"]);
    let view = members(alice, "brief");
    assert_eq!(view["policy"]["retention_secs"], 5, "the member holds the creator's policy: {view}");
    let text = "This note should not outlive the meeting.";
    omar.ok(&["send", "brief", text]);
    let synced = alice.ok(&["sync"]);
    assert!(synced.contains(text), "{synced}");
    assert_eq!(with_text(&notes(alice, "brief"), text).len(), 1, "kept within the retention");
    std::thread::sleep(std::time::Duration::from_secs(6));
    for p in [omar, alice] {
        let all = serde_json::to_string(&entries(p, "brief")).unwrap();
        assert!(!all.contains(text), "kept past its retention: {all}");
    }
    // The channel still works afterwards.
    omar.ok(&["send", "brief", "a fresh note"]);
    alice.ok(&["sync"]);
    assert_eq!(with_text(&notes(alice, "brief"), "a fresh note").len(), 1);
}

mod library {
    //! Through the library, where the order of arrivals can be forced: a member removed by the
    //! creator that has not synced its removal still posts; a ratification overtakes the
    //! proposal it seals (the proposal comes over a relay that is down for a while); two
    //! non-papers cross. Omar reaches Alice over a second relay, so that stopping it holds
    //! back everything Omar sends Alice while the rest flows over the first.

    use std::net::SocketAddr;
    use std::path::Path;
    use std::time::Duration;

    use backchannel_client::{Engine, EngineConfig, Entry, Event, Mode, Passphrase, Phase, Role, Why};
    use backchannel_relay::{RelayOptions, RunningRelay};

    async fn relay(dir: &Path, listen: SocketAddr) -> RunningRelay {
        let mut opts = RelayOptions::new(listen, dir);
        opts.config.shutdown_grace = Duration::from_millis(200);
        backchannel_relay::start(opts).await.unwrap()
    }

    async fn settle(parties: &[&Engine]) {
        for _ in 0..4 {
            for p in parties {
                p.sync_once().await.unwrap();
            }
        }
    }

    /// An engine that acts without taking in what waits first, so a test can make messages
    /// cross (as they do when parties act at the same moment).
    fn engine(dir: &Path, name: &str, side: &str) -> Engine {
        let config = EngineConfig { catch_up_before_acting: false, ..EngineConfig::default() };
        Engine::init(dir, &pass(), name, side, config).unwrap()
    }

    fn pass() -> Passphrase {
        Passphrase::new("library test passphrase".into())
    }

    /// Two relays, and a direct channel "talks" run by Omar with Alice and Bao, settled.
    /// Omar and Alice talk over `second`; everything else goes over `first`.
    struct World {
        first: RunningRelay,
        second: Option<RunningRelay>,
        second_at: SocketAddr,
        omar: Engine,
        alice: Engine,
        bao: Engine,
        tmp: tempfile::TempDir,
    }

    impl World {
        async fn new() -> World {
            let tmp = tempfile::tempdir().unwrap();
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let first = relay(&tmp.path().join("first"), any).await;
            let second = relay(&tmp.path().join("second"), any).await;
            let second_at = second.local_addr();
            let omar = engine(&tmp.path().join("omar"), "Omar", "Oman");
            let alice = engine(&tmp.path().join("alice"), "Alice", "Delegation A");
            let bao = engine(&tmp.path().join("bao"), "Bao", "Delegation B");
            let invitation = omar.invite(second.address(), 3600).await.unwrap();
            alice.accept(&invitation).await.unwrap();
            let invitation = omar.invite(first.address(), 3600).await.unwrap();
            bao.accept(&invitation).await.unwrap();
            omar.sync_once().await.unwrap();
            // Alice uses only the second relay; the introduction to Bao asks her to connect
            // to the first, which peers cannot make her do without her leave.
            alice.allow_relay(first.address()).unwrap();
            omar.channel_create("talks", Mode::Direct, Role::Intermediary, None).unwrap();
            omar.channel_add("talks", "Alice", Role::Principal).await.unwrap();
            omar.channel_add("talks", "Bao", Role::Principal).await.unwrap();
            settle(&[&omar, &alice, &bao]).await;
            let at_bao = bao.channel("talks").unwrap();
            assert!(at_bao.members.iter().all(|m| m.you || m.connected), "{at_bao:?}");
            World { first, second: Some(second), second_at, omar, alice, bao, tmp }
        }

        async fn settle(&mut self) {
            settle(&[&self.omar, &self.alice, &self.bao]).await;
        }

        async fn stop_second(&mut self) {
            self.second.take().unwrap().shutdown().await;
        }

        async fn restart_second(&mut self) {
            self.second = Some(relay(&self.tmp.path().join("second"), self.second_at).await);
        }

        async fn shutdown(self) {
            self.first.shutdown().await;
            if let Some(second) = self.second {
                second.shutdown().await;
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_removed_member_that_has_not_heard_yet_cannot_post_to_the_channel() {
        let w = World::new().await;
        w.omar.channel_remove("talks", "Bao").await.unwrap();
        let heard = w.alice.sync_once().await.unwrap();
        let removed = |e: &Event| {
            matches!(e, Event::Entry { entry: Entry::Channel { what: backchannel_client::ChannelEvent::MemberRemoved { name, side }, .. }, .. }
                if name == "Bao" && side == "Delegation B")
        };
        assert!(heard.events.iter().any(removed), "{heard:?}");

        // Bao has not synced: it still believes it is a member, and fans out to both.
        assert!(!w.bao.channel("talks").unwrap().removed);
        let sneaky = "Posted by Bao after its removal.";
        let out = w.bao.channel_note("talks", sneaky, &[]).unwrap();
        assert_eq!(out.sealed, 2, "{out:?}");
        assert_eq!(w.bao.flush().await.unwrap().sent, 2);

        let not_a_member = |why: &Option<Why>| {
            matches!(why, Some(Why::SenderNotMember { name, .. }) if name == "Bao")
                || matches!(
                    why,
                    Some(Why::Channel { refused: backchannel_proto::channel::Refused::NotMember { .. } })
                )
        };
        for (who, p) in [("Alice", &w.alice), ("Omar", &w.omar)] {
            let report = p.sync_once().await.unwrap();
            assert!(
                !report.events.iter().any(
                    |e| matches!(e, Event::Entry { entry: Entry::Note { text, .. }, .. } if text == sneaky)
                ),
                "{who} shows the removed member's note: {report:?}"
            );
            assert!(
                report
                    .events
                    .iter()
                    .any(|e| matches!(e, Event::Entry { entry: Entry::Rejected { from, why, .. }, .. }
                    if from == "Bao" && not_a_member(why))),
                "{who} does not report the refusal: {report:?}"
            );
            let timeline = p.read("talks").unwrap();
            assert!(
                !timeline.iter().any(|e| matches!(&e.entry, Entry::Note { text, .. } if text == sneaky)),
                "{who}'s timeline shows the note"
            );
            assert!(
                timeline.iter().any(|e| matches!(&e.entry, Entry::Rejected { from, why, .. }
                    if from == "Bao" && not_a_member(why))),
                "{who}'s timeline does not show the rejection: {timeline:?}"
            );
        }

        // Once Bao syncs, it knows, and refuses to post itself.
        w.bao.sync_once().await.unwrap();
        assert!(w.bao.channel("talks").unwrap().removed);
        let err = w.bao.channel_note("talks", "again", &[]).unwrap_err();
        assert!(
            matches!(&err, backchannel_client::ClientError::Refused { why: Why::RemovedFromChannel { channel } } if channel == "talks"),
            "{err}"
        );
        w.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_ratification_that_overtakes_its_proposal_still_counts() {
        let mut w = World::new().await;
        w.alice.phase_consent("talks", Some(Phase::Drafting)).await.unwrap();
        w.settle().await;
        w.bao.phase_consent("talks", None).await.unwrap();
        w.settle().await;
        assert_eq!(w.alice.channel("talks").unwrap().phase, Phase::Drafting);

        let sides = ["Delegation A".to_owned(), "Delegation B".to_owned()];
        let (proposal, _) =
            w.omar.propose("talks", "Framework", "1. Talks resume in Geneva.\n", &sides).await.unwrap();
        // The proposal waits on the second relay, which goes down; Bao's seal goes over the first.
        w.stop_second().await;
        w.bao.sync_once().await.unwrap();
        w.bao.ratify("talks", &proposal.id).await.unwrap();
        let early = w.alice.sync_once().await.unwrap();
        assert!(!early.unreachable.is_empty(), "the second relay should be down: {early:?}");
        w.restart_second().await;
        w.alice.sync_once().await.unwrap();

        let at_alice = w.alice.proposals("talks").unwrap();
        assert_eq!(at_alice.len(), 1, "{at_alice:?}");
        assert_eq!(at_alice[0].ratified_by, ["Bao (Delegation B)"], "Bao's seal was lost: {at_alice:?}");
        w.alice.ratify("talks", &proposal.id).await.unwrap();
        w.alice.agreement("talks", &proposal.id).unwrap().verify().unwrap();
        w.settle().await;
        for p in [&w.omar, &w.bao] {
            p.agreement("talks", &proposal.id).unwrap().verify().unwrap();
        }
        w.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_members_first_note_that_overtakes_its_admission_is_not_lost() {
        let mut w = World::new().await;
        // Alice and Bao are contacts now (talks introduced them): a second channel needs no
        // introduction, so Bao can write the moment it hears it was added.
        w.omar.channel_create("second", Mode::Direct, Role::Intermediary, None).unwrap();
        w.omar.channel_add("second", "Alice", Role::Principal).await.unwrap();
        w.alice.sync_once().await.unwrap();
        w.omar.channel_add("second", "Bao", Role::Principal).await.unwrap();
        w.stop_second().await;
        w.bao.sync_once().await.unwrap();
        let first = "Bao's first words in the second channel.";
        let out = w.bao.channel_note("second", first, &[]).unwrap();
        assert_eq!(out.sealed, 2, "{out:?}");
        w.bao.flush().await.unwrap();
        w.alice.sync_once().await.unwrap();
        w.restart_second().await;
        w.alice.sync_once().await.unwrap();
        let timeline = w.alice.read("second").unwrap();
        assert!(
            timeline.iter().any(|e| matches!(&e.entry, Entry::Note { text, .. } if text == first)),
            "a legitimate member's note was refused for good: {timeline:?}"
        );
        w.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crossing_non_papers_get_the_same_version_numbers_everywhere() {
        let mut w = World::new().await;
        w.alice.nonpaper_put("talks", "Draft", "Alice's wording.\n").await.unwrap();
        w.bao.nonpaper_put("talks", "Draft", "Bao's wording.\n").await.unwrap();
        w.settle().await;
        let mut firsts = Vec::new();
        for p in [&w.omar, &w.alice, &w.bao] {
            assert_eq!(p.nonpapers("talks").unwrap().len(), 2);
            firsts.push(p.nonpaper("talks", "Draft", Some(1)).unwrap().1);
        }
        assert!(
            firsts.iter().all(|t| t == &firsts[0]),
            "v1 of \"Draft\" differs (Omar, Alice, Bao): {firsts:?}"
        );
        w.shutdown().await;
    }
}
