// Quantised weights · Q8_1 activations, one 32-element sub-block at a time.
//
// `T::vd(block, sub, y)` dots sub-block `sub` (32 elements; 0 for legacy types, 0..7 for
// K-quants) of one weight block with the Q8_1 block `y` holding the same 32 activations. The
// weight quants are unpacked word-wise into int8 lanes in element order and multiplied with
// dp4a; offsets (the −8 of Q4_0, the mins of Q4_1/K-quants) use the exact integer Σq of y, not
// its rounded f16 `s`. Integer parts are exact; the float part is a few products per
// sub-block. `quantize_q8_1_block` is the activation quantiser, bit-identical to the CPU
// backend's scalar Q8_1 quantiser (src/cpu/quantize.rs).
#pragma once

#include "dequant.cuh"

namespace sluice {

// Element order within a 32-element sub-block: word k holds elements 4k..4k+3.
constexpr uint32_t NIB = 0x0F0F0F0Fu;

// Bits 0..3 of h spread to bit 4 of bytes 0..3 (the fifth bit of Q5 quants).
SLUICE_HD uint32_t spread_bit4(uint32_t h) {
    return ((h & 1u) << 4) | ((h & 2u) << 11) | ((h & 4u) << 18) | ((h & 8u) << 25);
}

struct Q8Words {
    int32_t q[8];
    float d;
    int32_t sum_lo, sum_hi;  // Σq over elements 0..15 and 16..31
};
SLUICE_HD Q8Words load_q8_1(const block_q8_1* y) {
    Q8Words w;
#pragma unroll
    for (int k = 0; k < 8; ++k) w.q[k] = ld_i32_aligned(y->qs + 4 * k);
    w.d = f16_to_f32(ld_u16(y->d));
    w.sum_lo = byte_sum(w.q[0]) + byte_sum(w.q[1]) + byte_sum(w.q[2]) + byte_sum(w.q[3]);
    w.sum_hi = byte_sum(w.q[4]) + byte_sum(w.q[5]) + byte_sum(w.q[6]) + byte_sum(w.q[7]);
    return w;
}

// Σ x·y over words [k0, k0 + 4) of an unpacked sub-block.
SLUICE_HD int32_t dot4(const uint32_t* x, const int32_t* y, int k0) {
    int32_t s = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) s = dp4a((int32_t)x[k0 + k], y[k0 + k], s);
    return s;
}

// Legacy 4-bit nibbles (Q4_0/Q4_1/Q5_x/IQ4_NL): words 0..3 are the low nibbles of qs, 4..7 the
// high ones.
SLUICE_HD void unpack_nibbles(const uint8_t* qs, uint32_t* x) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const uint32_t v = ld_u32(qs + 4 * k);
        x[k] = v & NIB;
        x[k + 4] = (v >> 4) & NIB;
    }
}
SLUICE_HD void add_fifth_bits(const uint8_t* qh_bytes, uint32_t* x) {
    const uint32_t qh = ld_u32(qh_bytes);
#pragma unroll
    for (int k = 0; k < 8; ++k) x[k] |= spread_bit4(qh >> (4 * k));
}

struct t_q4_0_dot : t_q4_0 {
    SLUICE_HD static float vd(const uint8_t* p, int, const block_q8_1* yb) {
        const block_q4_0* b = (const block_q4_0*)p;
        const Q8Words y = load_q8_1(yb);
        uint32_t x[8];
        unpack_nibbles(b->qs, x);
        const int32_t sumi = dot4(x, y.q, 0) + dot4(x, y.q, 4) - 8 * (y.sum_lo + y.sum_hi);
        return f16_to_f32(ld_u16(b->d)) * y.d * (float)sumi;
    }
};
struct t_q4_1_dot : t_q4_1 {
    SLUICE_HD static float vd(const uint8_t* p, int, const block_q8_1* yb) {
        const block_q4_1* b = (const block_q4_1*)p;
        const Q8Words y = load_q8_1(yb);
        uint32_t x[8];
        unpack_nibbles(b->qs, x);
        const int32_t sumi = dot4(x, y.q, 0) + dot4(x, y.q, 4);
        const float d = f16_to_f32(ld_u16(b->d)), m = f16_to_f32(ld_u16(b->m));
        return y.d * fmaf(d, (float)sumi, m * (float)(y.sum_lo + y.sum_hi));
    }
};
struct t_q5_0_dot : t_q5_0 {
    SLUICE_HD static float vd(const uint8_t* p, int, const block_q8_1* yb) {
        const block_q5_0* b = (const block_q5_0*)p;
        const Q8Words y = load_q8_1(yb);
        uint32_t x[8];
        unpack_nibbles(b->qs, x);
        add_fifth_bits(b->qh, x);
        const int32_t sumi = dot4(x, y.q, 0) + dot4(x, y.q, 4) - 16 * (y.sum_lo + y.sum_hi);
        return f16_to_f32(ld_u16(b->d)) * y.d * (float)sumi;
    }
};
struct t_q5_1_dot : t_q5_1 {
    SLUICE_HD static float vd(const uint8_t* p, int, const block_q8_1* yb) {
        const block_q5_1* b = (const block_q5_1*)p;
        const Q8Words y = load_q8_1(yb);
        uint32_t x[8];
        unpack_nibbles(b->qs, x);
        add_fifth_bits(b->qh, x);
        const int32_t sumi = dot4(x, y.q, 0) + dot4(x, y.q, 4);
        const float d = f16_to_f32(ld_u16(b->d)), m = f16_to_f32(ld_u16(b->m));
        return y.d * fmaf(d, (float)sumi, m * (float)(y.sum_lo + y.sum_hi));
    }
};
struct t_q8_0_dot : t_q8_0 {
    SLUICE_HD static float vd(const uint8_t* p, int, const block_q8_1* yb) {
        const block_q8_0* b = (const block_q8_0*)p;
        const Q8Words y = load_q8_1(yb);
        uint32_t x[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) x[k] = ld_u32((const uint8_t*)b->qs + 4 * k);
        const int32_t sumi = dot4(x, y.q, 0) + dot4(x, y.q, 4);
        return f16_to_f32(ld_u16(b->d)) * y.d * (float)sumi;
    }
};
struct t_iq4_nl_dot : t_iq4_nl {
    SLUICE_HD static float vd(const uint8_t* p, int, const block_q8_1* yb) {
        const block_iq4_nl* b = (const block_iq4_nl*)p;
        const Q8Words y = load_q8_1(yb);
        uint32_t x[8];
        unpack_nibbles(b->qs, x);
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            uint32_t w = 0;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                w |= (uint32_t)(uint8_t)iq4nl_value((int)((x[k] >> (8 * j)) & 15u)) << (8 * j);
            }
            x[k] = w;
        }
        const int32_t sumi = dot4(x, y.q, 0) + dot4(x, y.q, 4);
        return f16_to_f32(ld_u16(b->d)) * y.d * (float)sumi;
    }
};

// Q2_K/Q3_K: the 2-bit quants of sub-block s sit in qs[32·(s/4) ..][+32] at shift 2·(s%4).
SLUICE_HD void unpack_2bit(const uint8_t* qs, int s, uint32_t* x) {
    const uint8_t* q = qs + 32 * (s >> 2);
    const int shift = 2 * (s & 3);
#pragma unroll
    for (int k = 0; k < 8; ++k) x[k] = (ld_u32(q + 4 * k) >> shift) & 0x03030303u;
}

struct t_q2_k_dot : t_q2_k {
    SLUICE_HD static float vd(const uint8_t* p, int s, const block_q8_1* yb) {
        const block_q2_k* b = (const block_q2_k*)p;
        const Q8Words y = load_q8_1(yb);
        uint32_t x[8];
        unpack_2bit(b->qs, s, x);
        const int sc_lo = b->scales[2 * s], sc_hi = b->scales[2 * s + 1];
        const int32_t sumi = (sc_lo & 15) * dot4(x, y.q, 0) + (sc_hi & 15) * dot4(x, y.q, 4);
        const int32_t summ = (sc_lo >> 4) * y.sum_lo + (sc_hi >> 4) * y.sum_hi;
        const float d = f16_to_f32(ld_u16(b->d)), dmin = f16_to_f32(ld_u16(b->dmin));
        return y.d * fmaf(d, (float)sumi, -dmin * (float)summ);
    }
};
struct t_q3_k_dot : t_q3_k {
    SLUICE_HD static float vd(const uint8_t* p, int s, const block_q8_1* yb) {
        const block_q3_k* b = (const block_q3_k*)p;
        const Q8Words y = load_q8_1(yb);
        uint32_t x[8];
        unpack_2bit(b->qs, s, x);
        // High bit s of hmask[l] to bit 2: u = low2 + 4·high in 0..7, the quant is u − 4.
#pragma unroll
        for (int k = 0; k < 8; ++k) x[k] |= ((ld_u32(b->hmask + 4 * k) >> s) & 0x01010101u) << 2;
        const int32_t lo = dot4(x, y.q, 0) - 4 * y.sum_lo;
        const int32_t hi = dot4(x, y.q, 4) - 4 * y.sum_hi;
        const int32_t sumi = q3k_scale(2 * s, b->scales) * lo + q3k_scale(2 * s + 1, b->scales) * hi;
        return f16_to_f32(ld_u16(b->d)) * y.d * (float)sumi;
    }
};
// Q4_K/Q5_K: sub-block s is the low (s even) or high (s odd) nibbles of qs[32·(s/2) ..][+32].
SLUICE_HD float vd_k45(const uint8_t* dp, const uint8_t* dminp, const uint8_t* scales,
                       const uint32_t* x, int s, const Q8Words& y) {
    int sc, m;
    scale_min_k4(s, scales, &sc, &m);
    const int32_t sumi = sc * (dot4(x, y.q, 0) + dot4(x, y.q, 4));
    const int32_t summ = m * (y.sum_lo + y.sum_hi);
    const float d = f16_to_f32(ld_u16(dp)), dmin = f16_to_f32(ld_u16(dminp));
    return y.d * fmaf(d, (float)sumi, -dmin * (float)summ);
}
SLUICE_HD void unpack_k4(const uint8_t* qs, int s, uint32_t* x) {
    const uint8_t* q = qs + 32 * (s >> 1);
    const int shift = 4 * (s & 1);
#pragma unroll
    for (int k = 0; k < 8; ++k) x[k] = (ld_u32(q + 4 * k) >> shift) & NIB;
}
struct t_q4_k_dot : t_q4_k {
    SLUICE_HD static float vd(const uint8_t* p, int s, const block_q8_1* yb) {
        const block_q4_k* b = (const block_q4_k*)p;
        const Q8Words y = load_q8_1(yb);
        uint32_t x[8];
        unpack_k4(b->qs, s, x);
        return vd_k45(b->d, b->dmin, b->scales, x, s, y);
    }
};
struct t_q5_k_dot : t_q5_k {
    SLUICE_HD static float vd(const uint8_t* p, int s, const block_q8_1* yb) {
        const block_q5_k* b = (const block_q5_k*)p;
        const Q8Words y = load_q8_1(yb);
        uint32_t x[8];
        unpack_k4(b->qs, s, x);
#pragma unroll
        for (int k = 0; k < 8; ++k) x[k] |= ((ld_u32(b->qh + 4 * k) >> s) & 0x01010101u) << 4;
        return vd_k45(b->d, b->dmin, b->scales, x, s, y);
    }
};
struct t_q6_k_dot : t_q6_k {
    SLUICE_HD static float vd(const uint8_t* p, int s, const block_q8_1* yb) {
        const block_q6_k* b = (const block_q6_k*)p;
        const Q8Words y = load_q8_1(yb);
        const int h = s >> 2, k4 = s & 3;
        const uint8_t* ql = b->ql + 64 * h + 32 * (k4 & 1);
        const uint8_t* qh = b->qh + 32 * h;
        uint32_t x[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const uint32_t low = (ld_u32(ql + 4 * k) >> (4 * (k4 >> 1))) & NIB;
            const uint32_t high = ((ld_u32(qh + 4 * k) >> (2 * k4)) & 0x03030303u) << 4;
            x[k] = low | high;  // u in 0..63; the quant is u − 32
        }
        const int32_t lo = dot4(x, y.q, 0) - 32 * y.sum_lo;
        const int32_t hi = dot4(x, y.q, 4) - 32 * y.sum_hi;
        const int32_t sumi = b->scales[2 * s] * lo + b->scales[2 * s + 1] * hi;
        return f16_to_f32(ld_u16(b->d)) * y.d * (float)sumi;
    }
};

// One Q8_1 block from 32 floats, as the CPU backend's scalar quantiser makes it: d = amax/127,
// q = round_half_even(x · 127/amax), s = f16(d · Σq). `lane` picks which quant to return so the
// device can run one element per thread; the host calls it for each lane. `amax` and `sum` are
// the block's max |x| and Σq (the device reduces them across the warp).
SLUICE_HD float q8_inv_scale(float amax) { return amax != 0.0f ? div_rn(127.0f, amax) : 0.0f; }
SLUICE_HD int q8_quant(float x, float id) {
#ifdef __CUDA_ARCH__
    const float r = rintf(__fmul_rn(x, id));
#else
    const float r = std::nearbyint(x * id);  // default rounding mode: half to even
#endif
    const int i = (int)r;
    return i < -128 ? -128 : (i > 127 ? 127 : i);
}
SLUICE_HD void q8_1_scales(float amax, int32_t sum, uint8_t* d_out, uint8_t* s_out) {
    const float d = div_rn(amax, 127.0f);
    const uint16_t dh = f32_to_f16(d), sh = f32_to_f16(mul_rn(d, (float)sum));
    d_out[0] = (uint8_t)dh;
    d_out[1] = (uint8_t)(dh >> 8);
    s_out[0] = (uint8_t)sh;
    s_out[1] = (uint8_t)(sh >> 8);
}

}  // namespace sluice
