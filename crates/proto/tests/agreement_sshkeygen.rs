//! Interoperability with OpenSSH both ways: an exported agreement verifies with
//! `ssh-keygen -Y verify`, and a signature made by `ssh-keygen -Y sign` verifies with ours.
//! Skipped when `ssh-keygen` is absent, unless BACKCHANNEL_REQUIRE_SSH_KEYGEN=1 (as in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use backchannel_proto::agreement::{Agreement, NAMESPACE, Signatory, verify_signature};
use backchannel_proto::identity::Identity;

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
    let mut agreement = Agreement::new("Withdrawal", TEXT.to_vec(), sides);
    agreement.signatories =
        vec![Signatory::sign(&alice, TEXT).unwrap(), Signatory::sign(&bao, TEXT).unwrap()];
    agreement.verify().unwrap();

    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in agreement.files().unwrap() {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let principals = agreement.principals();
    assert_eq!(principals, ["alice@delegation-a", "bao-zhang@delegation-b"]);
    let text = std::fs::read(dir.path().join("agreement.txt")).unwrap();
    let mut changed = text.clone();
    changed[0] ^= 0x20;

    for (i, principal) in principals.iter().enumerate() {
        let sig = format!("{principal}.sig");
        let out = verify_with_ssh_keygen(dir.path(), principal, &sig, &text);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{principal}: {said} {}", String::from_utf8_lossy(&out.stderr));
        assert!(said.contains(&format!("Good \"{NAMESPACE}\" signature for {principal}")), "{said}");

        let out = verify_with_ssh_keygen(dir.path(), principal, &sig, &changed);
        assert!(!out.status.success(), "{principal}: a changed text verified");
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
    std::fs::write(dir.path().join("text"), TEXT).unwrap();
    let out = ssh_keygen(dir.path(), &["-Y", "sign", "-f", "key", "-n", NAMESPACE, "text"], b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let armored = std::fs::read_to_string(dir.path().join("text.sig")).unwrap();
    let public = std::fs::read_to_string(dir.path().join("key.pub")).unwrap();
    let key = ssh_key::PublicKey::from_openssh(&public).unwrap();
    let ssh_key::public::KeyData::Ed25519(seal) = key.key_data() else { panic!("not ed25519: {public}") };
    verify_signature(&seal.0, TEXT, &armored).unwrap();
    assert!(verify_signature(&seal.0, b"another text", &armored).is_err());
    assert!(verify_signature(&[7; 32], TEXT, &armored).is_err());

    std::fs::remove_file(dir.path().join("text.sig")).unwrap();
    let out = ssh_keygen(dir.path(), &["-Y", "sign", "-f", "key", "-n", "file", "text"], b"");
    assert!(out.status.success());
    let other_namespace = std::fs::read_to_string(dir.path().join("text.sig")).unwrap();
    assert!(verify_signature(&seal.0, TEXT, &other_namespace).unwrap_err().to_string().contains("\"file\""));
}
