"""The Gram term's variants (row source, layers, centring, diagonal, reduction) and the fixed
`gram_mse` metric, each against an independent float64 computation written out here."""

import itertools

import numpy as np
import pytest
import torch

from gramkd.distill import GramDistillation
from gramkd.distill.gram_rows import uniform_layer_map
from gramkd.distill.row_cache import RowCache
from gramkd.distill.step import DistillStep
from gramkd.modules import DistillModule
from gramkd.nets import MultimodalNet, MultimodalOutput

B, M, DS, DT = 6, 4, 5, 7


def presence(generator) -> torch.Tensor:
    mask = torch.rand(B, M, generator=generator) < 0.7
    mask[0] = torch.tensor([True, False, False, False])  # a lone modality: no off-diagonal pair
    mask[1] = True
    mask[2] = torch.tensor([False, True, True, False])
    return mask


def output(generator, mask, width, layers) -> MultimodalOutput:
    def rows(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    return MultimodalOutput(
        logits=rows(B, 3),
        modality_features=rows(B, M, width),
        modality_mask=mask,
        layer_features=rows(B, layers, M, width),
        prefusion_features=rows(B, M, width),
    )


def make_step(seed=0, student_layers=2, teacher_layers=4) -> DistillStep:
    generator = torch.Generator().manual_seed(seed)
    mask = presence(generator)
    student, teacher = output(generator, mask, DS, student_layers), output(generator, mask, DT, teacher_layers)
    return DistillStep({"index": torch.arange(B)}, student, teacher)


# ---- the independent computation: per sample, per pair, in numpy ----


def reference_gram(rows: np.ndarray, present: np.ndarray, normalize: bool, center: bool) -> np.ndarray:
    """[M, M] Gram matrix of one sample's rows [M, D]; zero where a modality is absent."""
    rows = rows.copy()
    if center and present.any():
        rows[present] -= rows[present].mean(0)
    gram = np.zeros((len(rows), len(rows)))
    for i, j in itertools.product(np.flatnonzero(present), repeat=2):
        u, v = rows[i], rows[j]
        if normalize:
            u = u / max(np.linalg.norm(u), 1e-12)
            v = v / max(np.linalg.norm(v), 1e-12)
        gram[i, j] = u @ v
    return gram


def reference_loss(student, teacher, present, normalize=True, center=False, exclude_diagonal=None, reduction="sample") -> float:
    """Squared differences of the Gram matrices over each sample's kept pairs; the mean per sample
    then over samples with a pair, or over all pairs. The diagonal is left out by default iff
    `normalize`."""
    exclude_diagonal = normalize if exclude_diagonal is None else exclude_diagonal
    per_sample = []
    for b in range(len(present)):
        gs = reference_gram(student[b], present[b], normalize, center)
        gt = reference_gram(teacher[b], present[b], normalize, center)
        kept = [(i, j) for i, j in itertools.product(np.flatnonzero(present[b]), repeat=2) if not exclude_diagonal or i != j]
        per_sample.append([(gs[i, j] - gt[i, j]) ** 2 for i, j in kept])
    if reduction == "pair":
        pairs = [d for sample in per_sample for d in sample]
        return sum(pairs) / max(len(pairs), 1)
    means = [np.mean(sample) for sample in per_sample if sample]
    return float(np.mean(means)) if means else 0.0


def rows_of(output: MultimodalOutput, source: str) -> np.ndarray:
    return getattr(output, source).detach().numpy()


# ---- the variants ----

VARIANTS = list(itertools.product([False, True], [None, True, False], ["sample", "pair"]))


@pytest.mark.parametrize("source", ["modality_features", "prefusion_features"])
@pytest.mark.parametrize("center, exclude_diagonal, reduction", VARIANTS)
def test_single_depth_sources_match_the_reference(source, center, exclude_diagonal, reduction):
    step = make_step()
    term = GramDistillation(source=source, center=center, exclude_diagonal=exclude_diagonal, reduction=reduction)
    present = step.mask.numpy()
    expected = reference_loss(
        rows_of(step.student, source), rows_of(step.teacher, source), present, True, center, exclude_diagonal, reduction
    )
    assert term.loss(step).item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_pre_and_post_fusion_rows_give_different_losses():
    step = make_step()
    post, pre = (GramDistillation(source=s).loss(step).item() for s in ("modality_features", "prefusion_features"))
    assert post != pytest.approx(pre)


@pytest.mark.parametrize(
    "student_layers, teacher_layers, expected", [(2, 4, [1, 3]), (3, 4, [1, 2, 3]), (4, 2, [0, 0, 1, 1]), (3, 3, [0, 1, 2])]
)
def test_student_layers_are_mapped_uniformly_onto_the_teachers_last_to_last(student_layers, teacher_layers, expected):
    assert uniform_layer_map(student_layers, teacher_layers) == expected


@pytest.mark.parametrize("student_layers, teacher_layers", [(2, 4), (3, 2)])
@pytest.mark.parametrize("center, exclude_diagonal, reduction", VARIANTS)
def test_layers_average_the_loss_over_the_mapped_pairs(student_layers, teacher_layers, center, exclude_diagonal, reduction):
    step = make_step(1, student_layers, teacher_layers)
    term = GramDistillation(source="layer_features", center=center, exclude_diagonal=exclude_diagonal, reduction=reduction)
    student, teacher, present = rows_of(step.student, "layer_features"), rows_of(step.teacher, "layer_features"), step.mask.numpy()
    mapping = [round(np.ceil((i + 1) * teacher_layers / student_layers)) - 1 for i in range(student_layers)]
    per_pair = [
        reference_loss(student[:, s], teacher[:, t], present, True, center, exclude_diagonal, reduction) for s, t in enumerate(mapping)
    ]
    assert term.loss(step).item() == pytest.approx(np.mean(per_pair), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("source", ["modality_features", "layer_features"])
def test_the_teachers_grams_read_from_the_row_cache_give_the_same_loss_and_gradient(source):
    """Online the teacher's Gram matrices are made inside the loss's autograd node; cached they
    are read per row: the same bits either way."""
    step = make_step(2)
    rows = getattr(step.student, source)
    term = GramDistillation(source=source, center=True)

    def loss_and_gradient():
        rows.grad = None
        loss = term.loss(step)
        loss.backward()
        return loss.detach(), rows.grad.clone()

    rows.requires_grad_(True)
    expected = loss_and_gradient()
    term._teacher_grams = RowCache(B)  # as the term makes it when the module caches the teacher
    for _ in range(2):  # fills the cache, then reads it
        loss, gradient = loss_and_gradient()
        assert torch.equal(loss, expected[0]) and torch.equal(gradient, expected[1])
    assert term._teacher_grams.complete


def test_the_diagonal_default_follows_normalisation():
    step = make_step(3)
    student, teacher, present = rows_of(step.student, "modality_features"), rows_of(step.teacher, "modality_features"), step.mask.numpy()
    for normalize in ("l2", "none"):
        expected = reference_loss(student, teacher, present, normalize == "l2", exclude_diagonal=normalize == "l2")
        assert GramDistillation(normalize=normalize).loss(step).item() == pytest.approx(expected, rel=1e-12)


def test_layers_without_layer_features_are_refused_naming_the_fix():
    step = make_step()
    step.teacher.layer_features = None
    with pytest.raises(ValueError, match=r"gram.source=layer_features needs the teacher's layer_features, .*set the net's `layers`"):
        GramDistillation(source="layer_features").loss(step)
    with pytest.raises(ValueError, match="gram.reduction='mean' is not one of sample, pair"):
        GramDistillation(reduction="mean")


# ---- gram_mse: one definition in every run ----


def test_gram_mse_is_one_fixed_definition_whatever_the_gram_term():
    torch.manual_seed(0)
    modalities = {"a": (6,), "b": (4,), "c": (5,)}
    teacher = MultimodalNet(modalities, 5, width=16, depth=1, heads=2, dropout=0.0).eval()
    g = torch.Generator().manual_seed(1)
    present = {m: torch.rand(9, generator=g) < 0.8 for m in modalities}
    batch = {"inputs": {m: torch.randn(9, *s, generator=g) for m, s in modalities.items()}, "present": present, "index": torch.arange(9)}
    for terms in (
        [],
        [GramDistillation(center=True, exclude_diagonal=False, reduction="pair")],
        [GramDistillation(source="prefusion_features")],
    ):
        module = DistillModule(MultimodalNet(modalities, 5, width=8, depth=1, heads=2, dropout=0.0), teacher, optimizer=torch.optim.SGD)
        for term in terms:
            module.register_term(term)
        step = module.distill_step(batch)
        student, teacher_rows = (o.modality_features.detach().double().numpy() for o in (step.student, step.teacher))
        expected = reference_loss(
            student, teacher_rows, step.mask.numpy(), normalize=True, center=False, exclude_diagonal=True, reduction="sample"
        )
        assert module.gram_distance(step).item() == pytest.approx(expected, rel=1e-5)
        if terms:
            assert terms[0].loss(step).item() != pytest.approx(expected, rel=1e-3)  # the term's own value is another number
