//! Peak RSS with every weight streamed (`--ram-budget 0`), for both reference models: the
//! ring, the KV cache and the run state, plus an overhead that does not grow with the weights.
//! Prints the figures (and, for comparison, the resident run's peak); run with `--nocapture`.
//!
//! The overhead has two parts, both independent of the weights' size (a 0.5B and a 72B Qwen
//! share the same 151,936-token vocabulary):
//! - [`FIXED_OVERHEAD_BYTES`]: the binary's resident pages, libc and allocator arenas, the
//!   stacks of the compute pool and reader threads, the slot of each small resident vector
//!   (output norm) and the embedding row buffer;
//! - [`BYTES_PER_VOCAB_ENTRY`] per vocabulary entry: the tokenizer's tables (each token's
//!   bytes once, a token index and the merge table, about 50 B an entry; the GGUF's own
//!   vocabulary arrays are freed once they are built) and the sampler's per-token arrays.
//!
//! Measured (Xeon VM, session 10): 12.2 MB beyond ring + KV cache + run state for SmolLM2
//! (49,152 entries), 19.5 MB for Qwen (151,936): a line through the two is about 71 B per
//! entry plus about 8.7 MB. Before the byte-level BPE had its own tables (the `tokenizers`
//! crate's model kept each text twice and string-keyed merges) it was 25.9 and 76.1 MB, about
//! 490 B per entry. The constants leave headroom over both models, yet either model's
//! embeddings kept resident (30 MB, 94 MB) would break the bound, and so would the old tables.

mod common;

use common::{open_model, path_arg, run_json, RunStats};
use sluice_loader::cache::require_model;

/// Memory that is there whatever the model (see the module docs).
const FIXED_OVERHEAD_BYTES: u64 = 16 << 20;

/// Tokenizer and sampler memory per vocabulary entry, with headroom over the ~71 B measured.
const BYTES_PER_VOCAB_ENTRY: u64 = 128;

const PROMPT: &str = "def fibonacci(n):";

fn run(path: &str, budget: &[&str]) -> RunStats {
    let mut args = vec![
        "run",
        "-m",
        path,
        "--prompt",
        PROMPT,
        "--raw",
        "--temperature",
        "0",
        "--max-tokens",
        "16",
        "--threads",
        "2",
        "--json",
    ];
    args.extend_from_slice(budget);
    run_json(&args, &[]).stats
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn check_model(model: &str) {
    let path = require_model(model);
    let files = open_model(&path);
    let weights: u64 = files.index.tensors.iter().map(|t| t.n_bytes).sum();
    let n_vocab = files.spec.n_vocab as u64;
    let streamed = run(path_arg(&path), &["--ram-budget", "0"]);
    let resident = run(path_arg(&path), &[]);
    let s = &streamed;
    assert_eq!(s.resident_layers, 0, "{s:?}");
    assert!(
        s.ring_bytes > 0 && s.kv_cache_bytes > 0 && s.run_state_bytes > 0,
        "{s:?}"
    );
    let accounted = s.ring_bytes + s.kv_cache_bytes + s.run_state_bytes;
    let overhead_max = FIXED_OVERHEAD_BYTES + BYTES_PER_VOCAB_ENTRY * n_vocab;
    let bound = accounted + overhead_max;
    println!(
        "{model}: weights {:.1} MB, vocabulary {n_vocab}\n  \
         --ram-budget 0: peak RSS {:.1} MB = ring {:.1} + KV cache {:.2} + run state {:.2} \
         + {:.1} MB other (allowed {:.1} MB: {:.1} fixed + {:.1} for the vocabulary); \
         bound {:.1} MB\n  resident (default budget): peak RSS {:.1} MB",
        mb(weights),
        mb(s.peak_rss_bytes),
        mb(s.ring_bytes),
        mb(s.kv_cache_bytes),
        mb(s.run_state_bytes),
        mb(s.peak_rss_bytes.saturating_sub(accounted)),
        mb(overhead_max),
        mb(FIXED_OVERHEAD_BYTES),
        mb(BYTES_PER_VOCAB_ENTRY * n_vocab),
        mb(bound),
        mb(resident.peak_rss_bytes),
    );
    assert!(
        s.peak_rss_bytes <= bound,
        "{model}: peak RSS {} B exceeds ring + KV cache + run state + overhead = {bound} B ({s:?})",
        s.peak_rss_bytes
    );
}

#[test]
fn smollm2_peak_rss_streamed() {
    check_model("smollm2-135m");
}

#[test]
fn qwen_peak_rss_streamed() {
    check_model("qwen2.5-coder-0.5b");
}
