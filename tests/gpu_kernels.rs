//! Every kernel family on the device against the CPU reference (feature `gpu-tests`): dequant
//! of every loader type bit-exact with the loader's reference (then rounded to f16), the decode
//! matvec of every weight type (Q8_1 activations quantised on the device) within the bound of
//! kernels/README.md, and the prefill matmul close to the exact product. Skips, saying why,
//! without a usable GPU.
#![cfg(feature = "gpu-tests")]

use half::f16;
use sluice::cuda::device::{arg, Device, DeviceBuffer};
use sluice::cuda::launch;
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

fn device() -> Option<Device> {
    match sluice::cuda::probe() {
        Ok(_) => Some(Device::open(0).expect("opening device 0")),
        Err(e) => {
            println!("skipped: no CUDA device ({e})");
            None
        }
    }
}

fn upload<T: Copy>(dev: &Device, v: &[T]) -> DeviceBuffer {
    let b = dev.alloc(std::mem::size_of_val(v)).unwrap();
    b.copy_in(dev.compute(), 0, v).unwrap();
    b
}

#[test]
fn dequant_every_type_matches_the_loader() {
    let Some(dev) = device() else { return };
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
fn matvec_and_matmul_every_weight_type_match_the_exact_product() {
    let Some(dev) = device() else { return };
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
