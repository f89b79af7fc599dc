"""Nothing is lost or overwritten: NaN stops with a checkpoint, runs never write over runs."""

import json

import torch

from conftest import FAST, run_gramkd
from test_scale_out import HELPERS

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
