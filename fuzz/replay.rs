//! Shared by the crates' `tests/fuzz_corpus.rs` (included with `#[path]`): reads the inputs a
//! fuzzer kept in `fuzz/corpus/TARGET/`, so they are replayed on stable Rust in `cargo test`.

use std::path::PathBuf;

/// Every input of one target's corpus; fails if there is none, so a lost corpus is noticed.
pub fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| std::fs::read(e.ok()?.path()).ok()).collect())
        .unwrap_or_default();
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    inputs
}
