"""Installed as a wheel (not editable) in a fresh venv, `gramkd fit` works from an unrelated directory."""

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import gramkd

from conftest import FAST, only_run_dir, run_gramkd

REPO = Path(gramkd.__file__).resolve().parents[2]


def site_packages(venv: Path) -> Path:
    [path] = (venv / "lib").glob("python3*/site-packages")
    return path


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_fits_from_anywhere(tmp_path):
    pytest.importorskip("hatchling", reason="building the wheel without isolation needs hatchling in this venv")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    dist = tmp_path / "dist"
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(REPO)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = dist.glob("gramkd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gramkd/conf/fit.yaml" in names and "gramkd/conf/experiment/synthetic/teacher.yaml" in names
    assert "gramkd/cli.py" in names and not any(n.startswith(("tests/", "src/", "conf/")) for n in names)

    # A fresh venv that sees this venv's dependencies (a plain path line: the editable install's
    # own .pth file there is not processed, so gramkd itself can only come from the wheel).
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    fresh_python, fresh_site = venv / "bin" / "python", site_packages(venv)
    (fresh_site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([*pip, "--python", str(fresh_python), "install", "--no-deps", str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert (fresh_site / "gramkd" / "conf" / "fit.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(fresh_python), "-c", "import gramkd, gramkd.config; print(gramkd.__file__); print(gramkd.config.config_dir())"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert where.returncode == 0, where.stderr
    module_file, conf = map(Path, where.stdout.split())
    assert module_file.is_relative_to(fresh_site) and conf == fresh_site / "gramkd" / "conf"

    result = run_gramkd(["fit", "experiment=synthetic/teacher", *FAST], elsewhere, executable=venv / "bin" / "gramkd")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((only_run_dir(elsewhere / "logs", "synthetic/teacher") / "metrics.json").read_text())
    assert 0 <= metrics["test/acc"] <= 1
