"""The tests' warm `gramkd` (warm_gramkd.py) answers as a process started from nothing does."""

import os
import subprocess

import pytest
from warm_gramkd import WarmGramkd

from conftest import FAST, GRAMKD, gramkd_env, run_gramkd

pytestmark = pytest.mark.skipif(os.environ.get("GRAMKD_TEST_COLD_START") == "1", reason="every run starts cold (GRAMKD_TEST_COLD_START=1)")


@pytest.fixture(scope="module")
def warm():
    """A server of this module's own: the suite's may have been started with other settings."""
    server = WarmGramkd()
    yield server
    server.close()


def request(tmp_path, args: list[str], **env) -> tuple[list[str], dict]:
    return [str(GRAMKD), *args], gramkd_env(tmp_path, env)


def test_a_warm_run_answers_as_a_cold_one(warm, tmp_path):
    args = ["fit", "experiment=synthetic/teacher", "net.fusion=sideways", *FAST]
    argv, env = request(tmp_path, args)
    served = warm.run(argv, tmp_path, env, timeout=120)
    assert served is not None, "the warm server did not serve"
    cold = run_gramkd(args, tmp_path, cold=True)
    assert (served.returncode, served.stdout, served.stderr) == (cold.returncode, cold.stdout, cold.stderr)
    assert served.returncode == 2 and served.stderr == "gramkd: error: net: unknown fusion 'sideways'; choose one of: transformer, concat\n"


def test_a_run_past_its_time_limit_is_stopped_and_the_server_serves_on(warm, tmp_path):
    argv, env = request(tmp_path, ["fit", "experiment=synthetic/teacher", *FAST, "trainer.max_epochs=1000"])
    with pytest.raises(subprocess.TimeoutExpired):
        warm.run(argv, tmp_path, env, timeout=5)
    argv, env = request(tmp_path, ["--help"])
    assert warm.run(argv, tmp_path, env, timeout=60).stdout.startswith("usage: gramkd COMMAND")


@pytest.mark.parametrize("setting", [{"OMP_NUM_THREADS": "2"}, {"MALLOC_ARENA_MAX": "2"}, {"PYTHONPATH": "/elsewhere"}])
def test_a_run_whose_start_up_settings_differ_is_left_to_a_fresh_process(setting, warm, tmp_path):
    argv, env = request(tmp_path, ["--help"])
    assert warm.run(argv, tmp_path, env, timeout=60) is not None  # the server runs, with the usual settings
    argv, env = request(tmp_path, ["--help"], **setting)
    assert warm.run(argv, tmp_path, env, timeout=60) is None
