"""Shared fixtures of the Python tests: the repository, the sluice binary (for comparisons with
the CLI), and one engine on SmolLM2 per session. scripts/test-python.sh builds the binary and
the wheel, and fetches the model, before running these."""
import json
import os
import pathlib
import subprocess

import pytest

import sluice

REPO = pathlib.Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m"


@pytest.fixture(scope="session")
def sluice_bin() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("SLUICE_BIN", REPO / "target" / "release" / "sluice"))
    assert path.is_file(), f"{path} is missing: build it with `cargo build --release` (scripts/test-python.sh does)"
    return path


@pytest.fixture(scope="session")
def engine() -> "sluice.Engine":
    return sluice.Engine(MODEL, threads=2, ctx=1024, max_batch=4)


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads((REPO / "tests" / "reference" / f"{MODEL}.json").read_text())


def run_json(sluice_bin, *args) -> dict:
    """`sluice run ... --json` as a dict (a failure shows its stderr)."""
    out = subprocess.run([str(sluice_bin), "run", "-m", MODEL, "--threads", "2", "--json", *args],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
