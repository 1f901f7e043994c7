//! The model cache: where `scripts/fetch-models.sh` puts models, and alias lookup.
//!
//! `$SLUICE_HOME/models` (default `~/.cache/sluice/models`). An alias names a model of
//! DESIGN.md's "Models" table; a path names a file or directory directly.

use std::path::{Path, PathBuf};

/// The alias used when no model is named.
pub const DEFAULT_ALIAS: &str = "smollm2-135m";

/// Every alias the fetch script knows, with the file it assembles in the cache.
pub const ALIASES: [(&str, &str); 2] = [
    ("smollm2-135m", "smollm2-135m.gguf"),
    ("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b.gguf"),
];

/// The cache directory for models.
pub fn models_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("SLUICE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home).join("models");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("sluice").join("models")
}

/// The cache file an alias stands for, whether or not it has been fetched.
pub fn alias_path(alias: &str) -> Option<PathBuf> {
    ALIASES
        .iter()
        .find(|(a, _)| *a == alias)
        .map(|(_, file)| models_dir().join(file))
}

/// How a `--model` argument resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// An existing file or directory.
    Path(PathBuf),
    /// A known alias whose file is not in the cache yet.
    MissingAlias { alias: String, path: PathBuf },
    /// Neither an existing path nor a known alias.
    Unknown(String),
}

/// Resolves a `--model` argument: an existing path wins, then an alias.
pub fn resolve(arg: &str) -> ModelRef {
    let p = Path::new(arg);
    if p.exists() {
        return ModelRef::Path(p.to_path_buf());
    }
    match alias_path(arg) {
        Some(path) if path.exists() => ModelRef::Path(path),
        Some(path) => ModelRef::MissingAlias {
            alias: arg.to_string(),
            path,
        },
        None => ModelRef::Unknown(arg.to_string()),
    }
}

impl ModelRef {
    /// The path, or one sentence saying what to do (the CLI prints it and exits 2).
    pub fn into_path(self) -> Result<PathBuf, String> {
        match self {
            ModelRef::Path(p) => Ok(p),
            ModelRef::MissingAlias { alias, path } => Err(format!(
                "model '{alias}' is not in the cache ({}): fetch it with `scripts/fetch-models.sh {alias}`",
                path.display()
            )),
            ModelRef::Unknown(arg) => {
                let known: Vec<&str> = ALIASES.iter().map(|(a, _)| *a).collect();
                Err(format!(
                    "'{arg}' is neither an existing model path nor a known alias ({})",
                    known.join(", ")
                ))
            }
        }
    }
}

/// For tests that need a real model: its path, or a panic that says how to fetch it.
///
/// Model tests never skip silently: CI fetches both models before running the tests.
pub fn require_model(alias: &str) -> PathBuf {
    match resolve(alias).into_path() {
        Ok(p) => p,
        Err(msg) => panic!("this test needs a real model: {msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_alias_lists_known_ones() {
        let err = resolve("no-such-model-xyz").into_path().unwrap_err();
        assert!(err.contains("smollm2-135m"), "{err}");
    }

    #[test]
    fn every_alias_maps_to_a_cache_file() {
        for (alias, file) in ALIASES {
            let p = alias_path(alias).expect("alias");
            assert!(p.ends_with(file));
        }
    }
}
