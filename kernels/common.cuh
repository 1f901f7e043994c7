// Shared by every kernel and by the host check (kernels/host/host_check.cpp, compiled by g++):
// portability macros, IEEE half/bfloat16 conversions, unaligned little-endian loads, a portable
// dp4a, and float arithmetic that nvcc may not contract into FMAs.
//
// Everything here is plain C++ when __CUDACC__ is not defined, so the host compiler builds the
// same per-block math the GPU runs.
#pragma once

#include <stdint.h>

#include <cmath>
#include <cstring>

#ifdef __CUDACC__
#include <cuda_fp16.h>
#define SLUICE_HD __host__ __device__ __forceinline__
#else
#define SLUICE_HD inline
#endif

namespace sluice {

// Round-to-nearest products and sums. On the device nvcc contracts `a * b + c` into an FMA by
// default; the dequantisers must round each operation like the Rust reference does, so they use
// these, which compile to __fmul_rn/__fadd_rn (never contracted) on the GPU.
SLUICE_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
SLUICE_HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
SLUICE_HD float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
SLUICE_HD float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

SLUICE_HD uint32_t f32_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
#endif
}
SLUICE_HD float bits_f32(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, 4);
    return f;
#endif
}

// IEEE binary16 bits -> f32 (exact).
SLUICE_HD float f16_to_f32(uint16_t h) {
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half(h));
#else
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t man = h & 0x3FFu;
    if (exp == 0x1F) return bits_f32(sign | 0x7F800000u | (man << 13));  // inf / NaN
    if (exp != 0) return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
    if (man == 0) return bits_f32(sign);
    // Subnormal: value = man * 2^-24, exact in f32.
    const float v = (float)man * 5.9604644775390625e-8f;
    return (sign != 0) ? -v : v;
#endif
}

// f32 -> IEEE binary16 bits, round to nearest even (NaN stays NaN, overflow becomes inf).
SLUICE_HD uint16_t f32_to_f16(float f) {
#ifdef __CUDA_ARCH__
    return __half_as_ushort(__float2half_rn(f));
#else
    const uint32_t x = f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));  // NaN
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);  // rounds to >= 65520: inf
    if (ax >= 0x38800000u) {                                   // normal half
        const uint32_t mant_odd = (ax >> 13) & 1u;
        const uint32_t r = ax + 0xC8000FFFu + mant_odd;       // rebias -112 << 23, round
        return (uint16_t)(sign | (r >> 13));
    }
    if (ax < 0x33000000u) return sign;  // below half the smallest subnormal: +-0
    // Subnormal half: shift the full mantissa right, round to nearest even.
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14..24
    const uint32_t half_ulp = 1u << (shift - 1);
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    if (rem > half_ulp || (rem == half_ulp && (q & 1u))) q += 1;
    return (uint16_t)(sign | q);
#endif
}

// bfloat16 bits -> f32 (exact).
SLUICE_HD float bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

// Little-endian loads at 2-byte aligned addresses. Every block field the kernels read as words
// sits at an even offset of an even-sized block, so two 16-bit loads are always legal.
SLUICE_HD uint16_t ld_u16(const uint8_t* p) {
#ifdef __CUDA_ARCH__
    return *(const uint16_t*)p;
#else
    return (uint16_t)(p[0] | (p[1] << 8));
#endif
}
SLUICE_HD uint32_t ld_u32(const uint8_t* p) {
#ifdef __CUDA_ARCH__
    const uint16_t* q = (const uint16_t*)p;
    return (uint32_t)q[0] | ((uint32_t)q[1] << 16);
#else
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
#endif
}
// 4-byte aligned load (Q8_1 activation quants).
SLUICE_HD int32_t ld_i32_aligned(const int8_t* p) {
#ifdef __CUDA_ARCH__
    return *(const int32_t*)p;
#else
    uint32_t u;
    std::memcpy(&u, p, 4);
    return (int32_t)u;
#endif
}

// Sum of the four signed byte products of a and b, plus c (exact integer arithmetic).
SLUICE_HD int32_t dp4a(int32_t a, int32_t b, int32_t c) {
#if defined(__CUDA_ARCH__)
    return __dp4a(a, b, c);
#else
    for (int k = 0; k < 4; ++k) {
        c += (int32_t)(int8_t)(uint8_t)((uint32_t)a >> (8 * k)) *
             (int32_t)(int8_t)(uint8_t)((uint32_t)b >> (8 * k));
    }
    return c;
#endif
}

// Sum of the four signed bytes of a word.
SLUICE_HD int32_t byte_sum(int32_t v) { return dp4a(v, 0x01010101, 0); }

}  // namespace sluice
