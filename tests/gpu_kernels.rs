//! Every kernel family on the device against the CPU reference (ignored unless asked for:
//! `scripts/gpu-check.sh` runs them with `--ignored`): dequant of every loader type bit-exact with
//! the loader's reference (then rounded to f16), the decode matvec of every weight type (Q8_1
//! activations quantised on the device) within the bound of kernels/README.md, the prefill matmul
//! close to the exact product, and every other kernel (RMSNorm, RoPE, attention, KV store, SwiGLU,
//! adds, argmax) against `model::ops` / `model::attention` within the tolerances
//! `src/cuda/host_check.rs` states; the maxima are printed (`--nocapture`). Launch shapes come from
//! `src/cuda/launch.rs`, as the backend's do. Fails, saying why, without a usable GPU.
#![cfg(feature = "cuda")]

mod common;

use half::f16;
use sluice::cuda::device::{arg, Device, DeviceBuffer};
use sluice::cuda::launch;
use sluice::model::attention::{attend, AttnScratch, AttnShape};
use sluice::model::kv_cache::{KvCache, KV_PAD};
use sluice::model::ops::{add_bias_rows, add_in_place, rms_norm, swiglu, RopePairs, RopeTable};
use sluice_loader::quant::dequantize_row;
use sluice_loader::GgmlType;

struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Byte offsets of each block's f16 scales, set to small finite values.
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

fn random_row(rng: &mut Rng, ty: GgmlType, n: usize) -> Vec<u8> {
    let mut v: Vec<u8> = match ty {
        GgmlType::F32 => (0..n).flat_map(|_| rng.f32().to_le_bytes()).collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.f32()).to_le_bytes())
            .collect(),
        GgmlType::BF16 => (0..n)
            .flat_map(|_| half::bf16::from_f32(rng.f32()).to_le_bytes())
            .collect(),
        _ => (0..ty.row_bytes(n as u64).unwrap())
            .map(|_| rng.next_u64() as u8)
            .collect(),
    };
    for block in v.chunks_exact_mut(ty.block_bytes()) {
        for &off in f16_fields(ty) {
            block[off..off + 2].copy_from_slice(&f16::from_f32(rng.f32() * 0.02).to_le_bytes());
        }
        if ty == GgmlType::Q8K {
            block[..4].copy_from_slice(&(rng.f32() * 0.01).to_le_bytes());
        }
    }
    v
}

fn device() -> Device {
    common::require_cuda();
    Device::open(0).expect("opening device 0")
}

fn upload<T: Copy>(dev: &Device, v: &[T]) -> DeviceBuffer {
    let b = dev.alloc(std::mem::size_of_val(v)).unwrap();
    b.copy_in(dev.compute(), 0, v).unwrap();
    b
}

/// `n` elements of `buf`, read back after the compute stream's work.
fn download<T: Copy + Default>(dev: &Device, buf: &DeviceBuffer, n: usize) -> Vec<T> {
    let mut v = vec![T::default(); n];
    buf.copy_out(dev.compute(), 0, &mut v).unwrap();
    v
}

/// `n` uniform values in `[-scale, scale)`.
fn randoms(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.f32() * scale).collect()
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn dequant_every_type_matches_the_loader() {
    let dev = device();
    let mut rng = Rng(11);
    for ty in GgmlType::ALL {
        let n = ty.block_elems() * 40;
        let src = random_row(&mut rng, ty, n);
        let mut want = vec![0f32; n];
        dequantize_row(ty, &src, &mut want).unwrap();
        let (s, d) = (upload(&dev, &src), dev.alloc(n * 2).unwrap());
        let k = dev.kernel(&launch::dequant(ty, n as u64).unwrap()).unwrap();
        let (sp, dp, n64) = (s.at(0), d.at(0), n as i64);
        // SAFETY: dequant_<t>_f16(src, dst, n): src holds n elements of ty, dst n f16.
        unsafe { k.launch(dev.compute(), &mut [arg(&sp), arg(&dp), arg(&n64)]) }.unwrap();
        let mut got = vec![0u16; n];
        d.copy_out(dev.compute(), 0, &mut got).unwrap();
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, f16::from_f32(w).to_bits(), "{ty} element {i}");
        }
    }
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn matvec_and_matmul_every_weight_type_match_the_exact_product() {
    let dev = device();
    let mut rng = Rng(5);
    let (rows, k, n_tok) = (37usize, 512usize, 3usize);
    let x: Vec<f32> = (0..k * n_tok).map(|_| rng.f32()).collect();
    for ty in GgmlType::ALL.into_iter().filter(|t| t.is_weight_type()) {
        let w = random_row(&mut rng, ty, rows * k);
        let mut wf = vec![0f32; rows * k];
        dequantize_row(ty, &w, &mut wf).unwrap();
        let (wd, xd) = (upload(&dev, &w), upload(&dev, &x));
        let out = dev.alloc(rows * n_tok * 4).unwrap();
        let y = dev.alloc(n_tok * k / 32 * 36).unwrap();
        let (wp, xp, yp, op) = (wd.at(0), xd.at(0), y.at(0), out.at(0));
        let (r, c, nt) = (rows as i32, k as i32, n_tok as i32);
        for prefill in [false, true] {
            let s = dev.compute();
            if prefill {
                let m = dev
                    .kernel(&launch::matmul(ty, rows as u64, k as u64, nt as u32).unwrap())
                    .unwrap();
                // SAFETY: matmul(w, x, out, n_rows, row_elems, n_tok) over the buffers above.
                unsafe {
                    m.launch(
                        s,
                        &mut [arg(&wp), arg(&xp), arg(&op), arg(&r), arg(&c), arg(&nt)],
                    )
                }
                .unwrap();
            } else {
                let mv = dev
                    .kernel(&launch::matvec(ty, rows as u64, k as u64, nt as u32).unwrap())
                    .unwrap();
                let act = if launch::is_float_type(ty) {
                    xp
                } else {
                    let q = dev
                        .kernel(&launch::quantize_q8_1(k as u64, nt as u32).unwrap())
                        .unwrap();
                    // SAFETY: quantize_q8_1_f32(x, y, row_elems) for n_tok rows.
                    unsafe { q.launch(s, &mut [arg(&xp), arg(&yp), arg(&c)]) }.unwrap();
                    yp
                };
                // SAFETY: matvec(w, act, out, n_rows, row_elems) over the buffers above.
                unsafe { mv.launch(s, &mut [arg(&wp), arg(&act), arg(&op), arg(&r), arg(&c)]) }
                    .unwrap();
            }
            let mut got = vec![0f32; rows * n_tok];
            out.copy_out(s, 0, &mut got).unwrap();
            for t in 0..n_tok {
                for row in 0..rows {
                    let (wr, xr) = (&wf[row * k..(row + 1) * k], &x[t * k..(t + 1) * k]);
                    let exact: f64 = wr
                        .iter()
                        .zip(xr)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    let mag: f64 = wr
                        .iter()
                        .zip(xr)
                        .map(|(&a, &b)| f64::from(a * b).abs())
                        .sum();
                    let tol = if prefill || launch::is_float_type(ty) {
                        1e-5
                    } else {
                        1e-2
                    } * mag
                        + 1e-6;
                    let g = f64::from(got[t * rows + row]);
                    assert!(
                        (g - exact).abs() <= tol,
                        "{ty} prefill={prefill} tok {t} row {row}: {g} vs {exact}"
                    );
                }
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn rms_norm_matches_the_cpu() {
    let dev = device();
    let mut rng = Rng(31);
    let mut worst = 0f64;
    for (n, n_tok) in [(576usize, 3usize), (896, 1), (4096, 2), (100, 5)] {
        let x = randoms(&mut rng, n * n_tok, 5.0);
        let w = randoms(&mut rng, n, 1.0);
        let eps = 1e-5f32;
        let (xd, wd, od) = (
            upload(&dev, &x),
            upload(&dev, &w),
            dev.alloc(x.len() * 4).unwrap(),
        );
        let k = dev
            .kernel(&launch::rms_norm(n as u64, n_tok as u32).unwrap())
            .unwrap();
        let (xp, wp, op, ni) = (xd.at(0), wd.at(0), od.at(0), n as i32);
        // SAFETY: rms_norm_f32(x, w, out, n, eps): x and out hold n_tok rows of n f32, w n f32.
        unsafe {
            k.launch(
                dev.compute(),
                &mut [arg(&xp), arg(&wp), arg(&op), arg(&ni), arg(&eps)],
            )
        }
        .unwrap();
        let got: Vec<f32> = download(&dev, &od, x.len());
        let mut want = vec![0f32; x.len()];
        for (xr, or) in x.chunks_exact(n).zip(want.chunks_exact_mut(n)) {
            rms_norm(xr, &w, eps, or);
        }
        for (i, (g, r)) in got.iter().zip(&want).enumerate() {
            let err = f64::from((g - r).abs());
            // host_check.rs: 2⁻²⁰·|ref| (f32 partial sums against the CPU's f64 sum).
            assert!(
                err <= 2f64.powi(-20) * f64::from(r.abs()) + 1e-30,
                "n {n} [{i}]: {g} vs {r}"
            );
            worst = worst.max(err / f64::from(r.abs()).max(1e-30));
        }
    }
    println!("rms_norm: max |gpu-cpu|/|cpu| = {worst:.3e} (bound 2^-20 = 9.54e-7)");
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn rope_matches_the_cpu_with_and_without_freq_factors() {
    let dev = device();
    let mut rng = Rng(37);
    let base = 100_000.0f32;
    let positions: [i32; 5] = [0, 1, 17, 1000, 4095];
    let n_tok = positions.len();
    let pos_d = upload(&dev, &positions);
    let mut worst = 0f64;
    for (n_heads, head_dim, n_rot) in [(4usize, 64usize, 64usize), (3, 128, 64)] {
        let factors: Vec<f32> = (0..n_rot / 2).map(|i| 1.0 + i as f32 * 0.25).collect();
        let ff_d = upload(&dev, &factors);
        for (pairs, neox) in [(RopePairs::Adjacent, false), (RopePairs::HalfSplit, true)] {
            for with_ff in [false, true] {
                let x = randoms(&mut rng, n_tok * n_heads * head_dim, 4.0);
                let xd = upload(&dev, &x);
                let l = launch::rope(
                    n_heads as u32,
                    head_dim as u32,
                    n_rot as u32,
                    n_tok as u32,
                    neox,
                )
                .unwrap();
                let k = dev.kernel(&l).unwrap();
                let (xp, pp) = (xd.at(0), pos_d.at(0));
                let ffp = if with_ff { ff_d.at(0) } else { 0u64 };
                let (nh, hd, nr) = (n_heads as i32, head_dim as i32, n_rot as i32);
                // As the backend: θ_scale = base^(−2/n_rot) on the host.
                let theta_scale = base.powf(-2.0 / n_rot as f32);
                // SAFETY: rope_*_f32(x, pos, n_heads, head_dim, n_rot, theta_scale, ff): x holds
                // n_tok × n_heads × head_dim f32, pos n_tok i32, ff null or n_rot/2 f32.
                unsafe {
                    k.launch(
                        dev.compute(),
                        &mut [
                            arg(&xp),
                            arg(&pp),
                            arg(&nh),
                            arg(&hd),
                            arg(&nr),
                            arg(&theta_scale),
                            arg(&ffp),
                        ],
                    )
                }
                .unwrap();
                let got: Vec<f32> = download(&dev, &xd, x.len());
                let ff = if with_ff { factors.clone() } else { Vec::new() };
                let mut table = RopeTable::new(n_rot, base, ff);
                let row = n_heads * head_dim;
                for (t, &p) in positions.iter().enumerate() {
                    let orig = &x[t * row..(t + 1) * row];
                    let mut want = orig.to_vec();
                    table.set_position(p as usize);
                    table.apply(&mut want, head_dim, pairs);
                    for h in 0..n_heads {
                        for i in 0..n_rot / 2 {
                            let (a, b) = if neox {
                                (i, i + n_rot / 2)
                            } else {
                                (2 * i, 2 * i + 1)
                            };
                            let o = h * head_dim;
                            let mag = f64::from(orig[o + a].abs() + orig[o + b].abs());
                            for e in [o + a, o + b] {
                                let (g, r) = (got[t * row + e], want[e]);
                                let err = f64::from((g - r).abs());
                                // host_check.rs: ≤ 2 ulp of sin/cos, i.e. 2⁻²²·(|x0| + |x1|),
                                // plus the rounding of the output itself.
                                let tol =
                                    2f64.powi(-22) * mag + 2f64.powi(-24) * f64::from(r.abs());
                                assert!(
                                    err <= tol,
                                    "{pairs:?} ff={with_ff} pos {p} head {h} [{e}]: {g} vs {r}"
                                );
                                worst = worst.max(err / mag.max(1e-30));
                            }
                        }
                        // Dimensions past n_rot pass through untouched.
                        for e in h * head_dim + n_rot..(h + 1) * head_dim {
                            assert_eq!(got[t * row + e].to_bits(), orig[e].to_bits());
                        }
                    }
                }
            }
        }
    }
    println!("rope: max |gpu-cpu|/(|x0|+|x1|) = {worst:.3e} (bound 2^-22 = 2.38e-7)");
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn kv_store_rounds_to_f16_at_each_tokens_position() {
    let dev = device();
    let mut rng = Rng(41);
    let (kv_dim, n_ctx) = (320usize, 64usize); // a partial 256-block
    let positions: [i32; 4] = [0, 7, 8, 63];
    let n_tok = positions.len();
    let k = randoms(&mut rng, n_tok * kv_dim, 3.0);
    let v = randoms(&mut rng, n_tok * kv_dim, 3.0);
    let (kd, vd, pd) = (upload(&dev, &k), upload(&dev, &v), upload(&dev, &positions));
    let (kc, vc) = (
        dev.alloc(n_ctx * kv_dim * 2).unwrap(),
        dev.alloc(n_ctx * kv_dim * 2).unwrap(),
    );
    kc.zero(dev.compute()).unwrap();
    vc.zero(dev.compute()).unwrap();
    let kern = dev
        .kernel(&launch::kv_store(kv_dim as u32, n_tok as u32).unwrap())
        .unwrap();
    let (kp, vp, kcp, vcp, pp, kvd) = (
        kd.at(0),
        vd.at(0),
        kc.at(0),
        vc.at(0),
        pd.at(0),
        kv_dim as i32,
    );
    // SAFETY: kv_store_f16(k, v, k_cache, v_cache, pos, kv_dim): k, v hold n_tok × kv_dim f32,
    // the caches n_ctx × kv_dim f16, every pos < n_ctx.
    unsafe {
        kern.launch(
            dev.compute(),
            &mut [
                arg(&kp),
                arg(&vp),
                arg(&kcp),
                arg(&vcp),
                arg(&pp),
                arg(&kvd),
            ],
        )
    }
    .unwrap();
    for (cache, src) in [(&kc, &k), (&vc, &v)] {
        let got: Vec<u16> = download(&dev, cache, n_ctx * kv_dim);
        let mut want = vec![0u16; n_ctx * kv_dim];
        for (t, &p) in positions.iter().enumerate() {
            for i in 0..kv_dim {
                want[p as usize * kv_dim + i] = f16::from_f32(src[t * kv_dim + i]).to_bits();
            }
        }
        assert_eq!(got, want, "cache rows other than the tokens' stay zero");
    }
    println!("kv_store: bit-exact f16 (round to nearest even) at {n_tok} positions");
}

/// One attention shape: the device against `attend` and against the f64 softmax.
fn check_attention(dev: &Device, rng: &mut Rng, shape: AttnShape, worst: &mut (f64, f64)) {
    let AttnShape {
        n_head,
        n_head_kv,
        head_dim,
    } = shape;
    let (kv_dim, n_ctx, vmax) = (n_head_kv * head_dim, 256usize, 2.0f64);
    let mut cache = KvCache::new(1, kv_dim, n_ctx);
    let (mut k16, mut v16) = (Vec::new(), Vec::new());
    for p in 0..n_ctx {
        let k = randoms(rng, kv_dim, 1.0);
        let v = randoms(rng, kv_dim, vmax as f32);
        cache.store(0, p, &k, &v);
        k16.extend(k.iter().map(|&x| f16::from_f32(x).to_bits()));
        v16.extend(v.iter().map(|&x| f16::from_f32(x).to_bits()));
    }
    let positions: [i32; 6] = [0, 1, 5, 37, 200, 255];
    let (n_tok, q_dim) = (positions.len(), n_head * head_dim);
    let q = randoms(rng, n_tok * q_dim, 3.0);
    let (qd, kc, vc, pd) = (
        upload(dev, &q),
        upload(dev, &k16),
        upload(dev, &v16),
        upload(dev, &positions),
    );
    let od = dev.alloc(q.len() * 4).unwrap();
    let l = launch::attention(
        n_head as u32,
        n_head_kv as u32,
        head_dim as u32,
        n_tok as u32,
    );
    let kern = dev.kernel(&l.unwrap()).unwrap();
    let (qp, kp, vp, op, pp) = (qd.at(0), kc.at(0), vc.at(0), od.at(0), pd.at(0));
    let (nh, nkv, hd) = (n_head as i32, n_head_kv as i32, head_dim as i32);
    let scale = 1.0 / (head_dim as f32).sqrt();
    // SAFETY: attn_decode_f16kv(q, k_cache, v_cache, out, pos, n_head, n_head_kv, head_dim,
    // scale): q and out hold n_tok × q_dim f32, the caches n_ctx × kv_dim f16, pos n_tok i32.
    unsafe {
        kern.launch(
            dev.compute(),
            &mut [
                arg(&qp),
                arg(&kp),
                arg(&vp),
                arg(&op),
                arg(&pp),
                arg(&nh),
                arg(&nkv),
                arg(&hd),
                arg(&scale),
            ],
        )
    }
    .unwrap();
    let got: Vec<f32> = download(dev, &od, q.len());
    let mut scratch = AttnScratch::new(head_dim, n_ctx);
    let mut want = vec![0f32; q_dim];
    let f = |bits: u16| f64::from(f16::from_bits(bits).to_f32());
    for (t, &p) in positions.iter().enumerate() {
        let pos = p as usize;
        let qt = &q[t * q_dim..(t + 1) * q_dim];
        let n_kv = (pos + 1).div_ceil(KV_PAD) * KV_PAD;
        attend(
            &cache,
            0,
            shape,
            qt,
            pos,
            n_kv,
            false,
            &mut scratch,
            &mut want,
        );
        for h in 0..n_head {
            let base = (h / (n_head / n_head_kv)) * head_dim;
            let scores: Vec<f64> = (0..=pos)
                .map(|j| {
                    let kr = &k16[j * kv_dim + base..j * kv_dim + base + head_dim];
                    let qh = &qt[h * head_dim..(h + 1) * head_dim];
                    let dot: f64 = qh.iter().zip(kr).map(|(&a, &b)| f64::from(a) * f(b)).sum();
                    dot / (head_dim as f64).sqrt()
                })
                .collect();
            let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            for d in 0..head_dim {
                let exact: f64 = (0..=pos)
                    .map(|j| e[j] / sum * f(v16[j * kv_dim + base + d]))
                    .sum();
                let i = h * head_dim + d;
                let (g, c) = (f64::from(got[t * q_dim + i]), f64::from(want[i]));
                // host_check.rs: 4·10⁻³·max|v| against `attend` (f16 q and probabilities),
                // 10⁻⁵·max|v| against the f64 softmax over the same f16 cache.
                assert!(
                    (g - c).abs() <= 4e-3 * vmax,
                    "{shape:?} pos {pos} [{i}]: {g} vs cpu {c}"
                );
                assert!(
                    (g - exact).abs() <= 1e-5 * vmax,
                    "{shape:?} pos {pos} [{i}]: {g} vs exact {exact}"
                );
                worst.0 = worst.0.max((g - c).abs() / vmax);
                worst.1 = worst.1.max((g - exact).abs() / vmax);
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn attention_matches_the_cpu_and_the_exact_softmax_with_gqa() {
    let dev = device();
    let mut rng = Rng(43);
    let mut worst = (0f64, 0f64);
    // SmolLM2 (9 over 3), Qwen2.5 (14 over 2), MQA at 128, plain MHA at 256.
    for (n_head, n_head_kv, head_dim) in [(9, 3, 64), (14, 2, 64), (4, 1, 128), (2, 2, 256)] {
        let shape = AttnShape {
            n_head,
            n_head_kv,
            head_dim,
        };
        check_attention(&dev, &mut rng, shape, &mut worst);
    }
    println!(
        "attention: max |gpu-cpu|/max|v| {:.3e} (bound 4e-3), max |gpu-exact|/max|v| {:.3e} (bound 1e-5)",
        worst.0, worst.1
    );
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn swiglu_and_adds_match_the_cpu() {
    let dev = device();
    let mut rng = Rng(47);
    let (row, n_tok) = (1536usize, 3usize);
    let n = row * n_tok;
    let g = randoms(&mut rng, n, 12.0);
    let u = randoms(&mut rng, n, 3.0);
    let (gd, ud, od) = (
        upload(&dev, &g),
        upload(&dev, &u),
        dev.alloc(n * 4).unwrap(),
    );
    let (gp, up, op, n64) = (gd.at(0), ud.at(0), od.at(0), n as i64);
    let s = dev.compute();
    let k = dev.kernel(&launch::elementwise("swiglu_f32", n as u64).unwrap());
    // SAFETY: swiglu_f32(gate, up, out, n): all three hold n f32.
    unsafe {
        k.unwrap()
            .launch(s, &mut [arg(&gp), arg(&up), arg(&op), arg(&n64)])
    }
    .unwrap();
    let got: Vec<f32> = download(&dev, &od, n);
    let mut want = g.clone();
    swiglu(&mut want, &u, row);
    let mut worst = 0f64;
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let rel = f64::from((a - b).abs()) / f64::from(b.abs()).max(1e-30);
        // host_check.rs: 2⁻²⁰·|ref| (expf against llama.cpp's exp polynomial).
        assert!(rel <= 2f64.powi(-20), "swiglu [{i}]: {a} vs {b}");
        worst = worst.max(rel);
    }
    println!("swiglu: max |gpu-cpu|/|cpu| = {worst:.3e} (bound 2^-20 = 9.54e-7)");

    // add_f32: x += y, IEEE additions, so bit-exact.
    let k = dev.kernel(&launch::elementwise("add_f32", n as u64).unwrap());
    // SAFETY: add_f32(x, y, n): both hold n f32.
    unsafe { k.unwrap().launch(s, &mut [arg(&gp), arg(&up), arg(&n64)]) }.unwrap();
    let got: Vec<f32> = download(&dev, &gd, n);
    let mut want = g.clone();
    add_in_place(&mut want, &u);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&want), "add_f32");

    // add_rows_f32: x[i] += b[i % row], bit-exact; a row that does not divide 256.
    let (brow, n_rows) = (192usize, 7usize);
    let x = randoms(&mut rng, brow * n_rows, 2.0);
    let b = randoms(&mut rng, brow, 0.5);
    let (xd, bd) = (upload(&dev, &x), upload(&dev, &b));
    let (xp, bp, nx, r) = (xd.at(0), bd.at(0), x.len() as i64, brow as i32);
    let k = dev.kernel(&launch::elementwise("add_rows_f32", x.len() as u64).unwrap());
    // SAFETY: add_rows_f32(x, b, n, row): x holds n f32, b `row` f32.
    unsafe {
        k.unwrap()
            .launch(s, &mut [arg(&xp), arg(&bp), arg(&nx), arg(&r)])
    }
    .unwrap();
    let got: Vec<f32> = download(&dev, &xd, x.len());
    let mut want = x.clone();
    add_bias_rows(&mut want, &b);
    assert_eq!(bits(&got), bits(&want), "add_rows_f32");
    println!("add_f32, add_rows_f32: bit-exact");
}

#[test]
#[ignore = "needs a CUDA device: scripts/gpu-check.sh runs it"]
fn argmax_takes_the_lowest_index_among_ties() {
    let dev = device();
    let mut rng = Rng(53);
    let out = dev.alloc(4).unwrap();
    for n in [1usize, 7, 1024, 1025, 49_152, 151_936] {
        // Rounded values: many ties at every level, and the maximum tied twice for n > 100.
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
        let xd = upload(&dev, &x);
        let (xp, ni, op) = (xd.at(0), n as i32, out.at(0));
        let k = dev.kernel(&launch::argmax(n as u64).unwrap()).unwrap();
        // SAFETY: argmax_f32(x, n, out): x holds n f32, out one u32.
        unsafe { k.launch(dev.compute(), &mut [arg(&xp), arg(&ni), arg(&op)]) }.unwrap();
        let got: Vec<u32> = download(&dev, &out, 1);
        assert_eq!(got[0] as usize, want, "n = {n}");
    }
    // All equal: index 0.
    let x = vec![-1.5f32; 5000];
    let xd = upload(&dev, &x);
    let (xp, ni, op) = (xd.at(0), x.len() as i32, out.at(0));
    let k = dev
        .kernel(&launch::argmax(x.len() as u64).unwrap())
        .unwrap();
    // SAFETY: as above.
    unsafe { k.launch(dev.compute(), &mut [arg(&xp), arg(&ni), arg(&op)]) }.unwrap();
    assert_eq!(download::<u32>(&dev, &out, 1)[0], 0, "all equal");
    println!("argmax: identical indices, ties to the lowest");
}
