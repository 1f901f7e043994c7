//! A small deterministic generator (SplitMix64) for reproducible random test data.

/// SplitMix64 state.
pub(super) struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `[0, 1)`.
    pub(super) fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// A uniform value in `[lo, hi)`.
    pub(super) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// A uniform index in `0..n`.
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Random bytes.
    pub(super) fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            *b = self.next_u64() as u8;
        }
    }

    /// `n` activations of mixed magnitude: mostly O(1), some outliers, a few exact zeros.
    pub(super) fn activations(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| match self.below(20) {
                0 => 0.0,
                1 => self.range(-40.0, 40.0),
                _ => self.range(-2.0, 2.0),
            })
            .collect()
    }
}
