//! `sluice serve`: an OpenAI-compatible HTTP server over the batch scheduler, so every layer
//! read from disk serves every request in flight (continuous batching: requests join and leave
//! at step boundaries).
//!
//! Threads: the engine runs on a thread of its own ([`worker`]) that loads the model and then
//! drives [`Engine::run_batch`](crate::engine::session::Engine) for the life of the server;
//! a small tokio runtime runs axum ([`routes`]). They meet at a bounded queue (`--max-queue`;
//! beyond it, 503 with `Retry-After`) and a channel per request. SIGTERM or Ctrl-C stops
//! accepting, lets the requests in flight finish (up to `--shutdown-grace` seconds, then
//! cancels them) and exits 0.

// An API error carries the whole OpenAI error object and is built once per refused request,
// never on a per-token path: its size does not matter.
#![allow(clippy::result_large_err)]

pub mod args;
pub mod errors;
pub mod metrics;
pub mod request;
pub mod routes;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use sluice_loader::tokenizer::Tokenizer;

pub use args::ServeArgs;
use routes::AppState;
use worker::{Shared, Worker};

use crate::cli::Failure;
use crate::engine::scheduler::{BatchOptions, MAX_BATCH_LIMIT};
use crate::engine::session::Engine;

/// What the engine thread reports once the model is loaded.
struct Loaded {
    tok: Arc<Tokenizer>,
    ctx: usize,
    summary: String,
}

/// Runs the server; returns the process exit status.
pub fn run(args: &ServeArgs) -> i32 {
    crate::cli::exit_status(serve(args), "sluice serve")
}

fn serve(args: &ServeArgs) -> Result<(), Failure> {
    let bad = |e: anyhow::Error| Failure::BadInput(e);
    let parallel = args.parallel as usize;
    if parallel == 0 || parallel > MAX_BATCH_LIMIT {
        return Err(bad(anyhow!(
            "--parallel must be from 1 to {MAX_BATCH_LIMIT}, not {parallel}"
        )));
    }
    let ctx_ask = args.ctx as usize;
    let (path, opts) = args.engine.engine_args(parallel).resolve()?;
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .map_err(|e| bad(anyhow!("--host {} --port {}: {e}", args.host, args.port)))?;
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding {addr}"))
        .map_err(Failure::Runtime)?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Failure::Runtime(e.into()))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.into()))?;

    // The engine thread loads the model (the engine stays on that thread) and reports back.
    let shared = Arc::new(Shared::default());
    let (queue, jobs) = sync_channel(args.max_queue as usize);
    let (loaded_tx, loaded_rx) = std::sync::mpsc::channel::<Result<Loaded, Failure>>();
    let tokenizer_arg = args.engine.tokenizer.clone();
    let ram_budget = args.engine.ram_budget;
    let engine_shared = shared.clone();
    let engine_thread = std::thread::Builder::new()
        .name("sluice-engine".into())
        .spawn(move || -> Result<(), Failure> {
            let model_ctx_plan = ctx_ask.max(2);
            let failure = |e: crate::engine::session::EngineError| {
                if e.is_bad_input() {
                    Failure::BadInput(e.into())
                } else {
                    Failure::Runtime(e.into())
                }
            };
            // The tokenizer is built before the engine starts reading weights.
            let loaded = Engine::open_model(&path)
                .map_err(failure)
                .and_then(|mut model| {
                    let tok =
                        crate::api::prompt::load_tokenizer(&mut model, tokenizer_arg.as_deref())
                            .map_err(|e| Failure::BadInput(e.into()))?;
                    let engine =
                        Engine::from_model(model, model_ctx_plan, &opts).map_err(failure)?;
                    Ok((engine, tok))
                });
            let (mut engine, tok) = match loaded {
                Ok(x) => x,
                Err(f) => {
                    let _ = loaded_tx.send(Err(f));
                    return Ok(());
                }
            };
            if engine.on_gpu() && parallel > 1 {
                let e = crate::engine::scheduler::BatchError::CudaBatch;
                let _ = loaded_tx.send(Err(Failure::BadInput(anyhow!(
                    "--parallel {parallel}: {e}"
                ))));
                return Ok(());
            }
            let ctx = ctx_ask.min(engine.spec().context_length);
            let tok = Arc::new(tok);
            let summary = format!(
                "{} ({}), {} backend, {} layers resident, {} streamed; {}",
                engine.model.path.display(),
                engine.spec().arch.name(),
                engine.backend_name(),
                engine.plan.n_resident(),
                engine.plan.n_streamed(),
                crate::cli::memory_line(&engine, ram_budget),
            );
            let _ = loaded_tx.send(Ok(Loaded {
                tok: tok.clone(),
                ctx,
                summary,
            }));
            let n_vocab = engine.spec().n_vocab;
            let mut driver = Worker::new(jobs, engine_shared, &tok, n_vocab);
            let mut batch = BatchOptions::new(parallel);
            batch.n_ctx = Some(ctx);
            engine
                .run_batch(&batch, &mut driver)
                .map(|_| ())
                .map_err(|e| Failure::Runtime(e.into()))
        })
        .map_err(|e| Failure::Runtime(e.into()))?;
    let loaded = match loaded_rx.recv() {
        Ok(Ok(l)) => l,
        Ok(Err(f)) => return Err(f),
        Err(_) => {
            return Err(match engine_thread.join() {
                Ok(Err(f)) => f,
                _ => Failure::Runtime(anyhow!("the engine thread ended while loading the model")),
            })
        }
    };

    let (model_id, model_aliases) = model_names(&args.engine.model);
    let state = Arc::new(AppState {
        shared: shared.clone(),
        queue,
        tok: loaded.tok,
        model_aliases,
        model_id,
        ctx: loaded.ctx,
        api_key: args.api_key.clone(),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        keep_alive: Duration::from_secs_f64(args.sse_ping),
        counter: AtomicU64::new(0),
    });
    eprintln!("sluice serve: {}", loaded.summary);
    eprintln!(
        "sluice serve: listening on http://{bound}/v1 (--parallel {parallel}, --max-queue {}, context {} tokens per sequence{})",
        args.max_queue,
        loaded.ctx,
        if args.api_key.is_some() { ", API key required" } else { "" },
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(e.into()))?;
    let grace = Duration::from_secs(args.shutdown_grace);
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = routes::router(state);
        let shared_for_grace = shared.clone();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                stop_signal().await;
                eprintln!(
                    "sluice serve: stopping: no new connections; requests in flight get {}s to finish",
                    grace.as_secs()
                );
                let s = shared_for_grace.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    s.cancel_all.store(true, Ordering::Relaxed);
                });
            })
            .await
    });
    // The router (and its queue sender) is gone: the engine thread finishes and returns.
    let engine_result = engine_thread
        .join()
        .unwrap_or_else(|_| Err(Failure::Runtime(anyhow!("the engine thread panicked"))));
    served.map_err(|e| Failure::Runtime(anyhow!("serving HTTP: {e}")))?;
    engine_result?;
    eprintln!("sluice serve: stopped");
    Ok(())
}

/// The id `/v1/models` lists for `--model` (an alias as given, else the file or directory
/// name), and the other names a request may use for it (the argument as given, the stem).
fn model_names(arg: &str) -> (String, Vec<String>) {
    let p = std::path::Path::new(arg);
    let name = |q: Option<&std::ffi::OsStr>| q.map(|s| s.to_string_lossy().into_owned());
    if !p.exists() {
        return (arg.to_string(), Vec::new());
    }
    let id = name(p.file_name()).unwrap_or_else(|| arg.to_string());
    let aliases = [Some(arg.to_string()), name(p.file_stem())]
        .into_iter()
        .flatten()
        .filter(|a| *a != id)
        .collect();
    (id, aliases)
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = ctrl_c => {},
            }
        }
        Err(_) => ctrl_c.await,
    }
}
