//! SentencePiece-style BPE over a scored vocabulary (`tokenizer.ggml.model = llama`).
//!
//! The algorithm llama.cpp uses for SPM vocabularies: spaces become `▁`, the text starts as one
//! symbol per character, and the adjacent pair whose concatenation is a token with the highest
//! score is merged first (ties: leftmost). A final symbol that is not a token is written as its
//! `<0xNN>` byte tokens. Merges are never derived from scores up front, so there is no
//! quadratic set-up.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::error::TokenizerError;
use super::vocab::parse_byte_token;

/// The SPM space marker, U+2581.
pub(crate) const SPACE_MARK: char = '▁';

/// A scored vocabulary and its byte tokens.
#[derive(Clone, Debug)]
pub(crate) struct SpmModel {
    ids: HashMap<String, u32>,
    scores: Vec<f32>,
    byte_ids: [Option<u32>; 256],
    unk: Option<u32>,
}

/// A symbol: a byte range of the escaped text, linked to its neighbours.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge of symbols `left` and `right` (its next), with the merged token's score.
#[derive(Debug)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Byte length of the merged text, to spot candidates made stale by other merges.
    len: usize,
}

impl Ord for Bigram {
    /// Higher score first; among equal scores, the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

impl SpmModel {
    /// Builds the model from token texts and scores (same length; later duplicates win).
    pub(crate) fn new(tokens: &[String], scores: Vec<f32>, unk: Option<u32>) -> SpmModel {
        let mut ids = HashMap::with_capacity(tokens.len());
        let mut byte_ids = [None; 256];
        for (i, t) in tokens.iter().enumerate() {
            let id = i as u32;
            ids.insert(t.clone(), id);
            if let Some(b) = parse_byte_token(t) {
                byte_ids[b as usize] = Some(id);
            }
        }
        SpmModel {
            ids,
            scores,
            byte_ids,
            unk,
        }
    }

    /// The id of a token text.
    pub(crate) fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// Tokenizes one text fragment, with a leading space when `prefix_space` is set.
    pub(crate) fn encode(
        &self,
        text: &str,
        prefix_space: bool,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let mut escaped = String::with_capacity(text.len() + 3 * (1 + text.len() / 4));
        if prefix_space {
            escaped.push(SPACE_MARK);
        }
        for c in text.chars() {
            escaped.push(if c == ' ' { SPACE_MARK } else { c });
        }
        let mut symbols: Vec<Symbol> = Vec::with_capacity(escaped.len());
        for (start, c) in escaped.char_indices() {
            let i = symbols.len();
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
            if i > 0 {
                symbols[i - 1].next = Some(i);
            }
        }
        self.merge(&escaped, &mut symbols);
        let mut cur = if symbols.is_empty() { None } else { Some(0) };
        while let Some(i) = cur {
            let s = symbols[i];
            self.emit(&escaped[s.start..s.start + s.len], out)?;
            cur = s.next;
        }
        Ok(())
    }

    /// Applies merges, best-scored first, until no adjacent pair forms a token.
    fn merge(&self, text: &str, symbols: &mut [Symbol]) {
        let mut queue = BinaryHeap::with_capacity(symbols.len());
        for i in 1..symbols.len() {
            self.push_bigram(text, symbols, Some(i - 1), Some(i), &mut queue);
        }
        while let Some(b) = queue.pop() {
            let (l, r) = (symbols[b.left], symbols[b.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != b.len {
                continue;
            }
            symbols[b.left].len += r.len;
            symbols[b.left].next = r.next;
            symbols[b.right].len = 0;
            if let Some(n) = r.next {
                symbols[n].prev = Some(b.left);
            }
            self.push_bigram(text, symbols, l.prev, Some(b.left), &mut queue);
            self.push_bigram(text, symbols, Some(b.left), r.next, &mut queue);
        }
    }

    fn push_bigram(
        &self,
        text: &str,
        symbols: &[Symbol],
        left: Option<usize>,
        right: Option<usize>,
        queue: &mut BinaryHeap<Bigram>,
    ) {
        let (Some(left), Some(right)) = (left, right) else {
            return;
        };
        let (l, r) = (symbols[left], symbols[right]);
        let len = l.len + r.len;
        let Some(&id) = self.ids.get(&text[l.start..l.start + len]) else {
            return;
        };
        let score = self.scores.get(id as usize).copied().unwrap_or(0.0);
        queue.push(Bigram {
            score,
            left,
            right,
            len,
        });
    }

    /// Emits a final symbol: its token, or else one byte token per byte (then `<unk>`).
    fn emit(&self, piece: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        if let Some(&id) = self.ids.get(piece) {
            out.push(id);
            return Ok(());
        }
        for &byte in piece.as_bytes() {
            let id = self.byte_ids[byte as usize]
                .or(self.unk)
                .ok_or(TokenizerError::NoByteToken { byte })?;
            out.push(id);
        }
        Ok(())
    }
}
