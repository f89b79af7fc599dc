"""The teacher's Gram matrices, cached per row, are computed once per row and read back exactly."""

import torch

from gramkd.distill.functional import gram_loss, gram_loss_to_target, gram_matrix
from gramkd.distill.row_cache import RowCache


def test_each_row_is_computed_once_and_read_back_exactly():
    values = torch.randn(10, 3, 3)
    cache, calls = RowCache(10), []

    def compute(index):
        calls.append(index.tolist())
        return values[index]

    for index in (torch.tensor([1, 4, 7]), torch.tensor([0, 2]), torch.tensor([7, 1, 4]), torch.tensor([2, 4])):
        assert torch.equal(cache.get_or_compute(index, lambda index=index: compute(index)), values[index])
    assert calls == [[1, 4, 7], [0, 2]]  # the last two batches hold only rows seen before
    assert torch.equal(cache.get_or_compute(torch.tensor([2, 3]), lambda: compute(torch.tensor([2, 3]))), values[[2, 3]])
    assert calls[-1] == [2, 3]  # one new row: the batch is computed


def test_loss_against_a_precomputed_teacher_gram_equals_the_full_loss():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 4, 8, requires_grad=True), torch.randn(5, 4, 16)
    mask = torch.rand(5, 4) > 0.3
    for normalize, center, diagonal, distance in (
        (True, False, False, "mse"),
        (True, True, True, "smooth_l1"),
        (False, False, False, "mse"),
    ):
        full = gram_loss(student, teacher, mask, normalize, diagonal, distance, center)
        cached = gram_loss_to_target(student, gram_matrix(teacher, mask, normalize, center), mask, normalize, diagonal, distance, center)
        assert torch.equal(full, cached)


def test_once_every_row_is_filled_reads_skip_the_check_and_stay_exact():
    values = torch.randn(6, 2, 2)
    cache, calls = RowCache(6), []

    def compute(index):
        calls.append(index.tolist())
        return values[index]

    for index in (torch.tensor([5, 0, 3]), torch.tensor([1, 2, 4])):
        cache.get_or_compute(index, lambda index=index: compute(index))
    assert cache.complete and len(calls) == 2
    for index in (torch.tensor([4, 4, 0]), torch.tensor([2, 5, 1, 3])):
        assert torch.equal(cache.get_or_compute(index, lambda index=index: compute(index)), values[index])
    assert len(calls) == 2
