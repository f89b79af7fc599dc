import hashlib
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

DATA_SUFFIXES = (".npy", ".npz", ".safetensors")


def config_dir() -> Path:
    """The Hydra config tree: inside the installed wheel, or the repo's conf/ for an editable install."""
    packaged = Path(__file__).parent / "conf"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "conf"


def available(group: str) -> list[str]:
    """Option names of a config group, e.g. available("experiment") -> ["mfeat/teacher", ...].

    Files whose name starts with `_` are parts that options include (e.g. experiment/mfeat/_student),
    not options."""
    root = config_dir() / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml") if not p.name.startswith("_"))


def register_resolvers() -> None:
    """Make gramkd's own interpolations (`${gramkd.fingerprint:…}`) known to OmegaConf.

    Call it before a gramkd config is resolved: `compose()` does, and so must every Hydra app."""
    OmegaConf.register_new_resolver("gramkd.fingerprint", files_fingerprint, replace=True)


def compose(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose a config of gramkd's tree, inside a running Hydra app or from plain Python."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name=config_name, overrides=overrides)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)


def files_fingerprint(folder: str | Path | None) -> str:
    """A short hash of the names, sizes and modification times of the array files in `folder`.

    `data=features` puts it in the data config (`${gramkd.fingerprint:${.path}}`), so a cached
    teacher trained on other files under the same path is not reused. Reads no data.
    """
    path = Path(str(folder)).expanduser() if folder is not None else None
    if path is None or not path.is_dir():
        return "none"
    entries = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir() if p.suffix in DATA_SUFFIXES and p.is_file())
    return hashlib.sha256(repr(entries).encode()).hexdigest()[:16]
