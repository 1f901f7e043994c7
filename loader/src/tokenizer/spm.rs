//! SentencePiece-style BPE over a scored vocabulary (`tokenizer.ggml.model = llama`).
//!
//! The algorithm llama.cpp uses for SPM vocabularies: spaces become `▁`, the text starts as one
//! symbol per character, and the adjacent pair whose concatenation is a token with the highest
//! score is merged first (ties: leftmost). A final symbol that is not a token is written as its
//! `<0xNN>` byte tokens. Merges are never derived from scores up front, so there is no
//! quadratic set-up.
//!
//! The merges run on the text as it is, spaces included: a token's text with `▁` read as a
//! space is its piece (what decoding writes), so the token index keys on the pieces the
//! tokenizer keeps anyway instead of a second copy of every text. A text holding a real
//! space can never match (the escaped text has none) and is not indexed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::error::TokenizerError;
use super::token_index::TokenIndex;
use super::vocab::{parse_byte_token, Pieces};

/// The SPM space marker, U+2581.
pub(crate) const SPACE_MARK: char = '▁';

/// A scored vocabulary and its byte tokens.
#[derive(Clone, Debug)]
pub(crate) struct SpmModel {
    index: TokenIndex,
    scores: Vec<f32>,
    byte_ids: [Option<u32>; 256],
    unk: Option<u32>,
}

/// A symbol: a byte range of the text, linked to its neighbours.
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
    /// Builds the model from token texts, their `pieces` and scores (same length; later
    /// duplicates win).
    pub(crate) fn new(
        tokens: &[String],
        pieces: &Pieces,
        scores: Vec<f32>,
        unk: Option<u32>,
    ) -> SpmModel {
        let mut byte_ids = [None; 256];
        for (i, t) in tokens.iter().enumerate() {
            if let Some(b) = parse_byte_token(t) {
                byte_ids[b as usize] = Some(i as u32);
            }
        }
        let index = TokenIndex::build(pieces, |i| lookup_key(&tokens[i]));
        SpmModel {
            index,
            scores,
            byte_ids,
            unk,
        }
    }

    /// The id of a token text (`None` for a text holding a real space, which never matches).
    pub(crate) fn token_id(&self, text: &str, pieces: &Pieces) -> Option<u32> {
        self.index.get(&lookup_key(text)?, pieces)
    }

    /// Bytes the token index holds.
    pub(crate) fn table_bytes(&self) -> usize {
        self.index.bytes() + self.scores.len() * std::mem::size_of::<f32>()
    }

    /// Tokenizes one text fragment, with a leading space when `prefix_space` is set.
    pub(crate) fn encode(
        &self,
        text: &str,
        prefix_space: bool,
        pieces: &Pieces,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let mut spaced = String::with_capacity(text.len() + 1);
        if prefix_space {
            spaced.push(' ');
        }
        spaced.push_str(text);
        let mut symbols: Vec<Symbol> = Vec::with_capacity(spaced.len());
        for (start, c) in spaced.char_indices() {
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
        self.merge(&spaced, pieces, &mut symbols);
        let mut cur = if symbols.is_empty() { None } else { Some(0) };
        while let Some(i) = cur {
            let s = symbols[i];
            self.emit(&spaced[s.start..s.start + s.len], pieces, out)?;
            cur = s.next;
        }
        Ok(())
    }

    /// Applies merges, best-scored first, until no adjacent pair forms a token.
    fn merge(&self, text: &str, pieces: &Pieces, symbols: &mut [Symbol]) {
        let mut queue = BinaryHeap::with_capacity(symbols.len());
        for i in 1..symbols.len() {
            self.push_bigram(text, pieces, symbols, Some(i - 1), Some(i), &mut queue);
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
            self.push_bigram(text, pieces, symbols, l.prev, Some(b.left), &mut queue);
            self.push_bigram(text, pieces, symbols, Some(b.left), r.next, &mut queue);
        }
    }

    fn push_bigram(
        &self,
        text: &str,
        pieces: &Pieces,
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
        let Some(id) = self
            .index
            .get(&text.as_bytes()[l.start..l.start + len], pieces)
        else {
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

    /// Emits a final symbol: its token, or else one byte token per byte of its escaped text
    /// (a space is `▁`'s three bytes, as in llama.cpp), then `<unk>`.
    fn emit(&self, piece: &str, pieces: &Pieces, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        if let Some(id) = self.index.get(piece.as_bytes(), pieces) {
            out.push(id);
            return Ok(());
        }
        let mut buf = [0u8; 4];
        for c in piece.chars() {
            let c = if c == ' ' { SPACE_MARK } else { c };
            for &byte in c.encode_utf8(&mut buf).as_bytes() {
                let id = self.byte_ids[byte as usize]
                    .or(self.unk)
                    .ok_or(TokenizerError::NoByteToken { byte })?;
                out.push(id);
            }
        }
        Ok(())
    }
}

/// The key a token text is indexed and looked up under: its piece (`▁` read as a space), or
/// none for a text that holds a real space.
fn lookup_key(text: &str) -> Option<Vec<u8>> {
    if text.contains(' ') {
        return None;
    }
    Some(text.replace(SPACE_MARK, " ").into_bytes())
}
