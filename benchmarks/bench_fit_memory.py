"""Item 5a: peak memory (and wall time) of `make fit`, i.e. `gramkd fit experiment=mfeat/kd_gram`.

Runs the console script as a child process in a temporary folder (GRAMKD_LOG_DIR there, so the
run cache starts empty and nothing is written into the repository), twice:
  cold  the cache is empty: trains the teacher, the scratch student (compare_with) and the
        distilled student, each tested, in one process — what `make fit` does the first time;
  warm  the same command again: teacher and scratch student come from the cache.
Peak RSS is the child's ru_maxrss (os.wait4, which covers any processes it waited for).

    python benchmarks/bench_fit_memory.py
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, load  # noqa: E402

GRAMKD = Path(sys.executable).parent / "gramkd"
COMMAND = ["fit", "experiment=mfeat/kd_gram"]


def run(workdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAMKD_", "HYDRA_"))}
    env.update(WANDB_MODE="offline", GRAMKD_LOG_DIR=str(workdir / "logs"))
    env.setdefault("OMP_NUM_THREADS", "1")
    log = open(workdir / f"fit-{time.monotonic_ns()}.log", "w")
    started = time.perf_counter()
    child = subprocess.Popen([str(GRAMKD), *COMMAND], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    log.close()
    if child.returncode != 0:
        raise SystemExit(f"gramkd {' '.join(COMMAND)} failed ({child.returncode}):\n{Path(log.name).read_text()[-3000:]}")
    runs = sorted((workdir / "logs" / "mfeat" / "kd_gram" / "runs").iterdir())
    metrics = json.loads((runs[-1] / "metrics.json").read_text())
    return {
        "peak_rss_mb": usage.ru_maxrss / 1024,  # kilobytes on Linux
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "test_acc": metrics.get("test/acc"),
        "distill_wall_s": metrics.get("wall_time_s"),
    }


def main() -> None:
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="gramkd-bench-fit-") as tmp:
        cold = run(Path(tmp))
        warm = run(Path(tmp))
    emit(
        {
            "item": "fit_memory",
            "command": "gramkd " + " ".join(COMMAND),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "1"),
            "cold": cold,
            "warm": warm,
            "load_before": load_before,
            "load_after": load(),
        }
    )


if __name__ == "__main__":
    main()
