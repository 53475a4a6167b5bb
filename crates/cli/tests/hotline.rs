//! Several hosts per contact, with the real binary: every note over every route and shown
//! once; a host killed mid-exchange loses nothing; hosts left and added without a new
//! invitation (leaving one that is down); one-time invitations (the second acceptor is told);
//! receipts (delivered), and a host that stores a block and then loses it (not confirmed,
//! sent again, then delivered).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]

mod support;

use serde_json::Value;
use support::{Party, Relay, wait_until};

/// Two relays and two parties who met through an invitation naming both.
struct Two {
    _tmp: tempfile::TempDir,
    a: Relay,
    b: Relay,
    alice: Party,
    bao: Party,
}

impl Two {
    fn new() -> Two {
        let tmp = tempfile::tempdir().unwrap();
        let a = Relay::start(&tmp.path().join("relay-a"), 0);
        let b = Relay::start(&tmp.path().join("relay-b"), 0);
        let alice = Party::new(tmp.path(), "Alice", "A");
        let bao = Party::new(tmp.path(), "Bao", "B");
        let invitation = alice.ok(&["invite", "--relay", &a.address, "--relay", &b.address]);
        bao.ok(&["accept", invitation.trim()]);
        // Alice takes the Hello and moves to fresh inboxes; Bao takes them; Alice hears that
        // he did and deletes the invitation's queues.
        alice.ok(&["sync"]);
        bao.ok(&["sync"]);
        alice.ok(&["sync"]);
        Two { _tmp: tmp, a, b, alice, bao }
    }
}

fn routes(party: &Party, contact: &str) -> Vec<Value> {
    party.json(&["contact", contact, "relays", "--json"]).as_array().unwrap().clone()
}

/// (direction, relay) of every route not being left.
fn current(routes: &[Value]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = routes
        .iter()
        .filter(|r| r["note"].is_null())
        .map(|r| (r["direction"].as_str().unwrap().to_owned(), r["relay"].as_str().unwrap().to_owned()))
        .collect();
    out.sort();
    out
}

fn notes<'a>(entries: &'a Value, text: &str) -> Vec<&'a Value> {
    entries.as_array().unwrap().iter().filter(|e| e["kind"] == "note" && e["text"] == text).collect()
}

fn status(party: &Party, with: &str, text: &str) -> String {
    let entries = party.json(&["read", with, "--json"]);
    let mine = notes(&entries, text);
    assert_eq!(mine.len(), 1, "{text:?} once: {entries}");
    mine[0]["delivery"]["status"].as_str().unwrap_or("none").to_owned()
}

#[test]
fn every_note_goes_over_both_hosts_is_shown_once_and_a_dead_host_loses_nothing() {
    let mut t = Two::new();
    let both = |r: &Relay| r.address.clone();
    let expected = {
        let mut e = vec![
            ("in".to_owned(), both(&t.a)),
            ("in".to_owned(), both(&t.b)),
            ("out".to_owned(), both(&t.a)),
            ("out".to_owned(), both(&t.b)),
        ];
        e.sort();
        e
    };
    assert_eq!(current(&routes(&t.alice, "Bao")), expected, "two routes each way");
    assert_eq!(current(&routes(&t.bao, "Alice")), expected);
    let contacts = t.alice.json(&["contacts", "--json"]);
    assert_eq!(contacts[0]["routes"].as_array().unwrap().len(), 4, "{contacts}");

    for text in ["one", "two", "three"] {
        t.bao.ok(&["send", "Alice", text]);
    }
    t.alice.ok(&["sync"]);
    let got = t.alice.json(&["read", "Bao", "--json"]);
    for text in ["one", "two", "three"] {
        assert_eq!(notes(&got, text).len(), 1, "{text:?} shown once though it came twice: {got}");
    }
    assert!(got.as_array().unwrap().iter().all(|e| e["kind"] != "gap" && e["kind"] != "rejected"), "{got}");
    // Alice's device confirmed them: Bao sees them delivered.
    t.bao.ok(&["sync"]);
    assert_eq!(status(&t.bao, "Alice", "three"), "delivered");

    // One host dies for good in the middle of the exchange: nothing is lost, nothing doubled.
    t.a.stop();
    t.bao.ok(&["send", "Alice", "while a host is down"]);
    assert_eq!(status(&t.bao, "Alice", "while a host is down"), "sent");
    t.alice.ok(&["sync"]);
    t.alice.ok(&["send", "Bao", "answer while a host is down"]);
    t.bao.ok(&["sync"]);
    assert_eq!(status(&t.bao, "Alice", "while a host is down"), "delivered", "confirmed over the other host");
    let got = t.bao.json(&["read", "Alice", "--json"]);
    assert_eq!(notes(&got, "answer while a host is down").len(), 1, "{got}");
    // The confirmation took the dead host's copy out of the outbox: nothing waits for it.
    assert_eq!(t.bao.json(&["outbox", "list", "--json"]).as_array().unwrap().len(), 0);
    let down: Vec<Value> = routes(&t.bao, "Alice")
        .into_iter()
        .filter(|r| r["direction"] == "out" && r["relay"] == t.a.address.as_str())
        .collect();
    assert_eq!(down[0]["state"], "down", "the failed delivery shows: {down:?}");

    // The host comes back with what it stored: copies already taken in are dropped.
    t.a.restart();
    t.alice.ok(&["sync"]);
    t.bao.ok(&["sync"]);
    for (party, with, text) in
        [(&t.alice, "Bao", "while a host is down"), (&t.bao, "Alice", "answer while a host is down")]
    {
        let got = party.json(&["read", with, "--json"]);
        assert_eq!(notes(&got, text).len(), 1, "{text:?} once after the host came back: {got}");
    }
}

#[test]
fn a_second_acceptor_is_told_the_invitation_was_used() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = Relay::start(&tmp.path().join("relay"), 0);
    let alice = Party::new(tmp.path(), "Alice", "A");
    let bao = Party::new(tmp.path(), "Bao", "B");
    let chen = Party::new(tmp.path(), "Chen", "C");
    let invitation = alice.ok(&["invite", "--relay", &relay.address]);
    bao.ok(&["accept", invitation.trim()]);
    alice.ok(&["sync"]);
    bao.ok(&["sync"]);
    alice.ok(&["sync"]);
    let err = chen.fails(&["accept", invitation.trim()]);
    assert!(err.contains("already used by someone else"), "{err}");
    assert_eq!(chen.json(&["contacts", "--json"]).as_array().unwrap().len(), 0, "nothing kept");
    // The capability in the text is gone: Alice and Bao go on over their fresh inboxes.
    bao.ok(&["send", "Alice", "after the move"]);
    alice.ok(&["sync"]);
    assert_eq!(notes(&alice.json(&["read", "Bao", "--json"]), "after the move").len(), 1);
}

#[test]
fn a_host_is_left_while_it_is_down_and_another_added_without_a_new_invitation() {
    let mut t = Two::new();
    let tmp = tempfile::tempdir().unwrap();
    let c = Relay::start(&tmp.path().join("relay-c"), 0);
    t.a.stop();
    let out = t.alice.ok(&["contact", "Bao", "drop-relay", &t.a.address]);
    assert!(out.contains("leaving host"), "{out}");
    t.bao.ok(&["sync"]);
    t.alice.ok(&["sync"]);
    t.bao.ok(&["sync"]);
    let only_b = |p: &Party, with: &str| {
        let mut e = vec![("in".to_owned(), t.b.address.clone()), ("out".to_owned(), t.b.address.clone())];
        e.sort();
        assert_eq!(current(&routes(p, with)), e, "only host B is in use");
    };
    only_b(&t.alice, "Bao");
    only_b(&t.bao, "Alice");
    // The last host cannot be dropped: that would cut the line.
    let err = t.alice.fails(&["contact", "Bao", "drop-relay", &t.b.address]);
    assert!(err.contains("only host between you"), "{err}");

    // A new host: Alice adds it; Bao, who never used it, is asked first.
    t.alice.ok(&["contact", "Bao", "add-relay", &c.address]);
    t.bao.ok(&["sync"]);
    let asked = t.bao.ok(&["read", "Alice"]);
    assert!(asked.contains("relays allow"), "{asked}");
    t.bao.ok(&["relays", "allow", &c.address]);
    t.bao.ok(&["sync"]);
    t.alice.ok(&["sync"]);
    t.bao.ok(&["sync"]);
    let mut both = vec![
        ("in".to_owned(), t.b.address.clone()),
        ("in".to_owned(), c.address.clone()),
        ("out".to_owned(), t.b.address.clone()),
        ("out".to_owned(), c.address.clone()),
    ];
    both.sort();
    assert_eq!(current(&routes(&t.alice, "Bao")), both);
    assert_eq!(current(&routes(&t.bao, "Alice")), both);
    // B dies too: the line goes on over C alone.
    t.b.stop();
    t.alice.ok(&["send", "Bao", "over the new host"]);
    t.bao.ok(&["sync"]);
    assert_eq!(notes(&t.bao.json(&["read", "Alice", "--json"]), "over the new host").len(), 1);
}

#[test]
fn a_hotline_note_a_host_stored_then_lost_shows_not_confirmed_and_is_sent_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(&tmp.path().join("relay"), 0);
    let alice = Party::new(tmp.path(), "Alice", "A");
    let bao = Party::new(tmp.path(), "Bao", "B");
    support::introduce(&alice, &bao, &relay);
    bao.ok(&["sync"]);
    alice.ok(&["sync"]);
    alice.ok(&["channel", "create", "line", "--hotline", "--heartbeat", "1s"]);
    alice.ok(&["channel", "add", "line", "Bao", "--role", "principal"]);
    bao.ok(&["sync"]);
    alice.ok(&["sync"]);
    alice.ok(&["send", "line", "first"]);
    bao.ok(&["sync"]);
    alice.ok(&["sync"]);
    assert_eq!(status(&alice, "line", "first"), "delivered");

    // The host answers "stored", then loses the block before Bao fetches it.
    let before = blocks(&relay);
    alice.ok(&["send", "line", "lost by the host"]);
    relay.stop();
    let db = rusqlite::Connection::open(relay.data.join("relay.db")).unwrap();
    let mut stmt = db.prepare("SELECT queue, seq FROM blocks WHERE rowid > ?1").unwrap();
    let lost: Vec<(i64, i64)> =
        stmt.query_map([before], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    drop(stmt);
    assert!(!lost.is_empty(), "the note's block was stored");
    for (queue, seq) in lost {
        db.execute("DELETE FROM blocks WHERE queue = ?1 AND seq = ?2", [queue, seq]).unwrap();
        db.execute("UPDATE queues SET stored = stored - 1 WHERE id = ?1", [queue]).unwrap();
    }
    drop(db);
    relay.restart();
    bao.ok(&["sync"]);
    assert!(notes(&bao.json(&["read", "line", "--json"]), "lost by the host").is_empty());
    // No receipt within three heartbeats: the sender is told, and the note goes again.
    wait_until("the lost note to show as not confirmed", || {
        status(&alice, "line", "lost by the host") == "not_confirmed"
    });
    assert!(alice.ok(&["read", "line"]).contains("NOT CONFIRMED"));
    alice.ok(&["sync"]);
    bao.ok(&["sync"]);
    assert_eq!(notes(&bao.json(&["read", "line", "--json"]), "lost by the host").len(), 1);
    alice.ok(&["sync"]);
    assert_eq!(status(&alice, "line", "lost by the host"), "delivered");
}

/// The highest row id of the relay's blocks (0 if none).
fn blocks(relay: &Relay) -> i64 {
    let db = rusqlite::Connection::open(relay.data.join("relay.db")).unwrap();
    db.query_row("SELECT COALESCE(MAX(rowid), 0) FROM blocks", [], |r| r.get(0)).unwrap()
}

/// What one party's engine showed while the hosts were killed: how often each note was shown,
/// and when each host's routes went down and came back up.
#[derive(Default)]
struct Seen {
    shown: std::collections::HashMap<String, u32>,
    routes: Vec<(String, backchannel_client::RouteState)>,
}

/// Follows an engine's updates into `seen`, waking `changed` at each one.
fn follow(
    engine: &backchannel_client::Engine,
    seen: std::sync::Arc<std::sync::Mutex<Seen>>,
    changed: std::sync::Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    use backchannel_client::{Entry, Event, Update};
    let mut updates = engine.subscribe();
    tokio::spawn(async move {
        while let Ok(update) = updates.recv().await {
            match update {
                Update::Party { event: Event::Entry { entry: Entry::Note { text, .. }, .. } } => {
                    *seen.lock().unwrap().shown.entry(text).or_default() += 1;
                }
                Update::Route { relay, state, .. } => seen.lock().unwrap().routes.push((relay, state)),
                _ => continue,
            }
            changed.notify_waiters();
        }
    })
}

/// Waits (at most `secs`: a bound for a starved machine, not an expected time) until `f`
/// holds of what was seen; `changed` wakes it at each update.
async fn until(
    what: &str,
    secs: u64,
    seen: &std::sync::Mutex<Seen>,
    changed: &tokio::sync::Notify,
    f: impl Fn(&Seen) -> bool,
) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let woken = changed.notified();
        if f(&seen.lock().unwrap()) {
            return;
        }
        // Also look again every second: delivery statuses change without an update.
        let tick = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        if tokio::time::timeout_at(deadline.min(tick), woken).await.is_err()
            && tokio::time::Instant::now() >= deadline
        {
            panic!("timed out after {secs} s waiting for {what}");
        }
    }
}

/// Issue 12's figure as a test: a hotline of two parties over two relay processes, notes both
/// ways all the time, and a host SIGKILLed three times (A, B, A) and brought back each time.
/// Every note is shown exactly once, none is lost, each kill shows as that host's route going
/// down on both sides, and every note ends delivered (confirmed by a receipt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hotline_over_two_hosts_loses_nothing_and_shows_nothing_twice_over_three_kills() {
    use std::sync::{Arc, Mutex};

    use backchannel_client::{
        DeliveryStatus, Engine, EngineConfig, Hotline, Mode, Passphrase, Role, RouteState,
    };
    use backchannel_wire::RelayAddress;

    let tmp = tempfile::tempdir().unwrap();
    let mut hosts =
        [Relay::start(&tmp.path().join("relay-a"), 0), Relay::start(&tmp.path().join("relay-b"), 0)];
    let addresses: Vec<RelayAddress> = hosts.iter().map(|h| h.address.parse().unwrap()).collect();
    let pass = Passphrase::new("hotline test passphrase".into());
    let open = |name: &str, side: &str| {
        Engine::init(&tmp.path().join(name), &pass, name, side, EngineConfig::default()).unwrap()
    };
    let (alice, bao) = (open("Alice", "A"), open("Bao", "B"));
    let invitation = alice.invite(&addresses, 3600).await.unwrap();
    bao.accept(&invitation, &[]).await.unwrap();
    for e in [&alice, &bao, &alice] {
        e.sync_once().await.unwrap();
    }
    let beat = Hotline { heartbeat_secs: 1, path_test_secs: 3600 };
    alice.channel_create("line", Mode::Direct, Role::Principal, None, Some(beat)).unwrap();
    alice.channel_add("line", "Bao", Role::Principal).await.unwrap();
    bao.sync_once().await.unwrap();
    alice.sync_once().await.unwrap();

    let (seen_a, seen_b) = (Arc::new(Mutex::new(Seen::default())), Arc::new(Mutex::new(Seen::default())));
    let changed = Arc::new(tokio::sync::Notify::new());
    let followers =
        [follow(&alice, seen_a.clone(), changed.clone()), follow(&bao, seen_b.clone(), changed.clone())];
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let drive = |e: &Engine| {
        let (e, mut stopped) = (e.clone(), stopped.clone());
        tokio::spawn(async move {
            e.run(async move {
                while !*stopped.borrow_and_update() {
                    let _ = stopped.changed().await;
                }
            })
            .await
        })
    };
    let drivers = [drive(&alice), drive(&bao)];
    // Each side sends a note every 150 ms until told to stop; each send waits for its flush.
    let (talk, talking) = tokio::sync::watch::channel(true);
    let sender = |e: &Engine, who: &'static str| {
        let (e, talking) = (e.clone(), talking.clone());
        tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(150));
            while *talking.borrow() {
                tick.tick().await;
                let text = format!("{who} {}", sent.len());
                e.send("line", &text, &[]).await.unwrap();
                sent.push(text);
            }
            sent
        })
    };
    let senders = [sender(&alice, "alice"), sender(&bao, "bao")];

    for (round, which) in [0usize, 1, 0].into_iter().enumerate() {
        let relay = hosts[which].address.clone();
        let (mark_a, mark_b) = (seen_a.lock().unwrap().routes.len(), seen_b.lock().unwrap().routes.len());
        hosts[which].stop();
        let went = |mark: usize, state: RouteState| {
            let relay = relay.clone();
            move |s: &Seen| s.routes[mark..].iter().any(|(r, st)| *r == relay && *st == state)
        };
        until(
            &format!("kill {round}: Alice sees the host down"),
            90,
            &seen_a,
            &changed,
            went(mark_a, RouteState::Down),
        )
        .await;
        until(
            &format!("kill {round}: Bao sees the host down"),
            90,
            &seen_b,
            &changed,
            went(mark_b, RouteState::Down),
        )
        .await;
        let (mark_a, mark_b) = (seen_a.lock().unwrap().routes.len(), seen_b.lock().unwrap().routes.len());
        tokio::task::block_in_place(|| hosts[which].restart());
        until(
            &format!("kill {round}: Alice sees the host up"),
            90,
            &seen_a,
            &changed,
            went(mark_a, RouteState::Up),
        )
        .await;
        until(
            &format!("kill {round}: Bao sees the host up"),
            90,
            &seen_b,
            &changed,
            went(mark_b, RouteState::Up),
        )
        .await;
    }
    talk.send(false).unwrap();
    let [from_alice, from_bao] = senders;
    let (from_alice, from_bao) = (from_alice.await.unwrap(), from_bao.await.unwrap());
    assert!(from_alice.len() > 20 && from_bao.len() > 20, "both kept talking through the kills");

    // Every note arrives, and every one of ours is confirmed by a receipt.
    for (sent, seen, sender) in [(&from_alice, &seen_b, &alice), (&from_bao, &seen_a, &bao)] {
        until("every note shown", 180, seen, &changed, |s| sent.iter().all(|t| s.shown.contains_key(t)))
            .await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            let entries = sender.read("line").unwrap();
            let open: Vec<_> = entries
                .iter()
                .filter(|e| e.delivery.as_ref().is_some_and(|d| d.status != DeliveryStatus::Delivered))
                .collect();
            if open.is_empty() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "notes never confirmed: {open:?}");
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), changed.notified()).await;
        }
    }
    stop.send(true).unwrap();
    for d in drivers {
        d.await.unwrap().unwrap();
    }
    followers.iter().for_each(|f| f.abort());

    // Nothing shown twice (live), and nothing kept twice (in the timeline).
    for (sent, seen, receiver) in [(&from_alice, &seen_b, &bao), (&from_bao, &seen_a, &alice)] {
        let twice: Vec<_> =
            seen.lock().unwrap().shown.iter().filter(|(_, n)| **n > 1).map(|(t, _)| t.clone()).collect();
        assert!(twice.is_empty(), "shown twice: {twice:?}");
        let entries = receiver.read("line").unwrap();
        for text in sent.iter() {
            let kept = entries
                .iter()
                .filter(|e| matches!(&e.entry, backchannel_client::Entry::Note { text: t, .. } if t == text))
                .count();
            assert_eq!(kept, 1, "{text:?} kept once");
        }
        let lost = sent.len() - sent.iter().filter(|t| seen.lock().unwrap().shown.contains_key(*t)).count();
        assert_eq!(lost, 0);
    }
}
