//! Bad input gets a clear error and loses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]

mod support;

use support::{Pair, Party, Relay, introduce};

#[test]
fn bad_invitations_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = Relay::start(&tmp.path().join("relay"), 0);
    let alice = Party::new(tmp.path(), "Alice", "A");
    let bao = Party::new(tmp.path(), "Bao", "B");
    let carol = Party::new(tmp.path(), "Carol", "C");

    assert!(bao.fails(&["accept", "hello there"]).contains("not a Backchannel invitation"));
    assert!(bao.fails(&["accept", "backchannel:@@@"]).contains("damaged"));
    let text = alice.ok(&["invite", "--relay", &relay.address]).trim().to_owned();
    assert!(bao.fails(&["accept", &text[..text.len() - 20]]).contains("damaged"));
    assert!(alice.fails(&["accept", &text]).contains("your own invitation"));

    let out = bao.run_with(&["accept", "-"], &bao.passphrase, Some(&format!("{text}\n")));
    assert!(out.status.success(), "accept from stdin: {}", String::from_utf8_lossy(&out.stderr));
    assert!(bao.fails(&["accept", &text]).contains("already accepted"));
    // Another party trying the same invitation: the inviter refuses the second answer.
    carol.ok(&["accept", &text]);
    let sync = alice.ok(&["sync"]);
    assert_eq!(alice.json(&["contacts", "--json"]).as_array().unwrap().len(), 1, "{sync}");

    let short = alice.ok(&["invite", "--relay", &relay.address, "--expires", "1s"]).trim().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(bao.fails(&["accept", &short]).contains("expired"));
    assert!(alice.fails(&["invite", "--relay", "bcr://nowhere"]).contains("fingerprint"));
}

#[test]
fn wrong_passphrase_and_unknown_names_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = Relay::start(&tmp.path().join("relay"), 0);
    let alice = Party::new(tmp.path(), "Alice", "A");
    let bao = Party::new(tmp.path(), "Bao", "B");
    introduce(&alice, &bao, &relay);

    let out = alice.run_with(&["whoami"], "not my passphrase", None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    assert!(alice.fails(&["send", "Zhou", "hello"]).contains("no contact named"));
    assert!(alice.fails(&["read", "Zhou"]).contains("no contact or channel named"));
    assert!(alice.fails(&["init", "--name", "Again", "--side", "A"]).contains("already exists"));
    let nobody = Party { home: tmp.path().join("nobody"), passphrase: "x".into() };
    assert!(nobody.fails(&["whoami"]).contains("backchannel init"));
    // Nothing was lost by the failures: the session still works.
    alice.ok(&["send", "Bao", "still here"]);
    bao.ok(&["sync"]);
    assert!(bao.ok(&["read", "Alice"]).contains("still here"));
}

#[test]
fn a_note_to_a_queue_the_relay_no_longer_has_is_reported_not_resent_forever() {
    let Pair { tmp: _tmp, mut relay, alice, bao: _ } = Pair::introduced();
    relay.stop();
    // Queue 1 is Alice's (made with the invitation), queue 2 is Bao's (made when he accepted).
    let db = rusqlite::Connection::open(relay.data.join("relay.db")).unwrap();
    assert_eq!(db.execute("DELETE FROM queues WHERE id = 2", []).unwrap(), 1);
    drop(db);
    relay.restart();
    assert!(alice.fails(&["send", "Bao", "into the void"]).contains("not delivered"));
    assert!(alice.ok(&["sync"]).contains("still queued 0"), "not resent forever");
    let entries = alice.json(&["read", "Bao", "--json"]);
    let refused = entries.as_array().unwrap().iter().find(|e| e["kind"] == "rejected").unwrap();
    assert_eq!(refused["why"]["code"], "queue_gone", "{refused}");
    assert!(alice.ok(&["read", "Bao"]).contains("the relay no longer has this contact's queue"));
}

/// A relay whose store is full refuses sends with a clear message; the refused note waits in
/// the sender's outbox, everything stored before is delivered intact, and once the recipient
/// has taken its notes (freeing space) the waiting note goes through.
#[test]
fn a_full_relay_refuses_sends_clearly_and_damages_nothing() {
    let Pair { tmp, relay: _relay, alice, bao } = Pair::introduced_on(&["--max-store-mb".into(), "1".into()]);
    let big = |i: usize| format!("note {i}: {}", "x".repeat(200 * 1024));
    let mut stored = Vec::new();
    let mut refused = None;
    for i in 0..12 {
        // Too long for a command-line argument: from a file.
        let file = tmp.path().join(format!("note-{i}.txt"));
        std::fs::write(&file, big(i)).unwrap();
        let out = alice.run(&["send", "Bao", "--file", file.to_str().unwrap()]);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "a full relay is not the sender's failure: {stderr}");
        if stdout.contains("sent to Bao") {
            stored.push(i);
            continue;
        }
        assert!(stdout.contains("queued for Bao"), "{stdout}");
        assert!(stderr.contains("disk is full"), "the user is told why: {stderr}");
        eprintln!(
            "relay full after {} notes of 200 KB; the sender was told: {}",
            stored.len(),
            stderr.trim()
        );
        refused = Some(i);
        break;
    }
    let refused = refused.expect("a 1 MB store cannot take 12 notes of 200 KB");
    assert!(!stored.is_empty(), "some notes fit before the store filled");

    bao.ok(&["sync"]);
    let texts = |p: &Party| -> Vec<String> {
        p.json(&["read", "Alice", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "note")
            .map(|e| e["text"].as_str().unwrap().to_owned())
            .collect()
    };
    let got = texts(&bao);
    for i in &stored {
        assert_eq!(got.iter().filter(|t| **t == big(*i)).count(), 1, "stored note {i} arrives intact, once");
    }
    assert!(alice.ok(&["sync"]).contains("still queued 0"), "the waiting note goes once space is freed");
    bao.ok(&["sync"]);
    assert_eq!(
        texts(&bao).iter().filter(|t| **t == big(refused)).count(),
        1,
        "the refused note arrives once"
    );
}
