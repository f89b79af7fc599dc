"""`gramkd report`: aggregation of fabricated sweeps with known numbers, its files, its refusals."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from gramkd.errors import GramkdError
from gramkd.report import collect, print_metrics, report
from gramkd.report.markdown import markdown
from gramkd.report.stats import paired_difference

from conftest import FABRICATED_FIGURES as FIGURES
from conftest import FABRICATED_MODALITIES as MODALITIES
from conftest import FABRICATED_TEACHER as TEACHER
from conftest import FAST, fabricated_metrics, run_gramkd, write_job

METHODS = {"none": "scratch", "kd": "kd", "gram": "gram", "kd_gram": "kd_gram"}  # distill option -> row label
SEEDS = range(5)


@pytest.fixture
def sweep(tmp_path):
    """A multirun folder as Hydra writes it: 4 methods × 5 seeds finished, plus one failed job
    (msd, seed 0: no metrics.json). Returns (folder, {label: {seed: metrics}})."""
    folder = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    rng = np.random.default_rng(42)
    known: dict[str, dict[int, dict]] = {}
    job = 0
    for option, label in METHODS.items():
        for seed in SEEDS:
            metrics = fabricated_metrics(rng)
            known.setdefault(label, {})[seed] = metrics
            config = {"name": "mfeat/ablation", "seed": seed, "data": {"views": MODALITIES}}
            write_job(folder / str(job), ["experiment=mfeat/ablation", f"distill={option}", f"seed={seed}"], config, metrics)
            job += 1
    write_job(folder / str(job), ["experiment=mfeat/ablation", "distill=msd", "seed=0"], {"name": "mfeat/ablation", "seed": 0}, None)
    (folder / "multirun.yaml").write_text("hydra: {}\n")
    return folder, known


def read_csv(path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row["method"]: row for row in csv.DictReader(handle)}


def test_one_row_per_method_with_the_mean_and_std_of_its_jobs(sweep):
    folder, known = sweep
    report([folder], show=False)
    rows = read_csv(folder / "results.csv")
    assert list(rows) == ["teacher", "scratch", "kd", "gram", "kd_gram"]  # msd never finished: no row
    for label, by_seed in known.items():
        assert int(rows[label]["n"]) == 5
        for figure in FIGURES:
            values = np.array([by_seed[s][figure] for s in SEEDS])
            assert float(rows[label][f"{figure}_mean"]) == pytest.approx(values.mean(), rel=1e-12, abs=0)
            assert float(rows[label][f"{figure}_std"]) == pytest.approx(values.std(ddof=1), rel=1e-12, abs=0)


def test_teacher_row_is_the_teacher_once(sweep):
    folder, _ = sweep
    report([folder], show=False)
    rows = read_csv(folder / "results.csv")
    teacher = rows["teacher"]
    assert int(teacher["n"]) == 1  # one teacher shared by the 20 jobs
    for figure, value in TEACHER.items():
        assert float(teacher[f"{figure}_mean"]) == value
    assert teacher["test/agreement_mean"] == "" and teacher["acc_diff_vs_kd"] == "" and teacher["gap_recovered"] == ""


def test_paired_difference_from_kd_and_its_interval_by_hand(sweep):
    folder, known = sweep
    result = report([folder], show=False)
    rows = read_csv(folder / "results.csv")
    for label in ("scratch", "gram", "kd_gram"):
        differences = [known[label][s]["test/acc"] - known["kd"][s]["test/acc"] for s in SEEDS]
        mean = sum(differences) / 5
        sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / 4)
        half = 2.7764451051977987 * sd / math.sqrt(5)  # t_{0.975, 4}
        assert float(rows[label]["acc_diff_vs_kd"]) == pytest.approx(mean, rel=1e-12)
        assert float(rows[label]["acc_diff_vs_kd_ci_low"]) == pytest.approx(mean - half, rel=1e-9)
        assert float(rows[label]["acc_diff_vs_kd_ci_high"]) == pytest.approx(mean + half, rel=1e-9)
        assert int(rows[label]["acc_diff_vs_kd_pairs"]) == 5
        assert result.row(label).diff.n == 5
    assert float(rows["kd"]["acc_diff_vs_kd"]) == 0.0 and float(rows["kd"]["acc_diff_vs_kd_ci_low"]) == 0.0


def test_gap_recovered_is_exact(sweep):
    folder, known = sweep
    report([folder], show=False)
    rows = read_csv(folder / "results.csv")
    scratch = sum(known["scratch"][s]["test/acc"] for s in SEEDS) / 5
    for label in ("kd", "gram", "kd_gram"):
        acc = sum(known[label][s]["test/acc"] for s in SEEDS) / 5
        assert float(rows[label]["gap_recovered"]) == pytest.approx((acc - scratch) / (TEACHER["test/acc"] - scratch), rel=1e-12)
    assert float(rows["scratch"]["gap_recovered"]) == 0.0


def test_markdown_table_missing_jobs_and_picture(sweep):
    folder, known = sweep
    report([folder], show=False)
    text = (folder / "results.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    methods = [line.split("|")[1].strip() for line in table]
    assert methods.count("kd_gram") == 2  # the main table and the robustness table
    kd_acc = np.array([known["kd"][s]["test/acc"] for s in SEEDS])
    assert f"| kd | 5 | {kd_acc.mean():.4f} ± {kd_acc.std(ddof=1):.4f} |" in text
    assert "(baseline)" in text
    missing = text.split("## Missing or failed jobs")[1]
    assert f"msd seed 0: no metrics.json in {folder / '20'}" in missing
    assert "msd seed 1: no job folder" in missing  # seeds the other methods ran
    assert (folder / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_folder_adds_seeds_for_some_methods_without_calling_the_rest_missing(sweep):
    folder, known = sweep
    more = folder.parent / "more-seeds"
    rng = np.random.default_rng(7)
    for job, (option, seed) in enumerate((o, s) for o in ("kd", "kd_gram") for s in (5, 6, 7)):
        known[METHODS[option]][seed] = fabricated_metrics(rng)
        config = {"name": "mfeat/more_seeds", "seed": seed, "data": {"views": MODALITIES}}
        write_job(
            more / str(job), ["experiment=mfeat/more_seeds", f"distill={option}", f"seed={seed}"], config, known[METHODS[option]][seed]
        )
    (more / "multirun.yaml").write_text("hydra: {}\n")
    result = collect([folder, more])
    assert result.row("kd").n == 8 and result.row("scratch").n == 5
    assert result.row("kd_gram").diff.n == 8 and result.row("gram").diff.n == 5  # paired over the seeds both have
    differences = [known["kd_gram"][s]["test/acc"] - known["kd"][s]["test/acc"] for s in range(8)]
    assert result.row("kd_gram").diff.mean == pytest.approx(sum(differences) / 8, rel=1e-12)
    assert not [line for line in result.missing if "seed 5" in line or "seed 6" in line or "seed 7" in line]
    assert "msd seed 1: no job folder (never started)" in result.missing  # within the first sweep


def test_baseline_option_compares_every_row_with_the_named_method(sweep, tmp_path):
    from gramkd.cli import run_report

    folder, known = sweep
    run_report([str(folder), "--out", str(tmp_path), "--baseline", "gram"])
    rows = read_csv(tmp_path / "results.csv")
    differences = [known["kd_gram"][s]["test/acc"] - known["gram"][s]["test/acc"] for s in SEEDS]
    assert float(rows["kd_gram"]["acc_diff_vs_gram"]) == pytest.approx(sum(differences) / 5, rel=1e-12)
    assert "(baseline)" in next(line for line in (tmp_path / "results.md").read_text().splitlines() if line.startswith("| gram |"))
    with pytest.raises(
        GramkdError, match=r"no finished job of method 'kd \(gram weight 0\)' to compare with; the methods are: gram, kd, kd_gram, scratch"
    ):
        collect([folder], baseline="kd (gram weight 0)")


def test_labels_come_from_the_method_key_or_the_varying_overrides(tmp_path):
    rng = np.random.default_rng(0)
    for job, (weight, seed) in enumerate([(w, s) for w in ("0.1", "1") for s in (0, 1)]):
        overrides = ["experiment=mfeat/kd_gram", f"distill.gram.weight={weight}", f"seed={seed}"]
        write_job(tmp_path / "sweep" / str(job), overrides, {"name": "mfeat/kd_gram", "seed": seed}, fabricated_metrics(rng))
    write_job(tmp_path / "other" / "0", ["seed=0"], {"name": "x", "seed": 0, "method": "mine"}, fabricated_metrics(rng))
    result = collect([tmp_path / "sweep", tmp_path / "other"])
    assert [r.method for r in result.rows] == ["teacher", "distill.gram.weight=0.1", "distill.gram.weight=1", "mine"]
    assert [r.n for r in result.rows[1:]] == [2, 2, 1]
    assert all(r.diff is None and r.gap_recovered is None for r in result.rows)  # no kd, no scratch: nothing to compare with


def test_report_writes_where_asked(sweep, tmp_path):
    folder, _ = sweep
    report([folder], out=tmp_path / "elsewhere", show=False)
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == ["results.csv", "results.md", "results.png"]
    assert not (folder / "results.md").exists()


def test_no_finished_job_is_refused(tmp_path):
    write_job(tmp_path / "0", ["distill=kd", "seed=0"], {"seed": 0}, None)
    with pytest.raises(GramkdError, match=r"none of the 1 jobs .* has finished"):
        collect([tmp_path])


def test_paired_interval_is_scipys_paired_t_interval():
    stats = pytest.importorskip("scipy.stats")
    ours = {0: 0.81, 1: 0.78, 2: 0.9, 3: 0.7, "only ours": 0.5}
    theirs = {0: 0.8, 1: 0.75, 2: 0.84, 3: 0.71, "only theirs": 0.1}
    diff = paired_difference(ours, theirs)
    seeds = [0, 1, 2, 3]
    expected = stats.ttest_rel([ours[s] for s in seeds], [theirs[s] for s in seeds]).confidence_interval(0.95)
    assert diff.n == 4 and diff.mean == pytest.approx(np.mean([ours[s] - theirs[s] for s in seeds]), rel=1e-12)
    assert (diff.low, diff.high) == (pytest.approx(expected.low, rel=1e-10), pytest.approx(expected.high, rel=1e-10))
    single = paired_difference({0: 0.9}, {0: 0.7})
    assert (single.mean, single.low, single.high, single.n) == (pytest.approx(0.2), None, None, 1)
    assert paired_difference({0: 0.9}, {1: 0.7}) is None


def robustness_header(folder) -> list[str]:
    text = markdown(collect([folder]))
    header = text.split("## Robustness")[1].splitlines()[2]
    return [cell.strip() for cell in header.strip("|").split("|")]


@pytest.mark.parametrize("where", ["metrics", "config"])
def test_dropped_modality_columns_follow_the_runs_modality_order(where, tmp_path):
    """metrics.json's `modalities` wins; a metrics file from before that key falls back to the data config."""
    order = ["zer", "fou", "kar"]  # not sorted: the order must come from the run
    for seed in range(2):
        metrics = {"test/acc": 0.8, **{f"test/drop_{m}/acc": 0.5 for m in sorted(order)}, "test/drop_mean/acc": 0.5}
        data = {"views": order} if where == "config" else {"views": ["kar", "zer", "fou"]}  # a stale config must not win
        if where == "metrics":
            metrics["modalities"] = order
        write_job(tmp_path / str(seed), ["distill=kd", f"seed={seed}"], {"seed": seed, "data": data}, metrics)
    assert robustness_header(tmp_path) == ["method", "all modalities", "drop zer", "drop fou", "drop kar", "mean"]


def test_jobs_are_read_in_the_order_hydra_numbered_them(tmp_path):
    """Job 2 before job 10 (not by string order): methods appear in the order the sweep ran them, scratch first."""
    rng = np.random.default_rng(1)
    methods = ["gram"] * 2 + ["kd"] * 8 + ["rkd"] * 2 + ["none"]  # jobs 0-12
    for job, method in enumerate(methods):
        write_job(tmp_path / str(job), [f"distill={method}", f"seed={job}"], {"seed": job}, fabricated_metrics(rng))
    assert [r.method for r in collect([tmp_path]).rows] == ["teacher", "scratch", "gram", "kd", "rkd"]


def test_an_unreadable_metrics_file_is_named(tmp_path):
    write_job(tmp_path / "0", ["distill=kd", "seed=0"], {"seed": 0}, None)
    (tmp_path / "0" / "metrics.json").write_text("{not json")
    with pytest.raises(GramkdError, match=rf"^{tmp_path / '0' / 'metrics.json'} is not valid JSON .*; delete it or rerun that job$"):
        collect([tmp_path])


def test_a_runs_figures_print_without_its_modality_names(capsys):
    metrics = {"test/acc": 0.5, "val/acc": 0.25, "params": 6002, "wall_time_s": 1.5, "modalities": ["fou", "pix"]}
    print_metrics("run", metrics)
    out = capsys.readouterr().out
    assert "params=6,002  wall_time_s=1.5000" in out and "modalities" not in out
    assert any(line.startswith("│ test  │ 0.5000") for line in out.splitlines()), out


def test_pictures_leave_the_users_matplotlib_backend_alone(sweep, tmp_path):
    """The report's plot, the confusion matrix and the Gram heatmap are drawn without choosing a
    backend: a notebook's (here MPLBACKEND=svg) is still in force after gramkd made its PNGs."""
    folder, _ = sweep
    script = f"""
import matplotlib, torch
from pathlib import Path
from gramkd.report import report
from gramkd.figures import confusion_matrix_figure
from gramkd.distill.heatmap import gram_heatmap_figure
report([{str(folder)!r}], show=False)
confusion_matrix_figure(torch.eye(3), "cm").savefig({str(tmp_path / "cm.png")!r})
gram_heatmap_figure(torch.eye(3), torch.eye(3) / 2, ["a", "b", "c"], "gram").savefig({str(tmp_path / "gram.png")!r})
print(matplotlib.get_backend())
"""
    env = {**os.environ, "MPLBACKEND": "svg", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "svg"
    for png in (folder / "results.png", tmp_path / "cm.png", tmp_path / "gram.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the console script -------------------------------------------------------------------


def test_cli_prints_the_tables_and_writes_the_files(sweep, tmp_path):
    folder, _ = sweep
    result = run_gramkd(["report", str(folder)], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for label in ("teacher", "scratch", "kd", "gram", "kd_gram"):
        assert any(line.startswith(f"│ {label} ") for line in lines), result.stdout
    assert "msd seed 0: no metrics.json" in result.stdout
    assert {p.name for p in folder.iterdir()} >= {"results.md", "results.csv", "results.png"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "{empty}"], "gramkd: error: no gramkd runs under {empty} "),
        (["report", "{empty}/nope"], "gramkd: error: {empty}/nope is not a folder"),
        (["report"], "gramkd: error: the following arguments are required: DIR"),
        (["report", "{empty}", "--bogus"], "gramkd: error: unrecognized arguments: --bogus"),
    ],
)
def test_cli_refuses_in_one_line(args, message, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_gramkd([a.replace("{empty}", str(empty)) for a in args], tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message.replace("{empty}", str(empty)))
    assert not list(empty.iterdir())  # nothing written


@pytest.mark.slow
def test_an_ablation_sweep_end_to_end(tmp_path):
    """`gramkd fit experiment=synthetic/ablation` (no -m: the experiment is a sweep), cut down to
    2 methods × 2 seeds, then `gramkd report` on its multirun folder: one cached teacher, every
    job with its robustness figures."""
    fit = run_gramkd(["fit", "experiment=synthetic/ablation", "distill=none,gram_logits", "seed=0,1", *FAST], tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    (sweep,) = (tmp_path / "logs" / "synthetic" / "ablation" / "multiruns").iterdir()
    assert len(list((tmp_path / "logs" / "cache").glob("teacher_synthetic_teacher-*/net.pt"))) == 1
    for job in sweep.glob("[0-9]*"):
        metrics = json.loads((job / "metrics.json").read_text())
        assert {f"test/drop_m{i}/acc" for i in range(4)} | {"test/drop_mean/acc", "test/agreement", "teacher/test/acc"} <= set(metrics)
    result = run_gramkd(["report", str(sweep)], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = read_csv(sweep / "results.csv")
    assert list(rows) == ["teacher", "scratch", "gram_logits"] and [rows[m]["n"] for m in ("scratch", "gram_logits")] == ["2", "2"]
    assert "no metrics.json" not in (sweep / "results.md").read_text()
