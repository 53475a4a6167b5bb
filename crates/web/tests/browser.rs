//! The web app in a real browser: headless Chromium, driven by playwright-core from
//! `crates/web/e2e/suite.mjs`, against apps in this process (two sides and, for a shuttle, an
//! intermediary) and two real relays (Alice and Bao are reached over both).
//! The script tells this harness when to restart a party's app (`@@restart NAME` on its
//! stdout) and waits for `restarted` on its stdin. Afterwards the exported agreement is checked
//! with OpenSSH's `ssh-keygen -Y verify`.
//!
//! Without node, Chromium or `npm ci` in crates/web/e2e the test says so and passes, unless
//! `CI` is set: then it fails, as the PostgreSQL suites do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use backchannel_client::{EngineConfig, Passphrase};
use backchannel_relay::RelayOptions;
use backchannel_web::{Options, Ui};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const PASSPHRASE: &str = "correct horse battery staple";

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e")
}

/// Chromium and node with the test's packages, or why not.
fn tools() -> Result<PathBuf, String> {
    let chromium = std::env::var_os("BACKCHANNEL_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.exists() {
        return Err(format!("no Chromium at {} (apt-get install chromium)", chromium.display()));
    }
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("no node (apt-get install nodejs npm)".into());
    }
    for package in ["playwright-core", "axe-core"] {
        if !e2e_dir().join("node_modules").join(package).is_dir() {
            return Err(format!("no {package}: run `npm ci` in {}", e2e_dir().display()));
        }
    }
    Ok(chromium)
}

/// The tools, or `None` after a notice (a failure in CI).
pub fn tools_or_skip(what: &str) -> Option<PathBuf> {
    match tools() {
        Ok(chromium) => Some(chromium),
        Err(why) if std::env::var_os("CI").is_some() => panic!("{what} needs a browser in CI: {why}"),
        Err(why) => {
            eprintln!("notice: {what} skipped: {why}");
            None
        }
    }
}

fn config() -> EngineConfig {
    EngineConfig { refresh: std::time::Duration::from_millis(250), ..EngineConfig::default() }
}

async fn start_ui(home: &Path, addr: SocketAddr, unlock: bool) -> Ui {
    let listener = backchannel_web::bind(addr).await.unwrap();
    let mut options = Options::new(home.to_owned());
    options.engine = config();
    if unlock {
        options.passphrase = Some(Passphrase::new(PASSPHRASE.into()));
    }
    backchannel_web::start(listener, options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_parties_negotiate_in_the_browser() {
    let Some(chromium) = tools_or_skip("the browser suite") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let relay =
        backchannel_relay::start(RelayOptions::new("127.0.0.1:0".parse().unwrap(), tmp.path().join("relay")))
            .await
            .unwrap();
    // A second host: Alice and Bao are reached over both at once (the crisis hotline's two circuits).
    let relay2 = backchannel_relay::start(RelayOptions::new(
        "127.0.0.1:0".parse().unwrap(),
        tmp.path().join("relay2"),
    ))
    .await
    .unwrap();
    let (home_a, home_b) = (tmp.path().join("alice"), tmp.path().join("bao"));
    let a = start_ui(&home_a, "127.0.0.1:0".parse().unwrap(), false).await;
    let c = start_ui(&tmp.path().join("omar"), "127.0.0.1:0".parse().unwrap(), false).await;
    let mut b = Some(start_ui(&home_b, "127.0.0.1:0".parse().unwrap(), false).await);
    let b_addr = b.as_ref().unwrap().addr();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // docs/ui is refreshed only when asked (BACKCHANNEL_UI_SCREENSHOTS=$PWD/docs/ui).
    let shots = std::env::var_os("BACKCHANNEL_UI_SCREENSHOTS")
        .map_or_else(|| tmp.path().join("shots"), PathBuf::from);
    std::fs::create_dir_all(&shots).unwrap();

    let mut node = tokio::process::Command::new("node")
        .arg(e2e_dir().join("suite.mjs"))
        .env("CHROMIUM", &chromium)
        .env("A_URL", a.url_with_token())
        .env("B_URL", b.as_ref().unwrap().url_with_token())
        .env("C_URL", c.url_with_token())
        .env("RELAY", relay.address().to_string())
        .env("RELAY2", relay2.address().to_string())
        .env("PASSPHRASE", PASSPHRASE)
        .env("OUT", &out)
        .env("SHOTS", &shots)
        .env("FAILURES", env!("CARGO_TARGET_TMPDIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        println!("{line}");
        let unlock = match line.trim() {
            "@@restart b" => true,
            "@@restart-locked b" => false,
            _ => continue,
        };
        b.take().unwrap().stop().await;
        b = Some(start_ui(&home_b, b_addr, unlock).await);
        stdin.write_all(b"restarted\n").await.unwrap();
    }
    let status =
        tokio::time::timeout(std::time::Duration::from_secs(30), node.wait()).await.unwrap().unwrap();
    assert!(status.success(), "the browser suite failed: {status}");

    ssh_keygen_verifies(&out.join("agreement"));
    a.stop().await;
    b.unwrap().stop().await;
    c.stop().await;
    relay.shutdown().await;
    relay2.shutdown().await;
}

/// The folder the page exported holds for OpenSSH's own tool, signature by signature.
fn ssh_keygen_verifies(dir: &Path) {
    let has_ssh_keygen = std::process::Command::new("ssh-keygen").arg("-?").output().is_ok();
    if !has_ssh_keygen {
        assert!(std::env::var_os("BACKCHANNEL_REQUIRE_SSH_KEYGEN").is_none(), "ssh-keygen is required here");
        eprintln!("notice: no ssh-keygen; the export was checked by the page only");
        return;
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let text = std::fs::read(dir.join(manifest["text_file"].as_str().unwrap())).unwrap();
    let text_sha256: String = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&text))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let signatories = manifest["signatories"].as_array().unwrap();
    assert_eq!(signatories.len(), 2, "both sides signed");
    for s in signatories {
        // Each signature covers its signatory's statement, which names the text by its sha256.
        let principal = s["principal"].as_str().unwrap();
        let statement =
            std::fs::read(dir.join(backchannel_proto::agreement::statement_file(principal))).unwrap();
        let named = format!("text-sha256: {text_sha256}\n");
        assert!(
            String::from_utf8_lossy(&statement).contains(&named),
            "the statement names the exported text"
        );
        let mut child = std::process::Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(dir.join("allowed_signers"))
            .args(["-I", principal, "-n", backchannel_proto::agreement::NAMESPACE, "-s"])
            .arg(dir.join(s["sig_file"].as_str().unwrap()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &statement).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Good \"backchannel-agreement\" signature"));
    }
}
