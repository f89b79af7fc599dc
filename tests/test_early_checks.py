"""Options of the terms and the nets are checked before anything trains (a teacher included)."""

import pytest

from conftest import FAST, run_gramkd

DISTILL = ["fit", "experiment=synthetic/kd_gram", *FAST, "compare_with=[]"]


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "distill.gram.source=pixels",
            "distill.gram: gram.source='pixels' is not one of modality_features, prefusion_features, layer_features, modality_logits",
        ),
        ("distill.kd.weight=-1", "distill.kd: weight and warmup_epochs must be >= 0, got weight=-1, warmup_epochs=0"),
        ("net.fusion=sideways", "net: unknown fusion 'sideways'; choose one of: transformer, concat"),
    ],
)
def test_a_bad_option_stops_in_one_line_before_the_teacher_trains(tmp_path, override, message):
    result = run_gramkd([*DISTILL, override], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"gramkd: error: {message}"]
    cache = tmp_path / "logs" / "cache"
    assert not cache.exists() or not any(cache.glob("teacher*")), "nothing may train before the options are checked"
