//! Replays the fuzzer's corpus (`fuzz/corpus/probe_messages/*`) through the probe message
//! decoders on stable Rust.

#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn probe_messages() {
    for input in replay::corpus("probe_messages") {
        let _ = backchannel_redline::Query::decode(&input);
        let _ = backchannel_redline::Reply::decode(&input);
        let _ = backchannel_redline::Disclosure::decode(&input);
    }
}
