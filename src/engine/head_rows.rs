//! Embedding rows taken from a streamed, tied LM head as it passes through the ring.
//!
//! When the token embeddings are the LM head (tied) and the head streams, every row of the
//! matrix passes through memory once a token, just before the next token's embedding row is
//! needed. Reading that row again from disk means an on-demand read queued behind the next
//! sweep's layer reads, which the drive serves in order: a stall of a few milliseconds a token.
//!
//! Instead, while each head range is in its slot, [`HeadRows`] keeps the rows of the best
//! [`CANDIDATES`] logits of every logits row seen so far (ties to the lower id, as greedy
//! sampling breaks them). A greedy token is always among them; a sampled one almost always.
//! The next step's embedding lookup ([`WithHeadRows`]) takes a kept row when it has it and
//! reads from disk otherwise (prompt tokens, a sampled token outside the candidates).

use std::cell::Cell;

use sluice_loader::GgmlType;

use crate::model::forward::{EmbeddingRows, ForwardError};

/// Rows kept per logits row: enough for greedy (1) and for the usual `top_k` samplers.
pub const CANDIDATES: usize = 8;

/// One kept candidate: its logit, its token id and where its row is stored.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    logit: f32,
    id: u32,
    /// Index of its row in `HeadRows::rows` (in units of `row_bytes`).
    slot: u16,
    /// Whether the row has been copied (it is, once its range has been offered whole).
    copied: bool,
}

/// The best candidates of up to `logit_rows_max` logits rows and their embedding rows.
pub struct HeadRows {
    row_bytes: usize,
    logit_rows_max: usize,
    /// `[logit row][CANDIDATES]`, best first; `len[i]` of row i are valid.
    cands: Vec<Candidate>,
    len: Vec<usize>,
    /// Row storage, `CANDIDATES` slots per logits row.
    rows: Vec<u8>,
    /// Logits rows tracked in the current head pass (0: the pass tracks nothing).
    active: usize,
    hits: Cell<u64>,
    misses: Cell<u64>,
}

impl HeadRows {
    /// Storage for `logit_rows_max` logits rows of a head with rows of `row_bytes`.
    pub fn new(row_bytes: usize, logit_rows_max: usize) -> HeadRows {
        let slots = CANDIDATES;
        assert!(slots <= usize::from(u16::MAX), "candidate slots fit a u16");
        HeadRows {
            row_bytes,
            logit_rows_max,
            cands: vec![
                Candidate {
                    logit: f32::NEG_INFINITY,
                    id: 0,
                    slot: 0,
                    copied: false,
                };
                logit_rows_max * CANDIDATES
            ],
            len: vec![0; logit_rows_max],
            rows: vec![0; logit_rows_max * slots * row_bytes],
            active: 0,
            hits: Cell::new(0),
            misses: Cell::new(0),
        }
    }

    /// Starts a head pass over `n` logits rows. A pass with more rows than the storage (a
    /// step scoring whole prompts) tracks nothing: its next step embeds prompt tokens.
    pub fn begin(&mut self, n: usize) {
        self.active = if n <= self.logit_rows_max { n } else { 0 };
        self.len[..self.active].fill(0);
    }

    /// Offers a head range: rows `row0..row0 + n_rows` of the matrix (`bytes`, file layout);
    /// `logits(i)` is logits row i of the pass, whole (the range's logits from `row0`).
    pub fn offer<'l>(&mut self, row0: usize, bytes: &[u8], logits: impl Fn(usize) -> &'l [f32]) {
        let n_rows = bytes.len() / self.row_bytes.max(1);
        debug_assert_eq!(bytes.len(), n_rows * self.row_bytes, "whole rows");
        for i in 0..self.active {
            self.scan(i, row0, &logits(i)[row0..row0 + n_rows]);
            self.copy_new_rows(i, row0, bytes);
        }
    }

    /// Keeps the best of `range` (token ids from `row0`) among logits row `i`'s candidates.
    fn scan(&mut self, i: usize, row0: usize, range: &[f32]) {
        let cands = &mut self.cands[i * CANDIDATES..(i + 1) * CANDIDATES];
        let len = &mut self.len[i];
        for (j, &logit) in range.iter().enumerate() {
            // Ids rise through the pass, so an equal logit never displaces a kept one; NaN
            // never compares greater.
            if *len == CANDIDATES && logit <= cands[CANDIDATES - 1].logit || logit.is_nan() {
                continue;
            }
            let at = cands[..*len].partition_point(|c| c.logit >= logit);
            // The slot of the candidate that falls off the end, or an unused one.
            let slot = if *len == CANDIDATES {
                cands[CANDIDATES - 1].slot
            } else {
                unused_slot(&cands[..*len])
            };
            let end = (*len).min(CANDIDATES - 1);
            cands.copy_within(at..end, at + 1);
            cands[at] = Candidate {
                logit,
                id: (row0 + j) as u32,
                slot,
                copied: false,
            };
            *len = (*len + 1).min(CANDIDATES);
        }
    }

    /// Copies the rows of logits row `i`'s candidates that came from this range.
    fn copy_new_rows(&mut self, i: usize, row0: usize, bytes: &[u8]) {
        let rb = self.row_bytes;
        let base = i * CANDIDATES * rb;
        for c in &mut self.cands[i * CANDIDATES..i * CANDIDATES + self.len[i]] {
            if c.copied {
                continue;
            }
            let r = c.id as usize - row0;
            let dst = base + usize::from(c.slot) * rb;
            self.rows[dst..dst + rb].copy_from_slice(&bytes[r * rb..(r + 1) * rb]);
            c.copied = true;
        }
    }

    /// The kept row of token `id`, if any logits row of the last pass kept it.
    pub fn row(&self, id: u32) -> Option<&[u8]> {
        let rb = self.row_bytes;
        (0..self.active).find_map(|i| {
            let cands = &self.cands[i * CANDIDATES..i * CANDIDATES + self.len[i]];
            let c = cands.iter().find(|c| c.id == id && c.copied)?;
            let at = (i * CANDIDATES + usize::from(c.slot)) * rb;
            Some(&self.rows[at..at + rb])
        })
    }

    /// Embedding lookups served from kept rows, and those that went to `rest`, so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits.get(), self.misses.get())
    }

    /// An embedding source that looks here first and in `rest` otherwise.
    pub fn with_fallback<'a>(&'a self, rest: &'a mut dyn EmbeddingRows) -> WithHeadRows<'a> {
        WithHeadRows { kept: self, rest }
    }
}

/// The lowest slot no candidate in `cands` (fewer than `CANDIDATES`) uses.
fn unused_slot(cands: &[Candidate]) -> u16 {
    debug_assert!(cands.len() < CANDIDATES);
    let mut used = [false; CANDIDATES];
    for c in cands {
        used[usize::from(c.slot)] = true;
    }
    used.iter().position(|&u| !u).unwrap_or(0) as u16
}

/// Embedding rows from [`HeadRows`] when kept there, else from another source.
pub struct WithHeadRows<'a> {
    kept: &'a HeadRows,
    rest: &'a mut dyn EmbeddingRows,
}

impl EmbeddingRows for WithHeadRows<'_> {
    fn ty(&self) -> GgmlType {
        self.rest.ty()
    }

    fn n_rows(&self) -> usize {
        self.rest.n_rows()
    }

    fn row(&mut self, id: usize) -> Result<&[u8], ForwardError> {
        let kept: &HeadRows = self.kept;
        if let Some(row) = u32::try_from(id).ok().and_then(|id| kept.row(id)) {
            kept.hits.set(kept.hits.get() + 1);
            return Ok(row);
        }
        kept.misses.set(kept.misses.get() + 1);
        self.rest.row(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A matrix of `n` rows of 4 bytes, row r filled with r's low byte.
    fn matrix(n: usize) -> Vec<u8> {
        (0..n).flat_map(|r| [r as u8; 4]).collect()
    }

    /// A source that must not be asked (every row should be kept).
    struct Disk(Vec<u8>, usize);

    impl EmbeddingRows for Disk {
        fn ty(&self) -> GgmlType {
            GgmlType::Q8_0
        }
        fn n_rows(&self) -> usize {
            self.0.len() / 4
        }
        fn row(&mut self, id: usize) -> Result<&[u8], ForwardError> {
            self.1 += 1;
            Ok(&self.0[id * 4..id * 4 + 4])
        }
    }

    /// Offers `logits` (`rows` logits rows over a vocabulary of `nv`) in ranges of `step`.
    fn pass(h: &mut HeadRows, logits: &[f32], rows: usize, nv: usize, step: usize) {
        let m = matrix(nv);
        h.begin(rows);
        for row0 in (0..nv).step_by(step) {
            let end = (row0 + step).min(nv);
            h.offer(row0, &m[row0 * 4..end * 4], |i| {
                &logits[i * nv..(i + 1) * nv]
            });
        }
    }

    /// The ids of logits row `i`'s `k` best logits, ties to the lower id.
    fn best(logits: &[f32], k: usize) -> Vec<u32> {
        let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
        ids.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        ids.truncate(k);
        ids
    }

    #[test]
    fn keeps_the_best_rows_of_every_logits_row() {
        let nv = 300;
        // Two logits rows of pseudo-random values with repeats (ties).
        let logits: Vec<f32> = (0..2 * nv)
            .map(|i| ((i * 7919 + 13) % 97) as f32 / 7.0)
            .collect();
        for step in [1, 7, 64, 300] {
            let mut h = HeadRows::new(4, 4);
            pass(&mut h, &logits, 2, nv, step);
            for i in 0..2 {
                let want = best(&logits[i * nv..(i + 1) * nv], CANDIDATES);
                let got: Vec<u32> = h.cands[i * CANDIDATES..(i + 1) * CANDIDATES]
                    .iter()
                    .map(|c| c.id)
                    .collect();
                assert_eq!(got, want, "logits row {i}, ranges of {step}");
                for &id in &want {
                    assert_eq!(h.row(id), Some(&[id as u8; 4][..]), "row {id}");
                }
            }
        }
    }

    #[test]
    fn lookups_fall_back_and_count() {
        let nv = 50;
        let logits: Vec<f32> = (0..nv).map(|i| -((i as f32) - 20.0).abs()).collect();
        let mut h = HeadRows::new(4, 1);
        pass(&mut h, &logits, 1, nv, 16);
        let mut disk = Disk(matrix(nv), 0);
        {
            let mut src = h.with_fallback(&mut disk);
            assert_eq!(src.row(20).unwrap(), [20u8; 4]);
            assert_eq!(src.row(19).unwrap(), [19u8; 4]);
            assert_eq!(src.row(45).unwrap(), [45u8; 4]);
        }
        assert_eq!(disk.1, 1, "only the row outside the candidates is read");
        assert_eq!(h.counts(), (2, 1));
    }

    #[test]
    fn a_pass_with_too_many_rows_keeps_nothing() {
        let nv = 20;
        let logits = vec![1.0f32; 3 * nv];
        let mut h = HeadRows::new(4, 2);
        pass(&mut h, &logits, 3, nv, 8);
        assert_eq!(h.row(0), None);
        // A later pass within bounds keeps rows again.
        pass(&mut h, &logits, 1, nv, 8);
        assert_eq!(h.row(0), Some(&[0u8; 4][..]));
    }

    #[test]
    fn nan_logits_are_never_kept() {
        let nv = 16;
        let mut logits = vec![f32::NAN; nv];
        logits[3] = 0.5;
        let mut h = HeadRows::new(4, 1);
        pass(&mut h, &logits, 1, nv, 5);
        assert_eq!(h.len[0], 1);
        assert_eq!(h.row(3), Some(&[3u8; 4][..]));
    }
}
