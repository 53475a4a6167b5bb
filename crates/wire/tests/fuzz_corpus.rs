//! Replays the fuzzers' corpora (`fuzz/corpus/TARGET/*`) through the same decoders on stable
//! Rust, so every input a fuzzer kept, including any that once found a bug, stays a test.

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::corpus;

#[test]
fn relay_address() {
    for input in corpus("relay_address") {
        let _ = String::from_utf8_lossy(&input).parse::<backchannel_wire::RelayAddress>();
    }
}

#[test]
fn send_batch_and_fetch() {
    for input in corpus("wire_send_batch").into_iter().chain(corpus("wire_fetch")) {
        let _ = backchannel_wire::SendBatch::decode(&input, backchannel_wire::MIN_BLOCK_SIZE);
        let _ = backchannel_wire::FetchResponse::decode(&input);
    }
}

#[test]
fn websocket_messages() {
    for input in corpus("wire_ws") {
        let _ = serde_json::from_slice::<backchannel_wire::WsClientMessage>(&input);
        let _ = serde_json::from_slice::<backchannel_wire::WsServerMessage>(&input);
        let _ = backchannel_wire::ws_delivery_decode(&input);
    }
}
