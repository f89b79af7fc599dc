"""`keep_freed_memory`: a CPU training step no longer page-faults its freed memory back in."""

import json
import os
import subprocess
import sys

import pytest

from gramkd import train
from gramkd.allocator import has_glibc

pytestmark = pytest.mark.skipif(not has_glibc(), reason="mallopt is glibc's")

# An MLP's training steps (2 MiB activations, AdamW): the median page faults of a step, over 20 steps after 5.
STEPS = """
import json, resource, sys
import torch
from gramkd.allocator import keep_freed_memory
torch.set_num_threads(1)
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.GELU(), torch.nn.Linear(512, 512), torch.nn.GELU(), torch.nn.Linear(512, 10))
optimizer = torch.optim.AdamW(net.parameters())
x, y = torch.randn(1024, 64), torch.randint(0, 10, (1024,))
def step():
    loss = torch.nn.functional.cross_entropy(net(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
for _ in range(5):
    step()
faults = []
for _ in range(20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "faults_per_step": sorted(faults)[10]}))
"""


def steps(mode: str, **env) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", STEPS, mode], env={**environment, **env}, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def glibc_default() -> float:
    faults = steps("default")["faults_per_step"]
    if faults < 100:
        pytest.skip(f"this glibc keeps a step's memory by itself ({faults:.0f} page faults a step)")
    return faults


def test_training_steps_stop_faulting_their_memory_back_in(glibc_default):
    kept = steps("keep")
    assert kept["applied"] is True
    assert kept["faults_per_step"] < 0.01 * glibc_default, (kept, glibc_default)


def test_the_users_own_malloc_settings_stand(glibc_default):
    for env in ({"MALLOC_TRIM_THRESHOLD_": "131072"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}):
        mine = steps("keep", **env)
        assert mine["applied"] is False, env
        assert mine["faults_per_step"] > 0.1 * glibc_default, (env, mine, glibc_default)


@pytest.mark.parametrize("keep", [True, False])
def test_fit_and_test_keep_freed_memory_as_configured(tmp_path, monkeypatch, keep):
    from conftest import compose_config

    calls = []
    monkeypatch.setattr(train, "keep_freed_memory", lambda: calls.append(True))
    train.prepare_process(compose_config("fit", [f"keep_freed_memory={keep}"], tmp_path))
    train.prepare_process(compose_config("test", [f"keep_freed_memory={keep}", "ckpt_path=x.ckpt"], tmp_path))
    assert calls == ([True, True] if keep else [])
