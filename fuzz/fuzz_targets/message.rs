#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = backchannel_proto::message::Message::decode(data);
    let _ = backchannel_proto::message::Hello::decode(data);
});
