"""`benchmarks/gpu_vilt.py`, issue 13's prepared GPU check, run on the CPU at a tiny size: it has to
work the first time a session is lent a GPU, with its variants training alike."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--train-rows", "32", "--batch-size", "16", "--epochs", "2", "--repeats", "2", "--fits", "2", "--fit-epochs", "2"]


def test_the_gpu_script_runs_on_a_cpu_and_every_variant_trains_like_the_hand_loop(tmp_path):
    out = tmp_path / "gpu.md"
    command = [sys.executable, "benchmarks/gpu_vilt.py", "--device", "cpu", "--precision", "bf16-mixed", *TINY, "--out", str(out)]
    run = subprocess.run(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(out.with_suffix(".json").read_text())
    assert figures["loss_mismatch"] == []
    assert figures["epoch"]["losses_identical"] == {
        "hand": True,
        "bare": True,
        "distill": True,
        "cache_memory": True,
    }  # on a CPU, to the bit
    assert figures["epoch"]["steps_compared"] == 2 * 2
    for mode in ("online", "cached"):
        assert 0 < figures["gram"][mode]["term_ms"] < figures["gram"][mode]["step_ms"]
    page = out.read_text()
    assert "**Card:** none (CPU run)" in page and "`cpu`, `bf16-mixed`" in page
