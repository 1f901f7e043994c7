//! AVX-512 twins of the element-wise operations in `model::ops` whose scalar loops were the
//! slow part: softmax and SwiGLU. Each lane computes exactly the scalar `exp_ggml` (the same
//! fused operations in the same order, the same large-|n| branch as a masked blend), and the
//! softmax sums keep the scalar path's 8-lane chunk order, so results are bit-identical.

use std::arch::x86_64::*;

use super::super::ops::chunk_sum;
use super::safe_kernel512;
use crate::model::exp::{LN2_HI, LN2_LO, LOG2E, P1, P2, P3, P4, P5, ROUND};
use crate::model::ops::softmax_tail;

/// Lanes per step.
const W: usize = 16;

/// `exp_ggml` on 16 lanes, lane for lane.
///
/// # Safety
/// The CPU must support AVX-512F and FMA (called from a kernel compiled with them).
#[inline(always)]
unsafe fn exp16(x: __m512) -> __m512 {
    // SAFETY: AVX-512F per the fn contract; register-only operations.
    unsafe {
        let set1 = _mm512_set1_ps;
        let z = _mm512_fmadd_ps(x, set1(LOG2E), set1(ROUND));
        let n = _mm512_sub_ps(z, set1(ROUND));
        let b = _mm512_fnmadd_ps(n, set1(LN2_LO), _mm512_fnmadd_ps(n, set1(LN2_HI), x));
        let e = _mm512_slli_epi32::<23>(_mm512_castps_si512(z));
        let k = _mm512_castsi512_ps(_mm512_add_epi32(
            e,
            _mm512_set1_epi32(1.0f32.to_bits() as i32),
        ));
        let u = _mm512_mul_ps(b, b);
        let j = _mm512_fmadd_ps(
            _mm512_fmadd_ps(
                _mm512_fmadd_ps(set1(P5), b, set1(P4)),
                u,
                _mm512_fmadd_ps(set1(P3), b, set1(P2)),
            ),
            u,
            _mm512_mul_ps(set1(P1), b),
        );
        let normal = _mm512_fmadd_ps(j, k, k);
        let abs_n = _mm512_abs_ps(n);
        // |n| > 126 (false for NaN, which takes the normal path as in the scalar code).
        let big = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(abs_n, set1(126.0));
        if big == 0 {
            return normal;
        }
        let neg = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(n, _mm512_setzero_ps());
        let g = _mm512_maskz_mov_epi32(neg, _mm512_set1_epi32(0x8200_0000u32 as i32));
        let s1 = _mm512_castsi512_ps(_mm512_add_epi32(g, _mm512_set1_epi32(0x7f00_0000)));
        let s2 = _mm512_castsi512_ps(_mm512_sub_epi32(e, g));
        let huge = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(abs_n, set1(192.0));
        let scaled = _mm512_mul_ps(_mm512_fmadd_ps(s2, j, s2), s1);
        let sat = _mm512_mask_blend_ps(huge, scaled, _mm512_mul_ps(s1, s1));
        _mm512_mask_blend_ps(big, normal, sat)
    }
}

/// Lanes of a 16-wide step starting at element `i` that lie below `limit`.
#[inline(always)]
fn below(i: usize, limit: usize) -> __mmask16 {
    let n = limit.saturating_sub(i).min(W);
    ((1u32 << n) - 1) as __mmask16
}

/// Softmax of `x · scale` over `n_valid` entries (see `model::ops::softmax_scaled`).
///
/// # Safety
/// The CPU must support AVX-512F/BW/VL and FMA.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn softmax_imp(x: &mut [f32], scale: f32, n_valid: usize) {
    let len = x.len();
    // SAFETY: AVX-512 per the fn contract; every masked load and store touches only lanes
    // below `len` (masks come from `below`), unmasked ones whole 16- or 8-lane steps inside x.
    unsafe {
        let p = x.as_mut_ptr();
        let vs = _mm512_set1_ps(scale);
        let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i < n_valid {
            let m = below(i, n_valid);
            let v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p.add(i)), vs);
            _mm512_mask_storeu_ps(p.add(i), m, v);
            vmax = _mm512_mask_max_ps(vmax, m, v, vmax);
            i += W;
        }
        let max = _mm512_reduce_max_ps(vmax);
        x[n_valid..].fill(0.0);
        let p = x.as_mut_ptr();
        let split = len - len % 8;
        let vmax = _mm512_set1_ps(max);
        let mut sum = 0.0f64;
        let mut i = 0;
        while i < split {
            // 16 lanes, or the last 8-lane chunk alone.
            let step = if i + W <= split { W } else { 8 };
            let live = below(i, n_valid) & below(i, i + step);
            let v = _mm512_maskz_loadu_ps(below(i, i + step), p.add(i));
            let e = _mm512_maskz_mov_ps(live, exp16(_mm512_sub_ps(v, vmax)));
            _mm512_mask_storeu_ps(p.add(i), below(i, i + step), e);
            sum += chunk_sum(_mm512_castps512_ps256(e)) as f64;
            if step == W {
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e)));
                sum += chunk_sum(hi) as f64;
            }
            i += step;
        }
        let sum = softmax_tail(x, split, max, n_valid, sum);
        let inv = _mm512_set1_ps((1.0 / sum) as f32);
        let p = x.as_mut_ptr();
        let mut i = 0;
        while i < len {
            let m = below(i, len);
            _mm512_mask_storeu_ps(
                p.add(i),
                m,
                _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p.add(i)), inv),
            );
            i += W;
        }
    }
}

/// `gate = silu(gate) · up` on the elements `col0..` of a row of `row_len` (see
/// `model::ops::swiglu_chunk`): the polynomial exp below the row's last whole 8-lane group,
/// libm's after it.
///
/// # Safety
/// The CPU must support AVX-512F/BW/VL and FMA.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn swiglu_imp(col0: usize, row_len: usize, gate: &mut [f32], up: &[f32]) {
    let poly_end = (row_len - row_len % 8).saturating_sub(col0).min(gate.len());
    // SAFETY: AVX-512 per the fn contract; masked loads and stores stay below `poly_end`,
    // which is within both slices.
    unsafe {
        let (g, u) = (gate.as_mut_ptr(), up.as_ptr());
        let one = _mm512_set1_ps(1.0);
        let mut i = 0;
        while i < poly_end {
            let m = below(i, poly_end);
            let gv = _mm512_maskz_loadu_ps(m, g.add(i));
            let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv));
            let r = _mm512_mul_ps(
                _mm512_div_ps(gv, _mm512_add_ps(one, e)),
                _mm512_maskz_loadu_ps(m, u.add(i)),
            );
            _mm512_mask_storeu_ps(g.add(i), m, r);
            i += W;
        }
    }
    for (gv, &uv) in gate[poly_end..].iter_mut().zip(&up[poly_end..]) {
        let e = (-*gv).exp();
        *gv /= 1.0 + e;
        *gv *= uv;
    }
}

safe_kernel512!(
    /// Softmax of `x · scale` over the first `n_valid` entries on AVX-512, bit-identical to
    /// the scalar `softmax_scaled`.
    pub(crate) fn softmax = softmax_imp; (x: &mut [f32], scale: f32, n_valid: usize) -> ());
safe_kernel512!(
    /// SwiGLU of one row chunk on AVX-512, bit-identical to the scalar `swiglu_chunk`.
    pub(crate) fn swiglu = swiglu_imp; (col0: usize, row_len: usize, gate: &mut [f32], up: &[f32]) -> ());
