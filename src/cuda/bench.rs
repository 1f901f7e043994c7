//! Host→device copy bandwidth, page-locked (a `cuMemHostRegister`ed buffer, as the host ring
//! is) against pageable memory, timed with device events on the copy stream.

use super::device::{driver, Device};
use super::error::CudaError;

/// Measured copy rates.
#[derive(Clone, Copy, Debug)]
pub struct H2dFigures {
    /// Bytes per copy.
    pub bytes: usize,
    /// From registered (page-locked) memory.
    pub pinned_gb_per_s: f64,
    /// From ordinary pageable memory.
    pub pageable_gb_per_s: f64,
}

/// Copies `bytes` to the device `reps` times from each kind of memory.
pub fn h2d(bytes: usize, reps: usize) -> Result<H2dFigures, CudaError> {
    super::device::probe()?;
    let dev = Device::open(0)?;
    let dst = dev.alloc(bytes)?;
    let mut host = vec![1u8; bytes];
    let pageable = time_copies(&dev, &dst, &host, reps)?;
    let registrar = dev.registrar();
    registrar
        .register(host.as_mut_ptr(), bytes)
        .map_err(|e| CudaError::Driver {
            call: "cuMemHostRegister",
            detail: e.to_string(),
        })?;
    let pinned = time_copies(&dev, &dst, &host, reps);
    registrar.unregister(host.as_mut_ptr(), bytes);
    Ok(H2dFigures {
        bytes,
        pinned_gb_per_s: pinned?,
        pageable_gb_per_s: pageable,
    })
}

/// GB/s of `reps` copies of `src` into `dst`.
fn time_copies(
    dev: &Device,
    dst: &super::device::DeviceBuffer,
    src: &[u8],
    reps: usize,
) -> Result<f64, CudaError> {
    // One untimed copy first: first-touch costs are not bandwidth.
    dst.copy_in(&dev.copy, 0, src)?;
    let (start, end) = (dev.timing_event()?, dev.timing_event()?);
    start.record(&dev.copy).map_err(driver("cuEventRecord"))?;
    for _ in 0..reps {
        dst.copy_in(&dev.copy, 0, src)?;
    }
    end.record(&dev.copy).map_err(driver("cuEventRecord"))?;
    let ms = start
        .elapsed_ms(&end)
        .map_err(driver("cuEventElapsedTime"))?;
    Ok((src.len() * reps) as f64 / 1e9 / (f64::from(ms) / 1e3))
}
