#![no_main]
use backchannel_proto::block::{Reassembler, open_block};
use backchannel_proto::crypto::SecretKey;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(fragment) = open_block(data, &SecretKey([7; 32])) {
        let _ = Reassembler::default().push(fragment);
    }
});
