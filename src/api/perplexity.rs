//! Perplexity of a text for library callers: `sluice perplexity -f FILE` without the file and
//! the printing (llama-perplexity's chunks, BOS rule and arithmetic; see `crate::eval`).

use crate::eval::{evaluate, text_plan, ChunkLine, EvalMode, EvalOptions};

use super::{ApiError, Llm};

/// How a text is cut and batched, as `sluice perplexity`'s `-c`, `--chunks` and `-b`.
#[derive(Clone, Copy, Debug)]
pub struct PerplexityOptions {
    /// Tokens per chunk (the second half of each is scored).
    pub ctx: usize,
    /// Most chunks to evaluate (`None`: every whole chunk of the text).
    pub chunks: Option<usize>,
    /// Tokens per layer sweep: `batch / ctx` chunks share one sweep.
    pub batch: usize,
}

impl Default for PerplexityOptions {
    fn default() -> PerplexityOptions {
        PerplexityOptions {
            ctx: 512,
            chunks: None,
            batch: 2048,
        }
    }
}

/// What a perplexity evaluation measured.
#[derive(Clone, Debug)]
pub struct Perplexity {
    /// The final estimate, exp(mean −log p) over every scored token.
    pub ppl: f64,
    /// Its standard error, as llama-perplexity prints after "+/-" (`None` when the variance is
    /// not positive: too few scored tokens).
    pub uncertainty: Option<f64>,
    /// The running perplexity after each chunk (llama.cpp's `[i]ppl` figures).
    pub per_chunk: Vec<f64>,
    /// Chunks evaluated and tokens per chunk.
    pub n_chunk: usize,
    pub n_ctx: usize,
    /// Tokens scored.
    pub scored_tokens: usize,
    /// Seconds of the evaluation.
    pub wall_s: f64,
}

impl Llm {
    /// The perplexity of `text` (the whole text, as `sluice perplexity -f` reads a file minus
    /// one trailing newline). Runs on the CPU backend.
    pub fn perplexity(
        &mut self,
        text: &str,
        opts: &PerplexityOptions,
    ) -> Result<Perplexity, ApiError> {
        self.perplexity_until(text, opts, &|| false)
    }

    /// [`Llm::perplexity`], stopped early (an error naming the chunks done) when `stop`
    /// returns true at a layer-sweep boundary (a caller's Ctrl-C).
    pub fn perplexity_until(
        &mut self,
        text: &str,
        opts: &PerplexityOptions,
        stop: &dyn Fn() -> bool,
    ) -> Result<Perplexity, ApiError> {
        if opts.chunks == Some(0) {
            return Err(ApiError::Option("chunks must be at least 1".into()));
        }
        let model_ctx = self.engine.spec().context_length;
        if opts.ctx < 4 || opts.ctx > model_ctx {
            return Err(ApiError::Option(format!(
                "ctx must be from 4 to the model's context of {model_ctx}, got {}",
                opts.ctx
            )));
        }
        if opts.batch < opts.ctx {
            return Err(ApiError::Option(format!(
                "batch ({}) must hold at least one chunk of ctx ({}) tokens",
                opts.batch, opts.ctx
            )));
        }
        let (plan, _) = text_plan(&self.tok, text, opts.ctx, opts.chunks)
            .map_err(|e| ApiError::Option(format!("the text: {e}")))?;
        let eval_opts = EvalOptions::for_batch(opts.batch, opts.ctx, plan.n_chunk);
        let mut per_chunk = Vec::with_capacity(plan.n_chunk);
        let report = evaluate(
            &mut self.engine,
            &plan,
            EvalMode::Perplexity,
            &eval_opts,
            &mut |l: &ChunkLine| per_chunk.push(l.ppl),
            stop,
        )?;
        let (ppl, uncertainty) = match report.ppl.estimate() {
            Some((p, e)) => (p, Some(e)),
            None => (report.ppl.ppl(), None),
        };
        Ok(Perplexity {
            ppl,
            uncertainty,
            per_chunk,
            n_chunk: report.n_chunk,
            n_ctx: report.n_ctx,
            scored_tokens: report.ppl.count,
            wall_s: report.wall.as_secs_f64(),
        })
    }
}
