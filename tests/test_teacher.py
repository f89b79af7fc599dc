"""Where the teacher comes from: checkpoints (safely loaded, checked) and the run cache (once, shared)."""

import json
import subprocess

import pytest
import torch

from gramkd.errors import GramkdError
from gramkd.nets import MultimodalNet
from gramkd.teacher import load_weights as load_teacher

from conftest import FAST, GRAMKD, only_run_dir, run_gramkd

MODALITIES = {"a": (6,), "b": (4,)}


def teacher_net(width=16, modalities=MODALITIES):
    torch.manual_seed(0)
    return MultimodalNet(modalities, 3, width=width, depth=1, heads=2)


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_loads_a_plain_state_dict_and_a_checkpoint_layout(tmp_path):
    source = teacher_net()
    torch.save(source.state_dict(), tmp_path / "plain.pt")
    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in source.state_dict().items()}, "gramkd": {"net": source.config}}, tmp_path / "ckpt.pt"
    )
    for name in ("plain.pt", "ckpt.pt"):
        target = MultimodalNet(MODALITIES, 3, width=16, depth=1, heads=2)
        assert not same_weights(source, target)
        assert same_weights(source, load_teacher(tmp_path / name, target))


def test_refuses_another_architecture_naming_the_mismatch(tmp_path):
    torch.save(teacher_net(width=16).state_dict(), tmp_path / "t.pt")
    with pytest.raises(GramkdError, match=r"t.pt does not match the configured teacher net: .*size mismatch"):
        load_teacher(tmp_path / "t.pt", teacher_net(width=32))


def test_refuses_a_teacher_of_other_modalities(tmp_path):
    other = teacher_net(modalities={"a": (6,), "c": (4,)})
    torch.save({"state_dict": {f"net.{k}": v for k, v in other.state_dict().items()}, "gramkd": {"net": other.config}}, tmp_path / "t.pt")
    with pytest.raises(GramkdError, match=r"trained on modalities \['a', 'c'\], but the data has \['a', 'b'\]"):
        load_teacher(tmp_path / "t.pt", teacher_net())


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_refuses_a_pickle_with_code_and_a_missing_or_corrupt_file(tmp_path):
    torch.save({"state_dict": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(GramkdError, match=r"cannot load teacher checkpoint .*evil.pt safely \(weights_only=True\)"):
        load_teacher(tmp_path / "evil.pt", teacher_net())
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(GramkdError, match="cannot load teacher checkpoint"):
        load_teacher(tmp_path / "corrupt.pt", teacher_net())
    with pytest.raises(GramkdError, match="does not exist"):
        load_teacher(tmp_path / "absent.pt", teacher_net())


# ---- the cache: concurrent jobs train one teacher; later jobs reuse it -------------------------

DISTILL = ["fit", "experiment=synthetic/kd_gram", *FAST, "compare_with=[]", "teacher.overrides=['trainer.max_epochs=3']"]


@pytest.fixture(scope="module")
def two_concurrent_jobs(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("concurrent")
    env_cmd = [str(GRAMKD), *DISTILL]
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAMKD_", "HYDRA_"))}
    env.update(WANDB_MODE="offline", GRAMKD_LOG_DIR=str(cwd / "logs"), OMP_NUM_THREADS="1")
    jobs = [subprocess.Popen(env_cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [job.communicate(timeout=300) for job in jobs]
    return cwd, [job.returncode for job in jobs], [err for _, err in outputs]


def test_two_jobs_at_once_train_the_teacher_once_and_both_finish(two_concurrent_jobs):
    cwd, codes, stderrs = two_concurrent_jobs
    assert codes == [0, 0], stderrs
    joined = "\n".join(stderrs)
    assert joined.count("training teacher synthetic/teacher") == 1
    assert joined.count("reusing cached teacher synthetic/teacher") == 1
    assert joined.count("waiting for teacher synthetic/teacher: another job is training it") <= 1
    cache = cwd / "logs" / "cache"
    assert len(list(cache.glob("teacher_synthetic_teacher-*/net.pt"))) == 1
    assert not list(cache.glob(".*partial*"))  # nothing half-written left behind


def test_same_seed_gives_the_same_student_whether_the_teacher_was_cached_or_not(two_concurrent_jobs):
    cwd, _, _ = two_concurrent_jobs
    runs = sorted((cwd / "logs" / "synthetic" / "kd_gram" / "runs").iterdir())
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    for m in metrics:
        m.pop("wall_time_s")
    assert len(metrics) == 2 and metrics[0] == metrics[1]


def test_a_later_job_reuses_the_cache_and_gramkd_test_evaluates_the_student(two_concurrent_jobs, tmp_path):
    cwd, _, _ = two_concurrent_jobs
    later = run_gramkd([*DISTILL, "seed=1"], cwd)
    assert later.returncode == 0, later.stderr[-2000:]
    assert "reusing cached teacher synthetic/teacher" in later.stderr and "training teacher" not in later.stderr
    run = sorted((cwd / "logs" / "synthetic" / "kd_gram" / "runs").iterdir())[-1]
    fitted = json.loads((run / "metrics.json").read_text())
    [best] = (run / "checkpoints").glob("epoch*.ckpt")
    tested = run_gramkd(["test", f"ckpt_path={best}"], cwd)
    assert tested.returncode == 0, tested.stderr[-2000:]
    test_run = only_run_dir(cwd / "logs", "test")
    evaluated = json.loads((test_run / "metrics.json").read_text())
    assert evaluated["test/acc"] == pytest.approx(fitted["test/acc"], abs=1e-6)


def test_a_missing_teacher_checkpoint_is_one_line_and_exit_2(tmp_path):
    result = run_gramkd([*DISTILL, f"teacher.ckpt_path={tmp_path / 'nope.pt'}"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"gramkd: error: teacher checkpoint {tmp_path / 'nope.pt'} does not exist (teacher.ckpt_path); set it to null to train the teacher"
    ]


def test_a_student_trains_the_same_whether_its_teacher_was_trained_or_reused(compose_fit, tmp_path):
    """Training the teacher (a cache miss) must leave the student's random numbers (dropout) alone."""
    from gramkd.train import train_and_test

    overrides = [*DISTILL[1:], "net.dropout=0.3", "trainer.max_epochs=2"]
    trained, _, _ = train_and_test(compose_fit(overrides, tmp_path / "first"))
    cfg = compose_fit(overrides, tmp_path / "second")
    cfg.paths.cache_dir = str(tmp_path / "first" / "logs" / "cache")  # the first run's cache: the teacher is reused
    reused, _, _ = train_and_test(cfg)
    for key in ("train/loss", "val/loss", "test/acc"):
        assert reused[key] == trained[key], key
