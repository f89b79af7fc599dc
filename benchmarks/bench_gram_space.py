"""Would giving up the Gram matrices' bits bring the term under 3 % of the mfeat step? (Not part of `make bench`.)

The teacher's cosine Gram matrix of centred rows, as the term makes it when the teacher runs online
(its [64, 6, 128] rows centred and normalised, then multiplied), against the cheapest rewrite that
changes its bits: the product of the raw rows first, then the centring and normalisation done on
the [64, 6, 6] result. Interleaved rounds in a tight loop, on random rows with a shared component
(as centring expects); medians, and the largest difference between the two.

    python benchmarks/bench_gram_space.py [--repeats 7] [--number 3000]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402

from gramkd.distill.functional import gram_matrix  # noqa: E402

from common import emit, interleaved, median  # noqa: E402


def in_gram_space(rows: torch.Tensor) -> torch.Tensor:
    gram = torch.bmm(rows, rows.transpose(1, 2))
    row_means = gram.mean(2, keepdim=True)
    centred = gram - row_means - row_means.transpose(1, 2) + row_means.mean(1, keepdim=True)
    inverse_norm = centred.diagonal(0, 1, 2).clamp_min(1e-24).rsqrt()
    return centred * inverse_norm.unsqueeze(2) * inverse_norm.unsqueeze(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--number", type=int, default=3000)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = torch.randn(64, 6, 128) + 0.3
    with torch.no_grad():
        times = interleaved(
            {"rows (the code)": lambda: gram_matrix(rows, None, True, True), "gram space": lambda: in_gram_space(rows)},
            args.repeats,
            args.number,
        )
        difference = float((gram_matrix(rows, None, True, True) - in_gram_space(rows)).abs().max())
    us = {name: 1e6 * median(t) for name, t in times.items()}
    emit({"item": "gram_space", "us_per_call": us, "saved_us": us["rows (the code)"] - us["gram space"], "max_abs_difference": difference})


if __name__ == "__main__":
    main()
