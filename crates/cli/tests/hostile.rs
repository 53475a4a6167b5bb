//! A hostile host: the relay's database is edited between runs to drop, replay, alter, inject
//! and swap blocks. The receiving party must never show altered, injected or replayed content
//! as genuine, must show a gap for what was dropped, and must close it when the block arrives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]

mod support;

use rusqlite::{Connection, params};
use support::{Pair, Party, Relay};

/// A stored block: (queue row id, seq, bytes).
type Row = (i64, i64, Vec<u8>);

fn db(relay: &Relay) -> Connection {
    Connection::open(relay.data.join("relay.db")).unwrap()
}

fn rows(relay: &Relay) -> Vec<Row> {
    let c = db(relay);
    let mut s = c.prepare("SELECT queue, seq, data FROM blocks ORDER BY queue, seq").unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

fn insert(relay: &Relay, queue: i64, data: &[u8]) {
    let c = db(relay);
    let seq: i64 = c.query_row("SELECT next_seq FROM queues WHERE id = ?1", [queue], |r| r.get(0)).unwrap();
    c.execute(
        "INSERT INTO blocks (queue, seq, stored_at, data) VALUES (?1, ?2, strftime('%s','now'), ?3)",
        params![queue, seq, data],
    )
    .unwrap();
    c.execute("UPDATE queues SET next_seq = next_seq + 1, stored = stored + 1 WHERE id = ?1", [queue])
        .unwrap();
}

fn delete(relay: &Relay, row: &Row) {
    let c = db(relay);
    c.execute("DELETE FROM blocks WHERE queue = ?1 AND seq = ?2", params![row.0, row.1]).unwrap();
    c.execute("UPDATE queues SET stored = stored - 1 WHERE id = ?1", [row.0]).unwrap();
}

fn overwrite(relay: &Relay, row: &Row, data: &[u8]) {
    db(relay)
        .execute("UPDATE blocks SET data = ?3 WHERE queue = ?1 AND seq = ?2", params![row.0, row.1, data])
        .unwrap();
}

/// Sends a note while the relay runs, then stops the relay and returns the new block rows.
fn send_and_capture(alice: &Party, relay: &mut Relay, to: &str, text: &str) -> Vec<Row> {
    let before = rows(relay);
    alice.ok(&["send", to, text]);
    relay.stop();
    rows(relay).into_iter().filter(|r| !before.contains(r)).collect()
}

fn entries(party: &Party, with: &str, kind: &str) -> Vec<serde_json::Value> {
    let all = party.json(&["read", with, "--json"]);
    all.as_array().unwrap().iter().filter(|e| e["kind"] == kind).cloned().collect()
}

fn texts(party: &Party, with: &str) -> Vec<String> {
    entries(party, with, "note")
        .iter()
        .filter(|n| n["outgoing"] == false)
        .map(|n| n["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn hostile_host_is_detected_in_every_scenario() {
    let Pair { tmp: _tmp, mut relay, alice, bao } = Pair::introduced();
    let mut scenarios = 0;

    // 1. Replay: a block Bao already received and acknowledged is put back.
    let n1 = send_and_capture(&alice, &mut relay, "Bao", "note one");
    assert_eq!(n1.len(), 1, "a short note is one block");
    relay.restart();
    bao.ok(&["sync"]);
    relay.stop();
    insert(&relay, n1[0].0, &n1[0].2);
    relay.restart();
    bao.ok(&["sync"]);
    assert_eq!(texts(&bao, "Alice"), ["note one"], "replay delivered once");
    scenarios += 1;

    // 2. Alter a single bit: rejected and shown as such, never as a note.
    let n2 = send_and_capture(&alice, &mut relay, "Bao", "note two (to be altered)");
    let mut altered = n2[0].2.clone();
    altered[2000] ^= 0x01;
    overwrite(&relay, &n2[0], &altered);
    relay.restart();
    bao.ok(&["sync"]);
    assert!(!texts(&bao, "Alice").iter().any(|t| t.contains("altered")));
    assert_eq!(entries(&bao, "Alice", "rejected").len(), 1, "the user is told");
    scenarios += 1;

    // 3. Inject a block of the host's own: rejected.
    relay.stop();
    insert(&relay, n2[0].0, &vec![0x42; n2[0].2.len()]);
    relay.restart();
    bao.ok(&["sync"]);
    assert_eq!(entries(&bao, "Alice", "rejected").len(), 2);
    scenarios += 1;

    // 4. Truncate a block (its tail lost, the size kept, as the relay stores one size): rejected.
    let n4 = send_and_capture(&alice, &mut relay, "Bao", "note four (to be truncated)");
    let mut truncated = n4[0].2[..1000].to_vec();
    truncated.resize(n4[0].2.len(), 0);
    overwrite(&relay, &n4[0], &truncated);
    relay.restart();
    bao.ok(&["sync"]);
    assert!(!texts(&bao, "Alice").iter().any(|t| t.contains("truncated")));
    assert_eq!(entries(&bao, "Alice", "rejected").len(), 3);
    scenarios += 1;

    // 5. Drop a block, let a later one through: a gap is shown; it closes when the block arrives.
    let n5 = send_and_capture(&alice, &mut relay, "Bao", "note five (held back)");
    delete(&relay, &n5[0]);
    relay.restart();
    alice.ok(&["send", "Bao", "note six"]);
    bao.ok(&["sync"]);
    let held_seq = entries(&alice, "Bao", "note")
        .iter()
        .find(|n| n["text"] == "note five (held back)")
        .and_then(|n| n["seq"].as_u64())
        .unwrap();
    let gap_of_held = |party: &Party| -> Vec<serde_json::Value> {
        let covers = |g: &serde_json::Value| {
            g["first"].as_u64() <= Some(held_seq) && g["last"].as_u64() >= Some(held_seq)
        };
        entries(party, "Alice", "gap").into_iter().filter(covers).collect()
    };
    let missing = |party: &Party| -> Vec<u64> {
        gap_of_held(party)
            .iter()
            .flat_map(|g| g["still_missing"].as_array().unwrap().clone())
            .flat_map(|r| r[0].as_u64().unwrap()..=r[1].as_u64().unwrap())
            .collect()
    };
    assert!(gap_of_held(&bao).iter().all(|g| g["open"] == true), "a gap is shown and open");
    assert!(missing(&bao).contains(&held_seq));
    relay.stop();
    insert(&relay, n5[0].0, &n5[0].2);
    relay.restart();
    bao.ok(&["sync"]);
    assert!(texts(&bao, "Alice").contains(&"note five (held back)".to_owned()));
    assert!(!missing(&bao).contains(&held_seq), "the gap closed where the note arrived");
    // The notes the host destroyed (altered, truncated) stay missing.
    assert_eq!(missing(&bao).len(), 2, "{:?}", gap_of_held(&bao));
    scenarios += 1;

    // 6. Swap: a block for Bao put into Alice's queue (sealed under another queue's key).
    bao.ok(&["send", "Alice", "bao to alice"]);
    alice.ok(&["sync"]);
    let n7 = send_and_capture(&alice, &mut relay, "Bao", "note seven (swapped)");
    let alice_queue: i64 = db(&relay)
        .query_row("SELECT id FROM queues WHERE id != ?1", [n7[0].0], |r| r.get(0))
        .expect("exactly two queues: one inbox each");
    delete(&relay, &n7[0]);
    insert(&relay, alice_queue, &n7[0].2);
    relay.restart();
    alice.ok(&["sync"]);
    bao.ok(&["sync"]);
    assert!(!texts(&alice, "Bao").iter().any(|t| t.contains("swapped")));
    assert_eq!(entries(&alice, "Bao", "rejected").len(), 1, "Alice is told");
    assert!(!texts(&bao, "Alice").iter().any(|t| t.contains("swapped")));
    scenarios += 1;

    // 7. Duplicate delivery of a fresh block (at-least-once): shown once.
    let n8 = send_and_capture(&alice, &mut relay, "Bao", "note eight (duplicated)");
    insert(&relay, n8[0].0, &n8[0].2);
    relay.restart();
    bao.ok(&["sync"]);
    assert_eq!(texts(&bao, "Alice").iter().filter(|t| t.contains("duplicated")).count(), 1);
    scenarios += 1;

    // 8. Reorder: two fresh blocks handed out in the wrong order. Both are shown once; the
    // gap the later one opens closes when the earlier one arrives.
    let first = send_and_capture(&alice, &mut relay, "Bao", "note nine (sent first)");
    relay.restart();
    let second = send_and_capture(&alice, &mut relay, "Bao", "note ten (sent second)");
    overwrite(&relay, &first[0], &second[0].2);
    overwrite(&relay, &second[0], &first[0].2);
    relay.restart();
    bao.ok(&["sync"]);
    let got = texts(&bao, "Alice");
    for t in ["note nine (sent first)", "note ten (sent second)"] {
        assert_eq!(got.iter().filter(|g| *g == t).count(), 1, "{t:?} shown once: {got:?}");
    }
    let at = |t: &str| got.iter().position(|g| g == t).unwrap();
    assert!(at("note ten (sent second)") < at("note nine (sent first)"), "delivered in the host's order");
    let nine_seq = entries(&alice, "Bao", "note")
        .iter()
        .find(|n| n["text"] == "note nine (sent first)")
        .and_then(|n| n["seq"].as_u64())
        .unwrap();
    let opened: Vec<_> = entries(&bao, "Alice", "gap")
        .into_iter()
        .filter(|g| g["first"].as_u64() <= Some(nine_seq) && g["last"].as_u64() >= Some(nine_seq))
        .collect();
    assert!(!opened.is_empty(), "the overtaking note opened a gap");
    assert!(
        opened.iter().all(|g| !g["still_missing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r[0].as_u64() <= Some(nine_seq) && r[1].as_u64() >= Some(nine_seq))),
        "and it closed: {opened:?}"
    );
    scenarios += 1;

    // The session survives all of it.
    alice.ok(&["send", "Bao", "still talking"]);
    bao.ok(&["sync"]);
    assert!(texts(&bao, "Alice").contains(&"still talking".to_owned()));
    eprintln!(
        "hostile host: {scenarios} scenarios, {} rejections shown",
        entries(&bao, "Alice", "rejected").len()
    );
}

/// The blocks of `relay` that are not in `before`.
fn new_rows(relay: &Relay, before: &[Row]) -> Vec<Row> {
    rows(relay).into_iter().filter(|r| !before.contains(r)).collect()
}

/// A note the acceptor sends right after its Hello, handed to the inviter *before* the Hello
/// (the host reordered them), is neither dropped nor refused: it stays on the relay,
/// unacknowledged, until the Hello has made the session, and is then shown once, with no gap
/// (as threat-model.md §3.1 and protocol.md §13 say).
#[test]
fn a_note_the_host_hands_over_before_the_hello_is_kept_until_the_session_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(&tmp.path().join("relay"), 0);
    let alice = Party::new(tmp.path(), "Alice", "A");
    let bao = Party::new(tmp.path(), "Bao", "B");
    let invitation = alice.ok(&["invite", "--relay", &relay.address]);
    relay.stop();
    let start = rows(&relay);
    relay.restart();
    bao.ok(&["accept", invitation.trim()]);
    relay.stop();
    let hello = new_rows(&relay, &start);
    assert!(!hello.is_empty(), "the Hello is on the relay");
    let queue = hello[0].0;
    let after_hello = rows(&relay);
    relay.restart();
    bao.ok(&["send", "Alice", "an early note"]);
    relay.stop();
    let note: Vec<Row> = new_rows(&relay, &after_hello).into_iter().filter(|r| r.0 == queue).collect();
    assert!(!note.is_empty(), "the note went to the invitation's queue");
    // The host hands the note's blocks out first, then the Hello's.
    let mut seqs: Vec<i64> = hello.iter().chain(&note).filter(|r| r.0 == queue).map(|r| r.1).collect();
    seqs.sort_unstable();
    let reordered = note.iter().chain(hello.iter().filter(|r| r.0 == queue));
    for (seq, row) in seqs.into_iter().zip(reordered) {
        overwrite(&relay, &(queue, seq, Vec::new()), &row.2);
    }
    relay.restart();
    alice.ok(&["sync"]);
    alice.ok(&["sync"]);
    assert_eq!(texts(&alice, "Bao"), ["an early note"]);
    assert!(entries(&alice, "Bao", "rejected").is_empty(), "{:?}", entries(&alice, "Bao", "rejected"));
    assert!(entries(&alice, "Bao", "gap").is_empty(), "no gap: the note was not lost");
}

/// M2: frames that never complete (the host, or anyone holding the queue's key, keeps back
/// the last block of each) are bounded per inbox: beyond 16, the oldest are acknowledged, so
/// they leave the relay and its quota, and the conversation says how many never arrived whole.
/// Before, none was ever acknowledged and each stayed until the relay's TTL.
#[test]
fn frames_that_never_complete_are_bounded_acknowledged_and_reported() {
    const MAX_PARTIAL_FRAMES: usize = 16;
    let Pair { tmp: _tmp, mut relay, alice, bao } = Pair::introduced();
    let long = |i: usize| format!("note {i}: {}", "y".repeat(6000));
    let mut partial: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
    let mut cut = Vec::new();
    let mut kept: Vec<Vec<(i64, i64)>> = Vec::new();
    for i in 0..MAX_PARTIAL_FRAMES + 2 {
        let blocks = send_and_capture(&alice, &mut relay, "Bao", &long(i));
        let mut by_queue: std::collections::BTreeMap<i64, Vec<Row>> = std::collections::BTreeMap::new();
        for row in blocks {
            by_queue.entry(row.0).or_default().push(row);
        }
        for (queue, mut rows) in by_queue {
            if rows.len() < 2 {
                continue; // not this note (a receipt or other short frame)
            }
            rows.sort_by_key(|r| r.1);
            cut.push(rows.pop().unwrap());
            kept.push(rows.iter().map(|r| (r.0, r.1)).collect());
            *partial.entry(queue).or_default() += 1;
        }
        relay.restart();
    }
    relay.stop();
    for row in &cut {
        delete(&relay, row);
    }
    relay.restart();
    bao.ok(&["sync"]);
    let expected: usize = partial.values().map(|n| n.saturating_sub(MAX_PARTIAL_FRAMES)).sum();
    assert!(expected >= 2, "the test cut more frames than an inbox keeps in pieces: {partial:?}");
    let dropped: u64 = entries(&bao, "Alice", "rejected")
        .iter()
        .filter(|e| e["why"]["code"] == "incomplete")
        .map(|e| e["why"]["frames"].as_u64().unwrap())
        .sum();
    assert_eq!(dropped, expected as u64, "{:?}", entries(&bao, "Alice", "rejected"));
    assert!(texts(&bao, "Alice").iter().all(|t| !t.starts_with("note ")), "nothing incomplete is shown");
    relay.stop();
    let on_relay: Vec<(i64, i64)> = rows(&relay).iter().map(|r| (r.0, r.1)).collect();
    let still_there = kept.iter().filter(|f| f.iter().any(|b| on_relay.contains(b))).count();
    let in_pieces: usize = partial.values().map(|n| (*n).min(MAX_PARTIAL_FRAMES)).sum();
    assert_eq!(still_there, in_pieces, "the dropped frames' blocks were acknowledged and left the relay");
}
