//! Unpacking of the packed Q4_K/Q5_K sub-block scales (gguf-facts §2.3), shared by the scalar
//! and AVX2 kernels; Q3_K's are the loader's `q3k_scales`.

/// The 8 six-bit scales then the 8 six-bit mins of a Q4_K/Q5_K block (`out[0..8]`, `out[8..16]`).
#[inline]
pub(crate) fn k4_scales_mins(b: &[u8; 12]) -> [u8; 16] {
    let w = |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    let (w0, w1, w2) = (w(0), w(1), w(2));
    let low6 = 0x3F3F_3F3F;
    let nib = 0x0F0F_0F0F;
    let top2 = 0x0303_0303;
    let words = [
        w0 & low6,                                     // scales 0..3
        (w2 & nib) | (((w0 >> 6) & top2) << 4),        // scales 4..7
        w1 & low6,                                     // mins 0..3
        ((w2 >> 4) & nib) | (((w1 >> 6) & top2) << 4), // mins 4..7
    ];
    let mut out = [0u8; 16];
    for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-wise formulas of gguf-facts §2.3, for comparison with the word-wise unpacking.
    fn k4_bytewise(s: &[u8; 12]) -> [u8; 16] {
        let mut out = [0u8; 16];
        for j in 0..8 {
            let (sc, m) = if j < 4 {
                (s[j] & 63, s[j + 4] & 63)
            } else {
                (
                    (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4),
                    (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
                )
            };
            out[j] = sc;
            out[8 + j] = m;
        }
        out
    }

    #[test]
    fn k4_word_unpacking_matches_bytewise_formula() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut b = [0u8; 12];
            for v in b.iter_mut() {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *v = (state >> 56) as u8;
            }
            assert_eq!(k4_scales_mins(&b), k4_bytewise(&b));
        }
    }
}
