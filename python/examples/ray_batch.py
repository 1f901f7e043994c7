"""Offline batch inference over a JSONL corpus with Ray Data and sluice.

Ray Data reads the corpus, `map_batches` hands batches of lines to a pool of actors, each holding
one `sluice.Engine` (the model opened once per actor, its layers streamed from the node's local
disk when they do not fit in RAM), and the answers are written as JSONL files to a directory.

    python ray_batch.py --model smollm2-135m --input corpus.jsonl --output answers/ --actors 2

Input lines are `sluice batch`'s: `{"id", "prompt" | "messages", "max_tokens"?, "temperature"?,
"seed"?, "stop"?}`, a line's options overriding the command line's (every line the same kind of
id, and `stop` a list where any line has a list: Arrow gives a column one type); every output
line is `{"id", "text", "tokens", "stop_reason", "prompt_tokens", "completion_tokens", "worker"}`,
one per input line. Given the same options, the answers are exactly `sluice batch`'s on the same
corpus, sampled lines included (a sequence's draws depend only on its own seed): every prompt gets
the tokens it would get alone, whichever actor and batch it lands in.

On a Ray cluster the same script runs unchanged: start it on the head node with
`--address auto` (or submit it with `ray job submit -- python ray_batch.py ...`). Each node needs
the `sluice` wheel installed and the model file at the same path on its local NVMe (`--model`
names a path or a cache alias), and the input/output paths must be readable/writable from every
node (a shared filesystem, or `s3://...` URLs, which Ray Data reads and writes directly).
"""
import argparse
import math
import os
import socket

import ray


class SluiceGenerator:
    """One engine per actor; each call answers a batch of corpus lines."""

    def __init__(self, model, threads, ram_budget, max_batch, options):
        import sluice  # imported in the actor's process

        self.engine = sluice.Engine(model, threads=threads, ram_budget=ram_budget, max_batch=max_batch)
        self.options = options
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch):
        done = self.engine.generate_batch(requests_of(batch), **self.options)
        return {
            "id": list(batch["id"]),
            "text": [c.text for c in done],
            "tokens": [list(c.tokens) for c in done],
            "stop_reason": [c.stop_reason for c in done],
            "prompt_tokens": [len(c.prompt_tokens) for c in done],
            "completion_tokens": [len(c.tokens) for c in done],
            "worker": [self.worker] * len(done),
        }


#: The per-line options `sluice batch` honours; a line's value overrides the command line's.
LINE_OPTIONS = {"max_tokens": int, "temperature": float, "seed": int}


def value_at(batch, column, i):
    """The line's value in `column`, or None where the line has none (Arrow's null, or the NaN
    a numeric column with missing values becomes)."""
    if column not in batch:
        return None
    v = batch[column][i]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def requests_of(batch):
    """One request dict per line: its "prompt" text or its "messages" ({"role", "content"} dicts,
    through the chat template), with the line's own max_tokens, temperature, seed and stop. A
    line with neither prompt nor messages is an error naming its id."""
    requests = []
    for i, line_id in enumerate(batch["id"]):
        text, chat = value_at(batch, "prompt", i), value_at(batch, "messages", i)
        if isinstance(text, str) and text:
            req = {"prompt": text}
        elif chat is not None and len(chat) > 0:
            req = {"messages": [{"role": str(m["role"]), "content": str(m["content"])} for m in chat]}
        else:
            raise ValueError(f"corpus line with id {line_id!r}: it has neither a \"prompt\" string nor \"messages\"")
        for name, kind in LINE_OPTIONS.items():
            v = value_at(batch, name, i)
            if v is not None:
                req[name] = kind(v)
        stop = value_at(batch, "stop", i)
        if stop is not None:
            req["stop"] = [stop] if isinstance(stop, str) else [str(x) for x in stop]
        requests.append(req)
    return requests


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m", help="GGUF file, HF directory or cache alias, on every node")
    p.add_argument("--input", required=True, help="JSONL corpus: one {\"id\", \"prompt\" | \"messages\"} per line")
    p.add_argument("--output", required=True, help="directory for the answers (JSONL files)")
    p.add_argument("--actors", type=int, default=2, help="engines (Ray actors) answering in parallel")
    p.add_argument("--threads", type=int, default=1, help="compute threads per engine (and CPUs per actor)")
    p.add_argument("--ram-budget", default=None, help="bytes of weights each engine keeps in RAM (e.g. 2G; default: what fits)")
    p.add_argument("--batch-size", type=int, default=8, help="corpus lines per map_batches call (and sequences per layer sweep)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--raw", action="store_true", help="no chat template")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start Ray on this machine)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: Ray's own count)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    ray.init(address=args.address, num_cpus=args.num_cpus, include_dashboard=False,
             log_to_driver=False, ignore_reinit_error=True)
    options = {"max_tokens": args.max_tokens, "temperature": args.temperature, "raw": args.raw}
    if args.seed is not None:
        options["seed"] = args.seed
    ds = ray.data.read_json(args.input)
    answers = ds.map_batches(
        SluiceGenerator,
        fn_constructor_kwargs={
            "model": args.model,
            "threads": args.threads,
            "ram_budget": args.ram_budget,
            "max_batch": args.batch_size,
            "options": options,
        },
        batch_size=args.batch_size,
        compute=ray.data.ActorPoolStrategy(size=args.actors),
        num_cpus=args.threads,
    )
    answers.write_json(args.output)
    ray.shutdown()


if __name__ == "__main__":
    main()
