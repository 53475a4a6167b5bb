//! One engine per home: a command in a second process goes through the engine `watch` runs,
//! exactly as it would alone; two engines on one home are refused; and the running engine does
//! the same upkeep as `sync` (retention, dead invitations).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use backchannel_client::{ClientError, Engine, EngineConfig, Mode, Passphrase, Role};
use support::{BIN, Pair};

/// Starts `watch` for `party`; returns it once it is connected (it says so on stderr).
fn watch(party: &support::Party) -> std::process::Child {
    let mut child = Command::new(BIN)
        .arg("watch")
        .env("BACKCHANNEL_HOME", &party.home)
        .env("BACKCHANNEL_PASSPHRASE", &party.passphrase)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("connected to") => break,
            Some(Ok(_)) => continue,
            other => panic!("watch ended before connecting: {other:?}"),
        }
    }
    // Keep draining stderr so the watcher never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

#[test]
fn a_send_in_a_second_process_goes_through_the_running_watch_and_forks_nothing() {
    let pair = Pair::introduced();
    let (alice, bao) = (&pair.alice, &pair.bao);
    let mut watcher = watch(bao);
    // Bao's second terminal: the home is the watcher's; the command runs in it.
    let out = bao.ok(&["send", "Alice", "sent while watch runs"]);
    assert!(out.contains("sent to Alice"), "{out}");
    let contacts = bao.json(&["contacts", "--json"]);
    assert_eq!(contacts[0]["name"], "Alice", "reads go through it too");
    let wrong = bao.run_with(&["contacts"], "not the passphrase", None);
    assert!(!wrong.status.success(), "a second process must know the passphrase too");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    let _ = watcher.kill();
    let _ = watcher.wait();
    // Alone again: Bao opens its store itself and goes on with the same ratchet.
    bao.ok(&["send", "Alice", "sent after watch stopped"]);
    alice.ok(&["sync"]);
    let entries = alice.json(&["read", "Bao", "--json"]);
    let entries = entries.as_array().unwrap();
    for text in ["sent while watch runs", "sent after watch stopped"] {
        assert_eq!(entries.iter().filter(|e| e["text"] == text).count(), 1, "{text:?} once: {entries:?}");
    }
    let troubles: Vec<_> = entries.iter().filter(|e| e["kind"] == "rejected" || e["kind"] == "gap").collect();
    assert!(troubles.is_empty(), "a forked ratchet shows as rejections or gaps: {troubles:?}");
}

fn pass() -> Passphrase {
    Passphrase::new("engine test passphrase".into())
}

#[test]
fn a_second_engine_on_a_home_is_refused_and_told_why() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("alice");
    let first = Engine::init(&home, &pass(), "Alice", "A", EngineConfig::default()).unwrap();
    let second = Engine::open(&home, &pass(), EngineConfig::default());
    assert!(matches!(second, Err(ClientError::Locked { .. })), "{second:?}");
    // A command of another process waits for a short command to finish, then says why it
    // cannot go on (this engine holds the home and serves no socket).
    let out = Command::new(BIN)
        .arg("contacts")
        .env("BACKCHANNEL_HOME", &home)
        .env("BACKCHANNEL_PASSPHRASE", "engine test passphrase")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another backchannel process holds"), "{err}");
    drop(first);
    assert!(Engine::open(&home, &pass(), EngineConfig::default()).is_ok(), "free once the first is gone");
}

/// The running engine applies retention and forgets dead invitations, as `sync` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_engine_expires_notes_and_invitations_as_sync_does() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = backchannel_relay::start(backchannel_relay::RelayOptions::new(
        "127.0.0.1:0".parse().unwrap(),
        tmp.path().join("relay"),
    ))
    .await
    .unwrap();
    let config = EngineConfig {
        upkeep: Duration::from_millis(200),
        refresh: Duration::from_millis(200),
        invitation_grace_secs: 0,
        ..EngineConfig::default()
    };
    let omar = Engine::init(&tmp.path().join("omar"), &pass(), "Omar", "Oman", config.clone()).unwrap();
    let alice = Engine::init(&tmp.path().join("alice"), &pass(), "Alice", "A", config.clone()).unwrap();
    let invitation = omar.invite(std::slice::from_ref(relay.address()), 3600).await.unwrap();
    alice.accept(&invitation, &[]).await.unwrap();
    omar.sync_once().await.unwrap();
    omar.channel_create("brief", Mode::Direct, Role::Principal, Some(1), None).unwrap();
    omar.channel_add("brief", "Alice", Role::Principal).await.unwrap();
    alice.sync_once().await.unwrap();
    omar.send("brief", "this should not outlive the meeting", &[]).await.unwrap();
    alice.sync_once().await.unwrap();
    // An invitation that expires in a second, never answered.
    alice.invite(std::slice::from_ref(relay.address()), 1).await.unwrap();
    assert_eq!(alice.pending_invitations().unwrap().len(), 1);
    let notes = timeline_rows(&tmp.path().join("alice"));
    // Real time must pass the 1 s retention and the invitation's expiry.
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let alice = alice.clone();
        async move {
            alice
                .run(async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let mut done = false;
    for _ in 0..100 {
        if timeline_rows(&tmp.path().join("alice")) == notes - 1
            && alice.pending_invitations().unwrap().is_empty()
        {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert!(done, "the running engine did not delete the expired note and forget the dead invitation");
    relay.shutdown().await;
}

/// Rows of a party's timeline (sealed; only counted).
fn timeline_rows(home: &std::path::Path) -> usize {
    let db = rusqlite::Connection::open(home.join("party.db")).unwrap();
    let n: i64 = db.query_row("SELECT COUNT(*) FROM timeline", [], |r| r.get(0)).unwrap();
    n as usize
}
