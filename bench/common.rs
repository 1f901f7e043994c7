//! What the criterion benches of the ring share (included with `#[path]`: each bench is its own
//! crate).

use std::path::Path;

use sluice_runtime::{Extent, HostRing, Prefetcher, Reader, ReaderChoice, ReaderConfig};

/// Whole extents of `extent_bytes` from the start of a file, `count` of them.
pub fn extents_from_start(
    file: sluice_runtime::FileId,
    extent_bytes: usize,
    count: usize,
) -> Vec<Extent> {
    (0..count)
        .map(|i| Extent::whole(file, (i * extent_bytes) as u64, extent_bytes as u64))
        .collect()
}

/// A prefetcher with reader `choice` over the first `count` extents of `extent_bytes` of
/// `path`, `depth` ahead in a ring of `slots`; `None`, saying why on stderr, when that reader
/// cannot start here (the bench skips it).
pub fn prefetcher(
    who: &str,
    choice: ReaderChoice,
    path: &Path,
    (slots, extent_bytes, count, depth): (usize, usize, usize, usize),
) -> Option<Prefetcher> {
    let ring = HostRing::new(slots, extent_bytes).expect("ring");
    let config = ReaderConfig {
        choice,
        ..ReaderConfig::default()
    };
    let reader = match Reader::new(ring, &config) {
        Ok(reader) => reader,
        Err(e) => {
            eprintln!("{who}: skipping {choice:?}: {e}");
            return None;
        }
    };
    let file = reader.open_file(path).expect("open the bench file");
    let sweep = extents_from_start(file, extent_bytes, count);
    Some(Prefetcher::new(reader, sweep, depth).expect("prefetcher"))
}
