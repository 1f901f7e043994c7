//! Per-token facts shared by every tokenizer source: kind and raw bytes.

/// What a token is, as `tokenizer.ggml.token_type` records it (gguf-facts.md §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// An ordinary piece produced by the model's merges.
    Normal,
    /// The unknown token.
    Unknown,
    /// A control token (BOS, EOS, `<|im_start|>`): matched in text only when parsing specials.
    Control,
    /// A user-defined token: always matched in text.
    UserDefined,
    /// A placeholder id (`[PAD151665]`).
    Unused,
    /// An SPM byte-fallback token `<0xNN>`.
    Byte,
}

impl TokenKind {
    /// Maps a GGUF token-type code; codes outside 1..=6 (0 is "undefined") read as Normal.
    pub fn from_gguf(code: i64) -> TokenKind {
        match code {
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            _ => TokenKind::Normal,
        }
    }

    /// Whether text containing this token's string is split around it before tokenizing
    /// (UNKNOWN and CONTROL only with `parse_special`).
    pub fn is_special(self) -> bool {
        matches!(
            self,
            TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
        )
    }
}

/// The raw bytes of every token, in one buffer (151k small allocations avoided).
#[derive(Clone, Debug, Default)]
pub(crate) struct Pieces {
    bytes: Vec<u8>,
    /// `ends[i]` is where token i's bytes end; token i starts where token i-1 ends.
    ends: Vec<usize>,
}

impl Pieces {
    /// An empty table with room for `n` tokens of about `avg_len` bytes.
    pub(crate) fn with_capacity(n: usize, avg_len: usize) -> Pieces {
        Pieces {
            bytes: Vec::with_capacity(n * avg_len),
            ends: Vec::with_capacity(n),
        }
    }

    /// Appends the next token's bytes through a writer closure.
    pub(crate) fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.bytes);
        self.ends.push(self.bytes.len());
    }

    /// Number of tokens.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Bytes the table holds.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.len() + self.ends.len() * std::mem::size_of::<usize>()
    }

    /// Token `id`'s bytes.
    pub(crate) fn get(&self, id: u32) -> Option<&[u8]> {
        let i = usize::try_from(id).ok()?;
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.bytes.get(start..end)
    }
}

/// Parses an SPM byte token's text, `<0xNN>` (two hex digits, either case).
pub(crate) fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_index_by_id() {
        let mut p = Pieces::with_capacity(3, 2);
        p.push_with(|b| b.extend_from_slice(b"ab"));
        p.push_with(|_| {});
        p.push_with(|b| b.push(b'c'));
        assert_eq!(p.len(), 3);
        assert_eq!(p.get(0), Some(&b"ab"[..]));
        assert_eq!(p.get(1), Some(&b""[..]));
        assert_eq!(p.get(2), Some(&b"c"[..]));
        assert_eq!(p.get(3), None);
    }

    #[test]
    fn byte_tokens() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(10));
        assert_eq!(parse_byte_token("<0xff>"), Some(255));
        assert_eq!(parse_byte_token("<0x100>"), None);
        assert_eq!(parse_byte_token("0x0A"), None);
    }
}
