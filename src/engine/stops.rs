//! Stop strings matched in the decoded text across token boundaries: text that could still be
//! the start of a stop string is held back until it cannot, and neither a stop string nor
//! anything after it is ever released. [`StopDecoder`] is what frontends use: a sequence's
//! tokens decoded as they come, through its stop strings.

use sluice_loader::tokenizer::{StreamDecoder, Tokenizer};

/// One sequence's generated text: tokens decoded as they come (a character split over tokens
/// waits for its last byte) and released through its stop strings.
pub struct StopDecoder<'t> {
    decoder: StreamDecoder<'t>,
    text: StopText,
}

impl<'t> StopDecoder<'t> {
    /// Decodes with `tok` and stops at any of `stops`.
    pub fn new(tok: &'t Tokenizer, stops: Vec<String>) -> StopDecoder<'t> {
        StopDecoder {
            decoder: StreamDecoder::new(tok),
            text: StopText::new(stops),
        }
    }

    /// Decodes one token: the text it releases, and whether a stop string was completed.
    pub fn push(&mut self, token: u32) -> (&str, bool) {
        let piece = self.decoder.push(token).unwrap_or("");
        self.text.push(piece)
    }

    /// Generation ended: releases what was held back (a possible stop-string prefix, bytes of
    /// an unfinished character) and returns it; nothing after a completed stop string.
    pub fn finish(&mut self) -> &str {
        let start = self.text.released().len();
        let tail = self.decoder.finish().unwrap_or("");
        self.text.push(tail);
        self.text.finish();
        &self.text.released()[start..]
    }

    /// Everything released so far.
    pub fn released(&self) -> &str {
        self.text.released()
    }
}

/// The decoded text of one sequence and how much of it has been released.
#[derive(Clone, Debug, Default)]
pub struct StopText {
    stops: Vec<String>,
    text: String,
    released: usize,
    stopped: bool,
}

impl StopText {
    /// Watches for any of `stops` (empty strings are ignored).
    pub fn new(stops: Vec<String>) -> StopText {
        StopText {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            ..StopText::default()
        }
    }

    /// Appends the next decoded piece; returns the text that can be released now, and whether
    /// a stop string was completed (then the returned text ends just before it).
    pub fn push(&mut self, piece: &str) -> (&str, bool) {
        if self.stopped {
            return ("", true);
        }
        // A match can start at most (longest stop - 1) bytes before the new piece.
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut from = self.text.len().saturating_sub(longest.saturating_sub(1));
        from = from.max(self.released);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        self.text.push_str(piece);
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.text[from..].find(s.as_str()).map(|i| from + i))
            .min();
        let start = self.released;
        let end = match hit {
            Some(at) => {
                self.stopped = true;
                at
            }
            None => self.text.len() - self.held_back(),
        };
        self.released = end.max(start);
        (&self.text[start..self.released], self.stopped)
    }

    /// The text still held back (a possible stop-string prefix), released when generation
    /// ends without a stop string.
    pub fn finish(&mut self) -> &str {
        let start = self.released;
        if self.stopped {
            return "";
        }
        self.released = self.text.len();
        &self.text[start..]
    }

    /// Everything released so far.
    pub fn released(&self) -> &str {
        &self.text[..self.released]
    }

    /// Bytes at the end of the text that are a proper prefix of some stop string.
    fn held_back(&self) -> usize {
        let tail = &self.text[self.released..];
        self.stops
            .iter()
            .flat_map(|s| {
                (1..s.len().min(tail.len() + 1))
                    .rev()
                    .find(|&k| s.is_char_boundary(k) && tail.ends_with(&s[..k]))
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, bool, String) {
        let mut s = StopText::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        let mut hit = false;
        for p in pieces {
            let (t, h) = s.push(p);
            out.push(t.to_string());
            hit = h;
            if h {
                break;
            }
        }
        let rest = s.finish().to_string();
        (out, hit, rest)
    }

    /// A byte-level tokenizer whose token id is the byte itself (ids 0..=255, no merges).
    fn byte_tokenizer() -> Tokenizer {
        let mut vocab = serde_json::Map::new();
        for b in 0..=255u8 {
            let piece = sluice_loader::tokenizer::byte_level_encode(&[b]);
            vocab.insert(piece, serde_json::json!(b));
        }
        let byte_level = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false,
            "trim_offsets": false, "use_regex": false});
        let tj = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null,
            "decoder": byte_level,
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
                "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": []},
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, tj.to_string()).expect("write tokenizer.json");
        Tokenizer::from_hf_files(&path, None).expect("byte-level tokenizer")
    }

    /// `bytes` through a `StopDecoder`, one token per byte, until a stop string completes;
    /// returns the final text, whether a stop ended it, and the tokens taken.
    fn answer(tok: &Tokenizer, stops: &[&str], bytes: &[u8]) -> (String, bool, usize) {
        let mut d = StopDecoder::new(tok, stops.iter().map(|s| s.to_string()).collect());
        let mut taken = bytes.len();
        let mut hit = false;
        for (i, &b) in bytes.iter().enumerate() {
            if d.push(u32::from(b)).1 {
                (hit, taken) = (true, i + 1);
                break;
            }
        }
        let before = d.released().len();
        let tail = d.finish().to_string();
        assert_eq!(
            d.released()[before..],
            tail,
            "finish returns what it released"
        );
        (d.released().to_string(), hit, taken)
    }

    #[test]
    fn the_decoder_ends_before_a_stop_or_keeps_a_partial_one() {
        let tok = byte_tokenizer();
        let (text, hit, taken) = answer(&tok, &["\n\n"], b"Paris.\n\nThe end");
        assert_eq!((text.as_str(), hit, taken), ("Paris.", true, 8));
        let (text, hit, taken) = answer(&tok, &["END", "###"], b"a### b");
        assert_eq!((text.as_str(), hit, taken), ("a", true, 4));
        let (text, hit, taken) = answer(&tok, &["Q:"], b"Q: next");
        assert_eq!((text.as_str(), hit, taken), ("", true, 2));
        let (text, hit, _) = answer(&tok, &["</s>"], b"a </");
        assert_eq!(
            (text.as_str(), hit),
            ("a </", false),
            "a partial stop is released at the end"
        );
        let (text, hit, _) = answer(&tok, &[""], b"ab");
        assert_eq!(
            (text.as_str(), hit),
            ("ab", false),
            "an empty stop never matches"
        );
        let (text, hit, taken) = answer(&tok, &["é!"], "café!".as_bytes());
        assert_eq!(
            (text.as_str(), hit, taken),
            ("caf", true, 6),
            "a stop across a split character"
        );
    }

    #[test]
    fn a_character_split_over_tokens_waits_for_its_last_byte() {
        let tok = byte_tokenizer();
        let mut d = StopDecoder::new(&tok, vec!["zz".into()]);
        let [b0, b1] = [0xC3u8, 0xA9]; // é
        assert_eq!(d.push(u32::from(b'a')), ("a", false));
        assert_eq!(d.push(u32::from(b0)), ("", false));
        assert_eq!(d.push(u32::from(b1)), ("é", false));
        assert_eq!(
            d.push(u32::from(b'z')),
            ("", false),
            "a possible stop is held back"
        );
        assert_eq!(d.finish(), "z");
        assert_eq!(d.released(), "aéz");
    }

    #[test]
    fn a_stop_split_over_tokens_is_never_released() {
        let (out, hit, rest) = run(&["</end>"], &["Hello", " wor", "ld</", "en", "d> more"]);
        assert!(hit);
        assert_eq!(out.concat(), "Hello world");
        assert_eq!(out[2], "ld", "the possible stop prefix is held back");
        assert_eq!(rest, "");
    }

    #[test]
    fn a_false_prefix_is_released_later_and_at_the_end() {
        let (out, hit, rest) = run(&["STOP"], &["a S", "T", "x", " b ST"]);
        assert!(!hit);
        assert_eq!(out, ["a ", "", "STx", " b "]);
        assert_eq!(rest, "ST");
    }

    #[test]
    fn the_earliest_of_several_stops_wins_and_multibyte_text_is_safe() {
        let (out, hit, _) = run(&["ß!", "xyz", "\n\n"], &["ça ", "va\n", "\nß!"]);
        assert!(hit);
        assert_eq!(out.concat(), "ça va");
        let (out, hit, rest) = run(&[], &["é", "ü"]);
        assert!(!hit);
        assert_eq!(out.concat() + &rest, "éü");
    }
}
