"""The per-step finiteness check reads one sum; terms that are finite but overflow that sum go on."""

from types import SimpleNamespace

import pytest
import torch

from gramkd.data import SyntheticDataModule
from gramkd.errors import GramkdError
from gramkd.modules import ClassifierModule
from gramkd.nets import MultimodalNet


def module_with_trainer(tmp_path, saved: list) -> ClassifierModule:
    data = SyntheticDataModule(num_samples=40)
    module = ClassifierModule(MultimodalNet(data.modalities, data.num_classes, width=8), optimizer=torch.optim.Adam)
    module._trainer = SimpleNamespace(  # what the check reads of a one-process trainer
        default_root_dir=str(tmp_path),
        save_checkpoint=saved.append,
        strategy=SimpleNamespace(all_gather=lambda values: values),
        current_epoch=2,
        global_step=7,
    )
    return module


def test_finite_terms_whose_sum_overflows_do_not_stop_training(tmp_path):
    saved = []
    big = torch.tensor(3e38)  # float32: finite, but 3e38 + 3e38 is inf
    assert not torch.isfinite(big + big)
    terms = {"ce": big, "kd": big, "gram": torch.tensor(1.0)}
    stacked = torch.stack([*terms.values(), big + big])  # the total after them is inf: the terms alone are checked
    module_with_trainer(tmp_path, saved).stop_if_not_finite(terms, stacked)
    assert saved == []


@pytest.mark.parametrize(
    "kd, gram, named, value",
    [(float("inf"), float("-inf"), "kd", "inf"), (1.0, float("nan"), "gram", "nan"), (float("-inf"), 2.0, "kd", "-inf")],
)
def test_a_non_finite_term_stops_naming_the_first_one_after_saving(tmp_path, kd, gram, named, value):
    saved = []
    terms = {"ce": torch.tensor(0.5), "kd": torch.tensor(kd), "gram": torch.tensor(gram)}
    stacked = torch.stack([*terms.values(), torch.tensor(9.0)])  # as a step passes it: the terms, then the total
    with pytest.raises(GramkdError, match=rf"epoch 2, step 7: loss term '{named}' became {value};"):
        module_with_trainer(tmp_path, saved).stop_if_not_finite(terms, stacked)
    assert saved == [tmp_path / "checkpoints" / "last_good.ckpt"]
