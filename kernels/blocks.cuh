// Quantised block layouts, byte for byte as ggml stores them (gguf-facts.md §2.2), mirroring
// loader/src/quant/blocks.rs. Every field is a byte array, so each struct has alignment 1 and no
// padding; half-precision scales are raw little-endian bits read with ld_u16/f16_to_f32.
#pragma once

#include "common.cuh"

namespace sluice {

constexpr int QK = 32;     // elements in a legacy block (Q4_0 … Q8_1, IQ4_NL)
constexpr int QK_K = 256;  // elements in a K-quant super-block

struct block_q4_0 { uint8_t d[2]; uint8_t qs[16]; };
struct block_q4_1 { uint8_t d[2]; uint8_t m[2]; uint8_t qs[16]; };
struct block_q5_0 { uint8_t d[2]; uint8_t qh[4]; uint8_t qs[16]; };
struct block_q5_1 { uint8_t d[2]; uint8_t m[2]; uint8_t qh[4]; uint8_t qs[16]; };
struct block_q8_0 { uint8_t d[2]; int8_t qs[32]; };
// Activation format of the quantised matvec: d = amax/127 and s = d·Σq, both f16.
struct block_q8_1 { uint8_t d[2]; uint8_t s[2]; int8_t qs[32]; };
struct block_iq4_nl { uint8_t d[2]; uint8_t qs[16]; };
struct block_q2_k { uint8_t scales[16]; uint8_t qs[64]; uint8_t d[2]; uint8_t dmin[2]; };
struct block_q3_k { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint8_t d[2]; };
struct block_q4_k { uint8_t d[2]; uint8_t dmin[2]; uint8_t scales[12]; uint8_t qs[128]; };
struct block_q5_k { uint8_t d[2]; uint8_t dmin[2]; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct block_q6_k { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint8_t d[2]; };
struct block_q8_k { uint8_t d[4]; int8_t qs[256]; uint8_t bsums[32]; };

static_assert(sizeof(block_q4_0) == 18, "Q4_0 block is 18 bytes");
static_assert(sizeof(block_q4_1) == 20, "Q4_1 block is 20 bytes");
static_assert(sizeof(block_q5_0) == 22, "Q5_0 block is 22 bytes");
static_assert(sizeof(block_q5_1) == 24, "Q5_1 block is 24 bytes");
static_assert(sizeof(block_q8_0) == 34, "Q8_0 block is 34 bytes");
static_assert(sizeof(block_q8_1) == 36, "Q8_1 block is 36 bytes");
static_assert(sizeof(block_iq4_nl) == 18, "IQ4_NL block is 18 bytes");
static_assert(sizeof(block_q2_k) == 84, "Q2_K block is 84 bytes");
static_assert(sizeof(block_q3_k) == 110, "Q3_K block is 110 bytes");
static_assert(sizeof(block_q4_k) == 144, "Q4_K block is 144 bytes");
static_assert(sizeof(block_q5_k) == 176, "Q5_K block is 176 bytes");
static_assert(sizeof(block_q6_k) == 210, "Q6_K block is 210 bytes");
static_assert(sizeof(block_q8_k) == 292, "Q8_K block is 292 bytes");
static_assert(alignof(block_q6_k) == 1 && alignof(block_q8_k) == 1, "blocks are byte arrays");

// IQ4_NL's non-linear code book {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53,
// 69, 89, 113}, as four little-endian words of int8 so that a lookup is register selects (no
// local or divergent constant-memory loads on the device).
SLUICE_HD int8_t iq4nl_value(int nibble) {
    const uint32_t lo = (nibble & 4) ? 0xF6EADDCFu : 0xBFAD9881u;
    const uint32_t hi = (nibble & 4) ? 0x71594535u : 0x26190D01u;
    const uint32_t w = (nibble & 8) ? hi : lo;
    return (int8_t)(uint8_t)(w >> (8 * (nibble & 3)));
}

// Q4_K/Q5_K: the 6-bit (scale, min) of group j < 8 from the 12 packed scale bytes.
SLUICE_HD void scale_min_k4(int j, const uint8_t* s, int* sc, int* m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// Q3_K: the signed group scale i < 16 (range -32..31) from the 12 packed bytes.
SLUICE_HD int q3k_scale(int i, const uint8_t* b) {
    const int k = i & 3;
    const int hi = (b[8 + k] >> (2 * (i >> 2))) & 3;
    const int lo = (i < 8) ? (b[i & 7] & 0x0F) : (b[i & 7] >> 4);
    return (lo | (hi << 4)) - 32;
}

}  // namespace sluice
