#![no_main]
// Arbitrary bytes as a channel body and as a note, from the creator, a member and a stranger,
// to the fixed channel the stable replay uses (crates/party/tests/fuzz_corpus.rs).
#[path = "../../crates/party/tests/fuzz_fixture/mod.rs"]
mod fixture;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fixture::receive_all(data);
});
