//! H2, "Done means": an exported agreement in which one signatory's key and signature are
//! replaced by a small-order key and the signature (R = identity, s = 0), which verifies for
//! every message under the cofactorless check (and with `ssh-keygen -Y verify`), fails to verify
//! with a message naming the weak key. The folder is written to disk and read back the way
//! `backchannel agreement verify` reads it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]

use backchannel_proto::agreement::{Agreement, NAMESPACE, verify_signature};
use backchannel_proto::identity::Identity;
use backchannel_proto::message::ChannelId;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const TEXT: &[u8] = b"Article 1. The parties agree to a ceasefire from 06:00 on 1 May.\n";

fn string(b: &[u8]) -> Vec<u8> {
    [&(b.len() as u32).to_be_bytes()[..], b].concat()
}

/// The identity point as an Ed25519 key: the small-order key of the review's script.
fn weak_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    k[0] = 1;
    k
}

/// The review's forgery: an SSHSIG by the identity point with R = identity, s = 0, namespace
/// backchannel-agreement, sha512. It "verifies" for any message under a cofactorless check.
fn forged_signature() -> String {
    let pubblob = [string(b"ssh-ed25519"), string(&weak_key())].concat();
    let sig = [&weak_key()[..], &[0u8; 32]].concat();
    let sigblob = [string(b"ssh-ed25519"), string(&sig)].concat();
    let blob = [
        b"SSHSIG".to_vec(),
        1u32.to_be_bytes().to_vec(),
        string(&pubblob),
        string(NAMESPACE.as_bytes()),
        string(b""),
        string(b"sha512"),
        string(&sigblob),
    ]
    .concat();
    let b64 = STANDARD.encode(blob);
    let lines: Vec<&str> = b64.as_bytes().chunks(70).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN SSH SIGNATURE-----\n{}\n-----END SSH SIGNATURE-----\n", lines.join("\n"))
}

#[test]
fn the_forged_signature_is_refused_for_every_message() {
    let sig = forged_signature();
    for message in [&b"one text"[..], b"another, contradicting text", b""] {
        let err = verify_signature(&weak_key(), message, &sig).unwrap_err().to_string();
        assert!(err.contains("weak (small-order)"), "{err}");
    }
}

#[test]
fn an_export_with_a_small_order_key_fails_verify_naming_the_key() {
    let alice = Identity::generate("Alice", "Delegation A").unwrap();
    let bao = Identity::generate("Bao", "Delegation B").unwrap();
    let sides = vec!["Delegation A".to_owned(), "Delegation B".to_owned()];
    let mut agreement = Agreement::new(ChannelId([3; 16]), "Ceasefire", TEXT.to_vec(), sides);
    agreement.signatories =
        vec![agreement.sign(&alice, 1_800_000_000).unwrap(), agreement.sign(&bao, 1_800_000_060).unwrap()];
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in agreement.files().unwrap() {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let read = |dir: &std::path::Path| Agreement::from_files(|n| std::fs::read(dir.join(n)).ok());
    read(dir.path()).unwrap().verify().unwrap();

    // Bao's key (in allowed_signers and the manifest) and signature replaced by the forgery.
    let bao_key = backchannel_proto::agreement::seal_public_key_openssh(&bao.seal_public_key(), "").unwrap();
    let weak = backchannel_proto::agreement::seal_public_key_openssh(&weak_key(), "").unwrap();
    let (bao_b64, weak_b64) = (bao_key.split(' ').nth(1).unwrap(), weak.split(' ').nth(1).unwrap());
    for file in ["allowed_signers", "manifest.json"] {
        let content = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(content.contains(bao_b64));
        std::fs::write(dir.path().join(file), content.replace(bao_b64, weak_b64)).unwrap();
    }
    std::fs::write(dir.path().join("bao@delegation-b.sig"), forged_signature()).unwrap();

    let err = read(dir.path()).and_then(|a| a.verify()).unwrap_err().to_string();
    assert!(err.contains("Bao's seal key (side Delegation B)"), "{err}");
    assert!(err.contains(&format!("ssh-ed25519 01{}", "00".repeat(31))), "the key is named: {err}");
    assert!(err.contains("weak (small-order)"), "{err}");
}
