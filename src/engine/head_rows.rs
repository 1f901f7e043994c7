//! The next step's embedding rows, found while a streamed LM head passes through the ring.
//!
//! When the embeddings are not resident, each generated token's row is read on demand after
//! the head has chosen it. By then the prefetcher has queued the next sweep's first layers, and
//! the drive serves reads in order: the row waits behind them, a stall of several milliseconds
//! a token. But the head's logits show, range by range, which tokens can be chosen.
//!
//! [`HeadRows`] keeps, for every logits row of the pass, the [`CANDIDATES`] best logits seen so
//! far (ties to the lower id, as greedy sampling breaks them), and then:
//! - when the head is the embedding matrix (tied), it copies each candidate's row while its
//!   range is in its slot, and the next step's lookup ([`WithHeadRows`]) takes it from there:
//!   no read at all;
//! - when it is not (untied), it lists each new candidate ([`HeadRows::fresh`]) so that the
//!   executor asks the row reader to read that embedding row ahead, while the head still
//!   streams.
//!
//! A greedy token is always a candidate; a sampled one almost always. Other lookups (prompt
//! tokens, a sampled token outside the candidates) read from disk as before.

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
    /// Bytes of a kept row; 0 when rows are not kept, only their ids handed to `fresh`
    /// (an untied head: the embedding rows are another matrix).
    row_bytes: usize,
    /// Ids that became candidates in the last range offered (when rows are not kept).
    fresh: Vec<u32>,
    logit_rows_max: usize,
    /// `[logit row][CANDIDATES]`, best first; `len[i]` of row i are valid.
    cands: Vec<Candidate>,
    len: Vec<usize>,
    /// Row storage, `CANDIDATES` slots per logits row.
    rows: Vec<u8>,
    /// Logits rows tracked in the current head pass (0: the pass tracks nothing).
    active: usize,
    /// Embedding lookups served from kept rows.
    hits: Cell<u64>,
}

impl HeadRows {
    /// Storage for `logit_rows_max` logits rows of a head with rows of `row_bytes`.
    pub fn new(row_bytes: usize, logit_rows_max: usize) -> HeadRows {
        const { assert!(CANDIDATES <= u16::MAX as usize, "candidate slots fit a u16") };
        HeadRows {
            row_bytes,
            fresh: Vec::with_capacity(logit_rows_max * CANDIDATES),
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
            rows: vec![0; logit_rows_max * CANDIDATES * row_bytes],
            active: 0,
            hits: Cell::new(0),
        }
    }

    /// Candidate tracking without rows: each new candidate's id is listed in
    /// [`fresh`](Self::fresh), so that its embedding row can be read ahead.
    pub fn ids_only(logit_rows_max: usize) -> HeadRows {
        Self::new(0, logit_rows_max)
    }

    /// Starts a head pass over `n` logits rows. A pass with more rows than the storage (a
    /// step scoring whole prompts) tracks nothing: its next step embeds prompt tokens.
    pub fn begin(&mut self, n: usize) {
        self.active = if n <= self.logit_rows_max { n } else { 0 };
        self.len[..self.active].fill(0);
    }

    /// Offers a head range: rows `row0..row0 + n_rows` of the matrix (`bytes`, file layout;
    /// unread when rows are not kept), and `logits(i)`, logits row i of the pass, whole. The
    /// ids that became candidates are then in [`fresh`](Self::fresh) when rows are not kept.
    pub fn offer<'l>(
        &mut self,
        row0: usize,
        n_rows: usize,
        bytes: &[u8],
        logits: impl Fn(usize) -> &'l [f32],
    ) {
        debug_assert!(self.row_bytes == 0 || bytes.len() == n_rows * self.row_bytes);
        self.fresh.clear();
        for i in 0..self.active {
            self.scan(i, row0, &logits(i)[row0..row0 + n_rows]);
            self.copy_new_rows(i, row0, bytes);
        }
    }

    /// Ids that became candidates in the last range offered, when rows are not kept.
    pub fn fresh(&self) -> &[u32] {
        &self.fresh
    }

    /// Keeps the best of `range` (token ids from `row0`) among logits row `i`'s candidates.
    fn scan(&mut self, i: usize, row0: usize, range: &[f32]) {
        const K: usize = CANDIDATES;
        let cands = &mut self.cands[i * K..(i + 1) * K];
        let len = &mut self.len[i];
        for (j, &logit) in range.iter().enumerate() {
            // Ids rise through the pass, so an equal logit never displaces a kept one; NaN
            // never compares greater.
            if logit.is_nan() || (*len == K && logit <= cands[K - 1].logit) {
                continue;
            }
            let at = cands[..*len].partition_point(|c| c.logit >= logit);
            // The slot of the candidate that falls off the end; until the list is full (only
            // ever filled since `begin`), slots 0..len are the ones in use.
            let slot = if *len == K {
                cands[K - 1].slot
            } else {
                *len as u16
            };
            let end = (*len).min(K - 1);
            cands.copy_within(at..end, at + 1);
            cands[at] = Candidate {
                logit,
                id: (row0 + j) as u32,
                slot,
                copied: false,
            };
            *len = (*len + 1).min(K);
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
            c.copied = true;
            if rb == 0 {
                self.fresh.push(c.id);
                continue;
            }
            let r = c.id as usize - row0;
            let dst = base + usize::from(c.slot) * rb;
            self.rows[dst..dst + rb].copy_from_slice(&bytes[r * rb..(r + 1) * rb]);
        }
    }

    /// The kept row of token `id`, if any logits row of the last pass kept it.
    pub fn row(&self, id: u32) -> Option<&[u8]> {
        let rb = self.row_bytes;
        if rb == 0 {
            return None;
        }
        (0..self.active).find_map(|i| {
            let cands = &self.cands[i * CANDIDATES..i * CANDIDATES + self.len[i]];
            let c = cands.iter().find(|c| c.id == id && c.copied)?;
            let at = (i * CANDIDATES + usize::from(c.slot)) * rb;
            Some(&self.rows[at..at + rb])
        })
    }

    /// Embedding lookups served from kept rows so far.
    pub fn rows_served(&self) -> u64 {
        self.hits.get()
    }

    /// An embedding source that looks here first and in `rest` otherwise.
    pub fn with_fallback<'a>(&'a self, rest: &'a mut dyn EmbeddingRows) -> WithHeadRows<'a> {
        WithHeadRows { kept: self, rest }
    }
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
            h.offer(row0, end - row0, &m[row0 * 4..end * 4], |i| {
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
        assert_eq!(h.rows_served(), 2);
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
    fn without_rows_each_new_candidate_is_listed_once() {
        let nv = 40;
        // Rising logits: every id beats the ones before it, so each range's ids are all new.
        let logits: Vec<f32> = (0..nv).map(|i| i as f32).collect();
        let mut h = HeadRows::ids_only(1);
        h.begin(1);
        let mut listed = Vec::new();
        for row0 in (0..nv).step_by(10) {
            h.offer(row0, 10, &[], |_| &logits);
            listed.extend_from_slice(h.fresh());
        }
        // Within a range only the 8 best survive to be listed, best first.
        let want: Vec<u32> = (0..4u32)
            .flat_map(|r| (10 * r + 2..10 * r + 10).rev())
            .collect();
        assert_eq!(listed, want);
        assert_eq!(h.row(39), None, "no rows are kept");
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
