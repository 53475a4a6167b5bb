#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = String::from_utf8_lossy(data).parse::<backchannel_wire::RelayAddress>();
});
