"""Nothing is lost or overwritten: NaN stops with a checkpoint, runs never write over runs."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import torch
from test_scale_out import HELPERS

from conftest import FAST, run_gramkd

DISTILL = ["fit", "experiment=synthetic/kd_gram", *FAST, "compare_with=[]", "teacher.overrides=['trainer.max_epochs=1']"]


def test_a_nan_term_stops_training_naming_it_after_saving_the_last_good_state(tmp_path):
    args = [*DISTILL, "trainer.max_epochs=3", "+distill.unstable._target_=nan_term.NaNAfterSteps", "+distill.unstable.steps=3"]
    result = run_gramkd(args, tmp_path, extra_env={"PYTHONPATH": str(HELPERS)})
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("gramkd: error: training stopped at epoch 1, step 3: loss term 'unstable' became nan;")
    [run] = (tmp_path / "logs" / "synthetic" / "kd_gram" / "runs").iterdir()
    saved = run / "checkpoints" / "last_good.ckpt"
    assert f"the last good state is saved at {saved}" in last
    checkpoint = torch.load(saved, weights_only=True)
    assert checkpoint["global_step"] == 3 and checkpoint["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
    assert not (run / "metrics.json").exists()


def test_an_existing_run_dir_is_never_written_over(tmp_path):
    first = run_gramkd([*DISTILL, f"hydra.run.dir={tmp_path / 'mine'}"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = {p: p.read_bytes() for p in (tmp_path / "mine").rglob("*") if p.is_file()}
    again = run_gramkd([*DISTILL, f"hydra.run.dir={tmp_path / 'mine'}", "seed=1"], tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"gramkd: error: {tmp_path / 'mine'} already holds a run; pick another hydra.run.dir (or resume it with ckpt_path=last)"
    ]
    assert {p: p.read_bytes() for p in (tmp_path / "mine").rglob("*") if p.is_file()} == before
    assert json.loads((tmp_path / "mine" / "metrics.json").read_text())["params"] > 0


def test_a_checkpoint_with_pickled_code_is_refused_by_gramkd_test(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("never",))

    torch.save({"gramkd": {}, "state_dict": {"net.x": Payload()}}, tmp_path / "evil.ckpt")
    result = run_gramkd(["test", f"ckpt_path={tmp_path / 'evil.ckpt'}"], tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"gramkd: error: cannot load checkpoint {tmp_path / 'evil.ckpt'} safely (weights_only=True)")


def run_until_exit_or_kill(args: list[str], cwd, timeout: float) -> tuple[int | None, str, float]:
    """(exit code, stderr, seconds) of a command and every process it starts; on timeout all of
    them are killed and the code is None."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HELPERS)}
    start = time.monotonic()
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=timeout)  # returns once every rank has closed stderr, i.e. exited
        code = process.returncode
    except subprocess.TimeoutExpired:
        code, stderr = None, ""
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    if code is None:
        stderr = process.communicate()[1]
    return code, stderr, time.monotonic() - start


def test_a_nan_on_one_ddp_rank_stops_every_rank_naming_the_term_instead_of_hanging(tmp_path):
    timeout = 120
    code, stderr, seconds = run_until_exit_or_kill([sys.executable, str(HELPERS / "nan_on_one_rank.py"), str(tmp_path)], tmp_path, timeout)
    (tmp_path / "stderr.txt").write_text(stderr)  # both ranks' logs, for a failure below
    assert code is not None, f"the 2-process job hung for {timeout} s and was killed; its logs: {tmp_path / 'stderr.txt'}"
    assert seconds < timeout / 2  # ~12 s on two idle cores
    saved = tmp_path / "checkpoints" / "last_good.ckpt"
    message = (
        "training stopped at epoch 1, step 2: loss term 'unstable' became nan on rank 1; "  # two steps per epoch
        f"the last good state is saved at {saved} (lower the learning rate or that term's weight, then resume from it)"
    )
    stopped = {path.name: path.read_text() for path in tmp_path.glob("stopped_rank*.txt")}
    assert stopped == {"stopped_rank0.txt": message, "stopped_rank1.txt": message}, f"see {tmp_path / 'stderr.txt'}"
    assert code == 2 and (tmp_path / "exit_code_rank1.txt").read_text() == "2"
    checkpoint = torch.load(saved, weights_only=True)
    assert checkpoint["global_step"] == 2 and checkpoint["epoch"] == 1
