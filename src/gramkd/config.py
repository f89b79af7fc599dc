from pathlib import Path


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
