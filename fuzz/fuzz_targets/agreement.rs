#![no_main]
//! An export folder packed into one input, files separated by NUL bytes: manifest,
//! allowed_signers, text, then one part per statement and signature file in the order they
//! are read (a signatory's statement, then its signature).
//! Replayed by crates/proto/tests/fuzz_corpus.rs, which must split inputs the same way.
use backchannel_proto::agreement::{ALLOWED_SIGNERS_FILE, Agreement, MANIFEST_FILE, Statement, verify_signature};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let parts: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let part = |i: usize| parts.get(i).map(|p| p.to_vec());
    let mut next_sig = 3;
    let read = |name: &str| match name {
        MANIFEST_FILE => part(0),
        ALLOWED_SIGNERS_FILE => part(1),
        sig if sig.ends_with(".sig") || sig.ends_with(".statement") => {
            next_sig += 1;
            part(next_sig - 1)
        }
        _ => part(2),
    };
    if let Ok(agreement) = Agreement::from_files(read) {
        let _ = agreement.verify();
        let _ = agreement.files();
    }
    let _ = verify_signature(&[7; 32], b"", &String::from_utf8_lossy(data));
    let _ = Statement::parse(data);
});
