//! Independent f64 dequantisation from the formulas of gguf-facts §2.3, written without
//! looking at the kernels: each element's value and an error scale (the sum of the absolute
//! values of the parts it is made of, e.g. `|d·sc·q| + |dmin·m|`).

use half::{bf16, f16};
use sluice_loader::GgmlType;

/// One dequantised element: its value and the magnitude its rounding errors scale with.
#[derive(Clone, Copy, Debug)]
pub(super) struct Elem {
    pub(super) value: f64,
    pub(super) scale: f64,
}

fn h(b: &[u8], at: usize) -> f64 {
    f64::from(f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32())
}

fn e(value: f64) -> Elem {
    Elem {
        value,
        scale: value.abs(),
    }
}

fn two(a: f64, b: f64) -> Elem {
    Elem {
        value: a + b,
        scale: a.abs() + b.abs(),
    }
}

/// Nibble of element `i` (0..32) in a 16-byte Q4-style layout (elements j and j+16 share byte j).
fn nib(qs: &[u8], i: usize) -> u8 {
    if i < 16 {
        qs[i] & 0xF
    } else {
        qs[i - 16] >> 4
    }
}

/// Dequantises one row of `ty` (weight or activation type) to f64 elements.
pub(super) fn dequant(ty: GgmlType, row: &[u8]) -> Vec<Elem> {
    let bb = ty.block_bytes();
    let mut out = Vec::new();
    for b in row.chunks_exact(bb) {
        dequant_block(ty, b, &mut out);
    }
    out
}

fn dequant_block(ty: GgmlType, b: &[u8], out: &mut Vec<Elem>) {
    use GgmlType as T;
    match ty {
        T::F32 => out.push(e(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))),
        T::F16 => out.push(e(h(b, 0))),
        T::BF16 => out.push(e(f64::from(
            bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
        ))),
        T::Q4_0 => out.extend((0..32).map(|i| e((f64::from(nib(&b[2..], i)) - 8.0) * h(b, 0)))),
        T::Q4_1 => out.extend((0..32).map(|i| two(f64::from(nib(&b[4..], i)) * h(b, 0), h(b, 2)))),
        T::Q5_0 | T::Q5_1 => {
            let (qh_at, qs_at) = if ty == T::Q5_0 { (2, 6) } else { (4, 8) };
            let qh = u32::from_le_bytes([b[qh_at], b[qh_at + 1], b[qh_at + 2], b[qh_at + 3]]);
            for i in 0..32 {
                let q = f64::from(nib(&b[qs_at..], i) | ((((qh >> i) & 1) as u8) << 4));
                out.push(if ty == T::Q5_0 {
                    e((q - 16.0) * h(b, 0))
                } else {
                    two(q * h(b, 0), h(b, 2))
                });
            }
        }
        T::Q8_0 | T::Q8_1 => {
            let at = if ty == T::Q8_0 { 2 } else { 4 };
            out.extend((0..32).map(|i| e(f64::from(b[at + i] as i8) * h(b, 0))));
        }
        T::IQ4NL => {
            const T4: [i8; 16] = [
                -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
            ];
            out.extend((0..32).map(|i| e(f64::from(T4[nib(&b[2..], i) as usize]) * h(b, 0))));
        }
        T::Q8K => {
            let d = f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            out.extend((0..256).map(|i| e(f64::from(b[4 + i] as i8) * d)));
        }
        T::Q2K => q2k(b, out),
        T::Q3K => q3k(b, out),
        T::Q4K | T::Q5K => q45k(ty == T::Q5K, b, out),
        T::Q6K => q6k(b, out),
    }
}

fn q2k(b: &[u8], out: &mut Vec<Elem>) {
    let (scales, qs, d, dmin) = (&b[0..16], &b[16..80], h(b, 80), h(b, 82));
    for i in 0..256 {
        let sc = scales[i / 16];
        let q = f64::from((qs[32 * (i / 128) + i % 32] >> (2 * ((i / 32) % 4))) & 3);
        out.push(two(d * f64::from(sc & 15) * q, -dmin * f64::from(sc >> 4)));
    }
}

fn q3k(b: &[u8], out: &mut Vec<Elem>) {
    let (hmask, qs, sb, d) = (&b[0..32], &b[32..96], &b[96..108], h(b, 108));
    let mut s = [0i32; 16];
    for k in 0..4 {
        s[k] = i32::from((sb[k] & 0xF) | ((sb[8 + k] & 3) << 4));
        s[4 + k] = i32::from((sb[4 + k] & 0xF) | (((sb[8 + k] >> 2) & 3) << 4));
        s[8 + k] = i32::from((sb[k] >> 4) | (((sb[8 + k] >> 4) & 3) << 4));
        s[12 + k] = i32::from((sb[4 + k] >> 4) | (((sb[8 + k] >> 6) & 3) << 4));
    }
    for i in 0..256 {
        let low2 = i32::from((qs[32 * (i / 128) + i % 32] >> (2 * ((i / 32) % 4))) & 3);
        let hb = (hmask[i % 32] >> (i / 32)) & 1;
        let q = low2 - if hb == 1 { 0 } else { 4 };
        out.push(e(d * f64::from(s[i / 16] - 32) * f64::from(q)));
    }
}

fn q45k(five: bool, b: &[u8], out: &mut Vec<Elem>) {
    let (d, dmin, s) = (h(b, 0), h(b, 2), &b[4..16]);
    let (qh, qs) = if five {
        (&b[16..48], &b[48..176])
    } else {
        (&b[0..0], &b[16..144])
    };
    for i in 0..256 {
        let j = i / 32;
        let (sc, m) = if j < 4 {
            (s[j] & 63, s[j + 4] & 63)
        } else {
            (
                (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4),
                (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
            )
        };
        let byte = qs[32 * (i / 64) + i % 32];
        let mut q = if (i / 32) % 2 == 0 {
            byte & 0xF
        } else {
            byte >> 4
        };
        if five {
            q += 16 * ((qh[i % 32] >> (i / 32)) & 1);
        }
        out.push(two(d * f64::from(sc) * f64::from(q), -dmin * f64::from(m)));
    }
}

fn q6k(b: &[u8], out: &mut Vec<Elem>) {
    let (ql, qh, scales, d) = (&b[0..128], &b[128..192], &b[192..208], h(b, 208));
    for i in 0..256 {
        let (hh, k, l) = (i / 128, (i / 32) % 4, i % 32);
        let byte = ql[64 * hh + 32 * (k & 1) + l];
        let low4 = if k < 2 { byte & 0xF } else { byte >> 4 };
        let hi2 = (qh[32 * hh + l] >> (2 * k)) & 3;
        let q = i32::from(low4 | (hi2 << 4)) - 32;
        out.push(e(d * f64::from(scales[i / 16] as i8) * f64::from(q)));
    }
}
