"""Write a small paired-features folder for `gramkd fit experiment=features/kd_gram data.path=DIR`.

The rows come from gramkd's synthetic generator (the label is which modalities agree about a
latent factor), renamed to look like embeddings you might have computed yourself:

    python examples/make_features.py my_features                      # image.npy, text.npy, ... + labels.npy
    python examples/make_features.py my_features --layout one-npz     # one features.npz with a key per modality
    python examples/make_features.py my_features --missing nan --missing-rate 0.1 --split-file
"""

import argparse
from pathlib import Path

import numpy as np

LAYOUTS = ("npy", "npz", "safetensors", "one-npz", "one-safetensors")
NAMES = ("image", "text", "audio", "tabular")


def write_features(
    folder: Path,
    features: dict[str, np.ndarray],
    labels: np.ndarray,
    layout: str = "npy",
    split: np.ndarray | None = None,
    present: dict[str, np.ndarray] | None = None,
    missing: str = "nan",
) -> None:
    """Write `features` (modality -> [N, ...]) in one of LAYOUTS, with labels.npy and optional split.npy.

    Absent rows (False in `present`) become all-NaN rows (`missing="nan"`) or a
    `<modality>.present.npy` mask (`missing="mask"`).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    folder.mkdir(parents=True, exist_ok=True)
    features = dict(features)
    for name, mask in (present or {}).items():
        if missing == "nan":
            features[name] = features[name].copy()
            features[name][~mask] = np.nan
        else:
            np.save(folder / f"{name}.present.npy", mask)
    if layout == "npy":
        for name, x in features.items():
            np.save(folder / f"{name}.npy", x)
    elif layout == "npz":
        for name, x in features.items():
            np.savez(folder / f"{name}.npz", x)
    elif layout == "one-npz":
        np.savez(folder / "features.npz", **features)
    else:
        from safetensors.numpy import save_file

        if layout == "safetensors":
            for name, x in features.items():
                save_file({"features": np.ascontiguousarray(x)}, folder / f"{name}.safetensors")
        else:
            save_file({name: np.ascontiguousarray(x) for name, x in features.items()}, folder / "features.safetensors")
    np.save(folder / "labels.npy", labels)
    if split is not None:
        np.save(folder / "split.npy", split)


def synthetic_features(rows: int, seed: int, sequence: str | None = None, missing_rate: float = 0.0):
    """(features, labels, present) from gramkd's synthetic generator, with readable modality names."""
    from gramkd.data import SyntheticDataModule

    arrays = SyntheticDataModule(num_modalities=len(NAMES), num_samples=rows, data_seed=seed, missing_rate=missing_rate).load()
    features = {name: x for name, x in zip(NAMES, arrays.features.values())}
    present = {name: p for name, p in zip(NAMES, arrays.present.values())}
    if sequence is not None:
        features[sequence] = features[sequence].reshape(rows, 4, -1)  # 4 steps of dim/4: a [N, T, D] modality
    return features, arrays.labels, present


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--layout", choices=LAYOUTS, default="npy")
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sequence", choices=NAMES, help="store this modality as a sequence [N, 4, D/4]")
    parser.add_argument("--missing", choices=("nan", "mask"), default="nan", help="how absent modalities are marked")
    parser.add_argument("--missing-rate", type=float, default=0.0, help="share of rows each modality is absent from")
    parser.add_argument("--split-file", action="store_true", help="also write split.npy (60/20/20, 'train'/'val'/'test')")
    args = parser.parse_args()

    features, labels, present = synthetic_features(args.rows, args.seed, args.sequence, args.missing_rate)
    split = None
    if args.split_file:
        split = np.random.default_rng(args.seed).choice(["train", "val", "test"], size=args.rows, p=[0.6, 0.2, 0.2])
    write_features(args.folder, features, labels, args.layout, split, present if args.missing_rate > 0 else None, args.missing)
    written = ", ".join(sorted(p.name for p in args.folder.iterdir()))
    print(f"wrote {args.rows} rows of {', '.join(features)} to {args.folder}: {written}")
    print(f"train on it: gramkd fit experiment=features/kd_gram data.path={args.folder}")


if __name__ == "__main__":
    main()
