from pathlib import Path

from omegaconf import DictConfig


def config_dir() -> Path:
    """The Hydra config tree: inside the installed wheel, or the repo's conf/ for an editable install."""
    packaged = Path(__file__).parent / "conf"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "conf"


def available(group: str) -> list[str]:
    """Option names of a config group, e.g. available("experiment") -> ["mfeat/teacher", ...]."""
    root = config_dir() / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def compose(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose a config of gramkd's tree, inside a running Hydra app or from plain Python."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name=config_name, overrides=overrides)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)
