import numpy as np

SPLITS = ("train", "val", "test")


def stratified_split(labels: np.ndarray, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Split row indices into train/val/test keeping each class's share in every split.

    `fractions` maps each of train/val/test to its share (they must sum to 1). Within each class,
    rows are shuffled with `seed` and cut by rounding, the test split taking the remainder, so the
    result depends only on the labels, the fractions and the seed. Indices come back sorted.
    """
    _check_fractions(fractions)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        n_train = round(len(rows) * fractions["train"])
        n_val = round(len(rows) * fractions["val"])
        parts["train"].append(rows[:n_train])
        parts["val"].append(rows[n_train : n_train + n_val])
        parts["test"].append(rows[n_train + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def _check_fractions(fractions: dict[str, float]) -> None:
    from gramkd.errors import GramkdError

    if set(fractions) != set(SPLITS):
        raise GramkdError(f"data.split must give exactly {list(SPLITS)}, got {sorted(fractions)}")
    if any(f < 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise GramkdError(f"data.split fractions must be non-negative and sum to 1, got {dict(fractions)}")
