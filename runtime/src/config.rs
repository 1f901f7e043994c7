//! How a reader is chosen and configured: `ReaderChoice` (with the `SLUICE_IO` override),
//! `ReaderKind` (what runs), `ReaderConfig` (queue depth, with the `SLUICE_IO_DEPTH` override,
//! chunk size, threads) and its limits.

use crate::error::{Error, Result};
use crate::limits::{
    CHUNK_BYTES_MAX, CHUNK_BYTES_MIN, PREAD_THREADS_MAX, QUEUE_DEPTH_MAX, SLOT_ALIGN_BYTES,
};

/// Environment variable that picks the reader when the configuration says `Auto`.
pub const IO_ENV: &str = "SLUICE_IO";

/// Environment variable that sets the reader's queue depth for the CLI's engines: the best
/// depth depends on the drive and the model (README Results), so it can be tried without a
/// rebuild.
pub const IO_DEPTH_ENV: &str = "SLUICE_IO_DEPTH";

/// Which reader to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReaderChoice {
    /// `SLUICE_IO` if set, else io_uring with the pread pool as fallback.
    #[default]
    Auto,
    /// io_uring; an error if the kernel refuses it.
    Uring,
    /// The pread thread pool.
    Pread,
}

impl ReaderChoice {
    /// Parses a `SLUICE_IO` value (`None` when unset).
    pub fn parse_env(value: Option<&str>) -> Result<ReaderChoice> {
        match value.map(str::trim) {
            None | Some("") | Some("auto") => Ok(ReaderChoice::Auto),
            Some("uring") | Some("io_uring") => Ok(ReaderChoice::Uring),
            Some("pread") => Ok(ReaderChoice::Pread),
            Some(other) => Err(Error::EnvChoice {
                value: other.to_string(),
            }),
        }
    }

    /// The choice `SLUICE_IO` makes.
    pub fn from_env() -> Result<ReaderChoice> {
        let value = std::env::var(IO_ENV).ok();
        Self::parse_env(value.as_deref())
    }
}

/// The reader actually running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaderKind {
    /// io_uring, O_DIRECT, fixed buffers and files where the kernel allows.
    Uring,
    /// A pool of threads calling pread.
    Pread,
    /// A simulated drive on a simulated clock (no I/O).
    Simulated,
}

impl ReaderKind {
    /// Lower-case name (`uring`, `pread`, `sim`).
    pub fn name(self) -> &'static str {
        match self {
            ReaderKind::Uring => "uring",
            ReaderKind::Pread => "pread",
            ReaderKind::Simulated => "sim",
        }
    }
}

/// How a reader reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderConfig {
    /// Which reader.
    pub choice: ReaderChoice,
    /// Most chunk reads in flight at once.
    pub queue_depth: usize,
    /// Size of the chunks an extent is cut into (a multiple of 4 KiB).
    pub chunk_bytes: usize,
    /// Worker threads of the pread pool.
    pub pread_threads: usize,
    /// Register the slab and the files with io_uring (fixed buffers and files) when it allows;
    /// false forces plain reads (to measure or test that path).
    pub fixed: bool,
}

impl Default for ReaderConfig {
    fn default() -> ReaderConfig {
        ReaderConfig {
            choice: ReaderChoice::Auto,
            queue_depth: 32,
            chunk_bytes: 1 << 20,
            pread_threads: 4,
            fixed: true,
        }
    }
}

impl ReaderConfig {
    /// The default configuration with `SLUICE_IO_DEPTH` applied when it is set.
    pub fn from_env() -> Result<ReaderConfig> {
        Self::with_depth_setting(std::env::var(IO_DEPTH_ENV).ok().as_deref())
    }

    /// The default configuration with a `SLUICE_IO_DEPTH` value applied (`None` or empty:
    /// the default depth); anything but a whole number in `1..=QUEUE_DEPTH_MAX` is an error.
    pub fn with_depth_setting(value: Option<&str>) -> Result<ReaderConfig> {
        let config = ReaderConfig::default();
        let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(config);
        };
        let bad = || Error::EnvDepth {
            value: v.to_string(),
        };
        let config = ReaderConfig {
            queue_depth: v.parse().map_err(|_| bad())?,
            ..config
        };
        config.validate().map_err(|_| bad())?;
        Ok(config)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.queue_depth == 0 || self.queue_depth > QUEUE_DEPTH_MAX {
            return Err(Error::Config(format!(
                "queue depth {} must be in 1..={QUEUE_DEPTH_MAX}",
                self.queue_depth
            )));
        }
        if !(CHUNK_BYTES_MIN..=CHUNK_BYTES_MAX).contains(&self.chunk_bytes)
            || !self.chunk_bytes.is_multiple_of(SLOT_ALIGN_BYTES)
        {
            return Err(Error::Config(format!(
                "chunk size {} must be a multiple of {SLOT_ALIGN_BYTES} in {CHUNK_BYTES_MIN}..={CHUNK_BYTES_MAX}",
                self.chunk_bytes
            )));
        }
        if self.pread_threads == 0 || self.pread_threads > PREAD_THREADS_MAX {
            return Err(Error::Config(format!(
                "pread threads {} must be in 1..={PREAD_THREADS_MAX}",
                self.pread_threads
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_parse() {
        assert_eq!(ReaderChoice::parse_env(None).ok(), Some(ReaderChoice::Auto));
        assert_eq!(
            ReaderChoice::parse_env(Some("pread")).ok(),
            Some(ReaderChoice::Pread)
        );
        assert_eq!(
            ReaderChoice::parse_env(Some("uring")).ok(),
            Some(ReaderChoice::Uring)
        );
        assert!(matches!(
            ReaderChoice::parse_env(Some("mmap")),
            Err(Error::EnvChoice { .. })
        ));
    }

    #[test]
    fn depth_values_parse() {
        let default = ReaderConfig::default();
        for unset in [None, Some(""), Some("  ")] {
            assert_eq!(ReaderConfig::with_depth_setting(unset).ok(), Some(default));
        }
        let deep = ReaderConfig::with_depth_setting(Some(" 64 ")).expect("64 is a depth");
        assert_eq!(deep.queue_depth, 64);
        assert_eq!(
            ReaderConfig {
                queue_depth: default.queue_depth,
                ..deep
            },
            default
        );
        let max = QUEUE_DEPTH_MAX.to_string();
        assert!(ReaderConfig::with_depth_setting(Some(max.as_str())).is_ok());
        let over = (QUEUE_DEPTH_MAX + 1).to_string();
        for bad in ["0", "-4", "deep", "3.5", over.as_str()] {
            let e = ReaderConfig::with_depth_setting(Some(bad)).expect_err(bad);
            assert!(matches!(e, Error::EnvDepth { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(IO_DEPTH_ENV), "{e}");
        }
    }

    #[test]
    fn config_limits_are_checked() {
        let ok = ReaderConfig::default();
        ok.validate().expect("default is valid");
        assert!(ReaderConfig {
            queue_depth: 0,
            ..ok
        }
        .validate()
        .is_err());
        assert!(ReaderConfig {
            chunk_bytes: 5000,
            ..ok
        }
        .validate()
        .is_err());
        assert!(ReaderConfig {
            chunk_bytes: CHUNK_BYTES_MAX * 2,
            ..ok
        }
        .validate()
        .is_err());
        assert!(ReaderConfig {
            pread_threads: 0,
            ..ok
        }
        .validate()
        .is_err());
    }
}
