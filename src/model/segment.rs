//! A step's batch is made of segments: runs of consecutive tokens of one sequence each, so that
//! one sweep over the layers advances many sequences, each over its own KV cache.

/// A run of consecutive tokens of one sequence inside a step's batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The batch row of the run's first token.
    pub row0: usize,
    /// Tokens in the run (at least 1).
    pub n: usize,
    /// The position of the run's first token in its sequence.
    pub pos0: usize,
    /// The sequence's KV slot.
    pub slot: usize,
    /// Whether the run's tokens are computed as part of a prompt batch of 2+ tokens, as they
    /// would be if the sequence ran alone (llama.cpp then sums attention products in its GEMM
    /// order); a decode token is never batched, whatever else shares the step.
    pub batched: bool,
}

impl Segment {
    /// The only segment of a batch of `n` tokens of one sequence at `pos0`, in slot 0.
    pub fn alone(pos0: usize, n: usize) -> Segment {
        Segment {
            row0: 0,
            n,
            pos0,
            slot: 0,
            batched: n > 1,
        }
    }

    /// The batch rows of the run.
    pub fn rows(&self) -> std::ops::Range<usize> {
        self.row0..self.row0 + self.n
    }
}

/// The segment holding batch row `row`, in segments sorted by `row0` that tile the batch.
pub fn segment_of(segs: &[Segment], row: usize) -> &Segment {
    let i = segs.partition_point(|s| s.row0 + s.n <= row);
    &segs[i]
}
