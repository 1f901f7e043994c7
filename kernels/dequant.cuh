// Per-element dequantisation of every type the loader reads: `T::dq(block, e)` is element e of
// one block as f32, computed with the operations and rounding order of the Rust reference
// (loader/src/quant/dequant), so the results are bit-identical to it on host and device
// (mul_rn/add_rn keep nvcc from fusing them). Each trait also names its block geometry.
#pragma once

#include "blocks.cuh"

namespace sluice {

// Plain float types: one element per "block".
struct t_f32 {
    static constexpr int qk = 1, bytes = 4;
    SLUICE_HD static float dq(const uint8_t* b, int) { return bits_f32(ld_u32(b)); }
};
struct t_f16 {
    static constexpr int qk = 1, bytes = 2;
    SLUICE_HD static float dq(const uint8_t* b, int) { return f16_to_f32(ld_u16(b)); }
};
struct t_bf16 {
    static constexpr int qk = 1, bytes = 2;
    SLUICE_HD static float dq(const uint8_t* b, int) { return bf16_to_f32(ld_u16(b)); }
};

// The 4-bit value of element e of a 16-byte nibble array (j and j + 16 share byte j).
SLUICE_HD int nibble_at(const uint8_t* qs, int e) {
    return (e < 16) ? (qs[e] & 0x0F) : (qs[e - 16] >> 4);
}
// Bit e of a little-endian 32-bit qh.
SLUICE_HD int qh_bit(const uint8_t* qh, int e) { return (qh[e >> 3] >> (e & 7)) & 1; }

struct t_q4_0 {
    static constexpr int qk = QK, bytes = sizeof(block_q4_0);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_q4_0* b = (const block_q4_0*)p;
        return mul_rn((float)(nibble_at(b->qs, e) - 8), f16_to_f32(ld_u16(b->d)));
    }
};
struct t_q4_1 {
    static constexpr int qk = QK, bytes = sizeof(block_q4_1);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_q4_1* b = (const block_q4_1*)p;
        const float d = f16_to_f32(ld_u16(b->d)), m = f16_to_f32(ld_u16(b->m));
        return add_rn(mul_rn((float)nibble_at(b->qs, e), d), m);
    }
};
struct t_q5_0 {
    static constexpr int qk = QK, bytes = sizeof(block_q5_0);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_q5_0* b = (const block_q5_0*)p;
        const int q = nibble_at(b->qs, e) | (qh_bit(b->qh, e) << 4);
        return mul_rn((float)(q - 16), f16_to_f32(ld_u16(b->d)));
    }
};
struct t_q5_1 {
    static constexpr int qk = QK, bytes = sizeof(block_q5_1);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_q5_1* b = (const block_q5_1*)p;
        const int q = nibble_at(b->qs, e) | (qh_bit(b->qh, e) << 4);
        const float d = f16_to_f32(ld_u16(b->d)), m = f16_to_f32(ld_u16(b->m));
        return add_rn(mul_rn((float)q, d), m);
    }
};
struct t_q8_0 {
    static constexpr int qk = QK, bytes = sizeof(block_q8_0);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_q8_0* b = (const block_q8_0*)p;
        return mul_rn((float)b->qs[e], f16_to_f32(ld_u16(b->d)));
    }
};
struct t_q8_1 {
    static constexpr int qk = QK, bytes = sizeof(block_q8_1);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_q8_1* b = (const block_q8_1*)p;
        return mul_rn((float)b->qs[e], f16_to_f32(ld_u16(b->d)));
    }
};
struct t_iq4_nl {
    static constexpr int qk = QK, bytes = sizeof(block_iq4_nl);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_iq4_nl* b = (const block_iq4_nl*)p;
        return mul_rn(f16_to_f32(ld_u16(b->d)), (float)iq4nl_value(nibble_at(b->qs, e)));
    }
};

// K-quants: element e of 256 (gguf-facts.md §2.3 index formulas).
struct t_q2_k {
    static constexpr int qk = QK_K, bytes = sizeof(block_q2_k);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_q2_k* b = (const block_q2_k*)p;
        const int sc = b->scales[e >> 4];
        const float dl = mul_rn(f16_to_f32(ld_u16(b->d)), (float)(sc & 0x0F));
        const float ml = mul_rn(f16_to_f32(ld_u16(b->dmin)), (float)(sc >> 4));
        const int q = (b->qs[32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
        return sub_rn(mul_rn(dl, (float)q), ml);
    }
};
struct t_q3_k {
    static constexpr int qk = QK_K, bytes = sizeof(block_q3_k);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_q3_k* b = (const block_q3_k*)p;
        const float dl = mul_rn(f16_to_f32(ld_u16(b->d)), (float)q3k_scale(e >> 4, b->scales));
        const int low2 = (b->qs[32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
        const int high = (b->hmask[e & 31] >> (e >> 5)) & 1;
        return mul_rn(dl, (float)(low2 - (high ? 0 : 4)));
    }
};
// Q4_K and Q5_K share the scale packing and nibble placement; Q5_K adds a fifth bit.
SLUICE_HD float dq_k45(const uint8_t* d, const uint8_t* dmin, const uint8_t* scales,
                       const uint8_t* qs, int high_bit, int e) {
    int sc, m;
    scale_min_k4(e >> 5, scales, &sc, &m);
    const float d1 = mul_rn(f16_to_f32(ld_u16(d)), (float)sc);
    const float m1 = mul_rn(f16_to_f32(ld_u16(dmin)), (float)m);
    const int byte = qs[32 * (e >> 6) + (e & 31)];
    const int nib = ((e >> 5) & 1) ? (byte >> 4) : (byte & 0x0F);
    return sub_rn(mul_rn(d1, (float)(nib | (high_bit << 4))), m1);
}
struct t_q4_k {
    static constexpr int qk = QK_K, bytes = sizeof(block_q4_k);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_q4_k* b = (const block_q4_k*)p;
        return dq_k45(b->d, b->dmin, b->scales, b->qs, 0, e);
    }
};
struct t_q5_k {
    static constexpr int qk = QK_K, bytes = sizeof(block_q5_k);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_q5_k* b = (const block_q5_k*)p;
        return dq_k45(b->d, b->dmin, b->scales, b->qs, (b->qh[e & 31] >> (e >> 5)) & 1, e);
    }
};
struct t_q6_k {
    static constexpr int qk = QK_K, bytes = sizeof(block_q6_k);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_q6_k* b = (const block_q6_k*)p;
        const int h = e >> 7, k = (e >> 5) & 3, l = e & 31;
        const int byte = b->ql[64 * h + 32 * (k & 1) + l];
        const int low4 = (k < 2) ? (byte & 0x0F) : (byte >> 4);
        const int high2 = (b->qh[32 * h + l] >> (2 * k)) & 3;
        const float ds = mul_rn(f16_to_f32(ld_u16(b->d)), (float)b->scales[e >> 4]);
        return mul_rn(ds, (float)((low4 | (high2 << 4)) - 32));
    }
};
struct t_q8_k {
    static constexpr int qk = QK_K, bytes = sizeof(block_q8_k);
    SLUICE_HD static float dq(const uint8_t* p, int e) {
        const block_q8_k* b = (const block_q8_k*)p;
        return mul_rn(bits_f32(ld_u32(b->d)), (float)b->qs[e]);
    }
};

// Element i of a row of blocks of type T.
template <typename T>
SLUICE_HD float dq_row(const uint8_t* row, int64_t i) {
    return T::dq(row + (i / T::qk) * T::bytes, (int)(i % T::qk));
}

}  // namespace sluice
