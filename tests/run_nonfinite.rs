//! A model whose weights hold NaN (a damaged file): `sluice run` stops with exit 2 and says the
//! logits are not finite, instead of printing token 0 over and over. The model is SmolLM2 (needs
//! it in the cache; CI fetches it) copied with the scale of the first Q4_1 block of layer 0's
//! FFN down projection set to NaN: one element of the residual stream turns NaN, the next norm
//! spreads it to every element, and every logit follows. (A NaN in an F32 norm weight would not
//! do: quantising the activations for the next product maps a lone NaN to 0, as llama.cpp's
//! kernels do.)

mod common;

use std::io::{Seek, SeekFrom, Write};

use common::{path_arg, sluice, stderr};
use sluice_loader::cache::require_model;
use sluice_loader::gguf::GgufFile;
use sluice_loader::GgmlType;

#[test]
fn nan_weights_stop_the_run_with_a_reason() {
    let model = require_model("smollm2-135m");
    let dir = tempfile::tempdir().expect("tempdir");
    let damaged = dir.path().join("damaged.gguf");
    std::fs::copy(&model, &damaged).expect("copy the model");
    let g = GgufFile::open(&model).expect("SmolLM2 opens");
    let down = g
        .index
        .tensors
        .iter()
        .find(|t| t.name == "blk.0.ffn_down.weight")
        .expect("blk.0.ffn_down.weight");
    assert_eq!(down.ty, GgmlType::Q4_1, "a block starts with its f16 scale");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&damaged)
        .expect("open the copy");
    f.seek(SeekFrom::Start(down.offset)).expect("seek");
    f.write_all(&0x7e00u16.to_le_bytes())
        .expect("write an f16 NaN");
    drop(f);

    let o = sluice(
        &[
            "run",
            "-m",
            path_arg(&damaged),
            "--prompt",
            "The sky is",
            "--raw",
            "--max-tokens",
            "4",
            "--temperature",
            "0",
            "--device",
            "cpu",
        ],
        &[],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not finite"), "{err}");
}
