#!/usr/bin/env python3
"""Checks `sluice serve` with the real `openai` Python client (and raw HTTP where the client hides
what is checked). Run by tests/serve_openai.rs against a server it started on a loopback port:

    PY tests/serve/openai_checks.py basic    BASE_URL KEY EXPECTED.json
    PY tests/serve/openai_checks.py load     BASE_URL KEY EXPECTED.json CLIENTS REQUESTS
    PY tests/serve/openai_checks.py overflow BASE_URL KEY
    PY tests/serve/openai_checks.py disconnect BASE_URL KEY
    PY tests/serve/openai_checks.py keepalive BASE_URL KEY    (a server with --sse-ping 0.05)

EXPECTED.json holds what `sluice run --temperature 0` printed for the same prompts:
{"max_tokens": N, "chat": [{"prompt", "text"}], "raw": [{"prompt", "text"}]}.
Every check that fails raises; the script prints one line per passed check and exits 0.
"""
import concurrent.futures
import http.client
import json
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

import openai


def ok(what):
    print(f"ok: {what}", flush=True)


def client(base, key, **kw):
    return openai.OpenAI(base_url=base, api_key=key, **kw)


def raw(base, key, method, path, body=None, timeout=60):
    """One HTTP request without the client's retries: (status, headers, body bytes)."""
    u = urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def metric(base, key, name):
    _, _, body = raw(base, key, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"/metrics has no {name}")


def expect_error(fn, exc, status, param=None, code=None):
    try:
        fn()
    except exc as e:
        assert e.status_code == status, (e.status_code, e)
        body = e.body if isinstance(e.body, dict) else {}
        if param is not None:
            assert body.get("param") == param, body
        if code is not None:
            assert body.get("code") == code, body
        assert body.get("message"), body
        return e
    raise AssertionError(f"expected {exc.__name__}")


def basic(base, key, expected):
    c = client(base, key, max_retries=0)
    n = expected["max_tokens"]
    models = c.models.list().data
    assert len(models) == 1 and models[0].object == "model" and models[0].owned_by, models
    model = models[0].id
    ok(f"models.list: {model}")

    for case in expected["chat"]:
        msgs = [{"role": "user", "content": case["prompt"]}]
        r = c.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=n)
        ch = r.choices[0]
        assert ch.message.role == "assistant", ch
        assert ch.message.content == case["text"], (ch.message.content, case["text"])
        assert ch.finish_reason in ("length", "stop"), ch.finish_reason
        assert r.usage.completion_tokens <= n and r.usage.prompt_tokens > 0, r.usage
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        assert r.object == "chat.completion" and r.id and r.created, r
        # The same, streamed, with usage: role first, text deltas, finish, usage chunk, [DONE].
        chunks = list(c.chat.completions.create(
            model=model, messages=msgs, temperature=0, max_completion_tokens=n, stream=True,
            stream_options={"include_usage": True}))
        assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
        text = "".join(k.choices[0].delta.content or "" for k in chunks if k.choices)
        assert text == case["text"], (text, case["text"])
        finishes = [k.choices[0].finish_reason for k in chunks if k.choices and k.choices[0].finish_reason]
        assert finishes == [ch.finish_reason], finishes
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == r.usage.completion_tokens
        assert all(k.usage is None for k in chunks[:-1]), "usage is null before the last chunk"
        assert len({k.id for k in chunks}) == 1 and chunks[0].object == "chat.completion.chunk"
    ok("chat: greedy text equals sluice run's, streamed and not, with usage")

    for case in expected["raw"]:
        r = c.completions.create(model=model, prompt=case["prompt"], temperature=0, max_tokens=n)
        assert r.choices[0].text == case["text"], (r.choices[0].text, case["text"])
        assert r.object == "text_completion"
        text = "".join(k.choices[0].text for k in c.completions.create(
            model=model, prompt=case["prompt"], temperature=0, max_tokens=n, stream=True) if k.choices)
        assert text == case["text"], (text, case["text"])
    ok("completions: greedy text equals sluice run --raw's, streamed and not")

    # Stop strings: cut before the first occurrence, never emitted, finish_reason "stop".
    case = expected["raw"][0]
    full = case["text"]
    stop = full[len(full) // 2: len(full) // 2 + 3]
    want = full[: full.index(stop)]
    r = c.completions.create(model=model, prompt=case["prompt"], temperature=0, max_tokens=n, stop=[stop, "\u0000never"])
    assert r.choices[0].text == want and r.choices[0].finish_reason == "stop", (r.choices[0], want, stop)
    text = "".join(k.choices[0].text for k in c.completions.create(
        model=model, prompt=case["prompt"], temperature=0, max_tokens=n, stop=stop, stream=True) if k.choices)
    assert text == want, (text, want, stop)
    ok(f"stop string {stop!r}: text cut before it, streamed and not")

    # Log-probabilities.
    r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}],
                                  temperature=0, max_tokens=4, logprobs=True, top_logprobs=3)
    lp = r.choices[0].logprobs.content
    assert len(lp) == r.usage.completion_tokens, lp
    for t in lp:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3, t
        assert t.top_logprobs[0].logprob >= t.top_logprobs[-1].logprob
        assert abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4, "greedy picks the top token"
    ok("logprobs with top_logprobs")

    # Errors: OpenAI-shaped, right status, the parameter named.
    msgs = [{"role": "user", "content": "x"}]
    expect_error(lambda: c.chat.completions.create(model=model, messages=msgs, n=2), openai.BadRequestError, 400, "n")
    expect_error(lambda: c.chat.completions.create(model=model, messages=[]), openai.BadRequestError, 400, "messages")
    expect_error(lambda: c.chat.completions.create(model="no-such-model", messages=msgs), openai.NotFoundError, 404,
                 "model", "model_not_found")
    expect_error(lambda: c.chat.completions.create(model=model, messages=msgs, temperature="hot"),
                 openai.BadRequestError, 400, "temperature")
    long_prompt = "hello " * 5000
    e = expect_error(lambda: c.completions.create(model=model, prompt=long_prompt, max_tokens=4),
                     openai.BadRequestError, 400, "prompt", "context_length_exceeded")
    assert e.body.get("n_prompt_tokens", 0) > e.body.get("n_ctx", 1), e.body
    status, _, body = raw(base, key, "POST", "/v1/chat/completions", None)
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error", (status, body)
    u = urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", body=b"{not json", headers={"Authorization": f"Bearer {key}"})
    r = conn.getresponse()
    assert r.status == 400 and "not valid JSON" in json.loads(r.read())["error"]["message"]
    conn.close()
    ok("errors: 400 with param, 404 model_not_found, context_length_exceeded, bad JSON")

    # Auth: a wrong key is refused on every route but /health.
    expect_error(lambda: client(base, "wrong-key", max_retries=0).models.list(), openai.AuthenticationError, 401)
    status, _, body = raw(base, None, "GET", "/health")
    assert status == 200 and json.loads(body)["status"] == "ok", (status, body)
    ok("auth: wrong key 401 (OpenAI error), /health open")

    # /tokenize and /detokenize round trip; /metrics counts.
    status, _, body = raw(base, key, "POST", "/tokenize", {"content": "Hello world"})
    ids = json.loads(body)["tokens"]
    assert status == 200 and ids, body
    status, _, body = raw(base, key, "POST", "/detokenize", {"tokens": ids})
    assert status == 200 and json.loads(body)["content"] == "Hello world", body
    assert metric(base, key, "sluice_generated_tokens_total") > 0
    assert metric(base, key, "sluice_time_to_first_token_seconds_count") > 0
    ok("tokenize/detokenize round trip; metrics")


def load(base, key, expected, clients, per_client):
    """`clients` threads × `per_client` greedy requests; every answer equals the sequential one."""
    c = client(base, key, max_retries=5)
    n = expected["max_tokens"]
    cases = expected["raw"]
    model = c.models.list().data[0].id

    def one(i):
        case = cases[i % len(cases)]
        if i % 2:
            text = "".join(k.choices[0].text for k in c.completions.create(
                model=model, prompt=case["prompt"], temperature=0, max_tokens=n, stream=True) if k.choices)
        else:
            text = c.completions.create(model=model, prompt=case["prompt"], temperature=0, max_tokens=n).choices[0].text
        return i, text, case["text"]

    started = time.time()
    total = clients * per_client
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(one, range(total)))
    wrong = [(i, got, want) for i, got, want in results if got != want]
    assert not wrong, f"{len(wrong)} of {total} answers differ from the sequential ones: {wrong[:3]}"
    assert metric(base, key, "sluice_active_sequences") == 0
    ok(f"load: {total} requests from {clients} concurrent clients in {time.time() - started:.1f}s, "
       f"every answer complete and equal to the sequential one")


def overflow(base, key):
    """--parallel 1 --max-queue 1: of several concurrent requests some get 503 + Retry-After."""
    body = {"prompt": "Once upon a time", "max_tokens": 48, "temperature": 0}

    def one(_):
        return raw(base, key, "POST", "/v1/completions", body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(8)))
    codes = sorted(s for s, _, _ in results)
    busy = [(h, b) for s, h, b in results if s == 503]
    assert busy and 200 in codes, codes
    for h, b in busy:
        retry = {k.lower(): v for k, v in h.items()}.get("retry-after")
        assert retry and int(retry) >= 1, h
        err = json.loads(b)["error"]
        assert err["message"] and err["type"], err
    for s, _, b in results:
        if s == 200:
            assert json.loads(b)["choices"][0]["text"], b
    assert metric(base, key, "sluice_requests_rejected_total") >= len(busy)
    ok(f"overflow: {len(busy)} of 8 got 503 with Retry-After, the rest complete answers")


def disconnect(base, key):
    """A client that leaves mid-stream cancels its sequence, which frees its slot."""
    before = metric(base, key, "sluice_requests_cancelled_total")
    u = urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 2000, "temperature": 0.7, "stream": True})
    conn.request("POST", "/v1/completions", body=body,
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    r = conn.getresponse()
    assert r.status == 200 and "text/event-stream" in r.getheader("Content-Type", ""), r.status
    got = b""
    while got.count(b"data:") < 3:
        got += r.fp.read1(4096) if hasattr(r.fp, "read1") else r.read(64)
    conn.sock.close()
    conn.close()
    deadline = time.time() + 30
    while time.time() < deadline:
        if metric(base, key, "sluice_requests_cancelled_total") > before and \
                metric(base, key, "sluice_active_sequences") == 0:
            generated = metric(base, key, "sluice_generated_tokens_total")
            ok(f"disconnect: the sequence was cancelled ({generated:.0f} tokens generated in all)")
            return
        time.sleep(0.1)
    raise AssertionError("the sequence of a client that left was not cancelled within 30 s")


def keepalive(base, key):
    """While a long prompt is computed, the silent SSE stream carries `:` comments."""
    u = urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    body = json.dumps({"messages": [{"role": "user", "content": "word " * 400}],
                       "max_tokens": 2, "temperature": 0, "stream": True})
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    r = conn.getresponse()
    assert r.status == 200, r.status
    comments, datas = 0, []
    for raw_line in r:
        line = raw_line.decode().rstrip("\r\n")
        if line.startswith(":"):
            if len(datas) == 1:  # after the role chunk, before any text: the prefill
                comments += 1
        elif line.startswith("data:"):
            datas.append(line[5:].strip())
            if datas[-1] == "[DONE]":
                break
    conn.close()
    assert datas and datas[-1] == "[DONE]", datas[-3:]
    assert comments >= 1, f"no keep-alive comment during the prefill ({len(datas)} events)"
    ok(f"keep-alive: {comments} SSE comments while a 400-word prompt was computed")


def main():
    what, base, key = sys.argv[1], sys.argv[2], sys.argv[3]
    if what == "basic":
        basic(base, key, json.load(open(sys.argv[4])))
    elif what == "load":
        load(base, key, json.load(open(sys.argv[4])), int(sys.argv[5]), int(sys.argv[6]))
    elif what == "overflow":
        overflow(base, key)
    elif what == "disconnect":
        disconnect(base, key)
    elif what == "keepalive":
        keepalive(base, key)
    else:
        sys.exit(f"unknown check {what}")


if __name__ == "__main__":
    main()
