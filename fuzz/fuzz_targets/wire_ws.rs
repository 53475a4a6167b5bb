#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<backchannel_wire::WsClientMessage>(data);
    let _ = serde_json::from_slice::<backchannel_wire::WsServerMessage>(data);
    let _ = backchannel_wire::ws_delivery_decode(data);
});
