//! Replays the fuzzers' corpora (`fuzz/corpus/TARGET/*`) through the same decoders on stable
//! Rust, so every input a fuzzer kept stays a test.

use backchannel_proto::agreement::{
    ALLOWED_SIGNERS_FILE, Agreement, MANIFEST_FILE, Statement, verify_signature,
};
use backchannel_proto::block::{Reassembler, open_block};
use backchannel_proto::crypto::SecretKey;

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::corpus;

#[test]
fn invitations() {
    for input in corpus("invitation") {
        let _ = backchannel_proto::invitation::Invitation::from_text(&String::from_utf8_lossy(&input));
    }
}

#[test]
fn blocks() {
    for input in corpus("block") {
        if let Ok(fragment) = open_block(&input, &SecretKey([7; 32])) {
            let _ = Reassembler::default().push(fragment);
        }
    }
}

#[test]
fn messages() {
    for input in corpus("message") {
        let _ = backchannel_proto::message::Message::decode(&input);
        let _ = backchannel_proto::message::Hello::decode(&input);
        let _ = backchannel_proto::channel::ChannelBody::decode(&input);
    }
}

/// Splits an input the way fuzz_targets/agreement.rs does: NUL-separated manifest,
/// allowed_signers, text, then the statement and signature files in the order they are read.
fn agreement_input(data: &[u8]) -> Option<Agreement> {
    let parts: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let part = |i: usize| parts.get(i).map(|p| p.to_vec());
    let mut next_sig = 3;
    let read = |name: &str| match name {
        MANIFEST_FILE => part(0),
        ALLOWED_SIGNERS_FILE => part(1),
        sig if sig.ends_with(".sig") || sig.ends_with(".statement") => {
            next_sig += 1;
            part(next_sig - 1)
        }
        _ => part(2),
    };
    let agreement = Agreement::from_files(read).ok();
    if let Some(agreement) = &agreement {
        let _ = agreement.verify();
        let _ = agreement.files();
    }
    let _ = verify_signature(&[7; 32], b"", &String::from_utf8_lossy(data));
    let _ = Statement::parse(data);
    agreement
}

#[test]
fn agreements() {
    let mut verified = 0;
    for input in corpus("agreement") {
        verified += usize::from(agreement_input(&input).is_some_and(|a| a.verify().is_ok()));
    }
    assert!(verified > 0, "the agreement seeds should hold a valid export");
}

/// Rewrites the agreement seeds: a valid two-signatory export packed as the fuzzer expects,
/// and its manifest, allowed_signers, a statement and a signature alone.
#[test]
#[ignore = "writes fuzz/corpus/agreement; run by hand after changing the export format"]
fn write_agreement_seeds() {
    use backchannel_proto::identity::Identity;
    let text = b"Article 1. The parties agree to a ceasefire.\n".to_vec();
    let sides = vec!["Delegation A".to_owned(), "Delegation B".to_owned()];
    let channel = backchannel_proto::message::ChannelId([0x42; 16]);
    let mut agreement = Agreement::new(channel, "Ceasefire", text.clone(), sides);
    for (name, side) in [("Alice", "Delegation A"), ("Bao", "Delegation B")] {
        let id = Identity::generate(name, side).unwrap();
        let signatory = agreement.sign(&id, 1_800_000_000).unwrap();
        agreement.signatories.push(signatory);
    }
    let files: std::collections::HashMap<String, Vec<u8>> = agreement.files().unwrap().into_iter().collect();
    let signed = agreement
        .principals()
        .iter()
        .flat_map(|p| [files[&format!("{p}.statement")].clone(), files[&format!("{p}.sig")].clone()])
        .collect::<Vec<_>>();
    let sigs = agreement.principals().iter().map(|p| files[&format!("{p}.sig")].clone()).collect::<Vec<_>>();
    let mut packed = [files["manifest.json"].clone(), files["allowed_signers"].clone(), text].to_vec();
    packed.extend(signed.iter().cloned());
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/agreement");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("seed-export"), packed.join(&0u8)).unwrap();
    std::fs::write(dir.join("seed-manifest"), &files["manifest.json"]).unwrap();
    std::fs::write(dir.join("seed-allowed-signers"), &files["allowed_signers"]).unwrap();
    std::fs::write(dir.join("seed-signature"), &sigs[0]).unwrap();
    std::fs::write(dir.join("seed-statement"), &files["alice@delegation-a.statement"]).unwrap();
    assert!(agreement_input(&packed.join(&0u8)).unwrap().verify().is_ok());
}
