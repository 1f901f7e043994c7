//! Fuzzes the GGUF header parser on arbitrary bytes: it must return Ok or Err, never panic,
//! hang, or allocate beyond what the input's size allows.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sluice_loader::gguf::GgufFile;

fuzz_target!(|data: &[u8]| {
    match GgufFile::parse(Cursor::new(data), data.len() as u64, Path::new("fuzz.gguf")) {
        Ok(file) => {
            // Invariants a successful parse promises.
            assert!(file.alignment.is_power_of_two());
            assert!(file.data_offset % file.alignment == 0);
            for t in &file.index.tensors {
                assert!(t.offset >= file.data_offset);
                assert!(t.offset + t.n_bytes <= file.file_size);
            }
        }
        Err(e) => {
            // Every error must render, and name the file.
            assert!(e.to_string().starts_with("fuzz.gguf: at byte "));
        }
    }
});
