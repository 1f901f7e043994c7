//! AVX2 twins of the element-wise operations in `model::ops` that decode spends time in:
//! softmax and SwiGLU. Each lane computes exactly the scalar `exp_ggml` (the same fused
//! operations in the same order, the large-|n| branch as a blend), and the softmax sums keep the
//! scalar path's 8-lane chunk order, so results are bit-identical to the scalar loops (which
//! ran here before, one lane at a time, with the softmax's `mul_add`s calling libm's `fmaf`).

use std::arch::x86_64::*;

use super::util::hsum_f32x4;
use crate::model::exp::{LN2_HI, LN2_LO, LOG2E, P1, P2, P3, P4, P5, ROUND};
use crate::model::ops::softmax_tail;

/// Lanes per step.
const W: usize = 8;

/// `exp_ggml` on 8 lanes, lane for lane (`avx512::ops::exp16`'s operations at half width).
///
/// # Safety
/// The CPU must support AVX2 and FMA (called from a kernel compiled with them).
#[inline(always)]
unsafe fn exp8(x: __m256) -> __m256 {
    // SAFETY: AVX2/FMA per the fn contract; register-only operations.
    unsafe {
        let set1 = _mm256_set1_ps;
        let z = _mm256_fmadd_ps(x, set1(LOG2E), set1(ROUND));
        let n = _mm256_sub_ps(z, set1(ROUND));
        let b = _mm256_fnmadd_ps(n, set1(LN2_LO), _mm256_fnmadd_ps(n, set1(LN2_HI), x));
        let e = _mm256_slli_epi32::<23>(_mm256_castps_si256(z));
        let k = _mm256_castsi256_ps(_mm256_add_epi32(
            e,
            _mm256_set1_epi32(1.0f32.to_bits() as i32),
        ));
        let u = _mm256_mul_ps(b, b);
        let j = _mm256_fmadd_ps(
            _mm256_fmadd_ps(
                _mm256_fmadd_ps(set1(P5), b, set1(P4)),
                u,
                _mm256_fmadd_ps(set1(P3), b, set1(P2)),
            ),
            u,
            _mm256_mul_ps(set1(P1), b),
        );
        let normal = _mm256_fmadd_ps(j, k, k);
        let abs_n = _mm256_and_ps(n, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX)));
        // |n| > 126 (false for NaN, which takes the normal path as in the scalar code).
        let big = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, set1(126.0));
        if _mm256_movemask_ps(big) == 0 {
            return normal;
        }
        let neg = _mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps());
        let g = _mm256_and_si256(
            _mm256_castps_si256(neg),
            _mm256_set1_epi32(0x8200_0000u32 as i32),
        );
        let s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f00_0000)));
        let s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
        let huge = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, set1(192.0));
        let scaled = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
        let sat = _mm256_blendv_ps(scaled, _mm256_mul_ps(s1, s1), huge);
        _mm256_blendv_ps(normal, sat, big)
    }
}

/// The scalar softmax's sum of one 8-value chunk: `(h0+h2)+(h1+h3)` with `h = c[..4]+c[4..]`
/// (the AVX-512 softmax sums its 16 lanes as two such chunks).
///
/// # Safety
/// AVX must be available (called from a kernel compiled with it).
#[inline(always)]
pub(super) unsafe fn chunk_sum(c: __m256) -> f32 {
    // SAFETY: AVX per the fn contract; register-only operations.
    unsafe {
        hsum_f32x4(_mm_add_ps(
            _mm256_castps256_ps128(c),
            _mm256_extractf128_ps::<1>(c),
        ))
    }
}

/// All-ones in the lanes of an 8-wide step at element `i` that lie below `limit`.
///
/// # Safety
/// AVX2 must be available (called from a kernel compiled with it).
#[inline(always)]
unsafe fn below(i: usize, limit: usize) -> __m256 {
    let n = limit.saturating_sub(i).min(W) as i32;
    // SAFETY: AVX2 per the fn contract; register-only operations.
    unsafe {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes))
    }
}

/// Softmax of `x · scale` over `n_valid` entries (see `model::ops::softmax_scaled`).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn softmax_imp(x: &mut [f32], scale: f32, n_valid: usize) {
    assert!(n_valid >= 1 && n_valid <= x.len());
    let len = x.len();
    // SAFETY: AVX2/FMA per the fn contract; every load and store is a whole 8-lane step inside
    // `x` (the loops stop before a partial one, which the scalar tails take).
    unsafe {
        let p = x.as_mut_ptr();
        let vs = _mm256_set1_ps(scale);
        let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i + W <= n_valid {
            let v = _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), vs);
            _mm256_storeu_ps(p.add(i), v);
            // max(v, vmax) keeps vmax where v is NaN, as `f32::max` ignores NaN.
            vmax = _mm256_max_ps(v, vmax);
            i += W;
        }
        let mut lanes = [0.0f32; W];
        _mm256_storeu_ps(lanes.as_mut_ptr(), vmax);
        let mut max = lanes.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        for v in x[i..n_valid].iter_mut() {
            *v *= scale;
            max = max.max(*v);
        }
        x[n_valid..].fill(0.0);
        let p = x.as_mut_ptr();
        let split = len - len % W;
        let vmax = _mm256_set1_ps(max);
        let mut sum = 0.0f64;
        let mut i = 0;
        while i < split {
            let v = _mm256_loadu_ps(p.add(i));
            // Lanes at or past n_valid are e^-inf = 0 exactly in the scalar code.
            let e = _mm256_and_ps(exp8(_mm256_sub_ps(v, vmax)), below(i, n_valid));
            _mm256_storeu_ps(p.add(i), e);
            sum += chunk_sum(e) as f64;
            i += W;
        }
        let sum = softmax_tail(x, split, max, n_valid, sum);
        let inv = (1.0 / sum) as f32;
        let vinv = _mm256_set1_ps(inv);
        let p = x.as_mut_ptr();
        let mut i = 0;
        while i < split {
            _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), vinv));
            i += W;
        }
        for v in x[split..].iter_mut() {
            *v *= inv;
        }
    }
}

/// `gate = silu(gate) · up` on the elements `col0..` of a row of `row_len` (see
/// `model::ops::swiglu_chunk`): the polynomial exp below the row's last whole 8-lane group,
/// libm's after it.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn swiglu_imp(col0: usize, row_len: usize, gate: &mut [f32], up: &[f32]) {
    assert!(gate.len() == up.len() && col0 + gate.len() <= row_len);
    let poly_end = (row_len - row_len % W).saturating_sub(col0).min(gate.len());
    let mut i = 0;
    // SAFETY: AVX2/FMA per the fn contract; each step reads and writes 8 lanes below
    // `poly_end`, which is within both slices.
    unsafe {
        let (g, u) = (gate.as_mut_ptr(), up.as_ptr());
        let one = _mm256_set1_ps(1.0);
        while i + W <= poly_end {
            let gv = _mm256_loadu_ps(g.add(i));
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
            let r = _mm256_mul_ps(
                _mm256_div_ps(gv, _mm256_add_ps(one, e)),
                _mm256_loadu_ps(u.add(i)),
            );
            _mm256_storeu_ps(g.add(i), r);
            i += W;
        }
    }
    // A chunk that starts inside an 8-lane group: the polynomial lane by lane (inlined here,
    // with FMA), then libm's past the row's last whole group.
    for (k, (gv, &uv)) in gate[i..].iter_mut().zip(&up[i..]).enumerate() {
        let e = if i + k < poly_end {
            crate::model::exp::exp_ggml(0.0 - *gv)
        } else {
            (-*gv).exp()
        };
        *gv /= 1.0 + e;
        *gv *= uv;
    }
}

super::safe_kernel!(
    /// Softmax of `x · scale` over the first `n_valid` entries on AVX2, bit-identical to the
    /// scalar `softmax_scaled`.
    pub(crate) fn softmax = softmax_imp; (x: &mut [f32], scale: f32, n_valid: usize) -> ());
super::safe_kernel!(
    /// SwiGLU of one row chunk on AVX2, bit-identical to the scalar `swiglu_chunk`.
    pub(crate) fn swiglu = swiglu_imp; (col0: usize, row_len: usize, gate: &mut [f32], up: &[f32]) -> ());
