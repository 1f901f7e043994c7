//! The key/value cache, in f16 as llama.cpp keeps it by default (values are rounded to half
//! when stored). Keys are `[layer][position][kv_dim]`; values are stored transposed,
//! `[layer][kv_dim][position]`, so attention's weighted sum over positions is one contiguous
//! dot product per output element, the way ggml computes it without flash attention.

use half::f16;

/// Attention reads the cache in multiples of this many positions (zero padded, masked), as
/// llama.cpp pads `n_kv` to 32 without flash attention; it also fixes the dot's lane layout.
pub const KV_PAD: usize = 32;

/// One model's K and V cache, allocated once for `n_ctx` positions.
pub struct KvCache {
    n_layer: usize,
    kv_dim: usize,
    n_ctx: usize,
    k: Vec<f16>,
    v: Vec<f16>,
}

impl KvCache {
    /// A zeroed cache; `n_ctx` is rounded up to a multiple of [`KV_PAD`].
    pub fn new(n_layer: usize, kv_dim: usize, n_ctx: usize) -> KvCache {
        let n_ctx = n_ctx.div_ceil(KV_PAD) * KV_PAD;
        let len = n_layer * kv_dim * n_ctx;
        KvCache { n_layer, kv_dim, n_ctx, k: vec![f16::ZERO; len], v: vec![f16::ZERO; len] }
    }

    /// Positions the cache can hold.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Bytes the cache occupies.
    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * std::mem::size_of::<f16>()
    }

    /// Stores one position's keys and values (each `kv_dim` long), rounding to f16.
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        assert!(layer < self.n_layer && pos < self.n_ctx, "kv store out of range");
        debug_assert_eq!(k.len(), self.kv_dim);
        debug_assert_eq!(v.len(), self.kv_dim);
        let kbase = (layer * self.n_ctx + pos) * self.kv_dim;
        for (dst, &x) in self.k[kbase..kbase + self.kv_dim].iter_mut().zip(k) {
            *dst = f16::from_f32(x);
        }
        let vbase = layer * self.kv_dim * self.n_ctx;
        for (d, &x) in v.iter().enumerate() {
            self.v[vbase + d * self.n_ctx + pos] = f16::from_f32(x);
        }
    }

    /// Keys of `pos` for one kv head (`head_dim` long).
    pub fn key(&self, layer: usize, pos: usize, kv_head: usize, head_dim: usize) -> &[f16] {
        let base = (layer * self.n_ctx + pos) * self.kv_dim + kv_head * head_dim;
        &self.k[base..base + head_dim]
    }

    /// Values of one dimension `d` (of `kv_dim`) over positions `0..n`.
    pub fn value_row(&self, layer: usize, d: usize, n: usize) -> &[f16] {
        let base = (layer * self.kv_dim + d) * self.n_ctx;
        &self.v[base..base + n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_round_to_half_and_transposes_values() {
        let mut c = KvCache::new(2, 4, 5);
        assert_eq!(c.n_ctx(), 32);
        let k = [1.0f32, 2.0, 3.0, 1.0 / 3.0];
        let v = [10.0f32, 20.0, 30.0, 40.0];
        c.store(1, 3, &k, &v);
        assert_eq!(c.key(1, 3, 1, 2), &[f16::from_f32(3.0), f16::from_f32(1.0 / 3.0)]);
        assert_eq!(c.key(1, 3, 1, 2)[1].to_f32(), f16::from_f32(1.0 / 3.0).to_f32());
        assert_eq!(c.value_row(1, 2, 4)[3], f16::from_f32(30.0));
        assert_eq!(c.value_row(1, 2, 4)[2], f16::ZERO);
        assert_eq!(c.key(0, 3, 0, 4), &[f16::ZERO; 4]);
    }
}
