"""examples/ray_batch.py on a local Ray with 2 actors: every corpus line answered exactly once,
and the answers equal `sluice batch` on the same corpus (greedy)."""
import json
import pathlib
import subprocess
import sys

from conftest import MODEL, REPO

SUBJECTS = ["the sea", "a robot", "autumn", "a lighthouse", "bread", "the moon", "a violin",
            "rain", "a fox", "winter", "a train", "coffee", "mountains", "a library"]


def read_jsonl_dir(d: pathlib.Path) -> list:
    rows = []
    for f in sorted(d.glob("*.json*")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def test_ray_data_answers_every_line_once_as_sluice_batch_does(tmp_path, sluice_bin):
    corpus = tmp_path / "corpus.jsonl"
    lines = [{"id": f"q{i:02d}", "prompt": f"Write one sentence about {s}."} for i, s in enumerate(SUBJECTS)]
    lines += [{"id": f"m{i}", "messages": [{"role": "system", "content": "Answer in one word."},
                                          {"role": "user", "content": f"What colour is {s}?"}]}
              for i, s in enumerate(SUBJECTS[:2])]
    # Lines with options of their own, as `sluice batch` takes them.
    lines += [{"id": "o1", "prompt": "Name a bird.", "max_tokens": 5},
              {"id": "o2", "prompt": "Write a poem.", "temperature": 0.9, "seed": 11},
              {"id": "o3", "prompt": "Describe the sea.", "stop": ["e", "E"]}]
    corpus.write_text("".join(json.dumps(l) + "\n" for l in lines))

    out_dir = tmp_path / "answers"
    run = subprocess.run(
        [sys.executable, str(REPO / "python" / "examples" / "ray_batch.py"), "--model", MODEL,
         "--input", str(corpus), "--output", str(out_dir), "--actors", "2", "--threads", "1",
         "--batch-size", "3", "--max-tokens", "20", "--temperature", "0", "--num-cpus", "4"],
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    got = read_jsonl_dir(out_dir)
    ids = [r["id"] for r in got]
    assert sorted(ids) == sorted(l["id"] for l in lines), "every line answered exactly once"
    workers = {r["worker"] for r in got}
    assert 1 <= len(workers) <= 2, workers
    print(f"answered by {len(workers)} actor(s): {sorted(workers)}")

    cli_out = tmp_path / "cli.jsonl"
    cli = subprocess.run([str(sluice_bin), "batch", "-m", MODEL, "--input", str(corpus), "--output",
                          str(cli_out), "--max-tokens", "20", "--temperature", "0", "--threads", "2"],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    want = {r["id"]: r for r in map(json.loads, cli_out.read_text().splitlines())}
    by_id = {r["id"]: r for r in got}
    assert by_id["o1"]["completion_tokens"] == 5
    assert by_id["o3"]["stop_reason"] == "stop", by_id["o3"]
    for r in got:
        w = want[r["id"]]
        assert r["tokens"] == w["tokens"], r["id"]
        assert r["text"] == w["text"], r["id"]
        assert r["stop_reason"] == w["stop_reason"], r["id"]
        assert (r["prompt_tokens"], r["completion_tokens"]) == (w["prompt_tokens"], w["completion_tokens"])


def test_a_corpus_line_without_a_prompt_fails_the_run_naming_it(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "ok", "prompt": "Hi"}\n{"id": "broken", "text": "no prompt here"}\n')
    run = subprocess.run(
        [sys.executable, str(REPO / "python" / "examples" / "ray_batch.py"), "--model", MODEL,
         "--input", str(corpus), "--output", str(tmp_path / "answers"), "--actors", "1",
         "--max-tokens", "4", "--num-cpus", "2"],
        capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    assert "corpus line with id 'broken'" in run.stderr, run.stderr[-4000:]
