//! Device kernel throughput for `sluice bench kernels`: per weight type, the dequantisation
//! kernel (`dequant_<t>_f16`) and the decode matvec with the dequantisation fused into the dot
//! product (`matvec_<t>_q8_1`, or `matvec_<t>_f32` for float weights), in GB/s of weights, next
//! to the device's memory bandwidth measured in the same run.
//!
//! The bandwidth is a device-to-device copy (no read-only kernel exists), counted as bytes read
//! plus bytes written per second: the traffic the memory system sustains. Activations are
//! quantised to Q8_1 once, before timing, as the CPU bench quantises its own outside the loop
//! (one quantisation serves every matrix a token meets). Each figure is the best seconds per
//! launch over rounds of doubling length, timed with events on the compute stream, until the
//! rounds have taken the seconds asked for; one untimed launch comes first.

use std::time::Instant;

use cudarc::driver::result;
use sluice_loader::GgmlType;

use super::super::device::{arg, driver, probe, Device, DeviceBuffer, DeviceInfo, Kernel};
use super::super::error::CudaError;
use super::super::launch;
use super::{KernelFigures, DEVICE_RESERVE_BYTES};

/// Most launches in one timed round (a round of small launches still ends).
const LAUNCHES_PER_ROUND_MAX: usize = 1 << 14;
/// Bytes per Q8_1 block of 32 activations (f16 scale, f16 sum, 32 × i8).
const Q8_1_BLOCK_BYTES: usize = 36;

/// The kernels timed for one weight matrix.
struct Shapes {
    row_elems: usize,
    n_rows: usize,
    dequant: Kernel,
    matvec: Kernel,
    /// Q8_1 quantisation of the activations, for the types whose matvec takes them.
    quantize: Option<Kernel>,
}

/// Device memory for one weight matrix's kernels.
struct Buffers {
    /// The weights.
    w: DeviceBuffer,
    /// The dequantised matrix, f16.
    halves: DeviceBuffer,
    /// One activation row, f32.
    x: DeviceBuffer,
    /// The row quantised to Q8_1.
    y: DeviceBuffer,
    /// The matvec's output, f32 per row.
    out: DeviceBuffer,
}

/// Device 0 with its kernels loaded, for timing them.
pub struct KernelBench {
    info: DeviceInfo,
    dev: Device,
}

impl KernelBench {
    /// Opens device 0 (an [`CudaError::Unavailable`] error says why there is none).
    pub fn open() -> Result<KernelBench, CudaError> {
        let info = probe()?;
        let dev = Device::open(info.ordinal)?;
        Ok(KernelBench { info, dev })
    }

    /// The device measured.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Device memory bandwidth: a device-to-device copy of `bytes` (at least 1), in bytes read
    /// plus written per second, best over about `seconds`.
    pub fn mem_gb_per_s(&self, bytes: usize, seconds: f64) -> Result<f64, CudaError> {
        assert!(bytes > 0, "a copy of 0 bytes measures nothing");
        self.check_fits("the bandwidth copy", bytes.saturating_mul(2))?;
        let (src, dst) = (self.dev.alloc(bytes)?, self.dev.alloc(bytes)?);
        let stream = self.dev.compute.cu_stream();
        let timed = src.zero(&self.dev.compute).and_then(|()| {
            self.rounds(seconds, || {
                // SAFETY: both ranges are whole, distinct allocations of `bytes`, which live
                // until the stream is synchronised below.
                unsafe { result::memcpy_dtod_async(dst.at(0), src.at(0), bytes, stream) }
                    .map_err(driver("cuMemcpyDtoDAsync"))
            })
        });
        let per_copy_s = self.synced(timed)?;
        Ok(2.0 * bytes as f64 / per_copy_s / 1e9)
    }

    /// Times the dequantisation and the one-token matvec of `weights`, an `n_rows × row_elems`
    /// matrix of `ty` (raw GGUF blocks, rows back to back), each for about `seconds`.
    pub fn measure(
        &self,
        ty: GgmlType,
        row_elems: usize,
        n_rows: usize,
        weights: &[u8],
        seconds: f64,
    ) -> Result<KernelFigures, CudaError> {
        let n_elems = row_elems.saturating_mul(n_rows);
        let row_bytes = ty.row_bytes(row_elems as u64).unwrap_or(0) as usize;
        assert!(
            row_bytes > 0 && row_bytes.saturating_mul(n_rows) == weights.len(),
            "{ty}: {} weight bytes are not {n_rows} rows of {row_elems} elements",
            weights.len()
        );
        let shapes = Shapes {
            row_elems,
            n_rows,
            dequant: self.kernel(&launch::dequant(ty, n_elems as u64)?)?,
            matvec: self.kernel(&launch::matvec(ty, n_rows as u64, row_elems as u64, 1)?)?,
            quantize: if launch::is_float_type(ty) {
                None
            } else {
                Some(self.kernel(&launch::quantize_q8_1(row_elems as u64, 1)?)?)
            },
        };
        let q8_bytes = row_elems / 32 * Q8_1_BLOCK_BYTES;
        let need = weights.len() + 2 * n_elems + 4 * row_elems + q8_bytes + 4 * n_rows;
        self.check_fits(&format!("{ty}'s kernels"), need)?;
        let bufs = Buffers {
            w: self.dev.alloc(weights.len())?,
            halves: self.dev.alloc(2 * n_elems)?,
            x: self.dev.alloc(4 * row_elems)?,
            y: self.dev.alloc(q8_bytes)?,
            out: self.dev.alloc(4 * n_rows)?,
        };
        let timed = self.time_kernels(&shapes, &bufs, weights, seconds);
        let (dequant_s, matvec_s) = self.synced(timed)?;
        let bytes = weights.len() as f64;
        Ok(KernelFigures {
            ty,
            weight_bytes: weights.len(),
            dequant_gb_per_s: bytes / dequant_s / 1e9,
            matvec_gb_per_s: bytes / matvec_s / 1e9,
        })
    }

    /// Uploads `weights` and an activation row, quantises the row where the type takes Q8_1,
    /// and times both kernels: seconds per dequantisation, seconds per matvec. The caller
    /// synchronises the stream.
    fn time_kernels(
        &self,
        k: &Shapes,
        b: &Buffers,
        weights: &[u8],
        seconds: f64,
    ) -> Result<(f64, f64), CudaError> {
        let s = &self.dev.compute;
        let Buffers {
            w,
            halves,
            x,
            y,
            out,
        } = b;
        w.copy_in(s, 0, weights)?;
        let row: Vec<f32> = (0..k.row_elems).map(|i| (i as f32 * 0.37).sin()).collect();
        x.copy_in(s, 0, &row)?;
        let (wp, hp, xp, yp, op) = (w.at(0), halves.at(0), x.at(0), y.at(0), out.at(0));
        let (rows, cols) = (k.n_rows as i32, k.row_elems as i32);
        let n64 = (k.row_elems * k.n_rows) as i64;
        let act = match &k.quantize {
            None => xp,
            Some(quantize) => {
                // SAFETY: quantize_q8_1_f32(x, y, row_elems): x holds row_elems f32, y
                // row_elems/32 Q8_1 blocks; both live until the caller synchronises.
                unsafe { quantize.launch(s, &mut [arg(&xp), arg(&yp), arg(&cols)]) }?;
                yp
            }
        };
        let dequant_s = self.rounds(seconds, || {
            // SAFETY: dequant_<t>_f16(src, dst, n): w holds n elements of the type (asserted by
            // `measure`), halves n f16 (cuMemAlloc aligns to 256 bytes); both outlive the
            // caller's synchronisation.
            unsafe { k.dequant.launch(s, &mut [arg(&wp), arg(&hp), arg(&n64)]) }
        })?;
        let matvec_s = self.rounds(seconds, || {
            let args = &mut [arg(&wp), arg(&act), arg(&op), arg(&rows), arg(&cols)];
            // SAFETY: matvec(w, act, out, n_rows, row_elems): w is n_rows whole rows, act one
            // token of f32 (float types) or Q8_1 (the rest), out n_rows f32; all outlive the
            // caller's synchronisation.
            unsafe { k.matvec.launch(s, args) }
        })?;
        Ok((dequant_s, matvec_s))
    }

    fn kernel(&self, l: &launch::Launch) -> Result<Kernel, CudaError> {
        self.dev.kernel(l)
    }

    /// An error naming `what` when `bytes` more would leave less than the reserve free.
    fn check_fits(&self, what: &str, bytes: usize) -> Result<(), CudaError> {
        let (free, _) = self.dev.mem_info()?;
        if (bytes as u64).saturating_add(DEVICE_RESERVE_BYTES) > free {
            return Err(CudaError::OutOfMemory(format!(
                "{what} need {bytes} bytes and {free} are free ({DEVICE_RESERVE_BYTES} kept in \
                 reserve); measure a smaller matrix"
            )));
        }
        Ok(())
    }

    /// Waits for the compute stream, so no queued work still uses the buffers `r` was computed
    /// with when they are freed; then `r`, or the wait's own error.
    fn synced<T>(&self, r: Result<T, CudaError>) -> Result<T, CudaError> {
        let synced = self
            .dev
            .compute
            .synchronize()
            .map_err(driver("cuStreamSynchronize"));
        let value = r?;
        synced.map(|()| value)
    }

    /// Best seconds per call of `enqueue` over rounds of doubling length on the compute stream,
    /// after one untimed call, until about `seconds` have passed.
    fn rounds(
        &self,
        seconds: f64,
        mut enqueue: impl FnMut() -> Result<(), CudaError>,
    ) -> Result<f64, CudaError> {
        let stream = &self.dev.compute;
        enqueue()?;
        let (start, end) = (self.dev.timing_event()?, self.dev.timing_event()?);
        let began = Instant::now();
        let (mut launches, mut best_s) = (1usize, f64::INFINITY);
        loop {
            start.record(stream).map_err(driver("cuEventRecord"))?;
            for _ in 0..launches {
                enqueue()?;
            }
            end.record(stream).map_err(driver("cuEventRecord"))?;
            let ms = start
                .elapsed_ms(&end)
                .map_err(driver("cuEventElapsedTime"))?;
            if ms > 0.0 {
                best_s = best_s.min(f64::from(ms) / 1e3 / launches as f64);
            } else if launches == LAUNCHES_PER_ROUND_MAX {
                return Err(CudaError::Driver {
                    call: "cuEventElapsedTime",
                    detail: format!("{ms} ms elapsed over {launches} launches"),
                });
            }
            if began.elapsed().as_secs_f64() >= seconds && best_s.is_finite() {
                return Ok(best_s);
            }
            launches = (launches * 2).min(LAUNCHES_PER_ROUND_MAX);
        }
    }
}
