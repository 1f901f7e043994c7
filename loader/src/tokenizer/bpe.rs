//! Byte-level BPE (`tokenizer.ggml.model = gpt2`) over raw bytes, with tables that keep no
//! token text twice.
//!
//! The algorithm is llama.cpp's and the HF `tokenizers` crate's (gguf-facts.md §5.2): the
//! pre-tokenizer's regexes cut the text into words; each word starts as one symbol per byte
//! and the adjacent pair with the lowest merge rank is merged first (ties: leftmost), until no
//! pair has a merge. A byte with no token is dropped, as both do. With `ignore_merges` a word
//! that is itself a token is emitted whole.
//!
//! GGUF stores byte-level vocabularies in GPT-2's alphabet (one character per byte). Every
//! string BPE can produce is written in that alphabet, so the tables key tokens by the raw
//! bytes their text stands for, which are the bytes `Pieces` already holds for decoding:
//! - [`TokenIndex`]: an open-addressed table of ids; a key is compared against the token's
//!   piece, so the text is stored once, in `Pieces`. The few tokens whose piece is not their
//!   key (special tokens written with non-ASCII alphabet characters) keep their key aside.
//! - [`MergeTable`]: an open-addressed table of `(left id, right id) → (rank, merged id)`,
//!   16 bytes a merge.
//!
//! For Qwen2.5's 151,665 tokens and 151,387 merges that is 5 MB, where the `tokenizers` BPE
//! model keeps each text twice (id → text and text → id) and the merges as string-keyed maps.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

use super::bytelevel;
use super::error::TokenizerError;
use super::token_index::{slots_for, TokenIndex, NO_TOKEN};
use super::vocab::Pieces;

/// A byte-level BPE vocabulary, its merges and its pre-tokenizer.
#[derive(Clone)]
pub(crate) struct BpeModel {
    index: TokenIndex,
    merges: MergeTable,
    /// The token of each single byte, `NO_TOKEN` where the vocabulary lacks it.
    byte_ids: [u32; 256],
    /// Emit a whole word directly when it is a token (Llama-3).
    ignore_merges: bool,
    /// The regex splits (without a byte-level step: words stay raw bytes).
    pre: PreTokenizerWrapper,
}

impl BpeModel {
    /// Builds the tables from the vocabulary texts (GPT-2 alphabet), their decoded `pieces`
    /// and the merge list (`"left right"`, best first). Merges that are malformed, repeated,
    /// or whose parts or result are not tokens can never apply: they are dropped and counted
    /// in a warning naming `merges_key`.
    pub(crate) fn build(
        texts: &[String],
        pieces: &Pieces,
        merges: &[String],
        merges_key: &str,
        ignore_merges: bool,
        pre: PreTokenizerWrapper,
    ) -> Result<BpeModel, TokenizerError> {
        assert_eq!(texts.len(), pieces.len(), "one piece per token text");
        let n = texts.len();
        // Every string BPE can produce is in the alphabet; other texts are never looked up.
        let index = TokenIndex::build(pieces, |i| alphabet_key(&texts[i]));
        let mut byte_ids = [NO_TOKEN; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            if let Some(id) = index.get(&[b as u8], pieces) {
                *slot = id;
            }
        }
        let missing = byte_ids.iter().filter(|&&id| id == NO_TOKEN).count();
        if missing > 0 {
            log::info!("{n} tokens: {missing} of the 256 byte-level characters are not tokens");
        }
        let (merges, dropped) = MergeTable::build(merges, &index, pieces);
        if dropped > 0 {
            log::warn!(
                "{merges_key}: ignored {dropped} malformed, repeated or out-of-vocabulary merges"
            );
        }
        Ok(BpeModel {
            index,
            merges,
            byte_ids,
            ignore_merges,
            pre,
        })
    }

    /// Appends the ids of `text` (no special tokens in it) to `out`.
    pub(crate) fn encode(
        &self,
        text: &str,
        pieces: &Pieces,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let mut split = PreTokenizedString::from(text);
        self.pre
            .pre_tokenize(&mut split)
            .map_err(|e| TokenizerError::Backend(format!("pre-tokenizing: {e}")))?;
        let mut scratch = Scratch::default();
        for (_, (start, end), _) in split.get_splits(OffsetReferential::Original, OffsetType::Byte)
        {
            let word = text.as_bytes().get(start..end).ok_or_else(|| {
                TokenizerError::Backend(format!("pre-tokenizer split {start}..{end} out of range"))
            })?;
            self.encode_word(word, pieces, &mut scratch, out);
        }
        Ok(())
    }

    /// The id of a token given its vocabulary text (GPT-2 alphabet).
    pub(crate) fn token_id(&self, text: &str, pieces: &Pieces) -> Option<u32> {
        let key = alphabet_key(text)?;
        self.index.get(&key, pieces)
    }

    /// Bytes the tables hold (what a streamed run keeps for them).
    pub(crate) fn table_bytes(&self) -> usize {
        self.index.bytes() + self.merges.bytes()
    }

    fn encode_word(&self, word: &[u8], pieces: &Pieces, s: &mut Scratch, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if self.ignore_merges {
            if let Some(id) = self.index.get(word, pieces) {
                out.push(id);
                return;
            }
        }
        s.symbols.clear();
        s.symbols.extend(
            word.iter()
                .map(|&b| self.byte_ids[b as usize])
                .filter(|&id| id != NO_TOKEN)
                .map(|id| Symbol {
                    id,
                    prev: NO_TOKEN,
                    next: NO_TOKEN,
                    live: true,
                }),
        );
        let n = s.symbols.len();
        for i in 0..n {
            s.symbols[i].prev = if i == 0 { NO_TOKEN } else { (i - 1) as u32 };
            s.symbols[i].next = if i + 1 == n { NO_TOKEN } else { (i + 1) as u32 };
        }
        s.queue.clear();
        for i in 1..n {
            self.push_candidate(s, i - 1, i);
        }
        while let Some(Reverse(c)) = s.queue.pop() {
            self.apply(s, c);
        }
        let mut at = if n == 0 { NO_TOKEN } else { 0 };
        while at != NO_TOKEN {
            let sym = s.symbols[at as usize];
            out.push(sym.id);
            at = sym.next;
        }
    }

    /// Queues the merge of symbol `left` with its neighbour `right`, if there is one.
    fn push_candidate(&self, s: &mut Scratch, left: usize, right: usize) {
        let (l, r) = (s.symbols[left].id, s.symbols[right].id);
        if let Some((rank, id)) = self.merges.get(l, r) {
            s.queue.push(Reverse(Candidate {
                rank,
                left: left as u32,
                id,
            }));
        }
    }

    /// Merges a queued candidate unless other merges have made it stale.
    fn apply(&self, s: &mut Scratch, c: Candidate) {
        let left = c.left as usize;
        let sym = s.symbols[left];
        if !sym.live || sym.next == NO_TOKEN {
            return;
        }
        let right = sym.next as usize;
        // The pair at `left` may have changed since the candidate was queued.
        match self.merges.get(sym.id, s.symbols[right].id) {
            Some((_, id)) if id == c.id => {}
            _ => return,
        }
        let after = s.symbols[right].next;
        s.symbols[right].live = false;
        s.symbols[left].id = c.id;
        s.symbols[left].next = after;
        if after != NO_TOKEN {
            s.symbols[after as usize].prev = c.left;
        }
        if sym.prev != NO_TOKEN {
            self.push_candidate(s, sym.prev as usize, left);
        }
        if after != NO_TOKEN {
            self.push_candidate(s, left, after as usize);
        }
    }
}

/// One symbol of a word being merged: a token, linked to its live neighbours.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    id: u32,
    prev: u32,
    next: u32,
    live: bool,
}

/// A queued merge: the lowest rank first, then the leftmost (field order makes `Ord` so).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    rank: u32,
    left: u32,
    /// The merged token, to recognise a candidate whose pair has since changed.
    id: u32,
}

/// Buffers reused across the words of one text.
#[derive(Default)]
struct Scratch {
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Reverse<Candidate>>,
}

/// The raw bytes a vocabulary text stands for, if every character is in GPT-2's alphabet
/// (no other text can be a BPE result).
fn alphabet_key(text: &str) -> Option<Vec<u8>> {
    text.chars().map(bytelevel::char_byte).collect()
}

/// One merge: the pair it joins, its rank and the token it makes.
#[derive(Clone, Copy, Debug)]
struct Merge {
    left: u32,
    right: u32,
    rank: u32,
    id: u32,
}

const EMPTY_MERGE: Merge = Merge {
    left: NO_TOKEN,
    right: NO_TOKEN,
    rank: 0,
    id: NO_TOKEN,
};

/// `(left, right) → (rank, merged id)`, open addressing with linear probing.
#[derive(Clone, Debug)]
struct MergeTable {
    slots: Vec<Merge>,
}

impl MergeTable {
    /// The table and the number of merges dropped. Each entry is split at its first space
    /// after the first byte; the first occurrence of a pair counts, as in llama.cpp.
    fn build(list: &[String], index: &TokenIndex, pieces: &Pieces) -> (MergeTable, usize) {
        let mut table = MergeTable {
            slots: vec![EMPTY_MERGE; slots_for(list.len())],
        };
        let mut rank = 0u32;
        let mut dropped = 0usize;
        for m in list {
            let parts = m
                .as_bytes()
                .iter()
                .skip(1)
                .position(|&b| b == b' ')
                .map(|p| (&m[..p + 1], &m[p + 2..]));
            let ids = parts.and_then(|(a, b)| {
                let (ka, kb) = (alphabet_key(a)?, alphabet_key(b)?);
                let (left, right) = (index.get(&ka, pieces)?, index.get(&kb, pieces)?);
                let id = index.get(&[ka, kb].concat(), pieces)?;
                Some((left, right, id))
            });
            let Some((left, right, id)) = ids else {
                dropped += 1;
                continue;
            };
            let at = table.find(left, right);
            if table.slots[at].left != NO_TOKEN {
                dropped += 1;
                continue;
            }
            table.slots[at] = Merge {
                left,
                right,
                rank,
                id,
            };
            rank += 1;
        }
        (table, dropped)
    }

    fn find(&self, left: u32, right: u32) -> usize {
        let mask = self.slots.len() - 1;
        let pair = (u64::from(left) << 32) | u64::from(right);
        let mut at = (pair.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask;
        loop {
            let m = self.slots[at];
            if m.left == NO_TOKEN || (m.left == left && m.right == right) {
                return at;
            }
            at = (at + 1) & mask;
        }
    }

    /// The rank and result of merging `left` with `right`, if they merge.
    fn get(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let m = self.slots[self.find(left, right)];
        (m.left != NO_TOKEN).then_some((m.rank, m.id))
    }

    fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Merge>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::pretok;

    /// A model over `texts` (GPT-2 alphabet) and `merges`, with GPT-2's pre-tokenizer.
    fn model(texts: &[&str], merges: &[&str], ignore_merges: bool) -> (BpeModel, Pieces) {
        let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        let mut pieces = Pieces::with_capacity(texts.len(), 4);
        for t in &texts {
            pieces.push_with(|out| bytelevel::decode_piece_into(t, out));
        }
        let merges: Vec<String> = merges.iter().map(|m| m.to_string()).collect();
        let pre = pretok::build(pretok::family("gpt-2").unwrap()).unwrap();
        let m = BpeModel::build(&texts, &pieces, &merges, "merges", ignore_merges, pre).unwrap();
        (m, pieces)
    }

    fn encode(m: &(BpeModel, Pieces), text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        m.0.encode(text, &m.1, &mut out).unwrap();
        out
    }

    #[test]
    fn lowest_rank_first_then_leftmost() {
        // 0:a 1:b 2:c 3:ab 4:bc 5:abc 6:aa
        let m = model(
            &["a", "b", "c", "ab", "bc", "abc", "aa"],
            &["b c", "a b", "a bc", "a a"],
            false,
        );
        // "b c" outranks "a b": a + bc, then a+bc → abc.
        assert_eq!(encode(&m, "abc"), [5]);
        // Equal pairs: the leftmost merges first.
        assert_eq!(encode(&m, "aaa"), [6, 0]);
        assert_eq!(encode(&m, "aaaa"), [6, 6]);
    }

    #[test]
    fn stale_candidates_are_skipped() {
        // 0:a 1:b 2:c 3:ab 4:bc 5:abc. Ranks: "a b" 0, "b c" 1, "ab c" 2.
        let m = model(
            &["a", "b", "c", "ab", "bc", "abc"],
            &["a b", "b c", "ab c"],
            false,
        );
        // "a b" merges first, which makes the queued "b c" stale; then "ab c".
        assert_eq!(encode(&m, "abc"), [5]);
        assert_eq!(encode(&m, "bcab"), [4, 3]);
    }

    #[test]
    fn missing_bytes_are_dropped_and_neighbours_join() {
        // No token for 'x': "axb" is "a" "b", which then merge.
        let m = model(&["a", "b", "ab"], &["a b"], false);
        assert_eq!(encode(&m, "axb"), [2]);
    }

    #[test]
    fn bad_and_repeated_merges_are_dropped() {
        let m = model(
            &["a", "b", "ab", "ba"],
            &["a b", "nospace", "a q", "a b", "b a", "x y"],
            false,
        );
        assert_eq!(encode(&m, "abba"), [2, 3]);
        assert_eq!(m.0.merges.get(0, 1), Some((0, 2)));
        assert_eq!(m.0.merges.get(1, 0), Some((1, 3)));
    }

    #[test]
    fn ignore_merges_takes_whole_tokens() {
        // "abc" is a token but no merge sequence builds it.
        let texts = ["a", "b", "c", "ab", "abc"];
        let merges = ["a b"];
        assert_eq!(encode(&model(&texts, &merges, false), "abc"), [3, 2]);
        assert_eq!(encode(&model(&texts, &merges, true), "abc"), [4]);
    }

    #[test]
    fn words_follow_the_pre_tokenizer() {
        // 0:'Ġ' (space) 1:a 2:'Ġa'
        let m = model(&["Ġ", "a", "Ġa"], &["Ġ a"], false);
        assert_eq!(encode(&m, "a a  a"), [1, 2, 0, 2]);
    }

    #[test]
    fn repeated_texts_map_to_the_last_id_and_odd_keys_are_kept() {
        // "é" in the alphabet is byte 0xE9; a special token written "é" has the UTF-8 piece
        // C3 A9, so its key is kept aside.
        let texts = vec!["a".to_string(), "a".to_string(), "é".to_string()];
        let mut pieces = Pieces::with_capacity(3, 2);
        pieces.push_with(|o| o.push(b'a'));
        pieces.push_with(|o| o.push(b'a'));
        pieces.push_with(|o| o.extend_from_slice("é".as_bytes()));
        let pre = pretok::build(pretok::family("gpt-2").unwrap()).unwrap();
        let m = BpeModel::build(&texts, &pieces, &[], "merges", false, pre).unwrap();
        assert_eq!(m.token_id("a", &pieces), Some(1));
        assert_eq!(m.token_id("é", &pieces), Some(2));
        assert_eq!(m.byte_ids[0xE9], 2);
        assert_eq!(m.token_id("a€", &pieces), None);
        assert_eq!(m.index.key(2, &pieces), [0xE9]);
        assert_eq!(m.index.key(0, &pieces), b"a");
    }

    #[test]
    fn long_words_take_linear_time() {
        // A 200 kB word of one repeated byte: the queue keeps it to O(n log n).
        let m = model(&["a", "aa", "aaaa"], &["a a", "aa aa"], false);
        let ids = encode(&m, &"a".repeat(200_001));
        assert_eq!(ids.len(), 50_001);
        assert!(ids[..50_000].iter().all(|&id| id == 2) && ids[50_000] == 0);
    }
}
