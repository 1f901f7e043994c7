"""sluice.Engine on SmolLM2: greedy output equals `sluice run`'s and llama.cpp's reference
tokens; streaming, batches, perplexity; errors are Python exceptions carrying the engine's
message; the GIL is released while the engine runs."""
import json
import os
import signal
import threading
import time

import pytest

import sluice
from conftest import MODEL, REPO, run_json


def test_greedy_generate_equals_sluice_run(engine, sluice_bin):
    for prompt, raw in [("What color is the sky?", False), ("def fibonacci(n):", True)]:
        cli = run_json(sluice_bin, "--prompt", prompt, "--temperature", "0", "--max-tokens", "24",
                       *(["--raw"] if raw else []))
        got = engine.generate(prompt, temperature=0, max_tokens=24, raw=raw)
        assert got.tokens == cli["tokens"], prompt
        assert got.text == cli["text"]
        assert got.prompt_tokens == cli["prompt_tokens"]
        assert got.stop_reason == cli["stop_reason"]


def test_greedy_generate_gives_llama_cpps_reference_tokens(engine, reference):
    for name, p in reference["prompts"].items():
        got = engine.generate(p["text"], temperature=0, raw=True, max_tokens=reference["max_tokens"])
        assert got.prompt_tokens == p["prompt_token_ids"], name
        # The reference's rule: equal, or diverging only where llama.cpp's own margin is tiny.
        same = 0
        while same < len(got.tokens) and got.tokens[same] == p["greedy_ids"][same]:
            same += 1
        assert same == len(p["greedy_ids"]) or p["margins"][same] < 0.01, (name, same)


def test_stream_yields_the_text_as_it_comes(engine):
    s = engine.stream("Name three colours.", temperature=0, max_tokens=30)
    assert isinstance(s, sluice.TokenStream)
    pieces = list(s)
    assert len(pieces) > 3 and all(isinstance(p, str) and p for p in pieces)
    whole = engine.generate("Name three colours.", temperature=0, max_tokens=30)
    assert "".join(pieces) == whole.text
    assert s.completion.tokens == whole.tokens
    # An abandoned stream stops its generation and does not hold the engine.
    s = engine.stream("Tell me a long story.", temperature=0, max_tokens=200)
    next(s)
    del s
    assert engine.generate("Hi", max_tokens=2, temperature=0).tokens


def test_generate_batch_gives_each_prompt_what_it_gets_alone(engine):
    prompts = ["The capital of France is", "1, 2, 3,", "Name a river.", "def add(a, b):",
               [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}],
               "Once upon a time,"]
    batch = engine.generate_batch(prompts, temperature=0, max_tokens=16)
    assert len(batch) == len(prompts)
    for p, got in zip(prompts, batch):
        alone = engine.generate(p, temperature=0, max_tokens=16)
        assert got.tokens == alone.tokens, p
        assert got.text == alone.text
    # Items may carry options of their own, over the call's.
    items = [{"prompt": "1, 2, 3, 4,", "raw": True, "max_tokens": 6},
             {"messages": [{"role": "user", "content": "Hi!"}], "max_tokens": None},
             "Name a river."]
    mixed = engine.generate_batch(items, temperature=0, max_tokens=16)
    assert mixed[0].tokens == engine.generate("1, 2, 3, 4,", raw=True, temperature=0, max_tokens=6).tokens
    hi = engine.generate([{"role": "user", "content": "Hi!"}], temperature=0, max_tokens=16)
    assert mixed[1].tokens == hi.tokens and len(mixed[2].tokens) <= 16
    with pytest.raises(TypeError, match="prompt"):
        engine.generate_batch([{"max_tokens": 3}])
    stats = batch[0].stats
    assert stats["completion_tokens"] == len(batch[0].tokens)
    assert stats["prefill_tok_per_s"] > 0


def test_sampling_options_and_stop_strings(engine):
    a = engine.generate("Write a poem.", temperature=0.9, seed=42, max_tokens=20)
    b = engine.generate("Write a poem.", temperature=0.9, seed=42, max_tokens=20)
    assert a.tokens == b.tokens, "the same seed draws the same tokens"
    full = engine.generate("1, 2, 3, 4,", raw=True, temperature=0, max_tokens=24)
    assert " 7" in full.text, full.text
    cut = engine.generate("1, 2, 3, 4,", raw=True, temperature=0, max_tokens=24, stop=" 7")
    assert cut.stop_reason == "stop"
    assert cut.text == full.text[: full.text.index(" 7")]
    ids = engine.tokenize("1, 2, 3, 4,", raw=True)
    assert engine.generate(ids, temperature=0, max_tokens=24).tokens == full.tokens
    assert engine.detokenize(full.tokens) == full.text


def test_perplexity_matches_llama_cpp(engine):
    text = (REPO / "tests" / "data" / "gpl-3.0.txt").read_text()
    p = engine.perplexity(text, ctx=512, chunks=2)
    figures = json.loads((REPO / "tests" / "reference" / "perplexity" / "figures.json").read_text())
    want = figures["perplexity"][MODEL]["chunk_ppl"][:2]
    assert [round(x, 4) for x in p["per_chunk"]] == want
    assert p["n_chunk"] == 2 and p["uncertainty"] > 0


def test_errors_are_exceptions_with_the_engines_message(engine):
    with pytest.raises(sluice.BadInputError, match="/nonexistent/model.gguf"):
        sluice.Engine("/nonexistent/model.gguf")
    with pytest.raises(sluice.BadInputError, match="max_batch"):
        sluice.Engine(MODEL, max_batch=0)
    with pytest.raises(sluice.BadInputError, match="ram_budget"):
        sluice.Engine(MODEL, ram_budget="lots")
    with pytest.raises(sluice.BadInputError, match="temperature"):
        engine.generate("Hi", temperature=-1)
    with pytest.raises(sluice.BadInputError, match="context"):
        engine.generate([1] * 2000)
    with pytest.raises(sluice.BadInputError, match="request 1: .*vocabulary"):
        engine.generate_batch(["Hi", [1, 10**9]])
    with pytest.raises(TypeError, match="temprature"):
        engine.generate("Hi", temprature=0)
    with pytest.raises(TypeError):
        engine.generate(3.5)
    with pytest.raises(sluice.BadInputError):
        engine.perplexity("too short")
    assert issubclass(sluice.BadInputError, sluice.SluiceError)
    # Still usable after every refusal.
    assert engine.generate("Hi", max_tokens=2, temperature=0).tokens


def test_the_gil_is_released_while_the_engine_runs(engine):
    done = threading.Event()
    result = {}

    def work():
        result["c"] = engine.generate("Tell me a story.", temperature=0, max_tokens=48)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    spins = 0
    while not done.is_set():
        spins += 1
    t.join()
    assert len(result["c"].tokens) > 8
    # With the GIL held for the whole call this loop could not run while it did.
    assert spins > 10_000, spins


def test_info_describes_the_loaded_engine(engine):
    info = engine.info
    assert info["arch"] == "llama" and info["ctx"] == 1024 and info["max_batch"] == 4
    assert info["resident_layers"] + info["streamed_layers"] == 30
    streamed = sluice.Engine(MODEL, threads=1, ram_budget=0, max_batch=1, ctx=256)
    assert streamed.info["streamed_layers"] == 30
    from_disk = streamed.generate("def fibonacci(n):", raw=True, temperature=0, max_tokens=8)
    from_ram = engine.generate("def fibonacci(n):", raw=True, temperature=0, max_tokens=8)
    assert from_disk.tokens == from_ram.tokens
    # Every layer is read once per sweep when streamed; nothing is read when resident.
    st = from_disk.stats
    assert st["streamed_bytes"] >= st["call_steps"] * 50_000_000, st
    assert st["read_gb_per_s"] > 0 and st["io_wait_s"] >= 0
    assert from_ram.stats["streamed_bytes"] == 0


def test_info_while_another_thread_generates(engine):
    t = threading.Thread(target=lambda: engine.generate("Tell me a story.", temperature=0, max_tokens=48))
    t.start()
    time.sleep(0.05)
    info = engine.info  # waits for the engine without holding the GIL the generation needs
    t.join(timeout=120)
    assert not t.is_alive()
    assert info["ctx"] == 1024


def test_ctrl_c_stops_a_generation_and_a_perplexity_run(engine):
    # A shell without job control starts background jobs (`scripts/test.sh &`) with SIGINT
    # ignored, and Python then leaves it ignored: install the handler a terminal would have.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_both(engine)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert engine.generate("Hi", max_tokens=2, temperature=0).tokens


def _interrupt_both(engine):
    text = (REPO / "tests" / "data" / "gpl-3.0.txt").read_text()
    # A raw continuation of the licence runs until the context is full (about 700 tokens, over
    # 3 s on 2 cores); a chat answer can end in under the timer's delay on a fast machine.
    for run in (lambda: engine.generate(text[:1500], raw=True, temperature=0, max_tokens=2000),
                lambda: engine.perplexity(text, ctx=512, batch=512)):
        timer = threading.Timer(0.25, os.kill, (os.getpid(), signal.SIGINT))
        started = time.monotonic()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            run()
        timer.join()
        assert time.monotonic() - started < 8
