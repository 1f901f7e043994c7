//! Token ids by key, for the tokenizers' lookups (text → id) without a second copy of the
//! vocabulary: an open-addressed table of ids, each key compared against the token's piece in
//! [`Pieces`] (its decoded bytes, kept for decoding anyway). The few tokens whose key is not
//! their piece keep their key aside.

use super::vocab::Pieces;

/// Marks an empty slot.
pub(crate) const NO_TOKEN: u32 = u32::MAX;
/// Tables are kept at most this full (numerator / 4), so probes stay short.
const LOAD_QUARTERS_MAX: usize = 3;

/// A 64-bit hash of a byte string (multiply-xorshift over 8-byte words).
fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K);
        h ^= h >> 29;
    }
    h
}

/// Slots for `n` entries at most `LOAD_QUARTERS_MAX / 4` full: a power of two.
pub(crate) fn slots_for(n: usize) -> usize {
    (n * 4 / LOAD_QUARTERS_MAX + 1).next_power_of_two()
}

/// Token ids keyed by bytes; most keys are the tokens' pieces, so they are stored once.
#[derive(Clone, Debug)]
pub(crate) struct TokenIndex {
    /// Open addressing, linear probing; `NO_TOKEN` is empty.
    slots: Vec<u32>,
    /// Tokens whose key differs from their piece, sorted by id: `(id, start, end)` in `odd_bytes`.
    odd: Vec<(u32, u32, u32)>,
    odd_bytes: Vec<u8>,
}

impl TokenIndex {
    /// Indexes token i under `key_of(i)` for each of `pieces`' tokens (`None` or empty: not
    /// indexed); a repeated key maps to its last id, as a map's insert would. Ids must fit
    /// below `NO_TOKEN` (the GGUF builder refuses larger vocabularies).
    pub(crate) fn build(pieces: &Pieces, key_of: impl Fn(usize) -> Option<Vec<u8>>) -> TokenIndex {
        let n = pieces.len();
        assert!(n < NO_TOKEN as usize, "{n} tokens fit a u32 id");
        let mut index = TokenIndex {
            slots: vec![NO_TOKEN; slots_for(n)],
            odd: Vec::new(),
            odd_bytes: Vec::new(),
        };
        for i in 0..n {
            let id = i as u32;
            let Some(key) = key_of(i).filter(|k| !k.is_empty()) else {
                continue;
            };
            if pieces.get(id) != Some(key.as_slice()) {
                let start = index.odd_bytes.len() as u32;
                index.odd_bytes.extend_from_slice(&key);
                index.odd.push((id, start, index.odd_bytes.len() as u32));
            }
            index.insert(id, pieces);
        }
        index
    }

    /// The key of an indexed token.
    pub(crate) fn key<'a>(&'a self, id: u32, pieces: &'a Pieces) -> &'a [u8] {
        match self.odd.binary_search_by_key(&id, |&(i, _, _)| i) {
            Ok(k) => {
                let (_, start, end) = self.odd[k];
                &self.odd_bytes[start as usize..end as usize]
            }
            Err(_) => pieces.get(id).unwrap_or_default(),
        }
    }

    /// The slot holding `key`, or the empty slot where it would go.
    fn find(&self, key: &[u8], pieces: &Pieces) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = hash_bytes(key) as usize & mask;
        loop {
            let id = self.slots[at];
            if id == NO_TOKEN || self.key(id, pieces) == key {
                return at;
            }
            at = (at + 1) & mask;
        }
    }

    fn insert(&mut self, id: u32, pieces: &Pieces) {
        let at = self.find(self.key(id, pieces), pieces);
        self.slots[at] = id;
    }

    /// The id indexed under `key`.
    pub(crate) fn get(&self, key: &[u8], pieces: &Pieces) -> Option<u32> {
        let id = self.slots[self.find(key, pieces)];
        (id != NO_TOKEN).then_some(id)
    }

    /// Bytes the index holds.
    pub(crate) fn bytes(&self) -> usize {
        self.slots.len() * 4 + self.odd.len() * 12 + self.odd_bytes.len()
    }
}
