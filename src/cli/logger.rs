//! The binary's logger: library log lines (a reader falling back to pread, a SIMD request the CPU
//! cannot honour) reach stderr as `sluice: warning: …`. Warnings and errors by default;
//! `SLUICE_LOG=info|debug|trace|off` changes the level.

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The environment variable that sets the log level.
pub const LOG_ENV: &str = "SLUICE_LOG";

/// Writes each record as one line on stderr.
struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        eprintln!("sluice: {level}: {}", record.args());
    }

    fn flush(&self) {}
}

/// Parses a `SLUICE_LOG` value; `None` for an unknown one.
pub fn parse_level(value: &str) -> Option<LevelFilter> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "warn" | "warning" => Some(LevelFilter::Warn),
        "off" => Some(LevelFilter::Off),
        "error" => Some(LevelFilter::Error),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}

/// Installs the logger once, at the level `SLUICE_LOG` asks for (warnings by default).
pub fn init() {
    static LOGGER: StderrLogger = StderrLogger;
    let setting = std::env::var(LOG_ENV).unwrap_or_default();
    let level = parse_level(&setting).unwrap_or(LevelFilter::Warn);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
    if parse_level(&setting).is_none() {
        log::warn!(
            "{LOG_ENV}={setting:?} is not off, error, warn, info, debug or trace; using warn"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level(""), Some(LevelFilter::Warn));
        assert_eq!(parse_level("DEBUG"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("off"), Some(LevelFilter::Off));
        assert_eq!(parse_level("loud"), None);
    }
}
