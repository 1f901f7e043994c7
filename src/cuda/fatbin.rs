//! The kernel image built by build.rs: one fatbin with SASS for sm_75/80/86/89/90 and
//! compute_90 PTX, or nothing when the build found no nvcc.

/// The fatbin (`cuModuleLoadData` accepts it as is), or `None` when built without nvcc.
#[cfg(sluice_kernels)]
pub static FATBIN: Option<&[u8]> = Some(include_bytes!(concat!(
    env!("OUT_DIR"),
    "/sluice_kernels.fatbin"
)));
/// The fatbin (`cuModuleLoadData` accepts it as is), or `None` when built without nvcc.
#[cfg(not(sluice_kernels))]
pub static FATBIN: Option<&[u8]> = None;

/// ptxas's per-kernel report (registers, stack, spills) for each architecture, if built.
#[cfg(sluice_kernels)]
pub static PTXAS_REPORT: Option<&str> = Some(include_str!(concat!(
    env!("OUT_DIR"),
    "/sluice_kernels_ptxas.txt"
)));
/// ptxas's per-kernel report (registers, stack, spills) for each architecture, if built.
#[cfg(not(sluice_kernels))]
pub static PTXAS_REPORT: Option<&str> = None;

/// Why there is no kernel image, for the CUDA backend to report; `None` when there is one.
pub fn missing_reason() -> Option<&'static str> {
    FATBIN.is_none().then_some(
        "sluice was built without kernels (no nvcc at build time; run scripts/install-cuda.sh and rebuild)",
    )
}

/// Type suffixes of the per-type kernels, in `GgmlType` id order.
const DEQUANT_TYPES: [&str; 16] = [
    "f32", "f16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_1", "q2_k", "q3_k", "q4_k", "q5_k",
    "q6_k", "q8_k", "iq4_nl", "bf16",
];

/// Every `extern "C"` entry point in the fatbin.
pub fn kernel_names() -> Vec<String> {
    let mut names: Vec<String> = DEQUANT_TYPES
        .iter()
        .map(|t| format!("dequant_{t}_f16"))
        .collect();
    for t in [
        "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k",
    ] {
        names.push(format!("matvec_{t}_q8_1"));
    }
    for t in ["f32", "f16", "bf16"] {
        names.push(format!("matvec_{t}_f32"));
    }
    for t in DEQUANT_TYPES {
        if t != "q8_1" && t != "q8_k" {
            names.push(format!("matmul_{t}_f32"));
        }
    }
    names.extend(
        [
            "quantize_q8_1_f32",
            "rms_norm_f32",
            "rope_norm_f32",
            "rope_neox_f32",
            "attn_decode_f16kv",
            "swiglu_f32",
            "add_f32",
            "add_rows_f32",
            "kv_store_f16",
            "argmax_f32",
        ]
        .map(String::from),
    );
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Entry names declared in kernels/*.cu: plain `extern "C" __global__` functions and the
    /// per-type macro instantiations, expanded with each macro's naming pattern.
    fn names_in_sources() -> BTreeSet<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/kernels");
        let patterns = [
            ("SLUICE_DEQUANT(", "dequant_{}_f16"),
            ("SLUICE_MATVEC_Q(", "matvec_{}_q8_1"),
            ("SLUICE_MATVEC_F(", "matvec_{}_f32"),
            ("SLUICE_MATMUL(", "matmul_{}_f32"),
        ];
        let mut names = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "cu") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                for (prefix, pattern) in patterns {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        let arg = rest.split(',').next().unwrap().trim();
                        names.insert(pattern.replace("{}", arg));
                    }
                }
                // `extern "C" __global__ void __launch_bounds__(..)` then `    name(args`.
                if line.starts_with("extern \"C\" __global__") && !line.trim_end().ends_with('\\') {
                    let next = lines[i + 1].trim();
                    names.insert(next.split('(').next().unwrap().to_string());
                }
            }
        }
        names
    }

    #[test]
    fn kernel_list_matches_the_sources() {
        let listed: BTreeSet<String> = kernel_names().into_iter().collect();
        assert_eq!(listed.len(), kernel_names().len(), "no duplicates");
        assert_eq!(listed, names_in_sources());
    }

    #[test]
    fn built_kernels_match_the_list_and_do_not_spill() {
        let (Some(bin), Some(report)) = (FATBIN, PTXAS_REPORT) else {
            assert!(missing_reason().is_some());
            eprintln!("skipped: built without nvcc, so there is no fatbin to inspect");
            return;
        };
        assert!(missing_reason().is_none());
        assert!(bin.len() > 1024);
        let listed: BTreeSet<String> = kernel_names().into_iter().collect();
        for arch in report.split("== ").filter(|s| s.starts_with("sm_")) {
            let compiled: BTreeSet<String> = arch
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().next().unwrap().to_string())
                .collect();
            assert_eq!(compiled, listed, "{}", arch.lines().next().unwrap());
            for line in arch.lines().skip(1) {
                assert!(
                    line.contains("spill_stores=0 spill_loads=0"),
                    "spill: {line}"
                );
            }
        }
    }
}
