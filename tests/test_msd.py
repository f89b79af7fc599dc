"""MSD: weights by the networks' modality names, a modality absent from the batch does not dilute
the loss, weights that cannot form a mean are refused when the term is made."""

import numpy as np
import pytest
import torch

from gramkd.distill import ModalitySpecificDistillation
from gramkd.distill.step import DistillStep
from gramkd.nets import MultimodalOutput

NAMES = ["a", "b", "c"]
B, C, T = 6, 4, 2.0


class Module:
    """What a term sees of the DistillModule at setup."""

    modality_names = NAMES

    def register_term(self, term):
        pass


def step_of(present: torch.Tensor, seed: int = 0) -> DistillStep:
    """A step whose single-modality logits (in the networks' order a, b, c) are random, float64;
    the batch's dicts list the modalities in another order (c, a, b)."""
    g = torch.Generator().manual_seed(seed)
    student, teacher = (torch.randn(B, 3, C, generator=g, dtype=torch.float64) for _ in range(2))
    full = MultimodalOutput(torch.zeros(B, C), torch.zeros(B, 3, 1), present)
    batch = {"present": {n: present[:, NAMES.index(n)] for n in ("c", "a", "b")}}
    singles = {"student": MultimodalOutput(student, student, present), "teacher": MultimodalOutput(teacher, teacher, present)}
    return DistillStep(batch, full, full, _single_fns={k: (lambda v=v: v) for k, v in singles.items()})


def reference_kd(student, teacher, rows):
    """T² · KL(softmax(t/T) || softmax(s/T)), mean over `rows`; None without a row."""
    if not rows.any():
        return None
    s, t = student[rows].numpy() / T, teacher[rows].numpy() / T
    log_ps = s - np.log(np.exp(s).sum(-1, keepdims=True))
    log_pt = t - np.log(np.exp(t).sum(-1, keepdims=True))
    return T**2 * float((np.exp(log_pt) * (log_pt - log_ps)).sum(-1).mean())


def reference_msd(step, weights: dict) -> float:
    student, teacher = step.single_modality("student").logits, step.single_modality("teacher").logits
    terms = [(weights.get(n, 0.0), reference_kd(student[:, m], teacher[:, m], step.mask[:, m])) for m, n in enumerate(NAMES)]
    terms = [(w, kd) for w, kd in terms if kd is not None]  # modalities present somewhere in the batch
    return sum(w * kd for w, kd in terms) / sum(w for w, _ in terms)


def msd(**kwargs) -> ModalitySpecificDistillation:
    term = ModalitySpecificDistillation(temperature=T, **kwargs)
    term.setup(None, Module(), "fit")
    return term


@pytest.mark.parametrize("weights", [None, {"a": 3.0, "c": 1.0}, {"b": 2.0, "c": 0.5}])
def test_weights_follow_the_networks_modality_names_not_the_batch_dicts_order(weights):
    present = torch.ones(B, 3, dtype=torch.bool)
    present[[1, 4], 1] = False
    step = step_of(present)
    expected = reference_msd(step, weights or dict.fromkeys(NAMES, 1.0))
    assert msd(modality_weights=weights).loss(step).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("weights", [None, {"a": 1.0, "b": 5.0}])
def test_a_modality_absent_from_the_whole_batch_does_not_dilute_the_loss(weights):
    present = torch.ones(B, 3, dtype=torch.bool)
    present[:, 1] = False  # no sample has b
    step = step_of(present, seed=1)
    loss = msd(modality_weights=weights).loss(step).item()
    assert loss == pytest.approx(reference_msd(step, weights or dict.fromkeys(NAMES, 1.0)), rel=1e-12)
    if weights is None:  # the mean of a and c, not two thirds of it
        assert loss == pytest.approx(msd(modality_weights={"a": 1.0, "c": 1.0}).loss(step).item(), rel=1e-12)


def test_no_weighted_modality_in_the_batch_gives_a_connected_zero():
    present = torch.zeros(B, 3, dtype=torch.bool)
    present[:, 2] = True  # only c, which weighs 0
    step = step_of(present)
    step.single_modality("student").logits.requires_grad_(True)
    loss = msd(modality_weights={"a": 1.0}).loss(step)
    assert loss.item() == 0.0 and loss.requires_grad


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"a": 0.0, "b": 0}, "msd.modality_weights are all 0 ({'a': 0.0, 'b': 0.0}): give at least one modality a positive weight"),
        ({"a": 1.0, "b": -0.5}, "msd.modality_weights must be >= 0; got {'b': -0.5}"),
    ],
)
def test_weights_that_cannot_form_a_mean_are_refused_when_the_term_is_made(weights, message):
    with pytest.raises(ValueError) as error:
        ModalitySpecificDistillation(modality_weights=weights)
    assert str(error.value) == message


def test_a_weight_for_a_modality_the_networks_lack_is_refused_at_setup():
    term = ModalitySpecificDistillation(modality_weights={"a": 1.0, "z": 2.0})
    with pytest.raises(ValueError, match=r"msd.modality_weights names \['z'\], which the networks do not have \(a, b, c\)"):
        term.setup(None, Module(), "fit")
