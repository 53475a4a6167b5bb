//! Interoperability with OpenSSH both ways: each signatory's statement in an exported agreement
//! verifies with `ssh-keygen -Y verify`, and a signature made by `ssh-keygen -Y sign` over a
//! statement verifies with ours.
//! Skipped when `ssh-keygen` is absent, unless BACKCHANNEL_REQUIRE_SSH_KEYGEN=1 (as in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use backchannel_proto::agreement::{
    Agreement, NAMESPACE, Statement, statement_file, verify_signature, verify_statement,
};
use backchannel_proto::identity::{Card, Identity};
use backchannel_proto::message::ChannelId;

const TEXT: &[u8] =
    b"Article 1. Both sides withdraw to the lines of 1 March.\nArticle 2. Talks resume in Muscat.\n";

/// Whether to run: false (with a notice) if ssh-keygen is missing and CI did not ask for it.
fn ssh_keygen_available() -> bool {
    let found =
        Command::new("ssh-keygen").arg("-?").stderr(Stdio::null()).stdout(Stdio::null()).status().is_ok();
    if !found {
        assert!(
            std::env::var("BACKCHANNEL_REQUIRE_SSH_KEYGEN").as_deref() != Ok("1"),
            "ssh-keygen is not on PATH but BACKCHANNEL_REQUIRE_SSH_KEYGEN=1"
        );
        eprintln!("notice: ssh-keygen is not on PATH; skipping the OpenSSH interoperability test");
    }
    found
}

/// Runs ssh-keygen in `dir` with `stdin` as its input.
fn ssh_keygen(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new("ssh-keygen")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn verify_with_ssh_keygen(dir: &Path, principal: &str, sig_file: &str, text: &[u8]) -> Output {
    ssh_keygen(
        dir,
        &["-Y", "verify", "-f", "allowed_signers", "-I", principal, "-n", NAMESPACE, "-s", sig_file],
        text,
    )
}

#[test]
fn export_verifies_with_ssh_keygen() {
    if !ssh_keygen_available() {
        return;
    }
    let alice = Identity::generate("Alice", "Delegation A").unwrap();
    let bao = Identity::generate("Bao Zhang", "Delegation B").unwrap();
    let sides = vec!["Delegation A".to_owned(), "Delegation B".to_owned()];
    let mut agreement = Agreement::new(ChannelId([4; 16]), "Withdrawal", TEXT.to_vec(), sides);
    agreement.signatories =
        vec![agreement.sign(&alice, 1_800_000_000).unwrap(), agreement.sign(&bao, 1_800_000_100).unwrap()];
    agreement.verify().unwrap();

    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in agreement.files().unwrap() {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let principals = agreement.principals();
    assert_eq!(principals, ["alice@delegation-a", "bao-zhang@delegation-b"]);

    for (i, principal) in principals.iter().enumerate() {
        let sig = format!("{principal}.sig");
        let text = std::fs::read(dir.path().join(statement_file(principal))).unwrap();
        let statement = String::from_utf8(text.clone()).unwrap();
        assert!(
            statement.contains("title: Withdrawal\n") && statement.contains("required-side: Delegation B\n")
        );
        let mut changed = text.clone();
        changed[statement.find("Withdrawal").unwrap()] ^= 0x20;
        let out = verify_with_ssh_keygen(dir.path(), principal, &sig, &text);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{principal}: {said} {}", String::from_utf8_lossy(&out.stderr));
        assert!(said.contains(&format!("Good \"{NAMESPACE}\" signature for {principal}")), "{said}");

        let out = verify_with_ssh_keygen(dir.path(), principal, &sig, &changed);
        assert!(!out.status.success(), "{principal}: a changed statement verified");
        let out = verify_with_ssh_keygen(dir.path(), principal, &sig, TEXT);
        assert!(!out.status.success(), "{principal}: the bare text verified");
        let other = &principals[1 - i];
        let out = verify_with_ssh_keygen(dir.path(), other, &sig, &text);
        assert!(!out.status.success(), "{principal}'s signature verified as {other}'s");
    }
}

#[test]
fn ssh_keygen_signature_verifies_with_ours() {
    if !ssh_keygen_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = ssh_keygen(dir.path(), &["-q", "-t", "ed25519", "-N", "", "-C", "seal", "-f", "key"], b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = std::fs::read_to_string(dir.path().join("key.pub")).unwrap();
    let key = ssh_key::PublicKey::from_openssh(&public).unwrap();
    let ssh_key::public::KeyData::Ed25519(seal) = key.key_data() else { panic!("not ed25519: {public}") };
    // A statement by a signer whose seal is this OpenSSH key.
    let signer = Card {
        name: "Bao Zhang".into(),
        side: "Delegation B".into(),
        identity_key: [8; 32],
        device_key: [0; 32],
        seal_key: seal.0,
    };
    let sides = vec!["Delegation A".to_owned(), "Delegation B".to_owned()];
    let statement =
        Statement::new(ChannelId([4; 16]), [5; 32], "Withdrawal", &sides, &signer, 1_800_000_000).unwrap();
    std::fs::write(dir.path().join("text"), statement.to_bytes()).unwrap();
    let out = ssh_keygen(dir.path(), &["-Y", "sign", "-f", "key", "-n", NAMESPACE, "text"], b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let armored = std::fs::read_to_string(dir.path().join("text.sig")).unwrap();
    verify_statement(&seal.0, &statement, &armored).unwrap();
    let other = Statement { title: "Armistice".into(), ..statement.clone() };
    assert!(verify_statement(&seal.0, &other, &armored).is_err());
    assert!(verify_signature(&seal.0, TEXT, &armored).is_err());
    let another = Identity::generate("Eve", "Delegation B").unwrap().seal_public_key();
    assert!(verify_statement(&another, &statement, &armored).is_err());

    std::fs::remove_file(dir.path().join("text.sig")).unwrap();
    let out = ssh_keygen(dir.path(), &["-Y", "sign", "-f", "key", "-n", "file", "text"], b"");
    assert!(out.status.success());
    let other_namespace = std::fs::read_to_string(dir.path().join("text.sig")).unwrap();
    let err = verify_statement(&seal.0, &statement, &other_namespace).unwrap_err().to_string();
    assert!(err.contains("\"file\""), "{err}");
}
