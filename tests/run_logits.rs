//! First-step logits (`--logits-out`, after the prompt) against llama.cpp's, for both models and
//! every reference prompt (resident weights, AVX2 kernels, 2 threads). Prints max abs error,
//! max abs error after centring each vector, and the top-20 overlap. The same run with every
//! weight streamed (`--ram-budget 0`: layers, LM head in row ranges, embedding rows on demand)
//! must write bit-identical logits.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{
    assert_no_failures, cpu_has_avx512, greedy_args, load_reference, path_arg, read_f32_file,
    reference_dir, run_json, RefPrompt,
};
use sluice_loader::cache::require_model;

/// Bound on the max abs difference of the centred logit vectors.
///
/// Both llama.cpp and sluice sit about 0.6 max-abs from an exact f64 forward pass (each
/// quantises activations to Q8 with its own rounding), so their mutual distance can reach about
/// 1.2 by the triangle inequality; centring removes the ~0.3 uniform shift that Q8 noise along
/// the embeddings' common direction produces, and softmax ignores it anyway. 1.5 leaves headroom
/// over that worst case while a real defect (a wrong kernel, RoPE variant, bias, norm) moves
/// logits by several units and fails it.
const CENTRED_MAX_ABS_BOUND: f64 = 1.5;

/// Top-20 ids the two implementations must share at least.
const TOP20_OVERLAP_MIN: usize = 15;

/// The ids of the `k` largest values, ties to the lower id.
fn top_k_ids(v: &[f32], k: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..v.len() as u32).collect();
    ids.sort_by(|&a, &b| {
        v[b as usize]
            .total_cmp(&v[a as usize])
            .then_with(|| a.cmp(&b))
    });
    ids.truncate(k);
    ids
}

/// Mean of a vector, in f64.
fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64
}

/// The figures of one comparison.
struct Figures {
    max_abs: f64,
    centred_max_abs: f64,
    mean_shift: f64,
    overlap: usize,
    argmax_ours: u32,
    argmax_ref: u32,
}

/// Compares our logits with the reference's.
fn compare(ours: &[f32], reference: &[f32], p: &RefPrompt) -> Figures {
    let (mo, mr) = (mean(ours), mean(reference));
    let mut max_abs = 0f64;
    let mut centred_max_abs = 0f64;
    for (&a, &b) in ours.iter().zip(reference) {
        let (a, b) = (f64::from(a), f64::from(b));
        max_abs = max_abs.max((a - b).abs());
        centred_max_abs = centred_max_abs.max(((a - mo) - (b - mr)).abs());
    }
    let top = top_k_ids(ours, 20);
    let overlap = p
        .top20_first_step
        .iter()
        .filter(|t| top.contains(&t.id))
        .count();
    Figures {
        max_abs,
        centred_max_abs,
        mean_shift: mo - mr,
        overlap,
        argmax_ours: top[0],
        argmax_ref: top_k_ids(reference, 1)[0],
    }
}

/// Runs every prompt of `model` for one token with `--logits-out` and checks the figures.
fn check_model(model: &str) {
    let started = Instant::now();
    let path = require_model(model);
    let reference = load_reference(model);
    let dir = tempfile::tempdir().expect("a temporary directory for the logits files");
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (id, p) in &reference.prompts {
        let ref_path = reference_dir().join(&p.first_step_logits_file);
        let ref_logits = read_f32_file(&ref_path);
        assert_eq!(ref_logits.len(), p.n_vocab, "{}", ref_path.display());
        assert_eq!(
            top_k_ids(&ref_logits, 1)[0],
            p.top20_first_step[0].id,
            "{}: argmax disagrees with top20_first_step",
            ref_path.display()
        );
        let first_step = |budget: &[&str], isa: &str, out: &Path| {
            let mut args = greedy_args(path_arg(&path), &p.text, "1", "2");
            args.extend(["--logits-out", path_arg(out)]);
            args.extend_from_slice(budget);
            let run = run_json(&args, &[("SLUICE_SIMD", isa)]);
            (run, read_f32_file(out))
        };
        let (run, ours) = first_step(&[], "avx2", &dir.path().join(format!("{model}-{id}.f32")));
        let streamed_path = dir.path().join(format!("{model}-{id}-streamed.f32"));
        let (_, streamed) = first_step(&["--ram-budget", "0"], "avx2", &streamed_path);
        let label = format!("{model} {id}");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let streamed_same = bits(&streamed) == bits(&ours);
        if !streamed_same {
            failures.push(format!(
                "{label}: --ram-budget 0 logits differ from the resident run's"
            ));
        }
        // Every higher tier keeps the AVX2 order: the same logits to the bit.
        if cpu_has_avx512() {
            let out = dir.path().join(format!("{model}-{id}-avx512.f32"));
            let (_, wide) = first_step(&[], "avx512", &out);
            if bits(&wide) != bits(&ours) {
                failures.push(format!(
                    "{label}: SLUICE_SIMD=avx512 logits differ from avx2's"
                ));
            }
        } else if id == "A" {
            eprintln!(
                "{model}: this CPU lacks AVX-512 F/BW/VL/VNNI; the avx512 tier is not compared"
            );
        }
        if ours.len() != ref_logits.len() {
            failures.push(format!(
                "{label}: {} logits, reference {}",
                ours.len(),
                ref_logits.len()
            ));
            continue;
        }
        let f = compare(&ours, &ref_logits, p);
        let row = format!(
            "{model:<18} {id:<2} {:>8.4} {:>8.4} {:>+8.4} {:>5}/20 {:>7} {:>7} {:>9}",
            f.max_abs,
            f.centred_max_abs,
            f.mean_shift,
            f.overlap,
            f.argmax_ours,
            f.argmax_ref,
            if streamed_same {
                "same bits"
            } else {
                "DIFFERENT"
            }
        );
        // Two independent implementations never agree to the last bit over a whole
        // vocabulary: say so, the reference file's provenance deserves a look.
        let row = if f.max_abs == 0.0 {
            format!("{row}  bit-identical to the reference file (check its provenance)")
        } else {
            row
        };
        eprintln!("{row}");
        rows.push(row);
        if f.argmax_ours != f.argmax_ref {
            failures.push(format!(
                "{label}: argmax {} but the reference's is {}",
                f.argmax_ours, f.argmax_ref
            ));
        }
        if run.tokens.first() != Some(&f.argmax_ours) {
            failures.push(format!(
                "{label}: greedy token {:?} is not the argmax {} of the written logits",
                run.tokens, f.argmax_ours
            ));
        }
        if f.overlap < TOP20_OVERLAP_MIN {
            failures.push(format!(
                "{label}: top-20 overlap {} < {TOP20_OVERLAP_MIN}",
                f.overlap
            ));
        }
        if f.centred_max_abs.is_nan() || f.centred_max_abs >= CENTRED_MAX_ABS_BOUND {
            failures.push(format!(
                "{label}: centred max abs error {:.4} ≥ {CENTRED_MAX_ABS_BOUND}",
                f.centred_max_abs
            ));
        }
    }
    println!(
        "\n{:<18} {:<2} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>9}\n{}\n{model}: {:.1} s\n",
        "model",
        "id",
        "maxabs",
        "centred",
        "shift",
        "top20",
        "argmax",
        "ref",
        "streamed",
        rows.join("\n"),
        started.elapsed().as_secs_f64()
    );
    assert_no_failures(&format!("{model} first-step logits"), &failures);
}

#[test]
fn smollm2_first_step_logits() {
    check_model("smollm2-135m");
}

#[test]
fn qwen_first_step_logits() {
    check_model("qwen2.5-coder-0.5b");
}

#[test]
fn top_k_ties_go_to_the_lower_id() {
    assert_eq!(top_k_ids(&[1.0, 3.0, 3.0, 2.0], 3), vec![1, 2, 3]);
}
