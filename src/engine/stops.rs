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

    /// Pieces through a `StopText` as a sequence feeds them, then the decoder's `tail` at the
    /// end; returns the final text, whether a stop string ended it, and the pieces taken.
    fn answer(stops: &[&str], pieces: &[&str], tail: &str) -> (String, bool, usize) {
        let mut s = StopText::new(stops.iter().map(|s| s.to_string()).collect());
        let mut taken = pieces.len();
        let mut hit = false;
        for (i, p) in pieces.iter().enumerate() {
            if s.push(p).1 {
                (hit, taken) = (true, i + 1);
                break;
            }
        }
        s.push(tail);
        s.finish();
        (s.released().to_string(), hit, taken)
    }

    #[test]
    fn the_final_text_ends_before_a_stop_or_keeps_a_partial_one() {
        let (text, hit, taken) = answer(&["\n\n"], &["Paris", ".\n", "\nThe", " end"], "x");
        assert_eq!((text.as_str(), hit, taken), ("Paris.", true, 3));
        let (text, hit, _) = answer(&["END", "###"], &["a", "#", "#", "# b"], "");
        assert_eq!((text.as_str(), hit), ("a", true));
        let (text, hit, taken) = answer(&["Q:"], &["Q: next"], "");
        assert_eq!((text.as_str(), hit, taken), ("", true, 1));
        let (text, hit, _) = answer(&["</s>"], &["a <", "/"], "x");
        assert_eq!((text.as_str(), hit), ("a </x", false));
        let (text, hit, _) = answer(&[""], &["a", "b"], "");
        assert_eq!(
            (text.as_str(), hit),
            ("ab", false),
            "an empty stop never matches"
        );
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
