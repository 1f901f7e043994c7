//! Splitting text around special tokens, and the special ids (BOS, EOS, EOT, end of generation).
//!
//! As llama.cpp does (gguf-facts.md §5.1): the text is partitioned on CONTROL, USER_DEFINED and
//! UNKNOWN tokens, longest token first, every occurrence of one token before the next token is
//! tried. CONTROL and UNKNOWN tokens are matched only when parsing specials; USER_DEFINED always.

use super::vocab::TokenKind;

/// Texts that mark the end-of-turn token when `tokenizer.ggml.eot_token_id` is absent, in the
/// order they are preferred.
pub(crate) const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// Text of the end-of-message token when `tokenizer.ggml.eom_token_id` is absent.
pub(crate) const EOM_TEXT: &str = "<|eom_id|>";

/// Texts of tokens that end generation in addition to EOS, EOT and EOM.
pub(crate) const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

/// A piece of partitioned input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment<'a> {
    /// Text for the model.
    Text(&'a str),
    /// A special token found in the text.
    Token(u32),
}

/// One token the partition looks for.
#[derive(Clone, Debug)]
struct Entry {
    text: String,
    id: u32,
    /// Matched even without `parse_special` (USER_DEFINED).
    always: bool,
}

/// The special tokens, longest text first (ties by id).
#[derive(Clone, Debug, Default)]
pub(crate) struct SpecialTokens {
    entries: Vec<Entry>,
}

impl SpecialTokens {
    /// Collects the tokens whose kind is special; empty texts are skipped (they match nowhere).
    pub(crate) fn new<'a>(tokens: impl Iterator<Item = (u32, &'a str, TokenKind)>) -> Self {
        let mut entries: Vec<Entry> = tokens
            .filter(|(_, text, kind)| kind.is_special() && !text.is_empty())
            .map(|(id, text, kind)| Entry {
                text: text.to_string(),
                id,
                always: kind == TokenKind::UserDefined,
            })
            .collect();
        entries.sort_by(|a, b| b.text.len().cmp(&a.text.len()).then(a.id.cmp(&b.id)));
        SpecialTokens { entries }
    }

    /// Number of special tokens.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Splits `text` into model text and special tokens.
    pub(crate) fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut frags = Vec::with_capacity(4);
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text(text));
        let mut present = [false; 256];
        for &b in text.as_bytes() {
            present[b as usize] = true;
        }
        let mut next: Vec<Fragment<'a>> = Vec::new();
        for e in &self.entries {
            if !(e.always || parse_special) || !present[e.text.as_bytes()[0] as usize] {
                continue;
            }
            let found = frags
                .iter()
                .any(|f| matches!(f, Fragment::Text(t) if t.contains(&e.text)));
            if !found {
                continue;
            }
            next.clear();
            for f in &frags {
                match *f {
                    Fragment::Text(t) => split_on(t, &e.text, e.id, &mut next),
                    tok => next.push(tok),
                }
            }
            std::mem::swap(&mut frags, &mut next);
        }
        frags
    }
}

/// Pushes `text` split around every occurrence of `needle`, dropping empty text pieces.
fn split_on<'a>(text: &'a str, needle: &str, id: u32, out: &mut Vec<Fragment<'a>>) {
    let mut rest_start = 0;
    for (at, _) in text.match_indices(needle) {
        if at > rest_start {
            out.push(Fragment::Text(&text[rest_start..at]));
        }
        out.push(Fragment::Token(id));
        rest_start = at + needle.len();
    }
    if rest_start < text.len() {
        out.push(Fragment::Text(&text[rest_start..]));
    }
}

/// The ids with a special role. Absent ids are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    /// Every id that ends generation, sorted.
    pub eog: Vec<u32>,
}

impl SpecialIds {
    /// Fills in EOT and EOM from token texts when not given, forcing their kind to CONTROL,
    /// and collects the end-of-generation set. `texts(i)` is token i's text.
    pub(crate) fn detect<'a>(
        &mut self,
        n_vocab: usize,
        texts: impl Fn(usize) -> &'a str,
        kinds: &mut [TokenKind],
    ) {
        let mut eot_rank: Option<(usize, u32)> = None;
        let mut eom_found = None;
        let mut eog = Vec::new();
        for i in 0..n_vocab {
            let t = texts(i);
            if !(t.starts_with('<') || t.starts_with('_')) {
                continue;
            }
            let id = i as u32;
            if let Some(rank) = EOT_TEXTS.iter().position(|e| *e == t) {
                if eot_rank.is_none_or(|(r, _)| rank < r) {
                    eot_rank = Some((rank, id));
                }
            }
            if t == EOM_TEXT && eom_found.is_none() {
                eom_found = Some(id);
            }
            if EOG_TEXTS.contains(&t) {
                eog.push(id);
            }
        }
        if self.eot.is_none() {
            self.eot = eot_rank.map(|(_, id)| id);
            force_control(self.eot, kinds);
        }
        if self.eom.is_none() {
            self.eom = eom_found;
            force_control(self.eom, kinds);
        }
        eog.extend([self.eos, self.eot, self.eom].into_iter().flatten());
        eog.sort_unstable();
        eog.dedup();
        self.eog = eog;
    }
}

fn force_control(id: Option<u32>, kinds: &mut [TokenKind]) {
    if let Some(k) = id.and_then(|id| kinds.get_mut(id as usize)) {
        if *k != TokenKind::Control {
            log::warn!(
                "end-of-turn token {} was not CONTROL; treating it as CONTROL",
                id.unwrap_or(0)
            );
            *k = TokenKind::Control;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Fragment::{Text, Token};

    fn specials() -> SpecialTokens {
        let toks = [
            (10, "<|im_start|>", TokenKind::Control),
            (11, "<|im_end|>", TokenKind::Control),
            (12, "<tool>", TokenKind::UserDefined),
            (13, "<|im", TokenKind::UserDefined),
            (14, "", TokenKind::Control),
            (15, "plain", TokenKind::Normal),
        ];
        SpecialTokens::new(toks.into_iter())
    }

    #[test]
    fn control_needs_parse_special() {
        let s = specials();
        assert_eq!(s.len(), 4);
        let t = "a<|im_start|>b<tool>c";
        assert_eq!(
            s.partition(t, true),
            [Text("a"), Token(10), Text("b"), Token(12), Text("c")]
        );
        assert_eq!(
            s.partition(t, false),
            [
                Text("a"),
                Token(13),
                Text("_start|>b"),
                Token(12),
                Text("c")
            ]
        );
    }

    #[test]
    fn adjacent_and_edge_tokens() {
        let s = specials();
        assert_eq!(
            s.partition("<|im_end|><|im_end|>", true),
            [Token(11), Token(11)]
        );
        assert_eq!(s.partition("", true), []);
        assert_eq!(s.partition("plain text", true), [Text("plain text")]);
    }

    #[test]
    fn eot_detection_prefers_list_order() {
        let texts = ["<|endoftext|>", "<|im_end|>", "a", "<|eom_id|>"];
        let mut kinds = vec![
            TokenKind::Control,
            TokenKind::UserDefined,
            TokenKind::Normal,
            TokenKind::Normal,
        ];
        let mut ids = SpecialIds {
            eos: Some(0),
            ..Default::default()
        };
        ids.detect(texts.len(), |i| texts[i], &mut kinds);
        assert_eq!(ids.eot, Some(1));
        assert_eq!(ids.eom, Some(3));
        assert_eq!(kinds[1], TokenKind::Control);
        assert_eq!(ids.eog, [0, 1, 3]);
    }
}
