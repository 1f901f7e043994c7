//! A model whose weights hold NaN (a damaged file): `sluice run` and `sluice perplexity` stop
//! with exit 2 and say the logits are not finite, instead of an empty reply (token 0, SmolLM2's
//! end of text) or a NaN perplexity. The model is SmolLM2 (needs
//! it in the cache; CI fetches it) copied with the scale of the first Q4_1 block of layer 0's
//! FFN down projection set to NaN: one element of the residual stream turns NaN, the next norm
//! spreads it to every element, and every logit follows. (A NaN in an F32 norm weight would not
//! do: quantising the activations for the next product maps a lone NaN to 0, as llama.cpp's
//! kernels do.)

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::{path_arg, refused};
use sluice_loader::cache::require_model;
use sluice_loader::gguf::GgufFile;
use sluice_loader::GgmlType;

/// SmolLM2 copied into `dir` with one Q4_1 block scale set to NaN.
fn damaged_model(dir: &Path) -> PathBuf {
    let model = require_model("smollm2-135m");
    let damaged = dir.join("damaged.gguf");
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
    damaged
}

#[test]
fn nan_weights_stop_the_run_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let damaged = damaged_model(dir.path());

    refused(
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
        &["not finite"],
    );
}

#[test]
fn nan_weights_stop_perplexity_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let damaged = damaged_model(dir.path());
    let text = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gpl-3.0.txt");
    refused(
        &[
            "perplexity",
            "-m",
            path_arg(&damaged),
            "-f",
            path_arg(&text),
            "-c",
            "64",
            "--chunks",
            "1",
            "--device",
            "cpu",
        ],
        // The first scored position of a 64-token chunk is 32, as in llama.cpp.
        &["not finite", "at position 32"],
    );
}
