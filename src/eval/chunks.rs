//! How llama-perplexity cuts a text: the whole text tokenized once (BOS first when the model
//! asks for it, special-token text kept as text), non-overlapping chunks of n_ctx tokens with
//! the tail dropped, token 0 of every chunk replaced by BOS, and the second half scored.

use sluice_loader::tokenizer::Tokenizer;
use thiserror::Error;

/// Why a text cannot be evaluated as asked.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the text tokenizes to only {have} tokens; a context of {n_ctx} needs at least {need} (two chunks' worth, as llama-perplexity requires)")]
    TooFewTokens {
        have: usize,
        need: usize,
        n_ctx: usize,
    },
    #[error("--chunks 0 evaluates nothing")]
    NoChunks,
    #[error("the tokenizer asks for BOS but has no BOS token")]
    NoBosToken,
    #[error("tokenizing: {0}")]
    Tokenize(String),
    #[error("a context of {0} tokens scores nothing; it must be at least 4")]
    TinyContext(usize),
}

/// The chunks of one evaluation and the positions scored in each.
#[derive(Clone, Debug)]
pub struct ChunkPlan {
    tokens: Vec<u32>,
    /// Tokens per chunk.
    pub n_ctx: usize,
    pub n_chunk: usize,
    /// The first position whose logits are scored (n_ctx/2).
    pub first: usize,
    bos: Option<u32>,
}

impl ChunkPlan {
    /// Chunks of `n_ctx` over `tokens`, at most `max_chunks` of them; `bos` overwrites each
    /// chunk's first token when the model adds BOS. Needs two chunks of text, as llama.cpp.
    pub fn new(
        tokens: Vec<u32>,
        n_ctx: usize,
        max_chunks: Option<usize>,
        bos: Option<u32>,
    ) -> Result<ChunkPlan, PlanError> {
        if n_ctx >= 4 && tokens.len() < 2 * n_ctx {
            return Err(PlanError::TooFewTokens {
                have: tokens.len(),
                need: 2 * n_ctx,
                n_ctx,
            });
        }
        ChunkPlan::from_chunks(tokens, n_ctx, max_chunks, bos)
    }

    /// Chunks of tokens saved by an earlier run (a base-logits file): no two-chunk minimum.
    pub fn from_chunks(
        mut tokens: Vec<u32>,
        n_ctx: usize,
        max_chunks: Option<usize>,
        bos: Option<u32>,
    ) -> Result<ChunkPlan, PlanError> {
        if n_ctx < 4 {
            return Err(PlanError::TinyContext(n_ctx));
        }
        let all = tokens.len() / n_ctx;
        let n_chunk = max_chunks.map_or(all, |m| m.min(all));
        if n_chunk == 0 {
            return Err(PlanError::NoChunks);
        }
        tokens.truncate(n_chunk * n_ctx);
        Ok(ChunkPlan {
            tokens,
            n_ctx,
            n_chunk,
            first: n_ctx / 2,
            bos,
        })
    }

    /// Positions scored per chunk (first … n_ctx−2, each predicting the next token).
    pub fn scored_per_chunk(&self) -> usize {
        self.n_ctx - 1 - self.first
    }

    /// Tokens scored in all.
    pub fn scored(&self) -> usize {
        self.n_chunk * self.scored_per_chunk()
    }

    /// The evaluated tokens, chunk after chunk, as tokenized (no BOS overwrite).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Chunk `c` as the model sees it: its first token replaced by BOS when the model adds it.
    pub fn prompt(&self, c: usize) -> Vec<u32> {
        let mut p = self.tokens[c * self.n_ctx..(c + 1) * self.n_ctx].to_vec();
        if let Some(b) = self.bos {
            p[0] = b;
        }
        p
    }

    /// The token that position `pos` of chunk `c` predicts.
    pub fn target(&self, c: usize, pos: usize) -> u32 {
        self.tokens[c * self.n_ctx + pos + 1]
    }
}

/// The token every chunk starts with: the model's BOS when its metadata asks for one.
pub fn chunk_bos(tok: &Tokenizer) -> Result<Option<u32>, PlanError> {
    match (tok.add_bos_default(), tok.bos_id()) {
        (false, _) => Ok(None),
        (true, Some(b)) => Ok(Some(b)),
        (true, None) => Err(PlanError::NoBosToken),
    }
}

/// The chunks of a text file's contents, tokenized once as llama-perplexity does, and the
/// text's token count.
pub fn text_plan(
    tok: &Tokenizer,
    contents: &str,
    n_ctx: usize,
    max_chunks: Option<usize>,
) -> Result<(ChunkPlan, usize), PlanError> {
    let bos = chunk_bos(tok)?;
    let tokens = tok
        .encode(text_of_file(contents), bos.is_some(), false)
        .map_err(|e| PlanError::Tokenize(e.to_string()))?;
    let n = tokens.len();
    Ok((ChunkPlan::new(tokens, n_ctx, max_chunks, bos)?, n))
}

/// The text llama-perplexity evaluates from a file's contents: exactly one trailing newline
/// removed.
pub fn text_of_file(contents: &str) -> &str {
    contents.strip_suffix('\n').unwrap_or(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_drop_the_tail_and_take_bos() {
        let toks: Vec<u32> = (100..125).collect();
        let p = ChunkPlan::new(toks, 8, None, Some(1)).expect("plan");
        assert_eq!(p.n_chunk, 3);
        assert_eq!(p.first, 4);
        assert_eq!(p.scored_per_chunk(), 3);
        assert_eq!(p.prompt(1), vec![1, 109, 110, 111, 112, 113, 114, 115]);
        assert_eq!(p.target(1, 4), 113);
        assert_eq!(p.target(2, 6), 123);
        let limited = ChunkPlan::new((0..40).collect(), 8, Some(2), None).expect("plan");
        assert_eq!(limited.n_chunk, 2);
        assert_eq!(limited.prompt(1)[0], 8, "no BOS: the chunk starts mid-text");
        assert_eq!(limited.tokens().len(), 16);
    }

    #[test]
    fn too_little_text_or_no_chunks_is_refused() {
        assert_eq!(
            ChunkPlan::new((0..15).collect(), 8, None, None).err(),
            Some(PlanError::TooFewTokens {
                have: 15,
                need: 16,
                n_ctx: 8
            })
        );
        assert_eq!(
            ChunkPlan::new((0..32).collect(), 8, Some(0), None).err(),
            Some(PlanError::NoChunks)
        );
        assert_eq!(
            ChunkPlan::new((0..32).collect(), 3, None, None).err(),
            Some(PlanError::TinyContext(3))
        );
    }

    #[test]
    fn one_trailing_newline_is_removed() {
        assert_eq!(text_of_file("a\n\n"), "a\n");
        assert_eq!(text_of_file("a"), "a");
    }
}
