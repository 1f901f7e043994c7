//! GPT-2's byte-level alphabet: every byte is written as one printable character.
//!
//! Printable Latin-1 bytes (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves; the other 68
//! bytes (controls, space, DEL, NBSP, soft hyphen) are shifted, in byte order, to U+0100..U+0143.
//! So a space is `Ġ` (U+0120) and a newline is `Ċ` (U+010A).

/// Number of code points the alphabet spans (U+0000..U+0143).
const ALPHABET_SPAN: usize = 0x144;

/// Whether `b` is one of the bytes that stand for themselves.
const fn is_self_mapped(b: u8) -> bool {
    matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// Both directions of the mapping, built once.
struct Tables {
    byte_to_char: [char; 256],
    /// Indexed by code point; `u16::MAX` where the code point is not in the alphabet.
    char_to_byte: [u16; ALPHABET_SPAN],
}

const fn build_tables() -> Tables {
    let mut byte_to_char = ['\0'; 256];
    let mut char_to_byte = [u16::MAX; ALPHABET_SPAN];
    let mut shifted = 0u32;
    let mut b = 0usize;
    while b < 256 {
        let cp = if is_self_mapped(b as u8) {
            b as u32
        } else {
            shifted += 1;
            0x100 + shifted - 1
        };
        // The code points are below U+0144, so they are valid chars.
        byte_to_char[b] = match char::from_u32(cp) {
            Some(c) => c,
            None => '\0',
        };
        char_to_byte[cp as usize] = b as u16;
        b += 1;
    }
    Tables {
        byte_to_char,
        char_to_byte,
    }
}

static TABLES: Tables = build_tables();

/// The character that stands for byte `b`.
pub(crate) fn byte_char(b: u8) -> char {
    TABLES.byte_to_char[b as usize]
}

/// The byte a character stands for, if it is in the alphabet.
pub(crate) fn char_byte(c: char) -> Option<u8> {
    let b = *TABLES.char_to_byte.get(c as usize)?;
    u8::try_from(b).ok()
}

/// Appends the raw bytes a byte-level piece stands for. Characters outside the alphabet
/// (a malformed vocabulary) are kept as their own UTF-8 rather than dropped.
pub(crate) fn decode_piece_into(piece: &str, out: &mut Vec<u8>) {
    for c in piece.chars() {
        match char_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Writes raw bytes in the byte-level alphabet (the form GGUF stores gpt2 tokens in).
pub fn encode_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_char(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_characters() {
        assert_eq!(byte_char(b' '), 'Ġ');
        assert_eq!(byte_char(b'\n'), 'Ċ');
        assert_eq!(byte_char(b'\t'), 'ĉ');
        assert_eq!(byte_char(b'a'), 'a');
        assert_eq!(byte_char(0xAD), 'Ń');
        assert_eq!(byte_char(0x00), 'Ā');
    }

    #[test]
    fn round_trips_every_byte() {
        for b in 0..=255u8 {
            assert_eq!(char_byte(byte_char(b)), Some(b));
        }
        let all: Vec<u8> = (0..=255).collect();
        let mut back = Vec::new();
        decode_piece_into(&encode_bytes(&all), &mut back);
        assert_eq!(back, all);
    }

    #[test]
    fn outside_alphabet_is_kept() {
        let mut out = Vec::new();
        decode_piece_into("a€", &mut out);
        assert_eq!(out, "a€".as_bytes());
        assert_eq!(char_byte('\u{144}'), None);
    }
}
