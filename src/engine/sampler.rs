//! Token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty, seeded.
//!
//! Greedy (`temperature == 0`) is argmax with ties going to the lowest token id, the rule the
//! llama.cpp reference outputs follow. Otherwise the filters apply in llama.cpp's order:
//! repetition penalty → top-k → top-p → min-p → temperature → draw. All scratch space is
//! allocated once, sized from the vocabulary; sampling a token allocates nothing.

use thiserror::Error;

/// Sampling settings; `validate` rejects out-of-range values with a sentence naming the option.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0 = greedy; otherwise logits are divided by it before the draw.
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1.0 = off).
    pub top_p: f32,
    /// Drop tokens whose probability is below min_p × the top probability (0 = off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recently seen tokens (1.0 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// Seed of the random draw.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0x5eed,
        }
    }
}

/// An out-of-range sampling option.
#[derive(Debug, Error, PartialEq)]
pub enum SamplerError {
    /// The option and the accepted range.
    #[error("--{option} must be {range}, got {value}")]
    OutOfRange { option: &'static str, range: &'static str, value: String },
}

impl SamplerConfig {
    /// Checks every option's range.
    pub fn validate(&self) -> Result<(), SamplerError> {
        let bad = |option, range, value: String| Err(SamplerError::OutOfRange { option, range, value });
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature", "a finite number ≥ 0", self.temperature.to_string());
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top-p", "in (0, 1]", self.top_p.to_string());
        }
        if !(self.min_p >= 0.0 && self.min_p < 1.0) {
            return bad("min-p", "in [0, 1)", self.min_p.to_string());
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad("repeat-penalty", "a finite number > 0", self.repeat_penalty.to_string());
        }
        Ok(())
    }

    /// Whether this configuration always picks the argmax.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

/// A small, fast, seedable generator (xoshiro256**), so runs are reproducible from `--seed`.
#[derive(Clone, Debug)]
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Rng {
        // Expand the seed with splitmix64 so nearby seeds give unrelated streams.
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        Rng { s: [next(), next(), next(), next()] }
    }

    fn next_u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Picks the next token from logits.
pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
    /// (probability or logit, token id) candidates; capacity = vocabulary size.
    cand: Vec<(f32, u32)>,
    /// The last `repeat_last_n` tokens, as a ring.
    recent: Vec<u32>,
    recent_next: usize,
}

impl Sampler {
    /// A sampler for a vocabulary of `n_vocab` tokens; `cfg` must have been validated.
    pub fn new(cfg: SamplerConfig, n_vocab: usize) -> Sampler {
        let rng = Rng::new(cfg.seed);
        let recent = Vec::with_capacity(cfg.repeat_last_n);
        Sampler { cfg, rng, cand: Vec::with_capacity(n_vocab), recent, recent_next: 0 }
    }

    /// Records a token the penalty should remember (prompt tokens and generated ones).
    pub fn observe(&mut self, token: u32) {
        let cap = self.cfg.repeat_last_n;
        if cap == 0 {
            return;
        }
        if self.recent.len() < cap {
            self.recent.push(token);
        } else {
            self.recent[self.recent_next] = token;
            self.recent_next = (self.recent_next + 1) % cap;
        }
    }

    /// Chooses a token; `logits` may be modified (penalties are applied in place).
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        debug_assert!(!logits.is_empty());
        self.apply_repeat_penalty(logits);
        if self.cfg.is_greedy() {
            return argmax(logits);
        }
        self.cand.clear();
        self.cand.extend(logits.iter().enumerate().map(|(i, &l)| (l, i as u32)));
        // Highest logit first; equal logits keep the lower id first.
        let by_logit = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let k = if self.cfg.top_k == 0 { self.cand.len() } else { self.cfg.top_k.min(self.cand.len()) };
        if k < self.cand.len() {
            self.cand.select_nth_unstable_by(k - 1, by_logit);
            self.cand.truncate(k);
        }
        self.cand.sort_unstable_by(by_logit);
        softmax_in_place(&mut self.cand, 1.0);
        self.keep_top_p();
        self.keep_min_p();
        // Temperature reshapes the surviving distribution: p^(1/T), renormalised.
        let inv_t = 1.0 / self.cfg.temperature;
        for c in self.cand.iter_mut() {
            c.0 = c.0.ln() * inv_t;
        }
        softmax_in_place(&mut self.cand, 1.0);
        self.draw()
    }

    fn apply_repeat_penalty(&self, logits: &mut [f32]) {
        let p = self.cfg.repeat_penalty;
        if p == 1.0 {
            return;
        }
        for (i, &t) in self.recent.iter().enumerate() {
            // Each distinct token is penalised once, as llama.cpp does.
            if self.recent[..i].contains(&t) {
                continue;
            }
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if *l > 0.0 { *l / p } else { *l * p };
            }
        }
    }

    fn keep_top_p(&mut self) {
        let p = self.cfg.top_p;
        if p >= 1.0 {
            return;
        }
        let mut cum = 0.0f32;
        let mut keep = self.cand.len();
        for (i, c) in self.cand.iter().enumerate() {
            cum += c.0;
            if cum >= p {
                keep = i + 1;
                break;
            }
        }
        self.cand.truncate(keep.max(1));
    }

    fn keep_min_p(&mut self) {
        let Some(&(top, _)) = self.cand.first() else { return };
        let floor = top * self.cfg.min_p;
        let keep = self.cand.iter().take_while(|c| c.0 >= floor).count();
        self.cand.truncate(keep.max(1));
    }

    fn draw(&mut self) -> u32 {
        let total: f64 = self.cand.iter().map(|c| c.0 as f64).sum();
        let mut r = self.rng.next_f64() * total;
        for &(p, id) in &self.cand {
            r -= p as f64;
            if r < 0.0 {
                return id;
            }
        }
        self.cand.last().map(|c| c.1).unwrap_or(0)
    }
}

/// Index of the largest logit; ties go to the lowest id. NaN logits are never chosen.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best as u32
}

/// Turns sorted (logit, id) pairs into probabilities, in place.
fn softmax_in_place(cand: &mut [(f32, u32)], scale: f32) {
    let Some(&(max, _)) = cand.first() else { return };
    let mut sum = 0.0f64;
    for c in cand.iter_mut() {
        c.0 = ((c.0 - max) * scale).exp();
        sum += c.0 as f64;
    }
    let inv = (1.0 / sum) as f32;
    for c in cand.iter_mut() {
        c.0 *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(temperature: f32) -> SamplerConfig {
        SamplerConfig { temperature, ..SamplerConfig::default() }
    }

    #[test]
    fn greedy_ties_go_to_lowest_id() {
        let mut s = Sampler::new(cfg(0.0), 5);
        assert_eq!(s.sample(&mut [1.0, 3.0, 2.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.5]), 1);
    }

    #[test]
    fn repeat_penalty_can_change_the_argmax() {
        let c = SamplerConfig { temperature: 0.0, repeat_penalty: 2.0, ..SamplerConfig::default() };
        let mut s = Sampler::new(c, 3);
        s.observe(0);
        s.observe(0);
        // 4.0 / 2 = 2.0 < 3.0, applied once even though token 0 was seen twice.
        let mut logits = [4.0, 3.0, -1.0];
        assert_eq!(s.sample(&mut logits), 1);
        assert_eq!(logits[0], 2.0);
    }

    #[test]
    fn same_seed_same_tokens_and_top_k_1_is_greedy() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 17) as f32 * 0.3).collect();
        let c = SamplerConfig { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, ..SamplerConfig::default() };
        let mut a = Sampler::new(c.clone(), 100);
        let mut b = Sampler::new(c, 100);
        let ta: Vec<u32> = (0..50).map(|_| a.sample(&mut logits.clone())).collect();
        let tb: Vec<u32> = (0..50).map(|_| b.sample(&mut logits.clone())).collect();
        assert_eq!(ta, tb);
        assert!(ta.iter().any(|&t| t != ta[0]), "a temperature-1 draw over 100 tokens should vary");
        let k1 = SamplerConfig { temperature: 1.5, top_k: 1, ..SamplerConfig::default() };
        let mut s = Sampler::new(k1, 100);
        let want = argmax(&logits);
        for _ in 0..20 {
            assert_eq!(s.sample(&mut logits.clone()), want);
        }
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        // Probabilities ~0.88, 0.12, ~0: top-p 0.5 keeps only the first.
        let logits = [5.0f32, 3.0, -20.0];
        let c = SamplerConfig { temperature: 1.0, top_k: 0, top_p: 0.5, min_p: 0.0, ..SamplerConfig::default() };
        let mut s = Sampler::new(c, 3);
        for _ in 0..50 {
            assert_eq!(s.sample(&mut logits.clone()), 0);
        }
        let c = SamplerConfig { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.5, ..SamplerConfig::default() };
        let mut s = Sampler::new(c, 3);
        for _ in 0..50 {
            assert_eq!(s.sample(&mut logits.clone()), 0);
        }
    }

    #[test]
    fn out_of_range_options_are_named() {
        let e = SamplerConfig { top_p: 0.0, ..SamplerConfig::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("--top-p"), "{e}");
        let e = SamplerConfig { temperature: -1.0, ..SamplerConfig::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("--temperature"), "{e}");
        assert!(SamplerConfig::default().validate().is_ok());
    }
}
