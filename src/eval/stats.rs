//! The sums llama-perplexity keeps and the figures it derives from them: perplexity with its
//! first-order error, and the KL-divergence table (PPL ratio, KLD, Δp, same top token, with
//! uncertainties and percentiles). Tokens are folded in chunk and position order, so the
//! figures do not depend on threads, batching or where the weights live.

use super::logprob::KldToken;

/// Mean and its standard error from a sum, a sum of squares and a count: the error is 0
/// unless the variance is positive and there are more than 10 values (llama.cpp's rule).
pub fn mean_and_uncertainty(sum: f64, sum2: f64, count: usize) -> (f64, f64) {
    if count == 0 {
        return (0.0, 0.0);
    }
    let n = count as f64;
    let mean = sum / n;
    let var = sum2 / n - mean * mean;
    let err = if var > 0.0 && count > 10 {
        (var / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, err)
}

/// The covariance of two means (0 under 10 values).
pub fn covariance(sum_a: f64, sum_b: f64, sum_ab: f64, count: usize) -> f64 {
    if count < 10 {
        return 0.0;
    }
    let n = count as f64;
    (sum_ab / n - (sum_a / n) * (sum_b / n)) / (n - 1.0)
}

/// The `fraction` percentile of ascending `v`, interpolated at the float position
/// `fraction·(len−1)` as llama.cpp does. `v` must not be empty.
pub fn percentile(v: &[f32], fraction: f32) -> f32 {
    if fraction <= 0.0 {
        return v[0];
    }
    if fraction >= 1.0 {
        return v[v.len() - 1];
    }
    let p = fraction * (v.len() - 1) as f32;
    let i = p as usize;
    let t = p - i as f32;
    (1.0 - t) * v[i] + t * v[(i + 1).min(v.len() - 1)]
}

/// The median of ascending `v`: the middle value, or the float mean of the middle two.
pub fn median(v: &[f32]) -> f32 {
    let n = v.len();
    if n.is_multiple_of(2) {
        0.5 * (v[n / 2] + v[n / 2 - 1])
    } else {
        v[n / 2]
    }
}

/// Perplexity's running sums of −log p.
#[derive(Clone, Copy, Debug, Default)]
pub struct PplSums {
    pub nll: f64,
    pub nll2: f64,
    pub count: usize,
}

impl PplSums {
    /// Adds one token's −log p.
    pub fn add(&mut self, nll: f64) {
        self.nll += nll;
        self.nll2 += nll * nll;
        self.count += 1;
    }

    /// exp(mean −log p): the running figure llama.cpp prints after each chunk.
    pub fn ppl(&self) -> f64 {
        (self.nll / self.count as f64).exp()
    }

    /// The final estimate, PPL and its error (`None` when the variance is not positive,
    /// where llama.cpp prints "Unexpected negative standard deviation").
    pub fn estimate(&self) -> Option<(f64, f64)> {
        let n = self.count as f64;
        let mean = self.nll / n;
        let var = self.nll2 / n - mean * mean;
        if var > 0.0 && self.count > 1 {
            let ppl = mean.exp();
            Some((ppl, (var / (n - 1.0)).sqrt() * ppl))
        } else {
            None
        }
    }
}

/// The KL pass's running sums (float products widened, as llama.cpp sums them).
#[derive(Clone, Copy, Debug, Default)]
pub struct KldSums {
    nll: f64,
    nll2: f64,
    nll_base: f64,
    nll_base2: f64,
    nll_nll_base: f64,
    kld: f64,
    kld2: f64,
    p_diff: f64,
    p_diff2: f64,
    p_diff4: f64,
    max_p_diff: f32,
    same_top: usize,
    pub count: usize,
}

/// A value with its uncertainty.
pub type Est = (f64, f64);

/// The figures of llama-perplexity's per-chunk KL line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KldLine {
    pub ppl: Est,
    pub ln_ppl_ratio: Est,
    pub kld: Est,
    /// RMS of Δp (a fraction, not a percentage).
    pub p_diff_rms: Est,
    /// Fraction of tokens with the same top token.
    pub same_top: Est,
}

/// The whole-run figures: [`KldLine`]'s and the rest of llama.cpp's three tables.
#[derive(Clone, Debug, PartialEq)]
pub struct KldSummary {
    pub line: KldLine,
    pub ppl_base: Est,
    /// Correlation of ln PPL(Q) and ln PPL(base), a fraction.
    pub ln_ppl_correlation: f64,
    pub ppl_ratio: Est,
    pub ppl_diff: Est,
    /// KLD percentiles (maximum, 99.9, 99, 95, 90, median, 10, 5, 1, 0.1, minimum).
    pub kld_percentiles: Vec<(&'static str, f32)>,
    pub p_diff: Est,
    /// Δp percentiles, fractions (maximum … minimum, as llama.cpp lists them).
    pub p_diff_percentiles: Vec<(&'static str, f32)>,
    /// The largest |Δp| (llama.cpp computes but does not print it).
    pub max_abs_p_diff: f32,
    pub count: usize,
}

/// Names and fractions of the KLD percentile lines (1.0 is the maximum, 0.5 the median).
const KLD_LINES: [(&str, f32); 11] = [
    ("Maximum", 1.0),
    ("99.9%", 0.999),
    ("99.0%", 0.990),
    ("95.0%", 0.950),
    ("90.0%", 0.900),
    ("Median", 0.5),
    ("10.0%", 0.100),
    ("5.0%", 0.050),
    ("1.0%", 0.010),
    ("0.1%", 0.001),
    ("Minimum", 0.0),
];
/// Names and fractions of the Δp percentile lines.
const P_DIFF_LINES: [(&str, f32); 13] = [
    ("Maximum", 1.0),
    ("99.9%", 0.999),
    ("99.0%", 0.990),
    ("95.0%", 0.950),
    ("90.0%", 0.900),
    ("75.0%", 0.750),
    ("Median", 0.5),
    ("25.0%", 0.250),
    ("10.0%", 0.100),
    ("5.0%", 0.050),
    ("1.0%", 0.010),
    ("0.1%", 0.001),
    ("Minimum", 0.0),
];

impl KldSums {
    /// Adds one token.
    pub fn add(&mut self, t: &KldToken) {
        self.nll += f64::from(t.nll);
        self.nll2 += f64::from(t.nll * t.nll);
        self.nll_base += f64::from(t.nll_base);
        self.nll_base2 += f64::from(t.nll_base * t.nll_base);
        self.nll_nll_base += f64::from(t.nll * t.nll_base);
        self.kld += t.kld;
        self.kld2 += t.kld * t.kld;
        self.p_diff += f64::from(t.p_diff);
        let d2 = f64::from(t.p_diff * t.p_diff);
        self.p_diff2 += d2;
        self.p_diff4 += d2 * d2;
        self.max_p_diff = self.max_p_diff.max(t.p_diff.abs());
        self.same_top += usize::from(t.same_top);
        self.count += 1;
    }

    fn ppl_parts(&self) -> (Est, Est, f64) {
        let q = mean_and_uncertainty(self.nll, self.nll2, self.count);
        let b = mean_and_uncertainty(self.nll_base, self.nll_base2, self.count);
        let cov = covariance(self.nll, self.nll_base, self.nll_nll_base, self.count);
        (q, b, cov)
    }

    /// The figures of the per-chunk line so far.
    pub fn line(&self) -> KldLine {
        let (q, b, cov) = self.ppl_parts();
        let ppl = q.0.exp();
        let mse = mean_and_uncertainty(self.p_diff2, self.p_diff4, self.count);
        let rms = mse.0.sqrt();
        let n = self.count as f64;
        let top = self.same_top as f64 / n;
        KldLine {
            ppl: (ppl, ppl * q.1),
            ln_ppl_ratio: (q.0 - b.0, (q.1 * q.1 + b.1 * b.1 - 2.0 * cov).sqrt()),
            kld: mean_and_uncertainty(self.kld, self.kld2, self.count),
            p_diff_rms: (rms, 0.5 / rms * mse.1),
            same_top: (top, (top * (1.0 - top) / (n - 1.0)).sqrt()),
        }
    }

    /// Every figure, with `klds` and `p_diffs` (one per token, any order) for percentiles.
    pub fn summary(&self, klds: &mut [f32], p_diffs: &mut [f32]) -> KldSummary {
        let line = self.line();
        let (q, b, cov) = self.ppl_parts();
        let ppl_base = (b.0.exp(), b.0.exp() * b.1);
        let ratio = line.ln_ppl_ratio.0.exp();
        let ppl = line.ppl;
        let ppl_cov = ppl.0 * ppl_base.0 * cov;
        klds.sort_by(f32::total_cmp);
        p_diffs.sort_by(f32::total_cmp);
        let pick = |v: &[f32], f: f32| -> f32 {
            if v.is_empty() {
                f32::NAN
            } else if f == 0.5 {
                median(v)
            } else {
                percentile(v, f)
            }
        };
        KldSummary {
            line,
            ppl_base,
            ln_ppl_correlation: cov / (q.1 * b.1),
            ppl_ratio: (ratio, ratio * line.ln_ppl_ratio.1),
            ppl_diff: (
                ppl.0 - ppl_base.0,
                (ppl.1 * ppl.1 + ppl_base.1 * ppl_base.1 - 2.0 * ppl_cov).sqrt(),
            ),
            kld_percentiles: KLD_LINES.iter().map(|&(n, f)| (n, pick(klds, f))).collect(),
            p_diff: mean_and_uncertainty(self.p_diff, self.p_diff2, self.count),
            p_diff_percentiles: P_DIFF_LINES
                .iter()
                .map(|&(n, f)| (n, pick(p_diffs, f)))
                .collect(),
            max_abs_p_diff: self.max_p_diff,
            count: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_llama_cpp() {
        let v: Vec<f32> = (0..11).map(|i| i as f32).collect();
        assert_eq!(percentile(&v, 0.0), 0.0);
        assert_eq!(percentile(&v, 1.0), 10.0);
        assert_eq!(percentile(&v, 0.95), 9.5);
        assert_eq!(median(&v), 5.0);
        assert_eq!(median(&v[..10]), 4.5);
    }

    #[test]
    fn the_uncertainty_needs_more_than_ten_values() {
        assert_eq!(mean_and_uncertainty(10.0, 30.0, 5).1, 0.0);
        let (m, e) = mean_and_uncertainty(20.0, 60.0, 20);
        assert_eq!(m, 1.0);
        // Variance 2 over 19 degrees of freedom.
        assert!((e - (2.0f64 / 19.0).sqrt()).abs() < 1e-12);
        assert_eq!(covariance(1.0, 1.0, 1.0, 9), 0.0);
    }

    #[test]
    fn perplexity_and_its_error_follow_the_formula() {
        let mut s = PplSums::default();
        for x in [1.0, 2.0, 3.0, 2.0] {
            s.add(x);
        }
        let (ppl, err) = s.estimate().expect("positive variance");
        assert!((ppl - 2f64.exp()).abs() < 1e-12);
        // Population variance 0.5, over n − 1 = 3.
        assert!((err - (0.5f64 / 3.0).sqrt() * 2f64.exp()).abs() < 1e-12);
        let mut flat = PplSums::default();
        flat.add(1.0);
        flat.add(1.0);
        assert!(flat.estimate().is_none());
    }
}
