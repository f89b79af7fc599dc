"""The notebooks in notebooks/ execute (tiny settings) and are stored without outputs."""

import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from gramkd.report import report

from conftest import fabricated_metrics, write_job

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["quickstart.ipynb", "results.ipynb"]
TIME_LIMIT_S = 60


def execute(name: str) -> tuple[nbformat.NotebookNode, float]:
    """Run a notebook in a fresh kernel of this interpreter, from notebooks/ (as Jupyter would)."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(notebook, timeout=TIME_LIMIT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    started = time.perf_counter()
    client.execute()
    return notebook, time.perf_counter() - started


def outputs(notebook: nbformat.NotebookNode, kind: str) -> list:
    return [
        o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs if kind in o.get("data", {}) or o.get("name") == kind
    ]


def text_of(notebook: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in outputs(notebook, "stdout"))


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_are_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code), f"clear the outputs of {name} before committing"


@pytest.mark.slow
def test_quickstart_trains_distils_and_shows_gram_heatmaps(monkeypatch):
    monkeypatch.setenv("GRAMKD_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook, seconds = execute("quickstart.ipynb")
    assert seconds < TIME_LIMIT_S
    assert len(outputs(notebook, "image/png")) == 2  # teacher vs kd_gram student, teacher vs scratch student
    text = text_of(notebook)
    for name in ("teacher", "scratch student", "kd_gram student"):
        assert f"{name} " in text and "accuracy with one modality dropped" in text


@pytest.mark.slow
def test_results_notebook_plots_a_report(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    sweep = tmp_path / "multiruns" / "0"
    for job, (option, seed) in enumerate((o, s) for o in ("none", "kd", "kd_gram") for s in range(3)):
        write_job(
            sweep / str(job),
            [f"distill={option}", f"seed={seed}"],
            {"seed": seed, "data": {"views": ["fou", "pix", "mor"]}},
            fabricated_metrics(rng),
        )
    report([sweep], show=False)
    monkeypatch.setenv("GRAMKD_RESULTS_CSV", str(sweep / "results.csv"))
    notebook, seconds = execute("results.ipynb")
    assert seconds < TIME_LIMIT_S
    assert len(outputs(notebook, "image/png")) == 2
    text = text_of(notebook)
    assert f"{sweep / 'results.csv'}: 3 methods, n = 3, 3, 3" in text
    assert all(f"{m} " in text for m in ("teacher", "scratch", "kd", "kd_gram"))
