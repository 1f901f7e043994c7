//! Which backend computes: the `--device` choice, resolved once at load.
//!
//! `Auto` takes the GPU when a driver, a device and the kernels are present and the model runs
//! on them, otherwise the CPU, and says why; `Cuda` insists and fails with the reason.

use sluice_loader::extents::LayerExtents;

use crate::cuda::{CudaBackend, CudaError};
use crate::model::forward::Config;

/// The device asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA when usable, otherwise the CPU.
    #[default]
    Auto,
    /// The CPU backend.
    Cpu,
    /// The CUDA backend, or an error.
    Cuda,
}

/// The device chosen.
pub enum Selected {
    /// The CPU; `why` says why not the GPU when `Auto` fell back.
    Cpu {
        /// Why the GPU was not used (None when the CPU was asked for).
        why: Option<String>,
    },
    /// The GPU.
    Cuda(Box<CudaBackend>),
}

/// Resolves `choice` for a model.
pub fn select(
    choice: DeviceChoice,
    extents: &LayerExtents,
    cfg: &Config,
) -> Result<Selected, CudaError> {
    match choice {
        DeviceChoice::Cpu => Ok(Selected::Cpu { why: None }),
        DeviceChoice::Cuda => CudaBackend::new(extents, cfg).map(|b| Selected::Cuda(Box::new(b))),
        DeviceChoice::Auto => Ok(match CudaBackend::new(extents, cfg) {
            Ok(b) => Selected::Cuda(Box::new(b)),
            Err(e) => Selected::Cpu {
                why: Some(e.to_string()),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_taken_as_asked() {
        let ext = LayerExtents {
            alignment_bytes: 4096,
            layers: vec![],
            globals: vec![],
            unknown: vec![],
        };
        let cfg = Config {
            n_layer: 0,
            n_embd: 64,
            n_ff: 128,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 32,
            n_rot: 32,
            rms_eps: 1e-5,
            rope_freq_base: 10_000.0,
            rope_pairs: crate::model::ops::RopePairs::Adjacent,
            interleave_qk: false,
            n_vocab: 10,
        };
        assert!(matches!(
            select(DeviceChoice::Cpu, &ext, &cfg),
            Ok(Selected::Cpu { why: None })
        ));
        // Without a usable GPU (this machine, or a build without `cuda`), auto falls back with a
        // reason and cuda is an "unavailable" error; with one, both pick it.
        match select(DeviceChoice::Cuda, &ext, &cfg) {
            Err(e) => {
                assert!(e.is_unavailable(), "{e}");
                match select(DeviceChoice::Auto, &ext, &cfg) {
                    Ok(Selected::Cpu { why: Some(why) }) => {
                        assert!(why.contains("no usable CUDA device"))
                    }
                    _ => panic!("auto must fall back to the CPU"),
                }
            }
            Ok(_) => assert!(matches!(
                select(DeviceChoice::Auto, &ext, &cfg),
                Ok(Selected::Cuda(_))
            )),
        }
    }
}
