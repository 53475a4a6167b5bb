//! Secret hygiene: a whole exchange with every component logging at the most verbose level,
//! then a search of the logs, the relay's files and the parties' files for the notes, the
//! names, the passphrases and the capability secrets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]

mod support;

use support::{BIN, Party, Relay, contains};

/// Names searched for in the relay's files must be long enough that random bytes (ciphertext,
/// fingerprints) cannot hold them by chance: a 3-byte name matches ~1 in 2^24 positions.
const BAO: &str = "Bao Zhang";
const ALICE: &str = "Alice";

fn run_verbose(party: &Party, args: &[&str], logs: &mut Vec<u8>) -> String {
    let mut all = vec!["-vvv"];
    all.extend_from_slice(args);
    let out = party.run(&all);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    logs.extend_from_slice(&out.stderr);
    String::from_utf8(out.stdout).unwrap()
}

/// Every file under `dir`, except the party's own encrypted store when `skip_store`.
fn files_under(dir: &std::path::Path, skip_store: bool) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let is_store = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("party.db"));
        if path.is_file() && !(skip_store && is_store) {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

#[test]
fn nothing_secret_in_logs_relay_files_or_client_files() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = Relay::start_with(&tmp.path().join("relay"), 0, &["-vvv"]);
    let alice = Party::new(tmp.path(), ALICE, "Delegation A");
    let bao = Party::new(tmp.path(), BAO, "Delegation B");
    let mut logs = Vec::new();

    let invitation = run_verbose(&alice, &["invite", "--relay", &relay.address], &mut logs);
    run_verbose(&bao, &["accept", invitation.trim()], &mut logs);
    run_verbose(&alice, &["sync"], &mut logs);
    let note_a = "Confidential: our floor is 40 percent, do not share.";
    let note_b = "Understood; we can move to 45 if the timetable holds.";
    run_verbose(&alice, &["send", BAO, note_a], &mut logs);
    run_verbose(&bao, &["sync"], &mut logs);
    run_verbose(&bao, &["send", ALICE, note_b], &mut logs);
    run_verbose(&alice, &["sync"], &mut logs);
    assert!(run_verbose(&bao, &["read", ALICE], &mut logs).contains(note_a), "the exchange happened");
    assert!(logs.len() > 1000, "verbose logging produced output ({} bytes)", logs.len());
    let _ = BIN;

    // The invitation's body carries the inviter's queue send secret and block key.
    let invitation_body = invitation.trim().trim_start_matches("backchannel:");
    let relay_log = std::fs::read(relay.data.with_extension("log")).unwrap();
    assert!(!relay_log.is_empty(), "the relay logged at -vvv");
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("note A", note_a.as_bytes().to_vec()),
        ("note B", note_b.as_bytes().to_vec()),
        ("name Alice", ALICE.as_bytes().to_vec()),
        ("name Bao", BAO.as_bytes().to_vec()),
        ("side", b"Delegation".to_vec()),
        ("alice passphrase", alice.passphrase.as_bytes().to_vec()),
        ("bao passphrase", bao.passphrase.as_bytes().to_vec()),
        ("invitation text", invitation_body.as_bytes()[20..80].to_vec()),
    ];
    let places: Vec<(&str, Vec<u8>)> = vec![
        ("relay log", relay_log),
        ("relay files", files_under(&relay.data, false)),
        ("alice files (store excepted)", files_under(&alice.home, true)),
        ("bao files (store excepted)", files_under(&bao.home, true)),
        ("alice encrypted store", files_under(&alice.home, false)),
        ("bao encrypted store", files_under(&bao.home, false)),
    ];
    for (place, hay) in &places {
        for (what, needle) in &needles {
            assert!(!contains(hay, needle), "{what} found in {place}");
        }
    }
    // Client logs go to the user's own terminal; they still must not hold notes, passphrases
    // or capability secrets (names may appear in messages meant for the user).
    for (what, needle) in needles.iter().filter(|(w, _)| !w.starts_with("name") && *w != "side") {
        assert!(!contains(&logs, needle), "{what} found in the client logs");
    }
}
