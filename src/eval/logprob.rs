//! One row of logits scored against its next token, with llama-perplexity's exact arithmetic:
//! a float maximum, `expf` terms summed in double in index order, and the float or double
//! result each of its three scorers returns. Row-level only; sums live in [`super::stats`].

/// Below this many nats under the top logit a base row stores no detail (llama.cpp's floor).
const FLOOR_NATS: f32 = 16.0;
/// A log-probability this low contributes nothing to the KL divergence.
const KLD_CUTOFF: f32 = -16.0;

/// Words of one saved row: two f32s (scale, lowest log-probability), then one u16 per token,
/// padded to an even count.
pub fn row_words(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// The largest logit and the first index holding it (a strict `>` scan).
fn max_first(row: &[f32]) -> (f32, usize) {
    let mut max = row[0];
    let mut at = 0;
    for (i, &l) in row.iter().enumerate().skip(1) {
        if l > max {
            max = l;
            at = i;
        }
    }
    (max, at)
}

/// Σ expf(l − max) accumulated in f64, in index order.
fn sum_exp(row: &[f32], max: f32) -> f64 {
    row.iter().map(|&l| f64::from((l - max).exp())).sum()
}

/// −log p(`tok`) as llama-perplexity's perplexity pass computes it: the float difference
/// `l_tok − max` widened, minus the double log of the sum.
pub fn nll(row: &[f32], tok: u32) -> f64 {
    let (max, _) = max_first(row);
    let s = sum_exp(row, max);
    -(f64::from(row[tok as usize] - max) - s.ln())
}

/// Rounds to the nearest integer, halves to even, as llama.cpp's bit trick does for the
/// non-negative values it is given.
fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    ((v.to_bits() & 0x007f_ffff) as i32) - 0x0040_0000
}

/// Encodes `row` as a base-file row into `out` (`row_words` words) and returns −log p(`tok`)
/// computed in float, as llama-perplexity's base-writing pass does.
pub fn encode_row(row: &[f32], tok: u32, out: &mut [u16]) -> f64 {
    debug_assert_eq!(out.len(), row_words(row.len()));
    let (max, _) = max_first(row);
    let mut min = row[0];
    for &l in &row[1..] {
        if l < min {
            min = l;
        }
    }
    if min < max - FLOOR_NATS {
        min = max - FLOOR_NATS;
    }
    let lse = sum_exp(row, max).ln() as f32;
    let min_log_prob = min - max - lse;
    let scale = (max - min) / 65535.0;
    put_f32(&mut out[0..2], scale);
    put_f32(&mut out[2..4], min_log_prob);
    let q = &mut out[4..];
    q.fill(0);
    if scale != 0.0 {
        let inv = 1.0 / scale;
        for (w, &l) in q.iter_mut().zip(row) {
            if l > min {
                *w = nearest_int(inv * (l - min)) as u16;
            }
        }
    }
    f64::from(max + lse - row[tok as usize])
}

fn put_f32(words: &mut [u16], v: f32) {
    let b = v.to_bits();
    words[0] = b as u16;
    words[1] = (b >> 16) as u16;
}

fn get_f32(words: &[u16]) -> f32 {
    f32::from_bits(u32::from(words[0]) | (u32::from(words[1]) << 16))
}

/// One token compared with the base: what llama-perplexity's KL pass sums and keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KldToken {
    /// −log q(tok), in float.
    pub nll: f32,
    /// −log p(tok) from the base row, in float.
    pub nll_base: f32,
    /// KL(P_base ‖ Q) over the tokens the base resolves (log p > −16).
    pub kld: f64,
    /// q(tok) − p(tok).
    pub p_diff: f32,
    /// Both distributions have the same most likely token (first index on ties).
    pub same_top: bool,
}

/// Compares `row` with the saved base row `base` (`row_words` words) at next token `tok`,
/// with llama-perplexity's arithmetic, except where `row` encodes to `base` exactly: two rows
/// the file cannot tell apart are the same distribution, and diverge by exactly 0 (llama.cpp
/// reports the rounding of the base row instead, about ±6e-5 per token). `scratch` holds
/// `row`'s encoding.
pub fn kld_token(row: &[f32], base: &[u16], tok: u32, scratch: &mut [u16]) -> KldToken {
    debug_assert_eq!(base.len(), row_words(row.len()));
    encode_row(row, tok, scratch);
    if scratch == base {
        let nll_base =
            -(get_f32(&base[0..2]) * f32::from(base[4 + tok as usize]) + get_f32(&base[2..4]));
        return KldToken {
            nll: nll_base,
            nll_base,
            kld: 0.0,
            p_diff: 0.0,
            same_top: true,
        };
    }
    let (max, imax) = max_first(row);
    let lse = sum_exp(row, max).ln() as f32;
    let scale = get_f32(&base[0..2]);
    let min_log_prob = get_f32(&base[2..4]);
    let q = &base[4..4 + row.len()];
    let nll = max + lse - row[tok as usize];
    let nll_base = -(scale * f32::from(q[tok as usize]) + min_log_prob);
    let top = max + lse;
    let mut kld = 0.0f64;
    let mut imax_base = 0;
    let mut base_max = 0.0f32;
    for (i, (&w, &l)) in q.iter().zip(row).enumerate() {
        let lp_base = scale * f32::from(w) + min_log_prob;
        if i == 0 || lp_base > base_max {
            base_max = lp_base;
            imax_base = i;
        }
        if lp_base > KLD_CUTOFF {
            kld += f64::from(lp_base.exp() * (lp_base - l + top));
        }
    }
    KldToken {
        nll,
        nll_base,
        kld,
        p_diff: (-nll).exp() - (-nll_base).exp(),
        same_top: imax == imax_base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Vec<f32> {
        (0..37)
            .map(|i| ((i * 7919) % 101) as f32 * 0.21 - 9.0)
            .collect()
    }

    #[test]
    fn nll_is_the_log_softmax() {
        let r = row();
        let m = r.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let lse = m + r.iter().map(|&l| (l as f64 - m).exp()).sum::<f64>().ln();
        for tok in [0u32, 5, 36] {
            let want = lse - r[tok as usize] as f64;
            assert!((nll(&r, tok) - want).abs() < 1e-5, "{tok}");
        }
    }

    #[test]
    fn nearest_int_rounds_halves_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(65534.6), 65535);
        assert_eq!(nearest_int(0.0), 0);
    }

    #[test]
    fn an_encoded_row_decodes_to_its_log_probabilities() {
        let r = row();
        let mut w = vec![0u16; row_words(r.len())];
        let nll_f = encode_row(&r, 3, &mut w);
        assert!((nll_f - nll(&r, 3)).abs() < 1e-5);
        assert_eq!(w.len(), 2 * 19 + 4, "odd vocabularies are padded");
        assert_eq!(*w.last().unwrap_or(&1), 0);
        let (scale, mlp) = (get_f32(&w[0..2]), get_f32(&w[2..4]));
        let m = r.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let lse = m + r.iter().map(|&l| (l as f64 - m).exp()).sum::<f64>().ln();
        for (i, &l) in r.iter().enumerate() {
            let lp = l as f64 - lse;
            let dec = (scale * w[4 + i] as f32 + mlp) as f64;
            if lp > m - lse - 16.0 {
                assert!(
                    (dec - lp).abs() <= scale as f64 * 0.51 + 1e-5,
                    "{i}: {dec} vs {lp}"
                );
            }
        }
    }

    #[test]
    fn a_row_against_itself_diverges_by_exactly_nothing() {
        let r = row();
        // A token within 16 nats of the top, which the base row resolves.
        let (max, _) = max_first(&r);
        let tok = r
            .iter()
            .position(|&l| l < max && l > max - 4.0)
            .unwrap_or(0) as u32;
        let mut w = vec![0u16; row_words(r.len())];
        let mut scratch = w.clone();
        encode_row(&r, tok, &mut w);
        let k = kld_token(&r, &w, tok, &mut scratch);
        assert_eq!(
            (k.kld, k.p_diff, k.same_top, k.nll),
            (0.0, 0.0, true, k.nll_base)
        );
        // A row the file tells apart gets llama.cpp's sum: small, not zero.
        let mut moved = r.clone();
        moved[tok as usize] += 0.01;
        let k = kld_token(&moved, &w, tok, &mut scratch);
        assert!(k.kld != 0.0 && k.kld.abs() < 1e-3, "{}", k.kld);
        assert!(k.same_top);
        assert!((k.nll - k.nll_base).abs() < 2e-2);
    }

    #[test]
    fn a_flat_row_encodes_to_zero_scale() {
        let r = vec![1.5f32; 8];
        let mut w = vec![7u16; row_words(8)];
        encode_row(&r, 0, &mut w);
        assert_eq!(get_f32(&w[0..2]), 0.0);
        assert!(w[4..].iter().all(|&q| q == 0));
        let mut scratch = w.clone();
        let k = kld_token(&r, &w, 0, &mut scratch);
        assert!(k.kld.abs() < 1e-6, "{}", k.kld);
    }
}
