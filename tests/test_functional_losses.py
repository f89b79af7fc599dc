"""The pure distillation losses against independent loop computations, and their invariances."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gramkd.distill.functional import (
    gram_loss,
    gram_matrix,
    kd_loss,
    rkd_angle_loss,
    rkd_distance_loss,
    similarity_preserving_loss,
)

B, M, DS, DT = 5, 4, 6, 9


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)


def random_features(generator, width=DS, batch=B, modalities=M):
    return torch.randn(batch, modalities, width, generator=generator, dtype=torch.float64)


def random_mask(generator):
    mask = torch.rand(B, M, generator=generator) < 0.6
    mask[0] = False  # a sample with no modality
    mask[1] = torch.tensor([False, True, False, False])  # a sample with a single modality
    mask[2] = True
    return mask


# ---- independent float64 references, one Python loop per index ----


def reference_gram(features, mask, normalize):
    rows = features.detach().numpy()
    batch, modalities, _ = rows.shape
    gram = np.zeros((batch, modalities, modalities))
    for b in range(batch):
        for i in range(modalities):
            for j in range(modalities):
                if mask[b, i] and mask[b, j]:
                    u, v = rows[b, i], rows[b, j]
                    if normalize:
                        u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
                    gram[b, i, j] = float(np.dot(u, v))
    return gram


def reference_smooth_l1(difference):
    return 0.5 * difference**2 if abs(difference) < 1 else abs(difference) - 0.5


def reference_gram_loss(student, teacher, mask, normalize, exclude_diagonal, distance, center=False, reduction="sample"):
    """The loss by its definition: per sample, the mean over its kept pairs; then the mean over the
    samples that have a pair ("sample"), or the mean over all kept pairs of the batch ("pair")."""
    gram = reference_centered_gram if center else reference_gram
    student_gram, teacher_gram = gram(student, mask, normalize), gram(teacher, mask, normalize)
    per_sample = []
    for b in range(student.shape[0]):
        differences = [
            student_gram[b, i, j] - teacher_gram[b, i, j]
            for i in range(student.shape[1])
            for j in range(student.shape[1])
            if mask[b, i] and mask[b, j] and not (exclude_diagonal and i == j)
        ]
        per_sample.append([d**2 if distance == "mse" else reference_smooth_l1(d) for d in differences])
    if reduction == "pair":
        pairs = [value for sample in per_sample for value in sample]
        return sum(pairs) / max(len(pairs), 1)
    means = [sum(sample) / len(sample) for sample in per_sample if sample]
    return sum(means) / max(len(means), 1)


def reference_pairwise_distances(x):
    return np.array([[np.linalg.norm(x[i] - x[j]) for j in range(len(x))] for i in range(len(x))])


def reference_rkd_distance(student, teacher):
    def normalized(x):
        distances = reference_pairwise_distances(x)
        return distances / distances[~np.eye(len(x), dtype=bool)].mean()

    differences = normalized(student.numpy()) - normalized(teacher.numpy())
    return np.mean([reference_smooth_l1(d) for d in differences.flat])


def reference_rkd_angle(student, teacher):
    def cosines(x):
        def direction(a, b):
            difference = x[b] - x[a]
            norm = np.linalg.norm(difference)
            return difference / norm if norm > 0 else difference

        n = len(x)
        return np.array([np.dot(direction(a, b), direction(a, c)) for a in range(n) for b in range(n) for c in range(n)])

    differences = cosines(student.numpy()) - cosines(teacher.numpy())
    return np.mean([reference_smooth_l1(d) for d in differences])


# ---- gram_matrix / gram_loss ----


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("masked", [True, False])
def test_gram_matrix_matches_loop_reference(generator, normalize, masked):
    features = random_features(generator)
    mask = random_mask(generator) if masked else None
    expected = reference_gram(features, mask if masked else torch.ones(B, M, dtype=torch.bool), normalize)
    np.testing.assert_allclose(gram_matrix(features, mask, normalize).numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["sample", "pair"])
@pytest.mark.parametrize("distance", ["mse", "smooth_l1"])
@pytest.mark.parametrize("exclude_diagonal", [False, True])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("masked", [True, False])
def test_gram_loss_matches_loop_reference_with_different_widths(
    generator, reduction, distance, exclude_diagonal, normalize, center, masked
):
    student, teacher = random_features(generator, DS), random_features(generator, DT)
    mask = random_mask(generator) if masked else None
    loss = gram_loss(student, teacher, mask, normalize, exclude_diagonal, distance, center, reduction)
    reference_mask = mask if masked else torch.ones(B, M, dtype=torch.bool)
    expected = reference_gram_loss(student, teacher, reference_mask, normalize, exclude_diagonal, distance, center, reduction)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("normalize", [True, False])
def test_the_diagonal_is_left_out_by_default_exactly_when_rows_are_normalised(generator, normalize):
    student, teacher, mask = random_features(generator, DS), random_features(generator, DT), random_mask(generator)
    expected = reference_gram_loss(student, teacher, mask, normalize, normalize, "mse")
    assert gram_loss(student, teacher, mask, normalize).item() == pytest.approx(expected, rel=1e-12)
    assert gram_loss(student, teacher, mask, normalize).item() != pytest.approx(
        gram_loss(student, teacher, mask, normalize, not normalize).item()
    )


def test_a_sample_counts_once_whatever_its_modalities(generator):
    """Per-sample mean: a batch of one 2-modality sample and one 4-modality sample weighs both
    the same; the pair mean gives the 4-modality one 12 of 14 pairs."""
    student, teacher = random_features(generator, DS, batch=2), random_features(generator, DT, batch=2)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    alone = [gram_loss(student[b : b + 1], teacher[b : b + 1], mask[b : b + 1]).item() for b in range(2)]
    assert gram_loss(student, teacher, mask).item() == pytest.approx(sum(alone) / 2, rel=1e-12)
    assert gram_loss(student, teacher, mask, reduction="pair").item() == pytest.approx((2 * alone[0] + 12 * alone[1]) / 14, rel=1e-12)


def test_gram_loss_smooth_l1_differs_from_mse_on_large_differences(generator):
    student, teacher = random_features(generator), 3 * random_features(generator)
    mse = gram_loss(student, teacher, normalize=False, distance="mse")
    smooth_l1 = gram_loss(student, teacher, normalize=False, distance="smooth_l1")
    assert smooth_l1 < mse / 2


@pytest.mark.parametrize("distance", ["mse", "smooth_l1"])
@pytest.mark.parametrize("normalize", [True, False])
def test_gram_loss_gradcheck(generator, normalize, distance):
    student = random_features(generator, DS).requires_grad_()
    teacher = random_features(generator, DT).requires_grad_()
    mask = random_mask(generator)
    assert torch.autograd.gradcheck(lambda s, t: gram_loss(s, t, mask, normalize=normalize, distance=distance), (student, teacher))


@pytest.mark.parametrize("normalize", [True, False])
def test_teacher_wider_by_an_isometry_gives_zero_loss(generator, normalize):
    student = random_features(generator, DS)
    isometry = torch.linalg.qr(torch.randn(DT, DS, generator=generator, dtype=torch.float64)).Q.T  # [DS, DT]
    teacher = student @ isometry
    assert teacher.shape[-1] == DT
    assert gram_loss(student, teacher, random_mask(generator), normalize).item() == pytest.approx(0, abs=1e-24)


def test_permuting_the_batch_permutes_the_gram_matrices(generator):
    features, mask = random_features(generator), random_mask(generator)
    permutation = torch.randperm(B, generator=generator)
    torch.testing.assert_close(gram_matrix(features[permutation], mask[permutation]), gram_matrix(features, mask)[permutation])
    student, teacher = features, random_features(generator, DT)
    torch.testing.assert_close(gram_loss(student[permutation], teacher[permutation], mask[permutation]), gram_loss(student, teacher, mask))


@pytest.mark.parametrize("distance", ["mse", "smooth_l1"])
@pytest.mark.parametrize("normalize", [True, False])
def test_identical_features_give_exactly_zero(generator, normalize, distance):
    features = random_features(generator)
    assert gram_loss(features, features.clone(), random_mask(generator), normalize, distance=distance).item() == 0.0


@pytest.mark.parametrize("replacement", [1e300, float("inf"), float("nan")])
@pytest.mark.parametrize("normalize", [True, False])
def test_absent_modalities_do_not_affect_loss_or_receive_gradient(generator, normalize, replacement):
    student, teacher, mask = random_features(generator), random_features(generator, DT), random_mask(generator)
    expected = gram_loss(student, teacher, mask, normalize)
    corrupted = student.masked_fill(~mask.unsqueeze(-1), replacement).requires_grad_()
    loss = gram_loss(corrupted, teacher.masked_fill(~mask.unsqueeze(-1), replacement), mask, normalize)
    loss.backward()
    assert loss.item() == expected.item()
    assert torch.all(corrupted.grad[~mask] == 0)
    assert corrupted.grad[mask].abs().sum() > 0


def test_normalized_gram_ignores_positive_scaling_of_rows(generator):
    features, mask = random_features(generator), random_mask(generator)
    scales = torch.rand(B, M, 1, generator=generator, dtype=torch.float64) * 100 + 0.01
    torch.testing.assert_close(gram_matrix(features * scales, mask), gram_matrix(features, mask))
    sample_scales = scales[:, :1]
    torch.testing.assert_close(
        gram_matrix(features * sample_scales, mask, normalize=False),
        gram_matrix(features, mask, normalize=False) * sample_scales.square(),
    )


@pytest.mark.parametrize(
    "mask, exclude_diagonal",
    [
        (torch.zeros(B, M, dtype=torch.bool), False),
        (torch.eye(B, M, dtype=torch.bool), True),  # one modality per sample: only diagonal pairs
    ],
    ids=["nothing-present", "only-diagonal"],
)
def test_no_present_pair_gives_connected_zero(generator, mask, exclude_diagonal):
    student = random_features(generator).requires_grad_()
    loss = gram_loss(student, random_features(generator, DT), mask, exclude_diagonal=exclude_diagonal)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.all(student.grad == 0)


# ---- kd_loss ----


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 7.5])
def test_kd_loss_equals_scaled_kl_div(generator, temperature):
    student, teacher = torch.randn(2, 8, 10, generator=generator, dtype=torch.float64) * 3
    expected = F.kl_div(F.log_softmax(student / temperature, -1), F.softmax(teacher / temperature, -1), reduction="batchmean")
    torch.testing.assert_close(kd_loss(student, teacher, temperature), expected * temperature**2)


def test_kd_loss_mask_equals_loss_on_selected_rows(generator):
    student, teacher = torch.randn(2, 8, 10, generator=generator, dtype=torch.float64)
    mask = torch.tensor([True, False, True, True, False, False, True, False])
    torch.testing.assert_close(kd_loss(student, teacher, 3.0, mask), kd_loss(student[mask], teacher[mask], 3.0))


def test_kd_loss_is_zero_for_equal_logits_and_when_no_row_selected(generator):
    student = torch.randn(8, 10, generator=generator, dtype=torch.float64).requires_grad_()
    assert kd_loss(student, student.detach().clone()).item() == pytest.approx(0, abs=1e-14)
    loss = kd_loss(student, torch.randn(8, 10, dtype=torch.float64), mask=torch.zeros(8, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(student.grad == 0)


@pytest.mark.parametrize("masked", [False, True])
def test_kd_loss_gradcheck(generator, masked):
    student, teacher = torch.randn(2, 6, 5, generator=generator, dtype=torch.float64).requires_grad_()
    mask = torch.tensor([True, False, True, True, False, True]) if masked else None
    assert torch.autograd.gradcheck(lambda s, t: kd_loss(s, t, 2.0, mask), (student, teacher))


# ---- similarity preserving and RKD ----


def test_similarity_preserving_matches_hand_computation(generator):
    student = torch.randn(6, 2, 3, generator=generator, dtype=torch.float64)  # flattened to [6, 6]
    teacher = torch.randn(6, 11, generator=generator, dtype=torch.float64)

    def row_normalized_similarity(x):
        rows = x.reshape(len(x), -1).numpy()
        similarity = np.array([[np.dot(rows[i], rows[j]) for j in range(len(rows))] for i in range(len(rows))])
        return np.stack([row / np.linalg.norm(row) for row in similarity])

    difference = row_normalized_similarity(student) - row_normalized_similarity(teacher)
    expected = sum(d**2 for d in difference.flat) / 6**2
    assert similarity_preserving_loss(student, teacher).item() == pytest.approx(expected, rel=1e-12)


def test_rkd_losses_match_loop_reference(generator):
    student = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    teacher = torch.randn(6, 9, generator=generator, dtype=torch.float64) * 5
    assert rkd_distance_loss(student, teacher).item() == pytest.approx(reference_rkd_distance(student, teacher), rel=1e-9)
    assert rkd_angle_loss(student, teacher).item() == pytest.approx(reference_rkd_angle(student, teacher), rel=1e-9)


@pytest.mark.parametrize("loss_fn", [rkd_distance_loss, rkd_angle_loss, similarity_preserving_loss])
def test_relational_losses_are_zero_when_student_equals_teacher(generator, loss_fn):
    embeddings = torch.randn(7, 5, generator=generator, dtype=torch.float64)
    assert loss_fn(embeddings, embeddings.clone()).item() == 0.0


@pytest.mark.parametrize("scale", [0.01, 3.0, 250.0])
def test_rkd_distance_is_invariant_to_uniform_scaling(generator, scale):
    student = torch.randn(7, 5, generator=generator, dtype=torch.float64)
    teacher = torch.randn(7, 8, generator=generator, dtype=torch.float64)
    reference = rkd_distance_loss(student, teacher)
    assert reference > 0
    torch.testing.assert_close(rkd_distance_loss(student * scale, teacher), reference)
    torch.testing.assert_close(rkd_distance_loss(student, teacher * scale), reference)


@pytest.mark.parametrize("scale", [0.01, 3.0, 250.0])
def test_rkd_angle_is_invariant_to_scaling_and_translation(generator, scale):
    student = torch.randn(7, 5, generator=generator, dtype=torch.float64)
    teacher = torch.randn(7, 8, generator=generator, dtype=torch.float64)
    shift = torch.randn(5, generator=generator, dtype=torch.float64) * 10
    reference = rkd_angle_loss(student, teacher)
    assert reference > 0
    torch.testing.assert_close(rkd_angle_loss(student * scale + shift, teacher), reference)


def test_rkd_distance_on_a_single_sample_is_connected_zero(generator):
    student = torch.randn(1, 5, generator=generator, dtype=torch.float64).requires_grad_()
    loss = rkd_distance_loss(student, torch.randn(1, 8, dtype=torch.float64))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(student.grad == 0)


# ---- errors name the shapes at fault ----


def features_of(*shape):
    return torch.zeros(*shape)


@pytest.mark.parametrize(
    "call, expected_fragments",
    [
        (lambda: gram_matrix(features_of(4, 8)), ["(4, 8)"]),
        (lambda: gram_matrix(features_of(4, 3, 8), torch.ones(4, 2, dtype=torch.bool)), ["(4, 2)", "(4, 3)"]),
        (lambda: gram_matrix(features_of(4, 3, 8), torch.ones(4, 3)), ["bool"]),
        (lambda: gram_loss(features_of(4, 3, 8), features_of(5, 3, 8)), ["(4, 3, 8)", "(5, 3, 8)"]),
        (lambda: gram_loss(features_of(4, 3, 8), features_of(4, 2, 16)), ["(4, 3, 8)", "(4, 2, 16)"]),
        (lambda: gram_loss(features_of(4, 3, 8), features_of(4, 3, 8), distance="l1"), ["'l1'", "mse", "smooth_l1"]),
        (lambda: kd_loss(features_of(4, 10), features_of(4, 9)), ["(4, 10)", "(4, 9)"]),
        (lambda: kd_loss(features_of(4, 10), features_of(4, 10), mask=torch.ones(5, dtype=torch.bool)), ["(5,)", "(4,)"]),
        (lambda: kd_loss(features_of(4, 10), features_of(4, 10), temperature=0.0), ["temperature"]),
        (lambda: similarity_preserving_loss(features_of(4, 8), features_of(6, 8)), ["(4, 8)", "(6, 8)"]),
        (lambda: rkd_distance_loss(features_of(4, 8), features_of(3, 2, 2)), ["(4, 8)", "(3, 2, 2)"]),
        (lambda: rkd_angle_loss(features_of(4), features_of(4, 8)), ["(4,)", "(4, 8)"]),
    ],
)
def test_bad_input_raises_value_error_naming_it(call, expected_fragments):
    with pytest.raises(ValueError) as error:
        call()
    for fragment in expected_fragments:
        assert re.search(re.escape(fragment), str(error.value)), f"{fragment!r} not in {error.value}"


# ---- centring: the mean modality row of each sample is removed first ----


def reference_centered_gram(features, mask, normalize):
    rows = features.detach().numpy().copy()
    for b in range(rows.shape[0]):
        present = [i for i in range(rows.shape[1]) if mask[b, i]]
        if present:
            mean = rows[b, present].mean(axis=0)
            for i in present:
                rows[b, i] = rows[b, i] - mean
    with np.errstate(invalid="ignore"):  # a lone modality centres to the zero row: its cosine is 0
        return np.nan_to_num(reference_gram(torch.from_numpy(rows), mask, normalize))


@pytest.mark.parametrize("normalize", [True, False])
def test_centered_gram_matches_loop_reference(generator, normalize):
    features, mask = random_features(generator), random_mask(generator)
    expected = reference_centered_gram(features, mask, normalize)
    np.testing.assert_allclose(gram_matrix(features, mask, normalize, center=True).numpy(), expected, atol=1e-10)


def test_centering_ignores_a_component_shared_by_all_modalities(generator):
    student, teacher = random_features(generator), random_features(generator, width=DS)
    shared = torch.randn(B, 1, DS, generator=generator, dtype=torch.float64) * 10
    mask = torch.ones(B, M, dtype=torch.bool)
    plain = gram_loss(student, teacher, mask, center=True)
    assert gram_loss(student + shared, teacher, mask, center=True) == pytest.approx(float(plain), abs=1e-12)
    assert gram_loss(student + shared, teacher, mask, center=False) != pytest.approx(float(gram_loss(student, teacher, mask)))
    student.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: gram_loss(s, teacher, random_mask(torch.Generator().manual_seed(3)), center=True), (student,))


# ---- the fast path: same bits as the plain float32 operations, exact gradients ----


def plain_gram_matrix(features, mask, normalize, center):
    """gram_matrix as it was written before the fast path: where-masking, weighted centring,
    F.normalize, matmul (the float32 results must not change by a bit)."""
    if mask is not None:
        features = torch.where(mask.unsqueeze(-1), features, 0.0)
    if center and mask is None:
        features = features - features.mean(dim=1, keepdim=True)
    elif center:
        weights = mask.unsqueeze(-1).to(features.dtype)
        mean = (features * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1)
        features = torch.where(mask.unsqueeze(-1), features - mean, 0.0)
    if normalize:
        features = F.normalize(features, dim=-1)
    return features @ features.transpose(-1, -2)


def plain_gram_loss(student, teacher, mask, normalize, exclude_diagonal, distance, center, reduction="pair"):
    student_gram = plain_gram_matrix(student, mask, normalize, center)
    teacher_gram = plain_gram_matrix(teacher, mask, normalize, center)
    if distance == "mse":
        elementwise = (student_gram - teacher_gram).square()
    else:
        elementwise = F.smooth_l1_loss(student_gram, teacher_gram, reduction="none", beta=1.0)
    batch, modalities, _ = student_gram.shape
    present = torch.ones(batch, modalities, dtype=torch.bool) if mask is None else mask
    pairs = present.unsqueeze(2) & present.unsqueeze(1)
    if exclude_diagonal:
        pairs = pairs & ~torch.eye(modalities, dtype=torch.bool)
    if reduction == "sample":
        per_sample = torch.where(pairs, elementwise, 0.0).sum((1, 2)) / pairs.sum((1, 2)).clamp(min=1)
        return per_sample.sum() / pairs.any(2).any(1).sum().clamp(min=1)
    return torch.where(pairs, elementwise, 0.0).sum() / pairs.sum().clamp(min=1)


OPTIONS = [(n, c, e, d) for n in (True, False) for c in (True, False) for e in (False, True) for d in ("mse", "smooth_l1")]


def masks_of(generator, batch, modalities):
    some = torch.rand(batch, modalities, generator=generator) < 0.6
    some[0] = False
    return {"none": None, "all": torch.ones(batch, modalities, dtype=torch.bool), "some": some}


@pytest.mark.parametrize("normalize,center,exclude_diagonal,distance", OPTIONS)
def test_float32_results_are_bit_identical_to_the_plain_operations(generator, normalize, center, exclude_diagonal, distance):
    """Bit for bit: the Gram matrices, the pair mean, and the per-sample mean where it is the pair
    mean (all present); the per-sample mean of a masked batch to float32 rounding."""
    student = torch.randn(64, 6, 8, generator=generator)
    teacher = torch.randn(64, 6, 128, generator=generator)
    for name, mask in masks_of(generator, 64, 6).items():
        args = (mask, normalize, exclude_diagonal, distance, center)
        assert torch.equal(gram_matrix(teacher, mask, normalize, center), plain_gram_matrix(teacher, mask, normalize, center)), name
        assert torch.equal(gram_loss(student, teacher, *args, "pair"), plain_gram_loss(student, teacher, *args)), name
        per_sample = gram_loss(student, teacher, *args, "sample")
        if name == "some":
            assert torch.allclose(per_sample, plain_gram_loss(student, teacher, *args, "sample"), rtol=1e-6, atol=0), name
        else:
            assert torch.equal(per_sample, plain_gram_loss(student, teacher, *args, "pair")), name


@pytest.mark.parametrize("reduction", ["sample", "pair"])
@pytest.mark.parametrize("normalize,center,exclude_diagonal,distance", OPTIONS)
def test_written_out_gradient_equals_autograd_through_the_plain_operations(
    generator, normalize, center, exclude_diagonal, distance, reduction
):
    student, teacher = random_features(generator, DS), random_features(generator, DT)
    for name, mask in masks_of(generator, B, M).items():
        if mask is not None:  # absent rows may hold anything: they get no gradient either way
            student = student.masked_fill(~mask.unsqueeze(-1), float("nan"))
        args = (mask, normalize, exclude_diagonal, distance, center, reduction)
        fast_s, fast_t = student.clone().requires_grad_(), teacher.clone().requires_grad_()
        (0.37 * gram_loss(fast_s, fast_t, *args)).backward()  # a weight: the backward scales the forward's gradient
        plain_s, plain_t = student.clone().requires_grad_(), teacher.clone().requires_grad_()
        (0.37 * plain_gram_loss(plain_s, plain_t, *args)).backward()
        torch.testing.assert_close(fast_s.grad, plain_s.grad, rtol=1e-12, atol=1e-14, msg=name)
        torch.testing.assert_close(fast_t.grad, plain_t.grad, rtol=1e-12, atol=1e-14, msg=name)


def test_a_prepared_mask_gives_the_same_bits_and_is_checked(generator):
    from gramkd.distill.functional.gram import GramMask

    student, teacher = torch.randn(8, 3, 5, generator=generator), torch.randn(8, 3, 7, generator=generator)
    mask = torch.rand(8, 3, generator=generator) < 0.7
    prepared = GramMask(mask)
    for args in ((True, False, "mse", True), (False, True, "smooth_l1", False)):
        assert torch.equal(gram_loss(student, teacher, prepared, *args), gram_loss(student, teacher, mask, *args))
    assert torch.equal(gram_matrix(teacher, prepared, True, True), gram_matrix(teacher, mask, True, True))
    with pytest.raises(ValueError, match=re.escape("[batch, modalities] = (4, 3)")):
        gram_matrix(teacher[:4], prepared)


@pytest.mark.parametrize("center", [False, True])
def test_the_gradient_made_in_the_forward_keeps_the_rows_precision_under_autocast(generator, center):
    """The forward computes the gradient too, under whatever autocast the caller runs; its
    matrix product must still run at the rows' precision, as it did in the backward pass."""
    from gramkd.distill.functional.gram import GramMask, _gradients, _GramRows, gram_loss_options

    features = torch.randn(16, 3, 32, generator=generator)
    difference = torch.randn(16, 3, 3, generator=generator).to(torch.bfloat16)  # an autocast Gram difference
    difference = difference + difference.transpose(1, 2)
    present = torch.rand(16, 3, generator=generator) < 0.7  # the masking path's (all present takes the path tested below)
    mask, options = GramMask(present), gram_loss_options(True, None, "mse", center, "sample")
    rows = _GramRows.of(features, mask, True, center)
    plain = _gradients((True, False), rows, difference, mask, options)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = _gradients((True, False), rows, difference, mask, options)[0]
    assert plain.dtype == under_autocast.dtype == torch.float32
    assert torch.equal(under_autocast, plain)


@pytest.mark.parametrize("center", [False, True])
def test_with_every_modality_present_the_shorter_gradient_agrees_with_the_general_one_under_autocast(generator, center):
    """Every modality present, the loss takes a path of its own (fewer operations for the
    gradient); under autocast it must give the general path's loss, bit for bit, and its
    gradient, made at the rows' precision, to the bf16 rounding of the Gram matrices (the general
    path weighs the pairs in bf16, this one in float32)."""
    from gramkd.distill.functional.gram import GramMask

    features, teacher = torch.randn(16, 3, 32, generator=generator), torch.randn(16, 3, 48, generator=generator)

    def loss_and_gradient(mask):
        leaf = features.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = gram_loss(leaf, teacher, mask, True, None, "mse", center, "pair")  # the masking path's sample mean rounds otherwise
        (0.37 * loss).backward()
        return loss, leaf.grad

    general_mask = GramMask(torch.ones(16, 3, dtype=torch.bool))
    general_mask.all_present = False  # every row present, taken through the masking path
    (fast_loss, fast_gradient), (loss, gradient) = loss_and_gradient(GramMask(None, 16, 3)), loss_and_gradient(general_mask)
    assert fast_loss.dtype == torch.bfloat16 and fast_gradient.dtype == torch.float32
    assert torch.equal(fast_loss, loss)
    torch.testing.assert_close(fast_gradient, gradient, rtol=0, atol=1e-2 * gradient.abs().max().item())


def test_the_fused_loss_refuses_a_second_derivative(generator):
    student, teacher, mask = random_features(generator, DS).requires_grad_(), random_features(generator, DT), random_mask(generator)
    (grad,) = torch.autograd.grad(gram_loss(student, teacher, mask), student, create_graph=True)
    with pytest.raises(RuntimeError, match="does not require grad"):  # an error, never a silent zero
        torch.autograd.grad(grad.sum(), student)
    weight = torch.tensor(0.5, requires_grad=True)  # the gradient reaching the node now requires grad
    (grad,) = torch.autograd.grad(weight * gram_loss(student, teacher, mask), student, create_graph=True)
    with pytest.raises(RuntimeError, match="not have been used"):  # as under once_differentiable: an error
        torch.autograd.grad(grad.sum(), weight)


# ---- RelationalKD's angle_samples ----


def fused_step(student_fused: torch.Tensor, teacher_fused: torch.Tensor):
    from gramkd.distill.step import DistillStep
    from gramkd.nets import MultimodalOutput

    def out(fused):
        batch = len(fused)
        return MultimodalOutput(torch.zeros(batch, 2), torch.zeros(batch, 1, 3), torch.ones(batch, 1, dtype=torch.bool), fused)

    return DistillStep({}, out(student_fused), out(teacher_fused))


@pytest.mark.parametrize("angle_samples", [None, 3, 5, 50])
def test_rkd_angle_samples_takes_the_angle_term_over_the_first_rows_only(generator, angle_samples):
    from gramkd.distill import RelationalKD

    student, teacher = (
        torch.randn(9, 4, generator=generator, dtype=torch.float64),
        torch.randn(9, 6, generator=generator, dtype=torch.float64),
    )
    term = RelationalKD(distance_weight=25.0, angle_weight=50.0, angle_samples=angle_samples)
    n = len(student) if angle_samples is None else min(angle_samples, len(student))
    expected = 25.0 * reference_rkd_distance(student, teacher) + 50.0 * reference_rkd_angle(student[:n], teacher[:n])
    assert term.loss(fused_step(student, teacher)).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("bad", [0, 2, 2.5, True, "64"])
def test_rkd_angle_samples_refuses_what_is_not_a_triplet_count(bad):
    from gramkd.distill import RelationalKD

    with pytest.raises(ValueError, match=r"rkd.angle_samples must be an integer >= 3 \(a triplet\) or null for the whole batch; got"):
        RelationalKD(angle_samples=bad)
