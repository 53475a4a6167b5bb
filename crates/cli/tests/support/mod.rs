//! Runs the real `backchannel` binary: a relay process and parties in temp directories.
#![allow(dead_code, reason = "each test file uses a different part")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_backchannel");

/// A relay process; killed when dropped.
pub struct Relay {
    pub child: Child,
    pub address: String,
    pub data: PathBuf,
    pub port: u16,
    /// Extra `relay` arguments (e.g. `--store URL`), kept for restarts.
    pub args: Vec<String>,
}

impl Relay {
    /// Starts `backchannel relay` on `port` (0: any) and waits for its address line.
    pub fn start(data: &Path, port: u16) -> Relay {
        Self::start_with(data, port, &[])
    }

    /// Starts with extra global flags (e.g. `-vvv`); stderr is copied to `DATA.log`.
    pub fn start_with(data: &Path, port: u16, flags: &[&str]) -> Relay {
        Self::start_full(data, port, flags, &[])
    }

    /// Starts with global `flags` and extra `relay` arguments (`--store URL`).
    pub fn start_full(data: &Path, port: u16, flags: &[&str], args: &[String]) -> Relay {
        let mut child = Command::new(BIN)
            .args(flags)
            .args(["relay", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn relay");
        let stdout = child.stdout.take().expect("relay stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read relay address");
        let Some(address) = line.strip_prefix("relay address: ") else {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err);
            panic!("relay did not start: {err}");
        };
        let address = address.trim().to_owned();
        // Drain stderr into a log beside the data directory, so the relay never blocks on a
        // full pipe and tests can read what it logged.
        let mut stderr = child.stderr.take().expect("relay stderr");
        let mut log = std::fs::File::create(data.with_extension("log")).expect("relay log");
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut log));
        let port = address
            .rsplit_once('#')
            .and_then(|(a, _)| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .expect("port");
        let written = std::fs::read_to_string(data.join("address")).expect("DIR/address written");
        assert_eq!(written.trim(), address, "DIR/address holds the printed address");
        Relay { child, address, data: data.to_owned(), port, args: args.to_vec() }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops and starts again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        let again = Relay::start_full(&self.data.clone(), self.port, &[], &self.args);
        // (a restart's log replaces the first one's; tests that read logs do not restart)
        assert_eq!(again.address, self.address, "same certificate and port after restart");
        *self = again;
    }

    /// Every byte of every file the relay keeps.
    pub fn all_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&self.data).expect("relay dir") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                all.extend(std::fs::read(&path).expect("read relay file"));
            }
        }
        all
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A party: a home directory and a passphrase.
pub struct Party {
    pub home: PathBuf,
    pub passphrase: String,
}

impl Party {
    pub fn new(root: &Path, name: &str, side: &str) -> Party {
        let party = Party {
            home: root.join(name.to_lowercase()),
            passphrase: format!("pass-{name}-{}", std::process::id()),
        };
        party.ok(&["init", "--name", name, "--side", side]);
        party
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &self.passphrase, None)
    }

    pub fn run_with(&self, args: &[&str], passphrase: &str, stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("BACKCHANNEL_HOME", &self.home)
            .env("BACKCHANNEL_PASSPHRASE", passphrase)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn backchannel");
        if let Some(text) = stdin {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("wait")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs and expects failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "{args:?} should fail but printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).expect("json output")
    }

    /// Every byte of this party's files except its encrypted store.
    pub fn identity_keys(&self) -> (Vec<u8>, Vec<u8>) {
        let me = self.json(&["whoami", "--json"]);
        let hex = |k: &str| decode_hex(me[k].as_str().expect("key"));
        (hex("identity_key"), hex("seal_key"))
    }
}

pub fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Alice invites Bao through `relay`; both sync so each knows the other.
pub fn introduce(alice: &Party, bao: &Party, relay: &Relay) {
    let invitation = alice.ok(&["invite", "--relay", &relay.address]);
    assert!(invitation.trim().starts_with("backchannel:"));
    assert_eq!(invitation.trim().lines().count(), 1, "the invitation alone on stdout");
    bao.ok(&["accept", invitation.trim()]);
    alice.ok(&["sync"]);
}

/// A relay and two parties who know each other (both synced): the start of most tests.
pub struct Pair {
    /// Holds every directory; dropped with the pair.
    pub tmp: tempfile::TempDir,
    pub relay: Relay,
    pub alice: Party,
    pub bao: Party,
}

impl Pair {
    pub fn introduced() -> Pair {
        Self::introduced_on(&[])
    }

    /// The same, with extra `relay` arguments (`--store URL`).
    pub fn introduced_on(relay_args: &[String]) -> Pair {
        let tmp = tempfile::tempdir().expect("temp dir");
        let relay = Relay::start_full(&tmp.path().join("relay"), 0, &[], relay_args);
        let alice = Party::new(tmp.path(), "Alice", "A");
        let bao = Party::new(tmp.path(), "Bao", "B");
        introduce(&alice, &bao, &relay);
        bao.ok(&["sync"]);
        Pair { tmp, relay, alice, bao }
    }
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}
