//! The option structs C callers fill in (start from the `_default()` functions), and their
//! translation into the library's options with every field checked.

use std::ffi::{c_char, CStr};

use sluice::api::{LlmOptions, Prompt, Request, DEFAULT_CTX, DEFAULT_MAX_BATCH};
use sluice::engine::backend::DeviceChoice;
use sluice::engine::sampler::SamplerConfig;

use crate::status::Failure;

/// Which backend computes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SluiceDevice {
    /// CUDA when a usable GPU is found, else the CPU.
    SluiceDeviceAuto = 0,
    /// The CPU backend.
    SluiceDeviceCpu = 1,
    /// The CUDA backend, or an error.
    SluiceDeviceCuda = 2,
}

/// How to open a model.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SluiceEngineOptions {
    /// Compute threads; 0: the machine's cores.
    pub threads: u32,
    /// Bytes of weights kept resident in RAM; negative: what fits in the memory limit; 0:
    /// stream every layer from disk for every token.
    pub ram_budget: i64,
    /// Positions one sequence may hold (prompt and answer); 0: 4096. Capped by the model's.
    pub ctx: u32,
    /// Most sequences generated together by `sluice_generate_batch`; 0: 8.
    pub max_batch: u32,
    /// Which backend computes.
    pub device: SluiceDevice,
}

/// How to generate.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SluiceGenerateOptions {
    /// Most tokens to generate (at least 1).
    pub max_tokens: u32,
    /// 0: greedy (argmax, ties to the lowest id); otherwise the sampling temperature.
    pub temperature: f32,
    /// Keep the k most likely tokens (0: off).
    pub top_k: u32,
    /// Keep the smallest set whose probability reaches p (1: off).
    pub top_p: f32,
    /// Drop tokens below min_p times the top probability (0: off).
    pub min_p: f32,
    /// Penalty on recently seen tokens (1: off).
    pub repeat_penalty: f32,
    /// Seed of the random draw.
    pub seed: u64,
    /// True: the prompt goes to the model as it is, without the chat template.
    pub raw: bool,
    /// Stop strings (UTF-8, NUL-terminated): the text ends just before the first generated.
    pub stop: *const *const c_char,
    /// How many strings `stop` points to (0: none; `stop` may then be null).
    pub n_stop: usize,
}

impl SluiceEngineOptions {
    /// The defaults: the machine's cores, the default budget, 4096 positions, 8 at once.
    pub fn defaults() -> SluiceEngineOptions {
        SluiceEngineOptions {
            threads: 0,
            ram_budget: -1,
            ctx: 0,
            max_batch: 0,
            device: SluiceDevice::SluiceDeviceAuto,
        }
    }

    /// The library's options.
    pub fn to_llm(self) -> LlmOptions {
        LlmOptions {
            threads: (self.threads > 0).then_some(self.threads as usize),
            ram_budget: u64::try_from(self.ram_budget).ok(),
            device: match self.device {
                SluiceDevice::SluiceDeviceAuto => DeviceChoice::Auto,
                SluiceDevice::SluiceDeviceCpu => DeviceChoice::Cpu,
                SluiceDevice::SluiceDeviceCuda => DeviceChoice::Cuda,
            },
            ctx: match self.ctx {
                0 => DEFAULT_CTX,
                n => n as usize,
            },
            max_batch: match self.max_batch {
                0 => DEFAULT_MAX_BATCH,
                n => n as usize,
            },
            ..LlmOptions::default()
        }
    }
}

impl SluiceGenerateOptions {
    /// The CLI's defaults: 128 tokens, temperature 0.8, top-k 40, top-p 0.95, min-p 0.05.
    pub fn defaults() -> SluiceGenerateOptions {
        let s = SamplerConfig::default();
        SluiceGenerateOptions {
            max_tokens: 128,
            temperature: s.temperature,
            top_k: s.top_k as u32,
            top_p: s.top_p,
            min_p: s.min_p,
            repeat_penalty: s.repeat_penalty,
            seed: s.seed,
            raw: false,
            stop: std::ptr::null(),
            n_stop: 0,
        }
    }

    /// The request for `prompt` under these options; the stop strings are copied.
    ///
    /// # Safety
    /// `stop` must point to `n_stop` valid NUL-terminated strings (or `n_stop` be 0).
    pub unsafe fn request(&self, prompt: &str) -> Result<Request, Failure> {
        let mut stop = Vec::with_capacity(self.n_stop);
        if self.n_stop > 0 {
            if self.stop.is_null() {
                return Err(Failure::argument("stop is null but n_stop is not 0"));
            }
            // SAFETY: the caller promises `stop` points to `n_stop` string pointers.
            let ptrs = unsafe { std::slice::from_raw_parts(self.stop, self.n_stop) };
            for (i, &p) in ptrs.iter().enumerate() {
                // SAFETY: each pointer is a NUL-terminated string or null (checked).
                let s = unsafe { c_str(p, &format!("stop[{i}]")) }?;
                stop.push(s.to_string());
            }
        }
        let mut r = Request::from_prompt(Prompt::Text(prompt.to_string()));
        r.max_tokens = self.max_tokens as usize;
        r.raw = self.raw;
        r.stop = stop;
        r.sampling = SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k as usize,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            ..SamplerConfig::default()
        };
        Ok(r)
    }
}

/// A NUL-terminated UTF-8 string from C; `what` names the argument in the error.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that outlives the returned borrow.
pub unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::argument(format!("{what} is null")));
    }
    // SAFETY: non-null, and NUL-terminated by the caller's promise.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|e| Failure::argument(format!("{what} is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_defaults_are_the_librarys() {
        let o = SluiceEngineOptions::defaults().to_llm();
        let l = LlmOptions::default();
        assert_eq!(
            (o.threads, o.ram_budget, o.ctx, o.max_batch),
            (l.threads, l.ram_budget, l.ctx, l.max_batch)
        );
        let zero = SluiceEngineOptions {
            ram_budget: 0,
            threads: 3,
            ..SluiceEngineOptions::defaults()
        }
        .to_llm();
        assert_eq!((zero.ram_budget, zero.threads), (Some(0), Some(3)));
    }

    #[test]
    fn stop_strings_are_copied_and_checked() {
        let stops = [c"\n\n".as_ptr(), c"END".as_ptr()];
        let o = SluiceGenerateOptions {
            stop: stops.as_ptr(),
            n_stop: 2,
            ..SluiceGenerateOptions::defaults()
        };
        // SAFETY: two live NUL-terminated strings.
        let r = unsafe { o.request("hi") }.ok().expect("a request");
        assert_eq!(r.stop, vec!["\n\n".to_string(), "END".to_string()]);
        assert_eq!(r.sampling, SamplerConfig::default());
        let dangling = SluiceGenerateOptions {
            n_stop: 1,
            ..SluiceGenerateOptions::defaults()
        };
        // SAFETY: `stop` is null, which `request` refuses before reading.
        let e = unsafe { dangling.request("hi") }.expect_err("refused");
        assert!(e.message.contains("stop is null"));
        let nulls = [std::ptr::null::<c_char>()];
        let o = SluiceGenerateOptions {
            stop: nulls.as_ptr(),
            n_stop: 1,
            ..SluiceGenerateOptions::defaults()
        };
        // SAFETY: one pointer, null, which `c_str` refuses.
        let e = unsafe { o.request("hi") }.expect_err("refused");
        assert_eq!(e.message, "stop[0] is null");
    }
}
