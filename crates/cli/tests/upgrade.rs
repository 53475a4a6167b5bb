//! Stores written by the previous version (commit 19b80cd, before the engine rewrite) still
//! open with this binary, and what the old version wrote still shows: contacts, direct notes,
//! channel notes and events, non-papers, a ratified agreement and a probe's result. Then the
//! relay is started again on the old relay's data and port, and a note goes through.
//!
//! The fixture (tests/fixtures/store-19b80cd) was made by its `make.sh` with the old binary;
//! see its README. It is copied to a temp dir first: the committed files are never touched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{Party, Relay, wait_until};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-19b80cd");
const PASSPHRASE: &str = "fixture passphrase";
const QUIET: &str = "sent 0, received 0, still queued 0";

/// Both tests hold copies of the same identities: while one runs a relay on the fixture's port,
/// the other must not be able to reach it and take what is meant for the first one's copies.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const DRAFT_V1: &str =
    "Framework for talks\n\n1. Phased withdrawal over 12 months.\n2. Verification by a neutral monitor.";
const DRAFT_V2: &str = "Framework for talks\n\n1. Phased withdrawal over 18 months.\n2. Verification by a neutral monitor, reporting to both sides.";

/// The channel notes, in order, as (sender, text): every member holds all four.
const CHANNEL_NOTES: [(&str, &str); 4] = [
    ("Alice", "Alice in talks: thank you both for coming."),
    ("Bao", "Bao in talks: we are ready to discuss the timetable."),
    ("Omar", "Omar in talks: let us first see whether your timetables overlap."),
    ("Bao", "Bao in talks: see you in Geneva."),
];

/// The fixture's three homes and relay data, copied into a temp dir.
struct Copy {
    tmp: tempfile::TempDir,
    alice: Party,
    bao: Party,
    omar: Party,
}

impl Copy {
    fn new() -> Copy {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(Path::new(FIXTURE), tmp.path());
        let party = |name: &str| Party { home: tmp.path().join(name), passphrase: PASSPHRASE.to_owned() };
        let (alice, bao, omar) = (party("alice"), party("bao"), party("omar"));
        Copy { tmp, alice, bao, omar }
    }

    fn relay_data(&self) -> PathBuf {
        self.tmp.path().join("relay")
    }

    fn all(&self) -> [(&str, &Party); 3] {
        [("Alice", &self.alice), ("Bao", &self.bao), ("Omar", &self.omar)]
    }
}

/// Copies the fixture's folders (the homes and the relay's data), not the script or README.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if from != Path::new(FIXTURE) {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn array(v: Value) -> Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not a JSON array: {v}")).clone()
}

/// `read NAME --json`.
fn read(p: &Party, name: &str) -> Vec<Value> {
    array(p.json(&["read", name, "--json"]))
}

/// The notes of a timeline as (from, outgoing, text).
fn notes(entries: &[Value]) -> Vec<(String, bool, String)> {
    entries
        .iter()
        .filter(|e| e["kind"] == "note")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_else(|| panic!("{k} in {e}")).to_owned();
            (s("from"), e["outgoing"].as_bool().unwrap_or_else(|| panic!("outgoing in {e}")), s("text"))
        })
        .collect()
}

/// Expected notes, `me` writing the outgoing ones.
fn expect(me: &str, list: &[(&str, &str)]) -> Vec<(String, bool, String)> {
    list.iter().map(|(from, text)| ((*from).to_owned(), *from == me, (*text).to_owned())).collect()
}

/// The texts of the old version's channel events (kind `event`).
fn events(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["kind"] == "event")
        .map(|e| e["text"].as_str().unwrap_or_else(|| panic!("an event without text: {e}")).to_owned())
        .collect()
}

fn kinds(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|e| e["kind"].as_str().unwrap_or_else(|| panic!("no kind: {e}"))).collect()
}

/// `contacts --json` as (name, side, verified) sorted by name, and each one's safety number.
fn contacts(p: &Party, relay: &str) -> Vec<(String, String, bool, String)> {
    let mut all: Vec<_> = array(p.json(&["contacts", "--json"]))
        .iter()
        .map(|c| {
            assert_eq!(c["relay"], relay, "every contact is reached through the fixture's relay: {c}");
            let s = |k: &str| c[k].as_str().unwrap_or_else(|| panic!("{k} in {c}")).to_owned();
            (s("name"), s("side"), c["verified"].as_bool().unwrap(), s("safety_number"))
        })
        .collect();
    all.sort();
    all
}

fn fixture_address() -> String {
    std::fs::read_to_string(Path::new(FIXTURE).join("relay/address")).unwrap().trim().to_owned()
}

#[test]
fn stores_written_by_the_previous_version_open_and_show_what_it_wrote() {
    let _alone = one_at_a_time();
    let copy = Copy::new();
    let address = fixture_address();

    for (name, p) in copy.all() {
        let me = p.json(&["whoami", "--json"]);
        assert_eq!(me["name"], name, "{me}");
        let side = match name {
            "Alice" => "Delegation A",
            "Bao" => "Delegation B",
            _ => "Oman",
        };
        assert_eq!(me["side"], side, "{me}");
        let wrong = p.run_with(&["whoami"], "not the fixture passphrase", None);
        assert!(!wrong.status.success(), "{name}'s old store opens with a wrong passphrase");
    }

    // Contacts: Alice and Bao met through the channel; only Alice verified someone (Omar).
    let (alice, bao, omar) =
        (contacts(&copy.alice, &address), contacts(&copy.bao, &address), contacts(&copy.omar, &address));
    let names = |cs: &[(String, String, bool, String)]| -> Vec<(String, String, bool)> {
        cs.iter().map(|(n, s, v, _)| (n.clone(), s.clone(), *v)).collect()
    };
    let c = |n: &str, s: &str, v: bool| (n.to_owned(), s.to_owned(), v);
    assert_eq!(names(&alice), [c("Bao", "Delegation B", false), c("Omar", "Oman", true)]);
    assert_eq!(names(&bao), [c("Alice", "Delegation A", false), c("Omar", "Oman", false)]);
    assert_eq!(names(&omar), [c("Alice", "Delegation A", false), c("Bao", "Delegation B", false)]);
    // Each pair computes the same safety number from the keys its store kept.
    assert_eq!(alice[0].3, bao[0].3, "Alice–Bao safety numbers");
    assert_eq!(alice[1].3, omar[0].3, "Alice–Omar safety numbers");
    assert_eq!(bao[1].3, omar[1].3, "Bao–Omar safety numbers");

    direct_threads(&copy);
    channel_timelines(&copy);
    channel_documents(&copy);
    probes(&copy);
}

/// The direct notes, both ways, and what the old version recorded beside them: a session
/// set up, a block rejected (Alice) and a gap still open (Bao).
fn direct_threads(copy: &Copy) {
    let alice_omar = read(&copy.alice, "Omar");
    assert_eq!(kinds(&alice_omar), ["joined", "note", "note", "rejected"], "{alice_omar:?}");
    assert_eq!(alice_omar[0]["from"], "Omar");
    assert_eq!(
        notes(&alice_omar),
        expect(
            "Alice",
            &[
                ("Alice", "Alice to Omar: are you free to carry a message?"),
                ("Omar", "Omar to Alice: yes, send it when ready."),
            ]
        )
    );
    let rejected = &alice_omar[3];
    assert_eq!(rejected["from"], "Omar", "{rejected}");
    assert!(
        rejected["detail"].as_str().is_some_and(|d| d.contains("block failed authentication")),
        "the old version's reason, in its words: {rejected}"
    );
    let text = copy.alice.ok(&["read", "Omar"]);
    assert!(text.contains("rejected (queue of Omar): block failed authentication"), "{text}");

    let bao_omar = read(&copy.bao, "Omar");
    assert_eq!(kinds(&bao_omar), ["joined", "note", "note", "gap", "note"], "{bao_omar:?}");
    assert_eq!(
        notes(&bao_omar),
        expect(
            "Bao",
            &[
                ("Bao", "Bao to Omar: we hear you have been talking to the other side."),
                ("Omar", "Omar to Bao: I have; shall we meet in a channel?"),
                ("Omar", "Omar to Bao: this one arrives after a gap."),
            ]
        )
    );
    let gap = &bao_omar[3];
    assert_eq!((&gap["from"], &gap["first"], &gap["last"]), (&"Omar".into(), &2.into(), &2.into()), "{gap}");
    assert_eq!(gap["still_missing"], serde_json::json!([[2, 2]]), "the dropped note never arrived: {gap}");
    assert_eq!(bao_omar[4]["seq"], 3, "{}", bao_omar[4]);

    let omar_alice = read(&copy.omar, "Alice");
    assert_eq!(kinds(&omar_alice), ["joined", "note", "note", "note"], "{omar_alice:?}");
    assert_eq!(
        notes(&omar_alice),
        expect(
            "Omar",
            &[
                ("Alice", "Alice to Omar: are you free to carry a message?"),
                ("Omar", "Omar to Alice: yes, send it when ready."),
                ("Omar", "Omar to Alice: this note is altered on the relay."),
            ]
        )
    );
    let omar_bao = read(&copy.omar, "Bao");
    assert_eq!(
        notes(&omar_bao),
        expect(
            "Omar",
            &[
                ("Bao", "Bao to Omar: we hear you have been talking to the other side."),
                ("Omar", "Omar to Bao: I have; shall we meet in a channel?"),
                ("Omar", "Omar to Bao: this note is dropped by the relay."),
                ("Omar", "Omar to Bao: this one arrives after a gap."),
            ]
        )
    );
    // Alice and Bao met in the channel: a session, no notes.
    for (p, other) in [(&copy.alice, "Bao"), (&copy.bao, "Alice")] {
        let thread = read(p, other);
        assert_eq!(kinds(&thread), ["joined"], "{thread:?}");
        assert_eq!(thread[0]["from"], other);
    }
}

/// `read talks`: the four notes, and the old version's events with their old text.
fn channel_timelines(copy: &Copy) {
    // (party, how many events the old version wrote, some of their texts)
    let expected: [(&str, &Party, usize, &[&str]); 3] = [
        (
            "Alice",
            &copy.alice,
            19,
            &[
                "Omar added you; members: Omar, Alice",
                "Bao (Delegation B) joined as principal",
                "Bao accepted probe ",
                "you consent to moving to drafting",
                "the phase is now drafting",
                "non-paper \"Framework\" v1 arrived (96 bytes)",
                "non-paper \"Framework\" v2 arrived (121 bytes)",
                "Omar proposed \"Framework\" (b7cd3dec8936) for ratification by Delegation A, Delegation B",
                "you ratified \"Framework\"",
                "Bao (Delegation B) ratified \"Framework\"",
                "\"Framework\" is ratified by every signatory",
                "the phase is now agreed",
            ],
        ),
        (
            "Bao",
            &copy.bao,
            17,
            &[
                "Omar added you; members: Omar, Alice, Bao",
                "introducing you to Alice (Delegation A)",
                "you accepted probe ",
                "Alice (Delegation A) consents to moving to drafting",
                "Alice (Delegation A) ratified \"Framework\"",
                "the phase is now agreed",
            ],
        ),
        (
            "Omar",
            &copy.omar,
            15,
            &[
                "you created talks (direct channel)",
                "Alice (Delegation A) joined as principal",
                "Bao (Delegation B) joined as principal",
                "every side consented: the phase is now drafting",
                "non-paper \"Framework\" v1 put (96 bytes)",
                "you proposed \"Framework\" (b7cd3dec8936) for ratification by Delegation A, Delegation B",
                "every side consented: the phase is now agreed",
            ],
        ),
    ];
    for (name, p, count, wanted) in expected {
        let timeline = read(p, "talks");
        assert_eq!(notes(&timeline), expect(name, &CHANNEL_NOTES), "{name}'s channel notes");
        let events = events(&timeline);
        assert_eq!(events.len(), count, "{name}'s old channel events: {events:#?}");
        assert_eq!(
            timeline.len(),
            count + CHANNEL_NOTES.len(),
            "{name}: nothing else in talks: {timeline:?}"
        );
        for w in wanted {
            assert!(events.iter().any(|e| e.starts_with(w)), "{name} lost the event {w:?}: {events:#?}");
        }
        if name != "Omar" {
            assert!(
                events.iter().any(|e| e.contains("on \"months until withdrawal\": zone non-empty")),
                "{name}'s probe result event: {events:#?}"
            );
        }
        let text = p.ok(&["read", "talks"]);
        assert!(text.contains("the phase is now agreed"), "{name}: {text}");
        assert!(text.contains("Bao in talks: see you in Geneva."), "{name}: {text}");
    }
}

/// Members, non-papers and the ratified agreement.
fn channel_documents(copy: &Copy) {
    for (name, p) in copy.all() {
        let view = p.json(&["channel", "members", "talks", "--json"]);
        assert_eq!((&view["mode"], &view["phase"]), (&"direct".into(), &"agreed".into()), "{view}");
        assert_eq!(view["removed"], false, "{view}");
        let members: Vec<(String, String, String, bool, bool)> = array(view["members"].clone())
            .iter()
            .map(|m| {
                let s = |k: &str| m[k].as_str().unwrap_or_else(|| panic!("{k} in {m}")).to_owned();
                (
                    s("name"),
                    s("side"),
                    s("role"),
                    m["creator"].as_bool().unwrap(),
                    m["you"].as_bool().unwrap(),
                )
            })
            .collect();
        let m = |n: &str, s: &str, r: &str, creator: bool| (n.into(), s.into(), r.into(), creator, n == name);
        assert_eq!(
            members,
            [
                m("Omar", "Oman", "intermediary", true),
                m("Alice", "Delegation A", "principal", false),
                m("Bao", "Delegation B", "principal", false),
            ],
            "{name}: {view}"
        );

        let list = p.ok(&["nonpaper", "list", "talks"]);
        assert!(list.contains("\"Framework\" v1  96 bytes"), "{name}: {list}");
        assert!(list.contains("\"Framework\" v2  121 bytes"), "{name}: {list}");
        assert_eq!(list.lines().count(), 2, "{name}: {list}");
        assert_eq!(p.ok(&["nonpaper", "show", "talks", "Framework", "--version", "1"]).trim_end(), DRAFT_V1);
        assert_eq!(p.ok(&["nonpaper", "show", "talks", "Framework", "--version", "2"]).trim_end(), DRAFT_V2);
        assert_eq!(p.ok(&["nonpaper", "show", "talks", "Framework"]).trim_end(), DRAFT_V2, "latest");

        // The old version's seals signed the bare text; today a seal signs a statement naming
        // the channel, title, sides and signer. The old ones are shown, not counted.
        let status = p.ok(&["agreement", "status", "talks"]);
        assert!(
            status.contains("talks #1 \"Framework\"  b7cd3dec8936  awaiting Delegation A, Delegation B"),
            "{name}: {status}"
        );
        let stale = status
            .lines()
            .find(|l| l.contains("ratified with an earlier version"))
            .unwrap_or_else(|| panic!("{status}"));
        assert!(
            stale.contains("Alice (Delegation A)") && stale.contains("Bao (Delegation B)"),
            "{name}: {status}"
        );
    }
    // An export holds only seals that count: none yet, so it is not an agreement.
    let out = copy.tmp.path().join("agreement");
    let exported = copy.omar.ok(&["agreement", "export", "talks", "1", out.to_str().unwrap()]);
    assert!(exported.contains("not yet a complete agreement"), "{exported}");
    let text = std::fs::read_to_string(out.join(backchannel_proto::agreement::TEXT_FILE)).unwrap();
    assert_eq!(text.trim_end(), DRAFT_V2);
}

/// The probe Alice proposed and Bao accepted, run to its result in the old version.
fn probes(copy: &Copy) {
    for (p, with, by_you) in [(&copy.alice, "Bao", true), (&copy.bao, "Alice", false)] {
        let log = array(p.json(&["probe", "log", "talks", "--json"]));
        assert_eq!(log.len(), 1, "{log:?}");
        let probe = &log[0];
        assert_eq!(probe["with"], with, "{probe}");
        assert_eq!(probe["proposed_by_you"], by_you, "{probe}");
        assert_eq!(probe["you_ask"], by_you, "Alice asks: {probe}");
        assert_eq!(probe["status"], "done", "{probe}");
        assert_eq!(probe["result"], serde_json::json!({"Zone": {"non_empty": true}}), "{probe}");
        assert_eq!(probe["input_given"], true, "{probe}");
        assert!(probe["terms"].to_string().contains("months until withdrawal"), "{probe}");
        let id = probe["id"].as_str().unwrap();
        let text = p.ok(&["probe", "log", "talks"]);
        assert!(text.contains(&id[..8]) && text.contains("zone non-empty"), "{text}");
    }
    assert_eq!(array(copy.omar.json(&["probe", "log", "talks", "--json"])), Vec::<Value>::new());
}

/// Syncs `p` until a round is quiet; returns what it printed.
fn sync_until_quiet(p: &Party) -> String {
    let mut all = String::new();
    for _ in 0..6 {
        let out = p.ok(&["sync"]);
        all.push_str(&out);
        if out.trim_end().ends_with(QUIET) {
            return all;
        }
    }
    panic!("still exchanging after 6 rounds:\n{all}");
}

#[test]
fn after_the_upgrade_a_note_goes_through_the_old_relays_data_exactly_once() {
    let _alone = one_at_a_time();
    let copy = Copy::new();
    // The contacts' addresses pin the old relay's host, port and certificate: the new relay
    // starts on its data (the same certificate) and its port. Another run of this test may
    // hold the port for a while.
    let address = fixture_address();
    let port: u16 = address.rsplit_once('#').unwrap().0.rsplit_once(':').unwrap().1.parse().unwrap();
    wait_until(&format!("port {port} to be free (another run of this test?)"), || {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    });
    // A long TTL: the relay purges queues idle for longer than its TTL, and the fixture's
    // queues have been idle since it was made.
    let relay = Relay::start_full(&copy.relay_data(), port, &[], &["--ttl".into(), "36500d".into()]);
    assert_eq!(relay.address, address, "the same certificate and port as the old relay");

    for (name, p) in copy.all() {
        let out = sync_until_quiet(p);
        assert!(!out.contains("REJECTED") && !out.contains("warning"), "{name}'s first sync: {out}");
    }

    const AFTER: &str = "Alice to Omar, after the upgrade: still here.";
    let sent = copy.alice.ok(&["send", "Omar", AFTER]);
    assert!(sent.contains("sent to Omar"), "{sent}");
    let mut arrived = String::new();
    for _ in 0..5 {
        arrived.push_str(&copy.omar.ok(&["sync"]));
        if arrived.contains(AFTER) {
            break;
        }
    }
    assert!(arrived.contains(AFTER), "Omar's syncs printed: {arrived}");
    sync_until_quiet(&copy.omar);

    let at_omar = read(&copy.omar, "Alice");
    let got: Vec<_> = notes(&at_omar).into_iter().filter(|(_, _, t)| t == AFTER).collect();
    assert_eq!(got, [("Alice".to_owned(), false, AFTER.to_owned())], "exactly once, from Alice");
    let new = at_omar.iter().find(|e| e["text"] == AFTER).unwrap();
    assert_eq!(new["seq"], 2, "numbered after Alice's old note #1: {new}");
    assert_eq!(notes(&at_omar).len(), 4, "the old notes are still there: {at_omar:?}");
    let at_alice = notes(&read(&copy.alice, "Omar"));
    assert_eq!(at_alice.iter().filter(|(_, out, t)| *out && t == AFTER).count(), 1, "{at_alice:?}");

    // The sides ratify again, now over signed statements; the agreement then holds anywhere.
    for p in [&copy.alice, &copy.bao] {
        p.ok(&["ratify", "talks", "1"]);
    }
    for (_, p) in copy.all() {
        sync_until_quiet(p);
    }
    let status = copy.omar.ok(&["agreement", "status", "talks"]);
    assert!(status.contains("RATIFIED") && !status.contains("earlier version"), "{status}");
    let out = copy.tmp.path().join("agreement");
    copy.omar.ok(&["agreement", "export", "talks", "1", out.to_str().unwrap()]);
    let verified = copy.alice.ok(&["agreement", "verify", out.to_str().unwrap(), "--contacts"]);
    assert!(verified.contains("Alice (Delegation A): your own seal"), "{verified}");
    assert!(verified.contains("Bao (Delegation B): matches the seal of your contact Bao"), "{verified}");
}
