//! Small AVX2 building blocks shared by the kernels: loads, unpacking, integer pair sums and the
//! horizontal float sums whose order the scalar twins copy (`cpu::dot::lanes`).
//!
//! Contract of every function here: call it only while AVX2, FMA and F16C are available (i.e.
//! from a kernel compiled with those features, itself reached through an `Avx2` token). They are
//! `#[inline(always)]` so they become part of that kernel's code.

use std::arch::x86_64::*;

/// A byte type the loads below may read: plain data, every bit pattern valid.
pub(super) trait Byte: Copy {}
impl Byte for u8 {}
impl Byte for i8 {}

/// Loads 32 bytes from the start of `s` (any alignment). Panics if `s` is shorter.
#[inline(always)]
pub(super) unsafe fn load_x32<T: Byte>(s: &[T]) -> __m256i {
    assert!(s.len() >= 32);
    // SAFETY: 32 readable bytes (asserted, `T` is one byte); `loadu` takes any alignment; AVX
    // per module contract.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// Loads 16 bytes from the start of `s` (any alignment). Panics if `s` is shorter.
#[inline(always)]
pub(super) unsafe fn load_x16<T: Byte>(s: &[T]) -> __m128i {
    assert!(s.len() >= 16);
    // SAFETY: 16 readable bytes (asserted, `T` is one byte); `loadu` takes any alignment; SSE2
    // is baseline.
    unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
}

/// Bytes ahead of the current weight block that the block loops prefetch, per row stream
/// (measured: decode +3-7% on a 2-core VM, where the hardware prefetcher lags).
const PREFETCH_AHEAD: usize = 768;
/// Bytes ahead that the block loops also prefetch into L2 (see [`prefetch_span`]). 256 MB
/// matrices, 2 threads, memory at 20-22 GB/s, three alternating pairs against L1 alone:
/// AVX-512 file-layout decode Q4_1 12.0-12.3 → 13.1-13.4 GB/s, Q4_K 9.1-9.2 → 10.3-10.4, Q6_K
/// 11.3-11.7 → 12.6-12.7; AVX2 Q4_1 11.7-11.9 → 12.4-12.6, Q8_0 14.1-14.3 → 15.4-15.7, Q4_K
/// level, Q6_K 1-2% slower.
const PREFETCH_FAR: usize = 4096;

/// Prefetches the cache line `PREFETCH_AHEAD` bytes past `block` into L1 and the one
/// `PREFETCH_FAR` past it into L2 (see [`prefetch_span`]).
#[inline(always)]
pub(super) unsafe fn prefetch_ahead<T>(block: &T) {
    prefetch_span((block as *const T).cast(), 1, PREFETCH_AHEAD, PREFETCH_FAR);
}

/// Prefetches the `len` bytes `near` past `at` into L1 and the `len` bytes `far` past it into
/// L2: far prefetches into L1 would hold one of its few fill buffers for a whole memory
/// latency, into L2 they leave them to the near ones (session 13, 256 MB matrices, memory at
/// 23 GB/s, 2 threads: 16-row Q4_1 decode 73% → 87-91% of it, Q4_K 69% → 77-81%, Q2_K
/// 66% → 73%; all into L1 or all into L2 were each slower). A prefetch never faults, so
/// running past the matrix's end is harmless; the addresses are only computed.
#[inline(always)]
pub(super) fn prefetch_span(at: *const u8, len: usize, near: usize, far: usize) {
    for k in 0..len.div_ceil(64) {
        // SAFETY: SSE is baseline on x86-64; prefetching any address is harmless.
        unsafe {
            _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(far + 64 * k).cast());
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(near + 64 * k).cast());
        }
    }
}

/// Prefetches the `len` bytes at `at` into L2 only (a stream the loop reaches later, through a
/// pass that reads cached bytes meanwhile). A prefetch never faults: the address is only
/// computed.
#[inline(always)]
pub(super) fn prefetch_l2(at: *const u8, len: usize) {
    for k in 0..len.div_ceil(64) {
        // SAFETY: SSE is baseline on x86-64; prefetching any address is harmless.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(64 * k).cast()) };
    }
}

/// The 4 activation bytes at `i..i + 4` as one little-endian i32: one lane's operand of the
/// 16-row kernels, splatted across the rows (`vpdpbusd` on AVX-512, `vpmaddubsw` on AVX2).
#[inline(always)]
pub(super) fn quad(q: &[i8], i: usize) -> i32 {
    i32::from_le_bytes([q[i] as u8, q[i + 1] as u8, q[i + 2] as u8, q[i + 3] as u8])
}

/// Loads 8 floats from the start of `s` (any alignment). Panics if `s` is shorter.
#[inline(always)]
pub(super) unsafe fn load_f32x8(s: &[f32]) -> __m256 {
    assert!(s.len() >= 8);
    // SAFETY: 8 readable floats (asserted); `loadu` takes any alignment; AVX per module contract.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

/// Stores 32 bytes at the start of `out` (any alignment). Panics if `out` is shorter.
#[inline(always)]
pub(super) unsafe fn store_u8x32(out: &mut [u8], v: __m256i) {
    assert!(out.len() >= 32);
    // SAFETY: 32 writable bytes (asserted); `storeu` takes any alignment; AVX per module contract.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) }
}

/// Stores 16 bytes at the start of `out` (any alignment). Panics if `out` is shorter.
#[inline(always)]
pub(super) unsafe fn store_u8x16(out: &mut [u8], v: __m128i) {
    assert!(out.len() >= 16);
    // SAFETY: 16 writable bytes (asserted); `storeu` takes any alignment; SSE2 is baseline.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), v) }
}

/// Sums 8 lanes as `((v0+v4)+(v2+v6)) + ((v1+v5)+(v3+v7))` (twin: `Lanes8::hsum8`).
#[inline(always)]
pub(super) unsafe fn hsum_f32x8(v: __m256) -> f32 {
    // SAFETY: AVX per module contract; register-only operations.
    unsafe {
        hsum_f32x4(_mm_add_ps(
            _mm256_extractf128_ps::<1>(v),
            _mm256_castps256_ps128(v),
        ))
    }
}

/// Sums 4 lanes as `(v0+v2)+(v1+v3)` (twin: `lanes::hsum4`).
#[inline(always)]
pub(super) unsafe fn hsum_f32x4(r: __m128) -> f32 {
    // SAFETY: SSE3 (implied by AVX2) per module contract; register-only operations.
    unsafe {
        let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
        _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)))
    }
}

/// Unpacks 16 bytes of nibbles into 32 bytes: low nibbles first, then high nibbles.
#[inline(always)]
pub(super) unsafe fn nibbles_32(qs: &[u8; 16]) -> __m256i {
    // SAFETY: AVX2 per module contract; the load reads the 16-byte array.
    unsafe {
        let t = load_x16(qs);
        let both = _mm256_set_m128i(_mm_srli_epi16::<4>(t), t);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }
}

/// Expands the 32 bits of a little-endian word to 32 bytes: 0xFF where the bit is set, else 0.
#[inline(always)]
pub(super) unsafe fn bits_to_bytes_32(qh: [u8; 4]) -> __m256i {
    // SAFETY: AVX2 per module contract; register-only operations.
    unsafe {
        let word = _mm256_set1_epi32(i32::from_le_bytes(qh));
        // Byte i of the result reads source byte i / 8, then tests bit i % 8.
        let pick = _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
        );
        let spread = _mm256_shuffle_epi8(word, pick);
        let bit = _mm256_set1_epi64x(i64::from_le_bytes([1, 2, 4, 8, 16, 32, 64, 128]));
        _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit)
    }
}

/// Products of unsigned `u` and signed `s` bytes summed in groups of four into 8 i32 lanes.
/// Exact while each adjacent pair sum fits i16 (true for every weight/activation pair here).
#[inline(always)]
pub(super) unsafe fn dot_u8_i8_x4(u: __m256i, s: __m256i) -> __m256i {
    // SAFETY: AVX2 per module contract; register-only operations.
    unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)) }
}

/// Products of signed bytes summed in groups of four into 8 i32 lanes (`y` must avoid -128).
#[inline(always)]
pub(super) unsafe fn dot_i8_i8_x4(x: __m256i, y: __m256i) -> __m256i {
    // SAFETY: AVX2 per module contract; register-only operations.
    unsafe { dot_u8_i8_x4(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)) }
}

/// Loads the 16 little-endian i16 group sums of a Q8_K block.
#[inline(always)]
pub(super) unsafe fn load_bsums(b: &[[u8; 2]; 16]) -> __m256i {
    // SAFETY: `[[u8; 2]; 16]` is 32 contiguous readable bytes; `loadu` takes any alignment;
    // AVX per module contract.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// Widens two of 16 signed byte scales to i16 lanes: lanes 0..7 get `s[a]`, lanes 8..15 `s[a+1]`
/// (one scale per 16 elements of a 32-element group).
#[inline(always)]
pub(super) unsafe fn pair_scales(scales: __m128i, a: usize) -> __m256i {
    let splat = 0x0101_0101_0101_0101i64;
    // SAFETY: AVX2 per module contract; register-only operations.
    unsafe {
        let pick = _mm_set_epi64x((a as i64 + 1) * splat, a as i64 * splat);
        _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, pick))
    }
}
