#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = backchannel_proto::invitation::Invitation::from_text(&String::from_utf8_lossy(data));
});
