//! `backchannel ui`: loopback only, its address alone on the first stdout line, the token
//! exchanged for a cookie, CLI commands on the same home going through its engine, and Ctrl-C
//! stopping it cleanly. (The screens themselves are tested in a browser: crates/web/tests.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{BIN, Pair, Party};

/// Starts `ui` for `party` (unlocked from the environment); returns it and its address line.
fn ui(party: &Party) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["ui", "--listen", "127.0.0.1:0"])
        .env("BACKCHANNEL_HOME", &party.home)
        .env("BACKCHANNEL_PASSPHRASE", &party.passphrase)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    (child, first)
}

/// One HTTP/1.1 request by hand: (status, head, body).
fn http(port: u16, request_line: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!("{request_line} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn a_non_loopback_address_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["ui", "--listen", "0.0.0.0:0"])
        .env("BACKCHANNEL_HOME", tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing is served, nothing printed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

#[test]
fn ui_prints_its_address_lets_the_token_in_serves_the_cli_and_stops_on_ctrl_c() {
    let pair = Pair::introduced();
    let (alice, bao) = (&pair.alice, &pair.bao);
    let (mut child, first) = ui(bao);
    let url = first.trim().strip_prefix("ui: ").unwrap_or_else(|| panic!("first line: {first:?}"));
    let (base, token) = url.split_once("/?token=").unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{url}");
    assert!(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();

    let (status, _, _) = http(port, "GET /contacts", &[]);
    assert_eq!(status, 401, "no token, no cookie");
    let (status, head, _) = http(port, &format!("GET /?token={token}"), &[]);
    assert_eq!(status, 303);
    assert!(head.contains("location: /\r\n"), "back to a clean address: {head}");
    assert!(head.contains("referrer-policy: no-referrer"), "{head}");
    let cookie = head.lines().find_map(|l| l.strip_prefix("set-cookie: ")).unwrap().to_owned();
    assert!(cookie.contains("httponly") && cookie.contains("samesite=strict"), "{cookie}");
    let pair_value = cookie.split(';').next().unwrap();
    // (lower-cased with the head; the token is hex, so the value is the same)
    let (status, _, body) = http(port, "GET /contacts", &[("Cookie", pair_value)]);
    assert_eq!(status, 200);
    assert!(body.contains("Alice"), "the unlocked party's contacts");

    // A second process's command runs in the ui's engine (it holds the home).
    let out = bao.ok(&["send", "Alice", "sent while the ui runs"]);
    assert!(out.contains("sent to Alice"), "{out}");
    alice.ok(&["sync"]);
    let entries = alice.json(&["read", "Bao", "--json"]);
    let count = entries.as_array().unwrap().iter().filter(|e| e["text"] == "sent while the ui runs").count();
    assert_eq!(count, 1, "{entries:?}");

    // Ctrl-C: the engine and the server stop, the process ends well and lets go of the home.
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let mut stderr = child.stderr.take().unwrap();
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait()));
    let status = exited.recv_timeout(Duration::from_secs(20)).expect("ui stops on Ctrl-C").unwrap();
    assert!(status.success(), "{status}");
    let mut err = String::new();
    stderr.read_to_string(&mut err).unwrap();
    assert!(err.contains("stopped"), "{err}");
    bao.ok(&["contacts"]);
}
