"""A run's `metrics.json`: its final figures (plus `params`, `wall_time_s`, `modalities`, and the
test figures of its teacher and references as `<name>/test/…`), written by every run and read by
`gramkd report`."""

import json
from pathlib import Path

from gramkd.errors import GramkdError


def write_metrics(path: Path, metrics: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(metrics.items())), indent=2) + "\n")


def read_metrics(path: Path) -> dict | None:
    """The metrics of a finished run; None when `path` does not exist (the run did not finish)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise GramkdError(f"{path} is not valid JSON ({err}); delete it or rerun that job") from None
