//! The key/value cache, in f16 as llama.cpp keeps it by default (values are rounded to half
//! when stored). Keys are `[layer][position][kv_dim]`; values are stored transposed,
//! `[layer][kv_dim][position]`, so attention's weighted sum over positions is one contiguous
//! dot product per output element, the way ggml computes it without flash attention.
//! Elements are little-endian f16 bytes, the form the CPU dot kernels take.

use crate::cpu::quantize::f32_to_f16_bits;

/// Attention reads the cache in multiples of this many positions (zero padded, masked), as
/// llama.cpp pads `n_kv` to 32 without flash attention; it also fixes the dot's lane layout.
pub const KV_PAD: usize = 32;

/// Bytes of one cached element.
const ELEM_BYTES: usize = 2;

/// One model's K and V cache, allocated once for `n_ctx` positions.
pub struct KvCache {
    n_layer: usize,
    kv_dim: usize,
    n_ctx: usize,
    k: Vec<u8>,
    v: Vec<u8>,
}

impl KvCache {
    /// A zeroed cache; `n_ctx` is rounded up to a multiple of [`KV_PAD`].
    pub fn new(n_layer: usize, kv_dim: usize, n_ctx: usize) -> KvCache {
        let n_ctx = n_ctx.div_ceil(KV_PAD) * KV_PAD;
        let len = n_layer * kv_dim * n_ctx * ELEM_BYTES;
        KvCache {
            n_layer,
            kv_dim,
            n_ctx,
            k: vec![0; len],
            v: vec![0; len],
        }
    }

    /// Bytes a cache of these dimensions takes (for planning before allocating).
    pub fn bytes_for(n_layer: usize, kv_dim: usize, n_ctx: usize) -> u64 {
        2 * (n_layer * kv_dim * n_ctx.div_ceil(KV_PAD) * KV_PAD * ELEM_BYTES) as u64
    }

    /// Positions the cache can hold.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Bytes the cache occupies.
    pub fn bytes(&self) -> usize {
        self.k.len() + self.v.len()
    }

    /// Stores one position's keys and values (each `kv_dim` long), rounding to f16.
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        assert!(
            layer < self.n_layer && pos < self.n_ctx,
            "kv store out of range"
        );
        debug_assert_eq!(k.len(), self.kv_dim);
        debug_assert_eq!(v.len(), self.kv_dim);
        let kbase = (layer * self.n_ctx + pos) * self.kv_dim * ELEM_BYTES;
        let krow = &mut self.k[kbase..kbase + self.kv_dim * ELEM_BYTES];
        for (dst, &x) in krow.chunks_exact_mut(ELEM_BYTES).zip(k) {
            dst.copy_from_slice(&f32_to_f16_bits(x).to_le_bytes());
        }
        let vbase = layer * self.kv_dim * self.n_ctx;
        for (d, &x) in v.iter().enumerate() {
            let at = (vbase + d * self.n_ctx + pos) * ELEM_BYTES;
            self.v[at..at + ELEM_BYTES].copy_from_slice(&f32_to_f16_bits(x).to_le_bytes());
        }
    }

    /// Keys of `pos` for one kv head (`head_dim` f16 values).
    pub fn key(&self, layer: usize, pos: usize, kv_head: usize, head_dim: usize) -> &[u8] {
        let base = ((layer * self.n_ctx + pos) * self.kv_dim + kv_head * head_dim) * ELEM_BYTES;
        &self.k[base..base + head_dim * ELEM_BYTES]
    }

    /// Keys of KV head `kv_head` at positions `0..n` as one strided run: the bytes from the
    /// first key's start to the last one's end, and the stride between keys in bytes.
    pub fn keys(&self, layer: usize, n: usize, kv_head: usize, head_dim: usize) -> (&[u8], usize) {
        let stride = self.kv_dim * ELEM_BYTES;
        let base = ((layer * self.n_ctx) * self.kv_dim + kv_head * head_dim) * ELEM_BYTES;
        let len = n
            .checked_sub(1)
            .map_or(0, |last| last * stride + head_dim * ELEM_BYTES);
        (&self.k[base..base + len], stride)
    }

    /// Values of dimensions `d0..d0 + count` (of `kv_dim`) over positions `0..n` as one strided
    /// run: the bytes from the first row's start to the last one's end, and the stride between
    /// rows in bytes.
    pub fn value_rows(&self, layer: usize, d0: usize, count: usize, n: usize) -> (&[u8], usize) {
        let stride = self.n_ctx * ELEM_BYTES;
        let base = (layer * self.kv_dim + d0) * stride;
        let len = count
            .checked_sub(1)
            .map_or(0, |last| last * stride + n * ELEM_BYTES);
        (&self.v[base..base + len], stride)
    }

    /// Values of one dimension `d` (of `kv_dim`) over positions `0..n`.
    pub fn value_row(&self, layer: usize, d: usize, n: usize) -> &[u8] {
        let base = (layer * self.kv_dim + d) * self.n_ctx * ELEM_BYTES;
        &self.v[base..base + n * ELEM_BYTES]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn halfs(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(2)
            .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect()
    }

    #[test]
    fn stores_round_to_half_and_transposes_values() {
        let mut c = KvCache::new(2, 4, 5);
        assert_eq!(c.n_ctx(), 32);
        assert_eq!(c.bytes() as u64, KvCache::bytes_for(2, 4, 5));
        let k = [1.0f32, 2.0, 3.0, 1.0 / 3.0];
        let v = [10.0f32, 20.0, 30.0, 40.0];
        c.store(1, 3, &k, &v);
        assert_eq!(
            halfs(c.key(1, 3, 1, 2)),
            [3.0, f16::from_f32(1.0 / 3.0).to_f32()]
        );
        assert_eq!(halfs(c.value_row(1, 2, 4)), [0.0, 0.0, 0.0, 30.0]);
        assert_eq!(halfs(c.key(0, 3, 0, 4)), [0.0; 4]);
    }

    #[test]
    fn strided_runs_hold_the_single_rows() {
        let mut c = KvCache::new(2, 4, 5);
        for pos in 0..5 {
            let k: Vec<f32> = (0..4).map(|i| (10 * pos + i) as f32).collect();
            let v: Vec<f32> = (0..4).map(|i| (100 * pos + i) as f32).collect();
            c.store(1, pos, &k, &v);
        }
        let (keys, stride) = c.keys(1, 5, 1, 2);
        for pos in 0..5 {
            assert_eq!(&keys[pos * stride..][..4], c.key(1, pos, 1, 2), "key {pos}");
        }
        assert_eq!(keys.len(), 4 * stride + 4);
        let (values, stride) = c.value_rows(1, 1, 3, 5);
        for d in 0..3 {
            assert_eq!(
                &values[d * stride..][..10],
                c.value_row(1, 1 + d, 5),
                "value row {d}"
            );
        }
        assert_eq!(values.len(), 2 * stride + 10);
        assert!(c.keys(1, 0, 1, 2).0.is_empty() && c.value_rows(1, 1, 0, 5).0.is_empty());
    }
}
