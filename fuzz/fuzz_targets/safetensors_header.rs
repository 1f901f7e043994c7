//! Fuzzes the safetensors header parser on arbitrary JSON bytes: it must return Ok or Err,
//! never panic; on success every tensor lies inside the data section, in order, without overlap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_loader::safetensors::parse_header;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes pick the data section's size; the rest is the header JSON.
    let Some((size, json)) = data.split_first_chunk::<8>() else {
        return;
    };
    let data_bytes = u64::from_le_bytes(*size) % (1 << 40);
    let data_start = 8 + json.len() as u64;
    match parse_header(json, data_start, data_bytes, 0) {
        Ok(tensors) => {
            for t in &tensors {
                assert!(t.offset >= data_start, "{t:?}");
                assert!(t.offset + t.n_bytes <= data_start + data_bytes, "{t:?}");
            }
            for pair in tensors.windows(2) {
                assert!(pair[0].offset + pair[0].n_bytes <= pair[1].offset, "{pair:?}");
            }
        }
        // Every error renders.
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
