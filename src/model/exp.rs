//! The exponential llama.cpp's x86 CPU backend uses inside softmax and SiLU: a range reduction
//! to `2^n · e^b` and a degree-5 polynomial for `e^b - 1`, evaluated with fused multiply-adds
//! (max error about 1.5 ulp). glibc's `expf` is correctly rounded and so differs from it in the
//! last bit now and then; llama.cpp rounds attention probabilities to f16 and activations to
//! 8 bits right after, so one such bit can flip a rounding and change a logit. Computing the
//! same operations here keeps sluice's logits bit-identical to llama.cpp's.
//!
//! The constants are the published coefficients of that approximation (as bit patterns, Rust
//! has no hex float literals).

/// 1.5 · 2^23: adding it rounds to an integer in the low mantissa bits.
pub(crate) const ROUND: f32 = f32::from_bits(0x4b40_0000);
/// log2(e).
pub(crate) const LOG2E: f32 = f32::from_bits(0x3fb8_aa3b);
/// ln(2), split into a high part and a low part for an exact reduction.
pub(crate) const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
pub(crate) const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
/// Polynomial coefficients, highest degree first.
pub(crate) const P5: f32 = f32::from_bits(0x3c07_2010);
pub(crate) const P4: f32 = f32::from_bits(0x3d2b_9f17);
pub(crate) const P3: f32 = f32::from_bits(0x3e2a_af33);
pub(crate) const P2: f32 = f32::from_bits(0x3eff_fedb);
pub(crate) const P1: f32 = f32::from_bits(0x3f7f_fff6);

/// `e^x`, computed as llama.cpp's AVX2 `exp` approximation computes it for one lane.
#[inline(always)]
pub fn exp_ggml(x: f32) -> f32 {
    let z = x.mul_add(LOG2E, ROUND);
    let n = z - ROUND;
    // b = x - n·ln2, with both products fused (fnmadd).
    let b = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let e = z.to_bits() << 23;
    let k = f32::from_bits(e.wrapping_add(1.0f32.to_bits()));
    let u = b * b;
    let j = P5
        .mul_add(b, P4)
        .mul_add(u, P3.mul_add(b, P2))
        .mul_add(u, P1 * b);
    if n.abs() <= 126.0 || n.is_nan() {
        return j.mul_add(k, k);
    }
    // Large |n|: scale in two steps so the result saturates to 0 or infinity correctly.
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
    let s2 = f32::from_bits(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

/// Lanes llama.cpp's vector loops process at once; tails shorter than this use `expf`
/// (softmax and SiLU in `ops`).
pub const LANES: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_libm_over_the_useful_range() {
        let mut worst_ulps = 0i64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let a = exp_ggml(x);
            let b = x.exp();
            let ulps = (a.to_bits() as i64 - b.to_bits() as i64).abs();
            worst_ulps = worst_ulps.max(ulps);
            x += 0.001_37;
        }
        assert!(worst_ulps <= 2, "worst {worst_ulps} ulps");
    }

    #[test]
    fn saturates_at_the_ends() {
        assert_eq!(exp_ggml(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_ggml(-200.0), 0.0);
        assert_eq!(exp_ggml(200.0), f32::INFINITY);
        assert_eq!(exp_ggml(0.0), 1.0);
        assert!(exp_ggml(f32::NAN).is_nan());
    }
}
