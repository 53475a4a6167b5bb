#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = backchannel_proto::message::Message::decode(data);
    let _ = backchannel_proto::message::Hello::decode(data);
    // Channel messages carry JSON bodies: state, introductions, drafts, ratifications.
    let _ = backchannel_proto::channel::ChannelBody::decode(data);
});
