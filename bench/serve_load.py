#!/usr/bin/env python3
"""Load against a running `sluice serve`: C concurrent streaming clients, each sending R
requests back to back through the real `openai` client. Prints one JSON object:
aggregate generated tokens/s, time to first token and inter-token latency p50/p99 (ms).

    PY bench/serve_load.py BASE_URL CLIENTS REQUESTS_PER_CLIENT MAX_TOKENS [API_KEY]

Used by bench/serve-load.sh, which starts the servers and sweeps the client counts.
"""
import concurrent.futures
import json
import statistics
import sys
import time

import openai

PROMPTS = [
    "Once upon a time, in a small village by the sea,",
    "The history of the printing press begins",
    "Here is a short recipe for bread:",
    "The three laws of motion state that",
]


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    base, clients, per_client, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    key = sys.argv[5] if len(sys.argv) > 5 else "none"
    c = openai.OpenAI(base_url=base, api_key=key, max_retries=5, timeout=3600)
    model = c.models.list().data[0].id

    def one(i):
        t0 = time.perf_counter()
        stamps = []
        n = 0
        for chunk in c.completions.create(model=model, prompt=PROMPTS[i % len(PROMPTS)],
                                          max_tokens=max_tokens, temperature=0.7, seed=i,
                                          stream=True, stream_options={"include_usage": True}):
            if chunk.choices and chunk.choices[0].text:
                stamps.append(time.perf_counter())
            if chunk.usage:
                n = chunk.usage.completion_tokens
        ttft = stamps[0] - t0 if stamps else float("nan")
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        return n, ttft, gaps

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(one, range(clients * per_client)))
    wall = time.perf_counter() - started
    tokens = sum(r[0] for r in results)
    ttfts = [r[1] for r in results]
    gaps = [g for r in results for g in r[2]]
    print(json.dumps({
        "clients": clients,
        "requests": len(results),
        "generated_tokens": tokens,
        "wall_s": round(wall, 3),
        "tok_per_s": round(tokens / wall, 2),
        "ttft_ms_p50": round(1000 * pct(ttfts, 50), 1),
        "ttft_ms_p99": round(1000 * pct(ttfts, 99), 1),
        "itl_ms_p50": round(1000 * pct(gaps, 50), 1),
        "itl_ms_p99": round(1000 * pct(gaps, 99), 1),
        "itl_ms_mean": round(1000 * statistics.fmean(gaps), 1) if gaps else None,
    }))


if __name__ == "__main__":
    main()
