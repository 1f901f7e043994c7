//! File-layout batch kernels for the 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): one
//! weight row against up to 8 activation rows per pass, one accumulator register each.
//!
//! The per-group tiles (`simd::tile`) convert every activation scale again for each weight row
//! and form each `dx·dy` as a scalar product and a broadcast. Here a tile's activation scales
//! are converted once per block chunk into token-major vectors, so per row and block the 8
//! tokens' `dx·dy` are one vector multiply (and Q4_1/Q5_1's `m·s` one FMA); per row, block and
//! token there remain the activation load, the integer dot (two multiplies), a conversion and
//! an FMA. Every output's operations are the single-token kernel's, in its order, so each is
//! bit-identical to it.
//!
//! Measured on the AVX2-only EPYC (Zen 2, 2 cores), 8 tokens: rows in cache, one thread, the
//! per-group tiles' ns per row, block and token (rows of 576-4864 elements) went Q4_1
//! 1.99-2.01 → 0.82-0.88, Q5_0 1.34-1.48 → 1.05-1.07, Q8_0 1.23-1.36 → 1.02-1.05; `bench
//! kernels` batch column (weight GB/s × tokens, 2 threads, 576-element rows) Q4_1 17.2 →
//! 36.7-37.1, Q5_0 19.8 → 33.3-34.2, Q8_0 32.0 → 52.1-53.3. The instruction mix alone (load, two multiplies, conversion, FMA; no
//! unpacking, no scales) runs at 0.70 ns (2.35 cycles at 3.36 GHz) in a loop of its own: the
//! floor on this CPU while every lane keeps its own f32 sum, as bit-identity asks.

use std::arch::x86_64::*;
use std::cell::RefCell;

use sluice_loader::quant::blocks::{
    as_blocks, Block, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1,
};

use super::tile::{self, MultiDot};
use super::util::{
    bits_to_bytes_32, dot_u8_i8_x4, hsum_f32x8, load_x32, nibbles_32, prefetch_span,
};
use crate::cpu::f16_table::{f16_lookup, f16_table};

/// Activation rows per pass: one accumulator register each, leaving room for the operands.
const BATCH: usize = 8;
/// Weight rows whose accumulators live across the block chunks of one tile pass.
const ROW_GROUP: usize = 64;
/// Blocks whose activations are laid out together, block-major (8 KiB of quants, in L1).
const CHUNK_BLOCKS: usize = 32;

/// An activation block: its scale, its sum (Q8_1) and its quants.
pub(super) trait ActBlock: Block {
    /// The scale `d` (f16).
    fn d(&self) -> [u8; 2];
    /// The scaled sum `s` (f16; Q8_1 only).
    fn s(&self) -> [u8; 2];
    /// The 32 quants.
    fn qs(&self) -> &[i8; 32];
}

impl ActBlock for BlockQ8_0 {
    fn d(&self) -> [u8; 2] {
        self.d
    }
    fn s(&self) -> [u8; 2] {
        [0; 2]
    }
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
}

impl ActBlock for BlockQ8_1 {
    fn d(&self) -> [u8; 2] {
        self.d
    }
    fn s(&self) -> [u8; 2] {
        self.s
    }
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
}

/// How the batch kernel's operand of a weight block relates to its quants `q`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Operand {
    /// Unsigned `q` with an offset `m` dotted with Q8_1's `s` (Q4_1, Q5_1).
    Offset,
    /// Unsigned `q + bias`: each 4-element lane subtracts `bias · Σ y`, an exact integer
    /// correction computed once per token and block (Q4_0, Q5_0).
    Biased(i8),
    /// Signed `q`: `|q|` against `y·sign(q)` (Q8_0).
    Signed,
}

/// A 32-element weight block as the AVX2 dots read it: scales and unpacked bytes.
pub(super) trait Unpack: Block {
    /// The activation block type it is dotted with.
    type A: ActBlock;
    /// What [`Unpack::operand`] gives.
    const OPERAND: Operand;
    /// Whether the block has an offset `m` (dotted with Q8_1's `s`).
    const OFFSET: bool = matches!(Self::OPERAND, Operand::Offset);

    /// The 32 quants as bytes, in element order: signed, or unsigned where the block has an
    /// offset (the single-token kernels' operand).
    ///
    /// # Safety
    /// AVX2 must be available (called from a kernel compiled with it).
    unsafe fn unpack(&self) -> __m256i;
    /// The batch kernel's operand, in element order (see [`Operand`]).
    ///
    /// # Safety
    /// AVX2 must be available (called from a kernel compiled with it).
    unsafe fn operand(&self) -> __m256i;
    /// The scale `d` (f16).
    fn d(&self) -> [u8; 2];
    /// The offset `m` (f16; offset types only).
    fn m(&self) -> [u8; 2];
}

/// Implements [`Unpack`] for a weight block.
macro_rules! unpack {
    ($W:ty, $A:ty, $op:expr, m: |$mb:ident| $m:expr, unpack: |$bx:ident| $body:expr,
        operand: |$bo:ident| $obody:expr) => {
        impl Unpack for $W {
            type A = $A;
            const OPERAND: Operand = $op;

            #[inline(always)]
            unsafe fn unpack(&self) -> __m256i {
                let $bx = self;
                // SAFETY: AVX2 per the fn contract; the loads read the block's own arrays.
                unsafe { $body }
            }
            #[inline(always)]
            unsafe fn operand(&self) -> __m256i {
                let $bo = self;
                // SAFETY: AVX2 per the fn contract; the loads read the block's own arrays.
                unsafe { $obody }
            }
            fn d(&self) -> [u8; 2] {
                self.d
            }
            fn m(&self) -> [u8; 2] {
                let $mb = self;
                $m
            }
        }
    };
}

unpack!(BlockQ4_0, BlockQ8_0, Operand::Biased(8), m: |_b| [0; 2],
    // `nib − 8`.
    unpack: |bx| _mm256_sub_epi8(nibbles_32(&bx.qs), _mm256_set1_epi8(8)),
    operand: |bx| nibbles_32(&bx.qs));
unpack!(BlockQ5_0, BlockQ8_0, Operand::Biased(16), m: |_b| [0; 2],
// A clear fifth bit sets the top nibble (`nib − 16`).
unpack: |bx| _mm256_or_si256(
    nibbles_32(&bx.qs),
    _mm256_andnot_si256(bits_to_bytes_32(bx.qh), _mm256_set1_epi8(-16)),
),
// `nib + 16·bit`.
operand: |bx| _mm256_or_si256(
    nibbles_32(&bx.qs),
    _mm256_and_si256(bits_to_bytes_32(bx.qh), _mm256_set1_epi8(0x10)),
));
unpack!(BlockQ8_0, BlockQ8_0, Operand::Signed, m: |_b| [0; 2],
    unpack: |bx| load_x32(&bx.qs),
    operand: |bx| load_x32(&bx.qs));
unpack!(BlockQ4_1, BlockQ8_1, Operand::Offset, m: |b| b.m,
    unpack: |bx| nibbles_32(&bx.qs),
    operand: |bx| nibbles_32(&bx.qs));
unpack!(BlockQ5_1, BlockQ8_1, Operand::Offset, m: |b| b.m,
    // The fifth bit adds 16.
    unpack: |bx| _mm256_or_si256(
        nibbles_32(&bx.qs),
        _mm256_and_si256(bits_to_bytes_32(bx.qh), _mm256_set1_epi8(0x10)),
    ),
    operand: |bx| bx.unpack());

/// A block chunk of the tile's activations, block-major: per block, the tokens' quants side
/// by side and their scales as one vector each, so that a row's loop reads every token's
/// operand at a fixed offset from the block's. (Cache-line aligned: no load straddles two.)
#[repr(C, align(64))]
struct Chunk {
    /// `q[b][n]`: token n's quants of the chunk's block b.
    q: [[[i8; 32]; BATCH]; CHUNK_BLOCKS],
    /// `d[b][n]`: token n's `d` (f32).
    d: [[f32; BATCH]; CHUNK_BLOCKS],
    /// `s[b][n]`: token n's `s` (offset types only).
    s: [[f32; BATCH]; CHUNK_BLOCKS],
    /// `corr[b][n][l]`: `bias · Σ y` over lane l's 4 quants of token n (biased types only).
    corr: [[[i32; 8]; BATCH]; CHUNK_BLOCKS],
}

impl Chunk {
    /// Lays out blocks `c0..c0 + len` of each of the `N` rows of `nb` blocks in `y`, with what
    /// `op` needs besides (sums `s`, corrections).
    ///
    /// # Safety
    /// AVX2 must be available (called from a kernel compiled with it).
    #[inline(always)]
    unsafe fn fill<A: ActBlock, const N: usize>(
        &mut self,
        y: &[A],
        nb: usize,
        c0: usize,
        len: usize,
        op: Operand,
    ) {
        let t = f16_table();
        for b in 0..len {
            for n in 0..N {
                let by = &y[n * nb + c0 + b];
                self.q[b][n] = *by.qs();
                self.d[b][n] = f16_lookup(t, by.d());
                match op {
                    Operand::Offset => self.s[b][n] = f16_lookup(t, by.s()),
                    // SAFETY: AVX2 per the fn contract; the load reads the block's quants, the
                    // store writes the 8 lanes' array.
                    Operand::Biased(bias) => unsafe {
                        let v = dot_u8_i8_x4(_mm256_set1_epi8(bias), load_x32(by.qs()));
                        _mm256_storeu_si256(self.corr[b][n].as_mut_ptr().cast(), v);
                    },
                    Operand::Signed => {}
                }
            }
        }
    }
}

/// A thread's working memory for the batch kernels, allocated once per thread (37 KiB): the
/// laid-out chunk, a row's scales, and the accumulators of rows that span several chunks.
struct Scratch {
    /// The activations' chunk.
    ch: Chunk,
    /// `d[b][n]`: the current row's `dx·dy` of block b, token n.
    d: [[f32; BATCH]; CHUNK_BLOCKS],
    /// Each row's accumulators (one per token) across the chunks of a row group.
    acc: [[__m256; BATCH]; ROW_GROUP],
    /// Each row's `m·s` sums (token n in lane n) across the chunks of a row group.
    summs: [__m256; ROW_GROUP],
}

impl Scratch {
    /// A zeroed scratch on the heap.
    fn boxed() -> Box<Scratch> {
        // SAFETY: every field is an array of integers, floats or `__m256` (8 floats), for
        // which all-zero bytes are a valid value (0 and 0.0).
        Box::new(unsafe { std::mem::zeroed::<Scratch>() })
    }
}

thread_local! {
    /// This thread's [`Scratch`], made on its first batch tile.
    static SCRATCH: RefCell<Option<Box<Scratch>>> = const { RefCell::new(None) };
}

/// How far ahead of a block the row loop prefetches: the same block of a later row, whether
/// the rows are read whole (one chunk) or a chunk at a time, row after row.
#[derive(Clone, Copy)]
struct Ahead {
    /// Into L1: the first row at least 768 bytes on.
    near: usize,
    /// Into L2: the first row at least 4 KiB on.
    far: usize,
}

impl Ahead {
    /// The distances for rows of `row_bytes` bytes.
    fn rows_of(row_bytes: usize) -> Ahead {
        let rows_past = |bytes: usize| bytes.div_ceil(row_bytes.max(1)) * row_bytes;
        Ahead {
            near: rows_past(768),
            far: rows_past(4096),
        }
    }
}

/// Folds one weight row's blocks `x` (a chunk laid out in `ch`) into its accumulators `acc`
/// (one per token) and `summs` (token n in lane n).
///
/// # Safety
/// AVX2, FMA and F16C; `x.len() <= CHUNK_BLOCKS`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // loops, not closures: closures lose the target features
unsafe fn fold_row<W: Unpack, const N: usize>(
    x: &[W],
    ahead: Ahead,
    ch: &Chunk,
    d: &mut [[f32; BATCH]; CHUNK_BLOCKS],
    acc: &mut [__m256; N],
    summs: &mut __m256,
) {
    let t = f16_table();
    let len = x.len();
    assert!(len <= CHUNK_BLOCKS);
    // SAFETY: AVX2/FMA per the fn contract; loads and stores touch whole block fields and
    // whole arrays; `b < len <= CHUNK_BLOCKS` and `n < N <= BATCH` index the arrays.
    unsafe {
        // The tokens' `dx·dy` of every block first, each rounded as the single-token kernel's
        // scalar product: the dot loop then broadcasts them from memory, free of the
        // conversions' latency and of register shuffles.
        for b in 0..len {
            let dx = _mm256_set1_ps(f16_lookup(t, x.get_unchecked(b).d()));
            let dy = _mm256_loadu_ps(ch.d.get_unchecked(b).as_ptr());
            _mm256_storeu_ps(d.get_unchecked_mut(b).as_mut_ptr(), _mm256_mul_ps(dx, dy));
        }
        std::hint::black_box(&mut *d);
        let ones = _mm256_set1_epi16(1);
        let mut a = *acc;
        let mut sm = *summs;
        for b in 0..len {
            let bx = x.get_unchecked(b);
            prefetch_span((bx as *const W).cast(), 1, ahead.near, ahead.far);
            // The `m·s` sums' chain runs alongside the dots (one FMA a block).
            if W::OFFSET {
                let mx = _mm256_set1_ps(f16_lookup(t, bx.m()));
                let sy = _mm256_loadu_ps(ch.s.get_unchecked(b).as_ptr());
                sm = _mm256_fmadd_ps(mx, sy, sm);
            }
            let q = bx.operand();
            let signed = W::OPERAND == Operand::Signed;
            let u = if signed { _mm256_sign_epi8(q, q) } else { q };
            let (qb, db) = (ch.q.get_unchecked(b), d.get_unchecked(b));
            let cb = ch.corr.get_unchecked(b);
            for n in 0..N {
                let yq = load_x32(qb.get_unchecked(n));
                let s = if signed { _mm256_sign_epi8(yq, q) } else { yq };
                let mut p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones);
                if let Operand::Biased(_) = W::OPERAND {
                    let c = _mm256_loadu_si256(cb.get_unchecked(n).as_ptr().cast());
                    p = _mm256_sub_epi32(p, c);
                }
                let dn = _mm256_broadcast_ss(db.get_unchecked(n));
                a[n] = _mm256_fmadd_ps(dn, _mm256_cvtepi32_ps(p), a[n]);
            }
        }
        *acc = a;
        *summs = sm;
    }
}

/// `outs[n][i] = dot(weight row i, activation row n)` for `N` tokens: rows in groups of
/// [`ROW_GROUP`], each group's blocks in chunks of [`CHUNK_BLOCKS`]. Rows of one chunk keep
/// their accumulators in registers; longer rows carry them across chunks in `sc`.
///
/// # Safety
/// AVX2, FMA and F16C; `x` holds whole rows of `nb > 0` blocks; `y` holds `N` rows of `nb`
/// blocks; every `outs[n]` has one value per row.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // loops, not closures: closures lose the target features
unsafe fn pass<W: Unpack, const N: usize>(
    x: &[W],
    y: &[W::A],
    nb: usize,
    outs: &mut [&mut [f32]],
    sc: &mut Scratch,
) {
    assert!(N <= BATCH && y.len() == N * nb && outs.len() == N);
    let n_rows = x.len() / nb;
    let Scratch {
        ch,
        d,
        acc: accs,
        summs: sums,
    } = sc;
    // The chunk `ch` holds (a row of one chunk lays it out once for every row group).
    let mut laid: Option<usize> = None;
    let ahead = Ahead::rows_of(nb * W::BYTES);
    let one_chunk = nb <= CHUNK_BLOCKS;
    for r0 in (0..n_rows).step_by(ROW_GROUP) {
        let rows = ROW_GROUP.min(n_rows - r0);
        // SAFETY (whole body): AVX2/FMA/F16C per the fn contract; registers, the stack and the
        // scratch's arrays, besides `fold_row`, whose contract the chunking keeps.
        unsafe {
            for c0 in (0..nb).step_by(CHUNK_BLOCKS) {
                let len = CHUNK_BLOCKS.min(nb - c0);
                if laid != Some(c0) {
                    ch.fill::<W::A, N>(y, nb, c0, len, W::OPERAND);
                    laid = Some(c0);
                }
                let last = c0 + len == nb;
                for j in 0..rows {
                    let row = &x[(r0 + j) * nb + c0..][..len];
                    let (mut acc, mut summs) = if c0 == 0 {
                        ([_mm256_setzero_ps(); N], _mm256_setzero_ps())
                    } else {
                        (std::array::from_fn(|n| accs[j][n]), sums[j])
                    };
                    fold_row::<W, N>(row, ahead, ch, d, &mut acc, &mut summs);
                    if last {
                        let mut s = [0.0f32; BATCH];
                        _mm256_storeu_ps(s.as_mut_ptr(), summs);
                        for n in 0..N {
                            let dot = hsum_f32x8(acc[n]);
                            outs[n][r0 + j] = if W::OFFSET { dot + s[n] } else { dot };
                        }
                    } else {
                        debug_assert!(!one_chunk);
                        accs[j][..N].copy_from_slice(&acc);
                        sums[j] = summs;
                    }
                }
            }
        }
    }
}

/// [`pass`] over every token group of up to [`BATCH`] (`n_tok >= 2` tokens in all).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; as [`pass`] otherwise, for `n_tok` rows in `y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn passes<W: Unpack>(
    x: &[W],
    y: &[W::A],
    nb: usize,
    outs: &mut [&mut [f32]],
    sc: &mut Scratch,
) {
    let n_tok = outs.len();
    let mut k = 0;
    while k < n_tok {
        // Never one token alone: a group of 9 splits 5 + 4, not 8 + 1.
        let left = n_tok - k;
        let n = if left > BATCH && left < BATCH + 2 {
            left / 2 + 1
        } else {
            left.min(BATCH)
        };
        debug_assert!(n >= 2);
        let o = &mut outs[k..k + n];
        let rows = &y[k * nb..(k + n) * nb];
        // SAFETY (each arm): features per this fn's contract; `x` whole rows of `nb` blocks,
        // each activation row `nb` blocks, each `o[j]` one value per row.
        unsafe {
            match n {
                2 => pass::<W, 2>(x, rows, nb, o, sc),
                3 => pass::<W, 3>(x, rows, nb, o, sc),
                4 => pass::<W, 4>(x, rows, nb, o, sc),
                5 => pass::<W, 5>(x, rows, nb, o, sc),
                6 => pass::<W, 6>(x, rows, nb, o, sc),
                7 => pass::<W, 7>(x, rows, nb, o, sc),
                _ => pass::<W, 8>(x, rows, nb, o, sc),
            }
        }
        k += n;
    }
}

/// A tile of file-layout rows (see `tile::drive` for the contract): many-token tiles run
/// [`pass`] a token group of up to 8 at a time; one-token tiles take the per-group kernel `K`,
/// which pairs rows for their FMA latency.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[inline(always)]
pub(super) unsafe fn drive<W, K>(w: &[u8], a: &[u8], outs: &mut [&mut [f32]])
where
    W: Unpack,
    K: MultiDot<W = W, A = W::A>,
{
    let n_tok = outs.len();
    if n_tok < 2 {
        // SAFETY: forwarded contract.
        return unsafe { tile::drive::<K>(w, a, outs) };
    }
    let (Some(x), Some(y)) = (as_blocks::<W>(w), as_blocks::<W::A>(a)) else {
        return;
    };
    let nb = y.len() / n_tok;
    if nb == 0 {
        return;
    }
    // A kernel never runs inside another, so the thread's scratch is free; were it not, a
    // fresh one does the same work.
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            let sc = slot.get_or_insert_with(Scratch::boxed);
            // SAFETY: the features are present (fn contract); shapes as checked above.
            unsafe { passes::<W>(x, y, nb, outs, sc) }
        }
        // SAFETY: as above.
        Err(_) => unsafe { passes::<W>(x, y, nb, outs, &mut Scratch::boxed()) },
    });
}
