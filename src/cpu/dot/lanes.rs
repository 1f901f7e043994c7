//! Scalar emulation of the AVX2 float accumulators, so each scalar kernel performs the same f32
//! operations in the same order as its SIMD twin and gets the same bits.
//!
//! A SIMD kernel keeps a vector of 8 f32 partial sums ("lanes"); lane k of a 32-element group
//! receives the exact i32 sum of the products of elements 4k..4k+3. The twins below hold the same
//! 8 lanes, update them with the same fused multiply-adds, and reduce them in the same order.

/// Eight f32 partial sums: the scalar image of one `__m256` accumulator.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Lanes8(pub(crate) [f32; 8]);

impl Lanes8 {
    /// `lane[k] = fma(d, ints[k] as f32, lane[k])` for every lane (`_mm256_fmadd_ps(set1(d), cvt(ints), acc)`).
    #[inline]
    pub(crate) fn fma_i32(&mut self, d: f32, ints: &[i32; 8]) {
        for (lane, &v) in self.0.iter_mut().zip(ints) {
            *lane = d.mul_add(v as f32, *lane);
        }
    }

    /// `lane[k] = fma(a[k], b[k], lane[k])` (`_mm256_fmadd_ps(a, b, acc)`).
    #[inline]
    pub(crate) fn fma(&mut self, a: &[f32; 8], b: &[f32; 8]) {
        for k in 0..8 {
            self.0[k] = a[k].mul_add(b[k], self.0[k]);
        }
    }

    /// Lane-wise sum (`_mm256_add_ps`).
    #[inline]
    pub(crate) fn add(self, other: Lanes8) -> Lanes8 {
        let mut out = self;
        for (o, b) in out.0.iter_mut().zip(other.0) {
            *o += b;
        }
        out
    }

    /// `((v0+v4)+(v2+v6)) + ((v1+v5)+(v3+v7))`: ggml's `hsum_float_8`, our `hsum_f32x8`.
    #[inline]
    pub(crate) fn hsum8(self) -> f32 {
        let v = self.0;
        let r = [v[4] + v[0], v[5] + v[1], v[6] + v[2], v[7] + v[3]];
        hsum4(r)
    }

    /// `((v0+v4)+(v1+v5)) + ((v2+v6)+(v3+v7))`: the two-`hadd` reduction of ggml's float dots.
    #[inline]
    pub(crate) fn hsum_hadd(self) -> f32 {
        let v = self.0;
        let t = [v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]];
        (t[0] + t[1]) + (t[2] + t[3])
    }
}

/// `(r0+r2)+(r1+r3)`: the 4-lane tail of `hsum8` (and the Q4_K min accumulator's reduction).
#[inline]
pub(crate) fn hsum4(r: [f32; 4]) -> f32 {
    (r[0] + r[2]) + (r[1] + r[3])
}
