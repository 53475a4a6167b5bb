#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = backchannel_wire::SendBatch::decode(data, backchannel_wire::MIN_BLOCK_SIZE);
});
