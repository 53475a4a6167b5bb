//! End to end with the real binary: two parties and a relay on 127.0.0.1, the whole exchange,
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]
//! and a search of the relay's files for what it must never hold.

mod support;

use support::{Pair, Party, Relay, contains, introduce};

/// Names searched for in the relay's files must be long enough that random bytes (ciphertext,
/// fingerprints) cannot hold them by chance: a 3-byte name matches ~1 in 2^24 positions.
const BAO: &str = "Bao Zhang";
const ALICE: &str = "Alice";

#[test]
fn two_parties_negotiate_through_a_relay_that_learns_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = Relay::start(&tmp.path().join("relay"), 0);
    let alice = Party::new(tmp.path(), ALICE, "Delegation A");
    let bao = Party::new(tmp.path(), BAO, "Delegation B");
    introduce(&alice, &bao, &relay);

    let a_contacts = alice.json(&["contacts", "--json"]);
    let b_contacts = bao.json(&["contacts", "--json"]);
    assert_eq!(a_contacts[0]["name"], BAO);
    assert_eq!(a_contacts[0]["side"], "Delegation B");
    assert_eq!(b_contacts[0]["name"], ALICE);
    assert_eq!(a_contacts[0]["safety_number"], b_contacts[0]["safety_number"], "safety numbers match");
    assert_eq!(a_contacts[0]["verified"], false);
    alice.ok(&["verify", BAO]);
    assert_eq!(alice.json(&["contacts", "--json"])[0]["verified"], true);

    let opening = "We could accept a ceasefire line along the river, subject to monitoring.";
    let reply = "Monitoring by whom? Our principals would want a neutral party.";
    alice.ok(&["send", BAO, opening]);
    let synced = bao.ok(&["sync"]);
    assert!(synced.contains(opening), "sync prints what arrived: {synced}");
    bao.ok(&["send", ALICE, reply]);
    alice.ok(&["sync"]);

    let notes = bao.json(&["read", ALICE, "--json"]);
    let note = notes.as_array().unwrap().iter().find(|n| n["kind"] == "note").unwrap();
    assert_eq!(note["from"], ALICE);
    assert_eq!(note["text"], opening);
    assert!(note["sent_at"].as_u64().unwrap() > 1_700_000_000_000);
    let at_alice = alice.json(&["read", BAO, "--json"]);
    assert!(at_alice.as_array().unwrap().iter().any(|n| n["text"] == reply && n["from"] == BAO));
    // Exactly once: a second sync shows nothing new.
    bao.ok(&["sync"]);
    let again = bao.json(&["read", ALICE, "--json"]);
    assert_eq!(again.as_array().unwrap().iter().filter(|n| n["text"] == opening).count(), 1);

    // Leave one note on the relay, then search everything it stores.
    let pending = "Thursday in Muscat, if the draft holds.";
    alice.ok(&["send", BAO, pending]);
    let held = relay.all_bytes();
    assert!(held.len() > 4096, "the relay holds the pending block");
    let (a_id, a_seal) = alice.identity_keys();
    let (b_id, b_seal) = bao.identity_keys();
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("opening", opening.as_bytes().to_vec()),
        ("reply", reply.as_bytes().to_vec()),
        ("pending note", pending.as_bytes().to_vec()),
        (ALICE, ALICE.as_bytes().to_vec()),
        (BAO, BAO.as_bytes().to_vec()),
        ("side", b"Delegation".to_vec()),
        ("alice identity key", a_id),
        ("alice seal key", a_seal),
        ("bao identity key", b_id),
        ("bao seal key", b_seal),
    ];
    for (what, needle) in &needles {
        assert!(!contains(&held, needle), "the relay's files contain the {what}");
    }
    // The search itself can fail: the parties' own (encrypted) stores hold ciphertext only too.
    let alice_store = std::fs::read(alice.home.join("party.db")).unwrap();
    assert!(!contains(&alice_store, opening.as_bytes()), "client store is encrypted");
    bao.ok(&["sync"]);
    assert!(bao.ok(&["read", ALICE]).contains(pending));
}

#[test]
fn a_note_waits_in_the_outbox_while_the_relay_is_down() {
    let Pair { tmp: _tmp, mut relay, alice, bao } = Pair::introduced();

    relay.stop();
    let out = alice.run(&["send", "Bao", "sent while the host was down"]);
    assert!(out.status.success(), "send succeeds by queueing");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("queued"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
    let sync = alice.run(&["sync"]);
    assert!(sync.status.success());
    assert!(String::from_utf8_lossy(&sync.stdout).contains("still queued 1"));

    relay.restart();
    assert!(alice.ok(&["sync"]).contains("sent 1"));
    bao.ok(&["sync"]);
    let notes = bao.json(&["read", "Alice", "--json"]);
    assert_eq!(
        notes.as_array().unwrap().iter().filter(|n| n["text"] == "sent while the host was down").count(),
        1
    );
    // Mid-exchange restart: keep talking.
    bao.ok(&["send", "Alice", "received after the restart"]);
    relay.restart();
    alice.ok(&["sync"]);
    assert!(alice.ok(&["read", "Bao"]).contains("received after the restart"));
}

#[test]
fn watch_prints_notes_as_they_arrive() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let relay = Relay::start(&tmp.path().join("relay"), 0);
    let alice = Party::new(tmp.path(), ALICE, "A");
    let bao = Party::new(tmp.path(), BAO, "B");
    introduce(&alice, &bao, &relay);
    let mut watcher = std::process::Command::new(support::BIN)
        .arg("watch")
        .env("BACKCHANNEL_HOME", &bao.home)
        .env("BACKCHANNEL_PASSPHRASE", &bao.passphrase)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    alice.ok(&["send", BAO, "live over the websocket"]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let got = rx.recv_timeout(std::time::Duration::from_secs(15));
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(got.unwrap().contains("live over the websocket"));
}
