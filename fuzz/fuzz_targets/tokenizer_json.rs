//! Fuzzes `Tokenizer::from_hf_files` on arbitrary `tokenizer.json` bytes, then encodes and
//! decodes a fixed text with what loads: no panic reaches the caller (the `tokenizers` crate
//! is called through the loader's panic guard), every error renders.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_loader::tokenizer::Tokenizer;

/// This process's scratch file for the input.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("sluice-fuzz-{}-tokenizer.json", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("write the scratch file");
    match Tokenizer::from_hf_files(path, None) {
        Ok(tok) => {
            for text in ["Hello world", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac", "日本 🎉\n\t x"] {
                if let Ok(ids) = tok.encode(text, false, true) {
                    let _ = tok.decode(&ids);
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
