//! Pre-tokenizers for byte-level BPE, chosen by `tokenizer.ggml.pre` (gguf-facts.md §5.2).
//!
//! Each family is a list of regexes applied in sequence: every regex re-splits the pieces the
//! previous ones made, keeping matched and unmatched spans alike. Built with the `tokenizers`
//! crate's `Split` pre-tokenizer (Oniguruma).

use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

use super::error::TokenizerError;

/// GPT-2's pattern, with HF's trailing `\s+` (llama.cpp's hand-written matcher behaves the same).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama-3's pattern with the case-insensitive contractions spelled out, as llama.cpp does
/// (Oniguruma's `(?i:'s)` would also match the long s, `'ſ`).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's pattern: Llama-3's with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// One pre-tokenizer family: the names that select it and what it does.
#[derive(Debug)]
pub(crate) struct PreFamily {
    /// Every `tokenizer.ggml.pre` value that selects this family; the first is canonical.
    pub names: &'static [&'static str],
    /// The regexes, applied in sequence.
    pub regexes: &'static [&'static str],
    /// Emit a whole pre-token directly when it is in the vocabulary, skipping merges.
    pub ignore_merges: bool,
    /// Default for adding BOS when `tokenizer.ggml.add_bos_token` is absent.
    pub add_bos: bool,
}

/// Every supported family. `default` is llama.cpp's degraded fallback.
pub(crate) const FAMILIES: &[PreFamily] = &[
    PreFamily {
        names: &["default"],
        regexes: &[
            r"[\p{P}\$\+<=>\^~\|]+",
            r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
            r"\p{N}+",
            r"[0-9][0-9][0-9]",
        ],
        ignore_merges: false,
        add_bos: false,
    },
    PreFamily {
        names: &[
            "gpt-2",
            "phi-2",
            "roberta-bpe",
            "jina-es",
            "jina-de",
            "jina-v1-en",
            "jina-v2-es",
            "jina-v2-de",
            "jina-v2-code",
            "gigachat",
            "mpt",
            "olmo",
            "jais",
        ],
        regexes: &[GPT2],
        ignore_merges: false,
        add_bos: false,
    },
    PreFamily {
        names: &[
            "smollm",
            "starcoder",
            "refact",
            "command-r",
            "codeshell",
            "exaone",
            "minerva-7b",
        ],
        regexes: &[r"\p{N}", GPT2],
        ignore_merges: false,
        add_bos: false,
    },
    PreFamily {
        names: &["qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"],
        regexes: &[QWEN2],
        ignore_merges: false,
        add_bos: false,
    },
    PreFamily {
        names: &["llama3", "llama-v3", "llama-bpe", "falcon3"],
        regexes: &[LLAMA3],
        ignore_merges: true,
        add_bos: true,
    },
    PreFamily {
        names: &["dbrx", "smaug-bpe"],
        regexes: &[LLAMA3],
        ignore_merges: false,
        add_bos: false,
    },
];

/// The family a `tokenizer.ggml.pre` value selects, or an error listing the supported names.
pub(crate) fn family(pre: &str) -> Result<&'static PreFamily, TokenizerError> {
    FAMILIES
        .iter()
        .find(|f| f.names.contains(&pre))
        .ok_or_else(|| TokenizerError::UnknownPreTokenizer {
            pre: pre.to_string(),
            supported: supported_names(),
        })
}

/// Every supported name, comma-separated.
pub fn supported_names() -> String {
    let names: Vec<&str> = FAMILIES
        .iter()
        .flat_map(|f| f.names.iter().copied())
        .collect();
    names.join(", ")
}

/// The `tokenizers` pre-tokenizer for a family: its regex splits. The words stay raw text
/// (no byte-level mapping): the BPE works on their bytes.
pub(crate) fn build(family: &PreFamily) -> Result<PreTokenizerWrapper, TokenizerError> {
    let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(family.regexes.len());
    for re in family.regexes {
        let split = Split::new(
            SplitPattern::Regex((*re).to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| TokenizerError::Backend(format!("pre-tokenizer regex {re:?}: {e}")))?;
        steps.push(split.into());
    }
    Ok(Sequence::new(steps).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    fn split(pre: &str, text: &str) -> Vec<String> {
        let pt = build(family(pre).unwrap()).unwrap();
        let mut s = PreTokenizedString::from(text);
        pt.pre_tokenize(&mut s).unwrap();
        s.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(_, (a, b), _)| text[a..b].to_string())
            .collect()
    }

    #[test]
    fn every_family_builds() {
        for f in FAMILIES {
            build(f).unwrap();
        }
    }

    #[test]
    fn names_are_unique() {
        let mut all: Vec<&str> = FAMILIES
            .iter()
            .flat_map(|f| f.names.iter().copied())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn unknown_pre_lists_supported() {
        let err = family("no-such-pre").unwrap_err().to_string();
        assert!(
            err.contains("no-such-pre") && err.contains("smollm") && err.contains("qwen2"),
            "{err}"
        );
    }

    #[test]
    fn smollm_isolates_digits() {
        assert_eq!(
            split("smollm", "ab 1234 x"),
            ["ab", " ", "1", "2", "3", "4", " x"]
        );
    }

    #[test]
    fn llama3_groups_three_digits_and_qwen2_one() {
        assert_eq!(split("llama3", "x 12345"), ["x", " ", "123", "45"]);
        assert_eq!(split("qwen2", "x 123"), ["x", " ", "1", "2", "3"]);
    }

    #[test]
    fn contractions_case() {
        assert_eq!(split("gpt-2", "I'VE we've"), ["I", "'", "VE", " we", "'ve"]);
        assert_eq!(split("llama3", "I'VE we've"), ["I", "'VE", " we", "'ve"]);
    }

    #[test]
    fn whitespace_before_word_stays_with_it() {
        assert_eq!(split("gpt-2", "a   b\n"), ["a", "  ", " b", "\n"]);
        assert_eq!(split("qwen2", "a\n\n  b"), ["a", "\n\n", " ", " b"]);
    }
}
