#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = backchannel_redline::Query::decode(data);
    let _ = backchannel_redline::Reply::decode(data);
    let _ = backchannel_redline::Disclosure::decode(data);
});
