//! f16 → f32 by table lookup (exact), for the block scales in the dot loops (scalar and AVX2).
//!
//! One load per scale beats F16C here: `vcvtph2ps` needs the half in a vector register, and when
//! only lane 0 is used LLVM moves it there with a `vpinsrw` that merges into whatever register
//! is free, often the loop's accumulator, chaining each conversion to the previous iteration's
//! FMA (measured 2–3× slower loops); full-width broadcasts avoid that but still cost ~20%.

use std::sync::OnceLock;

use half::f16;

/// Every f16 bit pattern's f32 value (256 KiB, built on first use).
pub(crate) type F16Table = [f32; 1 << 16];

/// The process-wide table.
pub(crate) fn f16_table() -> &'static F16Table {
    static TABLE: OnceLock<Box<F16Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([0.0f32; 1 << 16]);
        for (bits, v) in t.iter_mut().enumerate() {
            *v = f16::from_bits(bits as u16).to_f32();
        }
        t
    })
}

/// Looks up a little-endian f16.
#[inline(always)]
pub(crate) fn f16_lookup(t: &F16Table, h: [u8; 2]) -> f32 {
    t[usize::from(u16::from_le_bytes(h))]
}
