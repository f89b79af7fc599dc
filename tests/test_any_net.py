"""Any nn.Module that honours the contract is a teacher or a student: user classes, end to end."""

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from gramkd.errors import GramkdError
from gramkd.train import train_and_test

from conftest import FAST, run_gramkd

HELPERS = Path(__file__).parent / "helpers"
STUDENT = {"_target_": "user_nets.MeanFusionNet", "width": 8}
TEACHER = {"_target_": "user_nets.GatedTeacherNet", "width": 32}


def with_net(cfg, node):
    with open_dict(cfg):
        cfg.net = OmegaConf.create(node)
    return cfg


@pytest.fixture(scope="module")
def user_runs(tmp_path_factory):
    """A user teacher trained by gramkd, then a user student of another class distilled from its checkpoint."""
    from conftest import compose_config

    sys_path = str(HELPERS)
    import sys

    sys.path.insert(0, sys_path)
    out = tmp_path_factory.mktemp("user")
    try:
        teacher_cfg = with_net(
            compose_config("fit", ["experiment=synthetic/teacher", *FAST, "trainer.max_epochs=2"], out / "teacher"), TEACHER
        )
        _, _, teacher_trainer = train_and_test(teacher_cfg)
        teacher_ckpt = teacher_trainer.checkpoint_callback.best_model_path
        student_cfg = compose_config(
            "fit", ["experiment=synthetic/kd_gram", *FAST, "compare_with=[]", f"teacher.ckpt_path={teacher_ckpt}"], out / "student"
        )
        metrics, module, trainer = train_and_test(with_net(student_cfg, STUDENT))
    finally:
        sys.path.remove(sys_path)
    return out, teacher_ckpt, metrics, module, trainer


def test_user_nets_distil_and_the_checkpoint_records_the_student_class(user_runs):
    _, _, metrics, module, trainer = user_runs
    assert type(module.net).__name__ == "MeanFusionNet" and type(module.teacher).__name__ == "GatedTeacherNet"
    assert metrics["params"] == sum(p.numel() for p in module.net.parameters())
    assert {"train/kd", "train/gram", "test/acc", "test/agreement"} <= set(metrics) | {k for k in trainer.logged_metrics}
    checkpoint = torch.load(trainer.checkpoint_callback.best_model_path, map_location="cpu", weights_only=True)
    assert checkpoint["gramkd"]["net"]["_target_"] == "user_nets.MeanFusionNet"
    assert not any(k.startswith("teacher") for k in checkpoint["state_dict"])


def test_the_teacher_is_the_user_checkpoint_rebuilt_from_its_recorded_class(user_runs):
    _, teacher_ckpt, _, module, _ = user_runs
    saved = torch.load(teacher_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    for name, value in module.teacher.state_dict().items():
        assert torch.equal(value, saved[f"net.{name}"]), name


def test_gramkd_test_reproduces_the_user_students_test_accuracy(user_runs, tmp_path):
    _, _, metrics, _, trainer = user_runs
    best = trainer.checkpoint_callback.best_model_path
    result = run_gramkd(
        ["test", f"ckpt_path={best}", "trainer.enable_progress_bar=false"], tmp_path, extra_env={"PYTHONPATH": str(HELPERS)}
    )
    assert result.returncode == 0, result.stderr
    [written] = (tmp_path / "logs").rglob("metrics.json")
    assert json.loads(written.read_text())["test/acc"] == metrics["test/acc"]


def test_a_net_that_breaks_the_contract_is_refused_in_one_line(compose_fit, monkeypatch):
    monkeypatch.syspath_prepend(str(HELPERS))
    cfg = with_net(compose_fit(["experiment=synthetic/student_scratch", *FAST]), {"_target_": "user_nets.ForgetfulNet"})
    with pytest.raises(GramkdError, match=r"^the net \(ForgetfulNet\) lacks modality_names, num_classes: see gramkd.nets.contract"):
        train_and_test(cfg)
    cfg = with_net(cfg, {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 2})
    with pytest.raises(GramkdError, match=r"^cannot build the net \(torch.nn.Linear\): .*unexpected keyword argument 'modalities'"):
        train_and_test(cfg)
