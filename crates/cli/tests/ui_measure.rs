//! Measures the web app against the CLI in one run (not part of `cargo test`: run it with
//! `cargo test --release -p backchannel --test ui_measure -- --ignored --nocapture`).
//!
//! A relay and three parties, all real `backchannel` processes: Alice and Bao each run `ui`,
//! Chen runs `watch`; all three are in one direct channel. Alice's page sends notes one at a
//! time; each note's latency runs from just before the page is told to send it to (a) its
//! appearance in Bao's page (a MutationObserver reports it through playwright) and (b) the
//! line `watch` prints for Chen (piped to the script's stdin by this harness), both on the
//! script's one clock. Memory is the resident set (VmRSS) of Bao's `ui` process, idle with its
//! page open, then with 1,000 notes in the channel, beside Chen's `watch`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a measurement harness")]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use support::{BIN, Party, Relay, introduce};

fn start(party: &Party, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env("BACKCHANNEL_HOME", &party.home)
        .env("BACKCHANNEL_PASSPHRASE", &party.passphrase)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts `ui`; returns it and its address (the first stdout line).
fn ui(party: &Party) -> (Child, String) {
    let mut child = start(party, &["ui", "--listen", "127.0.0.1:0"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    drain(child.stderr.take().unwrap());
    (child, first.strip_prefix("ui: ").unwrap().to_owned())
}

fn drain(r: impl std::io::Read + Send + 'static) {
    std::thread::spawn(move || std::io::copy(&mut BufReader::new(r), &mut std::io::sink()));
}

/// Resident and peak resident memory of a process, in KiB.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
#[ignore = "a measurement: run with --release -- --ignored --nocapture"]
fn note_latency_page_to_page_beside_watch_and_memory() {
    let chromium = Path::new("/usr/bin/chromium");
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/e2e");
    assert!(
        chromium.exists() && e2e.join("node_modules/playwright-core").is_dir(),
        "needs chromium and `npm ci` in {}",
        e2e.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let relay = Relay::start(&tmp.path().join("relay"), 0);
    let alice = Party::new(tmp.path(), "Alice", "Delegation A");
    let bao = Party::new(tmp.path(), "Bao", "Delegation B");
    let chen = Party::new(tmp.path(), "Chen", "Delegation C");
    introduce(&alice, &bao, &relay);
    introduce(&alice, &chen, &relay);
    alice.ok(&["channel", "create", "bench"]);
    alice.ok(&["channel", "add", "bench", "Bao"]);
    alice.ok(&["channel", "add", "bench", "Chen"]);
    for p in [&bao, &chen, &alice, &bao, &chen] {
        p.ok(&["sync"]);
    }

    let (mut a_ui, a_url) = ui(&alice);
    let (mut b_ui, b_url) = ui(&bao);
    let mut watch = start(&chen, &["watch"]);
    let watch_lines = BufReader::new(watch.stdout.take().unwrap());
    drain(watch.stderr.take().unwrap());

    let mut node = Command::new("node")
        .arg(e2e.join("measure.mjs"))
        .env("CHROMIUM", chromium)
        .env("A_URL", &a_url)
        .env("B_URL", &b_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let to_node = Arc::new(Mutex::new(node.stdin.take().unwrap()));
    {
        let to_node = to_node.clone();
        std::thread::spawn(move || {
            for line in watch_lines.lines().map_while(Result::ok) {
                let mut w = to_node.lock().unwrap();
                if writeln!(w, "@@watch {line}").and_then(|()| w.flush()).is_err() {
                    return;
                }
            }
        });
    }
    let mut memory = Vec::new();
    for line in BufReader::new(node.stdout.take().unwrap()).lines().map_while(Result::ok) {
        if let Some(label) = line.strip_prefix("@@rss ") {
            let (b, b_peak) = rss(b_ui.id());
            let (w, w_peak) = rss(watch.id());
            let (a, _) = rss(a_ui.id());
            println!(
                "memory {label}: Bao's ui {b} KiB (peak {b_peak}), Chen's watch {w} KiB (peak {w_peak}), Alice's ui {a} KiB"
            );
            memory.push(serde_json::json!({ "at": label, "ui_kib": b, "ui_peak_kib": b_peak, "watch_kib": w, "sender_ui_kib": a }));
            let mut w = to_node.lock().unwrap();
            writeln!(w, "@@ok").unwrap();
            w.flush().unwrap();
        } else {
            println!("{line}");
        }
    }
    assert!(node.wait().unwrap().success(), "the measurement script failed");
    println!("@@memory {}", serde_json::Value::Array(memory));
    for child in [&mut a_ui, &mut b_ui, &mut watch] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
