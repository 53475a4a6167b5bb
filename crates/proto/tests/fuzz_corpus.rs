//! Replays the fuzzers' corpora (`fuzz/corpus/TARGET/*`) through the same decoders on stable
//! Rust, so every input a fuzzer kept stays a test.

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
    }
}
