//! The kernels' math, compiled for the host from the same headers (kernels/host/host_check.cpp,
//! built by build.rs with the host C++ compiler), checked against the Rust reference.
//!
//! What is checked, and how closely (the measured maxima are printed with `--nocapture`):
//! - Dequantisation, every type the loader reads: **bit-exact** against `loader`'s
//!   `dequantize_row` in f32, and the stored f16 equals `half`'s round-to-nearest-even of it.
//! - The Q8_1 activation quantiser: byte-identical to the CPU backend's.
//! - Matvec dots (weights · Q8_1 activations; float weights · f32 activations), against the
//!   f64 dot of the loader's dequantised weights with the f32 activations. Bound for quantised
//!   weights: Σ_blocks 0.57·(amax_b/127)·Σ_{i∈b}|w_i| (each activation moves by at most half a
//!   quantisation step plus the f16 rounding of the step) + 1e-5·Σ|w_i·x_i|; for float weights
//!   (n/32 + 6)·2⁻²⁴·Σ|w_i·x_i|. Against the CPU backend's `vec_dot` the bound is the sum of
//!   both paths' bounds.
//! - Prefill matmul (the kernel's tiles replayed): (K + 2)·2⁻²⁴·Σ|w·x| per output.
//! - RMSNorm vs `ops::rms_norm`: 2⁻²⁰·|ref| (f32 partial sums instead of f64).
//! - RoPE vs `ops::RopeTable`: bit-exact on the host (same θ, same FMAs, libm sin/cos); the
//!   device's `sincosf` adds at most 2 ulp of sin/cos, i.e. ≤ 2⁻²²·(|x0| + |x1|).
//! - SwiGLU vs `ops::swiglu`: 2⁻²⁰·|ref| (libm/`expf` against llama.cpp's exp polynomial).
//! - Decode attention vs `model::attention::attend` (which rounds q and the probabilities to
//!   f16): 4·10⁻³·max|v|; against the f64 softmax over the same f16 cache: 10⁻⁵·max|v|.
//! - Argmax: identical index, ties to the lowest.

use half::f16;
use sluice_loader::quant::dequantize_row;
use sluice_loader::GgmlType;

use crate::cpu::quantize::quantize_row_q8_1;
use crate::cpu::{quantize_acts, vec_dot_with, Isa, QuantizedActs};
use crate::model::attention::{attend, AttnScratch, AttnShape};
use crate::model::kv_cache::{KvCache, KV_PAD};
use crate::model::ops::{rms_norm, swiglu, RopePairs, RopeTable};
use sluice_loader::quant::blocks::BlockQ8_1;

mod ffi {
    extern "C" {
        pub fn sluice_hc_block_bytes(type_id: i32) -> i32;
        pub fn sluice_hc_f32_to_f16(x: f32) -> u16;
        pub fn sluice_hc_f16_to_f32(h: u16) -> f32;
        pub fn sluice_hc_dequant(
            type_id: i32,
            src: *const u8,
            n: i64,
            f32_out: *mut f32,
            f16_out: *mut u16,
        ) -> i32;
        pub fn sluice_hc_quantize_q8_1(x: *const f32, n: i32, out: *mut u8);
        pub fn sluice_hc_matvec_row(
            type_id: i32,
            w: *const u8,
            x: *const f32,
            row_elems: i32,
            out: *mut f32,
        ) -> i32;
        pub fn sluice_hc_matmul(
            type_id: i32,
            w: *const u8,
            x: *const f32,
            out: *mut f32,
            n_rows: i32,
            row_elems: i32,
            n_tok: i32,
        ) -> i32;
        pub fn sluice_hc_rms_norm(x: *const f32, w: *const f32, out: *mut f32, n: i32, eps: f32);
        pub fn sluice_hc_rope(
            x: *mut f32,
            pos: i32,
            n_heads: i32,
            head_dim: i32,
            n_rot: i32,
            theta_scale: f32,
            freq_factors: *const f32,
            neox: i32,
        );
        pub fn sluice_hc_swiglu(g: *const f32, u: *const f32, out: *mut f32, n: i64);
        #[allow(clippy::too_many_arguments)]
        pub fn sluice_hc_attention(
            q: *const f32,
            k_cache: *const u16,
            v_cache: *const u16,
            out: *mut f32,
            pos: i32,
            n_head: i32,
            n_head_kv: i32,
            head_dim: i32,
            scale: f32,
        );
        pub fn sluice_hc_argmax(x: *const f32, n: i32) -> u32;
    }
}

// Safe wrappers: each checks the lengths the C side relies on.

fn block_bytes(ty: GgmlType) -> i32 {
    // SAFETY: pure function of an integer.
    unsafe { ffi::sluice_hc_block_bytes(ty.id() as i32) }
}

fn to_f16(x: f32) -> u16 {
    // SAFETY: pure function of a float.
    unsafe { ffi::sluice_hc_f32_to_f16(x) }
}

fn from_f16(h: u16) -> f32 {
    // SAFETY: pure function of an integer.
    unsafe { ffi::sluice_hc_f16_to_f32(h) }
}

fn dequant(ty: GgmlType, src: &[u8], n: usize) -> (Vec<f32>, Vec<u16>) {
    assert_eq!(ty.row_bytes(n as u64), Some(src.len() as u64));
    let (mut a, mut b) = (vec![0f32; n], vec![0u16; n]);
    // SAFETY: src holds exactly the blocks of n elements; both outputs hold n elements.
    let rc = unsafe {
        ffi::sluice_hc_dequant(
            ty.id() as i32,
            src.as_ptr(),
            n as i64,
            a.as_mut_ptr(),
            b.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "{ty}");
    (a, b)
}

fn quantize_q8_1_host(x: &[f32]) -> Vec<u8> {
    assert_eq!(x.len() % 32, 0);
    let mut out = vec![0u8; x.len() / 32 * 36];
    // SAFETY: x has n elements, out n/32 blocks of 36 bytes.
    unsafe { ffi::sluice_hc_quantize_q8_1(x.as_ptr(), x.len() as i32, out.as_mut_ptr()) };
    out
}

fn matvec_row(ty: GgmlType, w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(ty.row_bytes(x.len() as u64), Some(w.len() as u64));
    let mut out = f32::NAN;
    // SAFETY: w is one row of x.len() elements of ty; out is one f32.
    let rc = unsafe {
        ffi::sluice_hc_matvec_row(
            ty.id() as i32,
            w.as_ptr(),
            x.as_ptr(),
            x.len() as i32,
            &mut out,
        )
    };
    assert_eq!(rc, 0, "{ty}");
    out
}

fn matmul(ty: GgmlType, w: &[u8], x: &[f32], n_rows: usize, k: usize) -> Vec<f32> {
    let n_tok = x.len() / k;
    assert_eq!(
        ty.row_bytes(k as u64).map(|b| b * n_rows as u64),
        Some(w.len() as u64)
    );
    let mut out = vec![f32::NAN; n_tok * n_rows];
    // SAFETY: w holds n_rows rows of k elements, x n_tok rows of k, out n_tok × n_rows.
    let rc = unsafe {
        ffi::sluice_hc_matmul(
            ty.id() as i32,
            w.as_ptr(),
            x.as_ptr(),
            out.as_mut_ptr(),
            n_rows as i32,
            k as i32,
            n_tok as i32,
        )
    };
    assert_eq!(rc, 0, "{ty}");
    out
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Byte offsets of a block's f16 scale fields (set to finite values in random blocks).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType as T;
    match ty {
        T::Q4_0 | T::Q5_0 | T::Q8_0 | T::IQ4NL => &[0],
        T::Q4_1 | T::Q5_1 | T::Q8_1 | T::Q4K | T::Q5K => &[0, 2],
        T::Q2K => &[80, 82],
        T::Q3K => &[108],
        T::Q6K => &[208],
        T::F32 | T::F16 | T::BF16 | T::Q8K => &[],
    }
}

/// `n` elements of random blocks of `ty`: random quants, finite scales of either sign (some
/// subnormal), float types from finite values.
fn random_row(rng: &mut Rng, ty: GgmlType, n: usize) -> Vec<u8> {
    let mut v = match ty {
        GgmlType::F32 => (0..n).flat_map(|_| rng.f32().to_le_bytes()).collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.f32() * 2.0).to_le_bytes())
            .collect(),
        GgmlType::BF16 => (0..n)
            .flat_map(|_| half::bf16::from_f32(rng.f32() * 2.0).to_le_bytes())
            .collect(),
        _ => rng.bytes(ty.row_bytes(n as u64).unwrap() as usize),
    };
    let bb = ty.block_bytes();
    for (i, block) in v.chunks_exact_mut(bb).enumerate() {
        for &off in f16_fields(ty) {
            let scale = if i % 7 == 3 { 1e-6 } else { 0.02 };
            block[off..off + 2].copy_from_slice(&f16::from_f32(rng.f32() * scale).to_le_bytes());
        }
        if ty == GgmlType::Q8K {
            block[..4].copy_from_slice(&(rng.f32() * 0.01).to_le_bytes());
        }
    }
    v
}

fn reference_dequant(ty: GgmlType, src: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize_row(ty, src, &mut out).unwrap();
    out
}

#[test]
fn block_sizes_match_the_rust_layouts() {
    for ty in GgmlType::ALL {
        assert_eq!(block_bytes(ty), ty.block_bytes() as i32, "{ty}");
    }
}

#[test]
fn half_conversions_match_the_half_crate() {
    for h in 0..=u16::MAX {
        let want = f16::from_bits(h).to_f32();
        let got = from_f16(h);
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{h:#x}"
        );
    }
    let mut rng = Rng(7);
    let specials = [
        0.0f32, -0.0, 65504.0, 65520.0, 65519.99, 5.96e-8, 2.98e-8, 2.99e-8, 6.1e-5,
    ];
    let sweep = (0..2_000_000u32).map(|_| f32::from_bits(rng.next_u64() as u32));
    for x in specials.into_iter().chain(sweep) {
        let want = f16::from_f32(x).to_bits();
        let got = to_f16(x);
        assert!(
            got == want || (x.is_nan() && got & 0x7C00 == 0x7C00 && got & 0x3FF != 0),
            "{x:e}"
        );
    }
}

#[test]
fn dequant_is_bit_exact_for_every_type() {
    let mut rng = Rng(0x5EED);
    for ty in GgmlType::ALL {
        let n = ty.block_elems() * 48;
        let src = random_row(&mut rng, ty, n);
        let want = reference_dequant(ty, &src, n);
        let (got, got16) = dequant(ty, &src, n);
        for i in 0..n {
            assert_eq!(got[i].to_bits(), want[i].to_bits(), "{ty} element {i}");
            assert_eq!(
                got16[i],
                f16::from_f32(want[i]).to_bits(),
                "{ty} f16 element {i}"
            );
        }
    }
}

#[test]
fn q8_1_quantiser_matches_the_cpu_byte_for_byte() {
    let mut rng = Rng(99);
    let mut x: Vec<f32> = (0..4096).map(|_| rng.f32() * 3.0).collect();
    x[..32].fill(0.0); // an all-zero block
    x[40] = 1e4; // an outlier
    let got = quantize_q8_1_host(&x);
    let zero = BlockQ8_1 {
        d: [0; 2],
        s: [0; 2],
        qs: [0; 32],
    };
    let mut cpu = vec![zero; x.len() / 32];
    quantize_row_q8_1(Isa::current(), &x, &mut cpu);
    let cpu_bytes: Vec<u8> = cpu
        .iter()
        .flat_map(|b| {
            let mut v = b.d.to_vec();
            v.extend(b.s);
            v.extend(b.qs.map(|q| q as u8));
            v
        })
        .collect();
    assert_eq!(got, cpu_bytes);
}

/// Σ over 32-element blocks of c·(amax_b/127)·Σ_{i∈b}|w_i|, for an activation format with
/// blocks of `block` elements.
fn quant_bound(w: &[f32], x: &[f32], block: usize, c: f64) -> f64 {
    w.chunks(block)
        .zip(x.chunks(block))
        .map(|(wb, xb)| {
            let amax = xb.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
            c * amax / 127.0 * wb.iter().map(|v| f64::from(v.abs())).sum::<f64>()
        })
        .sum()
}

#[test]
fn matvec_dots_are_within_their_bounds() {
    let mut rng = Rng(0xD07);
    let n = 2048;
    let isa = Isa::current();
    let mut acts = QuantizedActs::for_shape(1, n);
    println!("type     max|gpu-exact|/bound  max|gpu-exact|/Σ|wx|  max|gpu-cpu|/Σ|wx|");
    for ty in GgmlType::ALL.into_iter().filter(|t| t.is_weight_type()) {
        let (mut worst_bound, mut worst_rel, mut worst_cpu) = (0f64, 0f64, 0f64);
        for trial in 0..24 {
            let w = random_row(&mut rng, ty, n);
            let mut x: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            if trial % 3 == 0 {
                x[rng.next_u64() as usize % n] = 40.0; // an activation outlier
            }
            let wf = reference_dequant(ty, &w, n);
            let exact: f64 = wf
                .iter()
                .zip(&x)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let mag: f64 = wf
                .iter()
                .zip(&x)
                .map(|(&a, &b)| f64::from(a * b).abs())
                .sum();
            let gpu = f64::from(matvec_row(ty, &w, &x));
            let unit = 2f64.powi(-24);
            let bound = match ty {
                GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
                    (n as f64 / 32.0 + 6.0) * unit * mag
                }
                _ => quant_bound(&wf, &x, 32, 0.57) + 1e-5 * mag,
            };
            // The CPU's own bound: Q8_0/Q8_1 per 32, Q8_K per 256, f16/bf16-rounded x.
            let cpu_bound = match ty {
                GgmlType::F32 => (n as f64) * unit * mag,
                GgmlType::F16 => (2f64.powi(-11) + n as f64 * unit) * mag,
                GgmlType::BF16 => (2f64.powi(-8) + n as f64 * unit) * mag,
                GgmlType::Q2K | GgmlType::Q3K | GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => {
                    quant_bound(&wf, &x, 256, 0.57) + 1e-5 * mag
                }
                _ => quant_bound(&wf, &x, 32, 0.57) + 1e-5 * mag,
            };
            quantize_acts(ty, &x, 1, &mut acts).unwrap();
            let cpu = f64::from(vec_dot_with(isa, ty, n, &w, acts.row(0)).unwrap());
            let err = (gpu - exact).abs();
            assert!(
                err <= bound,
                "{ty} trial {trial}: gpu {gpu} exact {exact} bound {bound}"
            );
            assert!(
                (gpu - cpu).abs() <= bound + cpu_bound,
                "{ty} trial {trial}: gpu {gpu} cpu {cpu}"
            );
            worst_bound = worst_bound.max(err / bound);
            worst_rel = worst_rel.max(err / mag);
            worst_cpu = worst_cpu.max((gpu - cpu).abs() / mag);
        }
        println!(
            "{:<8} {worst_bound:>20.3e}  {worst_rel:>20.3e}  {worst_cpu:>18.3e}",
            ty.to_string()
        );
    }
}

#[test]
fn prefill_matmul_tiles_cover_every_output() {
    let mut rng = Rng(0x3A7);
    let (n_rows, k, n_tok) = (70, 512, 35); // partial row and token tiles
    for ty in GgmlType::ALL.into_iter().filter(|t| t.is_weight_type()) {
        let w = random_row(&mut rng, ty, n_rows * k);
        let x: Vec<f32> = (0..n_tok * k).map(|_| rng.f32()).collect();
        let wf = reference_dequant(ty, &w, n_rows * k);
        let got = matmul(ty, &w, &x, n_rows, k);
        let mut worst = 0f64;
        for t in 0..n_tok {
            for r in 0..n_rows {
                let (wr, xt) = (&wf[r * k..(r + 1) * k], &x[t * k..(t + 1) * k]);
                let exact: f64 = wr
                    .iter()
                    .zip(xt)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                let mag: f64 = wr
                    .iter()
                    .zip(xt)
                    .map(|(&a, &b)| f64::from(a * b).abs())
                    .sum();
                let err = (f64::from(got[t * n_rows + r]) - exact).abs();
                let bound = (k as f64 + 2.0) * 2f64.powi(-24) * mag;
                assert!(
                    err <= bound,
                    "{ty} token {t} row {r}: err {err} bound {bound}"
                );
                worst = worst.max(err / mag.max(f64::MIN_POSITIVE));
            }
        }
        println!("matmul {ty}: max |err|/Σ|wx| = {worst:.3e}");
    }
}

#[test]
fn rms_norm_matches_the_cpu_within_an_ulp_or_two() {
    let mut rng = Rng(11);
    let mut worst = 0f64;
    for n in [576, 896, 4096, 100] {
        let x: Vec<f32> = (0..n).map(|_| rng.f32() * 5.0).collect();
        let w: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
        let (mut got, mut want) = (vec![0f32; n], vec![0f32; n]);
        // SAFETY: x, w, got each hold n floats.
        unsafe {
            ffi::sluice_hc_rms_norm(x.as_ptr(), w.as_ptr(), got.as_mut_ptr(), n as i32, 1e-5)
        };
        rms_norm(&x, &w, 1e-5, &mut want);
        for (g, r) in got.iter().zip(&want) {
            let err = f64::from((g - r).abs());
            assert!(
                err <= 2f64.powi(-20) * f64::from(r.abs()) + 1e-30,
                "{g} vs {r}"
            );
            worst = worst.max(err / f64::from(r.abs()).max(1e-30));
        }
    }
    println!("rms_norm: max relative difference {worst:.3e}");
}

#[test]
fn rope_matches_the_cpu_bit_for_bit_on_the_host() {
    let mut rng = Rng(5);
    let (n_heads, head_dim, n_rot) = (4, 64, 64);
    let base = 100_000.0f32;
    let factors: Vec<f32> = (0..n_rot / 2).map(|i| 1.0 + i as f32 * 0.25).collect();
    for (pairs, neox) in [(RopePairs::Adjacent, 0), (RopePairs::HalfSplit, 1)] {
        for ff in [Vec::new(), factors.clone()] {
            for pos in [0usize, 1, 17, 1000, 4095] {
                let x: Vec<f32> = (0..n_heads * head_dim).map(|_| rng.f32() * 4.0).collect();
                let mut table = RopeTable::new(n_rot, base, ff.clone());
                table.set_position(pos);
                let mut want = x.clone();
                table.apply(&mut want, head_dim, pairs);
                let mut got = x.clone();
                let theta_scale = base.powf(-2.0 / n_rot as f32);
                let ffp = if ff.is_empty() {
                    std::ptr::null()
                } else {
                    ff.as_ptr()
                };
                // SAFETY: got holds n_heads·head_dim floats; ffp is null or n_rot/2 floats.
                unsafe {
                    ffi::sluice_hc_rope(
                        got.as_mut_ptr(),
                        pos as i32,
                        n_heads as i32,
                        head_dim as i32,
                        n_rot as i32,
                        theta_scale,
                        ffp,
                        neox,
                    )
                };
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{pairs:?} pos {pos} factors {}",
                    !ff.is_empty()
                );
            }
        }
    }
}

#[test]
fn swiglu_matches_the_cpu_within_a_few_ulp() {
    let mut rng = Rng(13);
    let n = 1536;
    let g: Vec<f32> = (0..n).map(|_| rng.f32() * 12.0).collect();
    let u: Vec<f32> = (0..n).map(|_| rng.f32() * 3.0).collect();
    let mut got = vec![0f32; n];
    // SAFETY: g, u, got each hold n floats.
    unsafe { ffi::sluice_hc_swiglu(g.as_ptr(), u.as_ptr(), got.as_mut_ptr(), n as i64) };
    let mut want = g.clone();
    swiglu(&mut want, &u, n);
    let mut worst = 0f64;
    for (a, b) in got.iter().zip(&want) {
        let rel = f64::from((a - b).abs()) / f64::from(b.abs()).max(1e-30);
        assert!(rel <= 2f64.powi(-20), "{a} vs {b}");
        worst = worst.max(rel);
    }
    println!("swiglu: max relative difference {worst:.3e}");
}

/// One token's attention on the host replay of the kernel over a [pos][kv_dim] f16 cache.
fn attention_host(q: &[f32], k: &[u16], v: &[u16], pos: usize, shape: AttnShape) -> Vec<f32> {
    let kv_dim = shape.n_head_kv * shape.head_dim;
    assert!(k.len() >= (pos + 1) * kv_dim && v.len() == k.len());
    assert_eq!(q.len(), shape.n_head * shape.head_dim);
    let mut out = vec![0f32; q.len()];
    // SAFETY: q and out hold n_head·head_dim floats, the caches (pos + 1)·kv_dim halves.
    unsafe {
        ffi::sluice_hc_attention(
            q.as_ptr(),
            k.as_ptr(),
            v.as_ptr(),
            out.as_mut_ptr(),
            pos as i32,
            shape.n_head as i32,
            shape.n_head_kv as i32,
            shape.head_dim as i32,
            1.0 / (shape.head_dim as f32).sqrt(),
        )
    };
    out
}

#[test]
fn attention_matches_the_cpu_and_the_exact_softmax() {
    let mut rng = Rng(17);
    let (mut worst_cpu, mut worst_exact) = (0f64, 0f64);
    for (n_head, n_head_kv, head_dim) in [(9, 3, 64), (4, 1, 128), (2, 2, 256)] {
        let shape = AttnShape {
            n_head,
            n_head_kv,
            head_dim,
        };
        let kv_dim = n_head_kv * head_dim;
        let n_ctx = 256;
        let mut cache = KvCache::new(1, kv_dim, n_ctx);
        let (mut k16, mut v16) = (Vec::new(), Vec::new());
        for p in 0..n_ctx {
            let k: Vec<f32> = (0..kv_dim).map(|_| rng.f32()).collect();
            let v: Vec<f32> = (0..kv_dim).map(|_| rng.f32() * 2.0).collect();
            cache.store(0, p, &k, &v);
            k16.extend(k.iter().map(|&x| f16::from_f32(x).to_bits()));
            v16.extend(v.iter().map(|&x| f16::from_f32(x).to_bits()));
        }
        let vmax = 2.0f64;
        let mut scratch = AttnScratch::new(head_dim, n_ctx);
        for pos in [0, 1, 5, 37, 200, 255] {
            let q: Vec<f32> = (0..n_head * head_dim).map(|_| rng.f32() * 3.0).collect();
            let got = attention_host(&q, &k16, &v16, pos, shape);
            let n_kv = (pos + 1).div_ceil(KV_PAD) * KV_PAD;
            let mut want = vec![0f32; q.len()];
            attend(
                &cache,
                0,
                shape,
                &q,
                pos,
                n_kv,
                false,
                &mut scratch,
                &mut want,
            );
            for h in 0..n_head {
                let kvh = h / (n_head / n_head_kv);
                let scale = 1.0 / (head_dim as f64).sqrt();
                let scores: Vec<f64> = (0..=pos)
                    .map(|j| {
                        (0..head_dim)
                            .map(|d| {
                                let kd = f16::from_bits(k16[j * kv_dim + kvh * head_dim + d]);
                                f64::from(q[h * head_dim + d]) * f64::from(kd.to_f32())
                            })
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let sum: f64 = e.iter().sum();
                for d in 0..head_dim {
                    let exact: f64 = (0..=pos)
                        .map(|j| {
                            let vd = f16::from_bits(v16[j * kv_dim + kvh * head_dim + d]);
                            e[j] / sum * f64::from(vd.to_f32())
                        })
                        .sum();
                    let i = h * head_dim + d;
                    let (g, c) = (f64::from(got[i]), f64::from(want[i]));
                    assert!(
                        (g - c).abs() <= 4e-3 * vmax,
                        "{shape:?} pos {pos} [{i}]: {g} vs cpu {c}"
                    );
                    assert!(
                        (g - exact).abs() <= 1e-5 * vmax,
                        "{shape:?} pos {pos} [{i}]: {g} vs {exact}"
                    );
                    worst_cpu = worst_cpu.max((g - c).abs() / vmax);
                    worst_exact = worst_exact.max((g - exact).abs() / vmax);
                }
            }
        }
    }
    println!(
        "attention: max |gpu-cpu|/max|v| {worst_cpu:.3e}, max |gpu-exact|/max|v| {worst_exact:.3e}"
    );
}

#[test]
fn argmax_takes_the_lowest_index_among_ties() {
    let mut rng = Rng(23);
    for n in [1usize, 7, 1024, 1025, 49_152, 151_936] {
        let mut x: Vec<f32> = (0..n).map(|_| (rng.f32() * 8.0).round()).collect();
        if n > 100 {
            x[n - 3] = 9.0;
            x[n / 2] = 9.0;
        }
        let want = x
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                if v > bv {
                    (i, v)
                } else {
                    (bi, bv)
                }
            })
            .0;
        // SAFETY: x holds n floats.
        let got = unsafe { ffi::sluice_hc_argmax(x.as_ptr(), n as i32) };
        assert_eq!(got as usize, want, "n = {n}");
    }
}
