"""What a layout reader yields, and the JSON-lines reading every layout shares.

Every problem is a one-line GramkdError that names the file (relative to the data folder) and
the line, so that a user can open the file at the place to fix.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gramkd.errors import GramkdError


@dataclass(frozen=True)
class Example:
    """One labelled example: its text, its images (one per image modality, in order) and where it came from."""

    where: str  # "train.jsonl line 17"
    text: str
    label: int
    images: tuple[Path, ...]
    shown: tuple[str, ...]  # how messages name the images: as relative to the data folder as possible


@dataclass(frozen=True)
class Line:
    """One JSON object of a split file, with what messages need to point at it."""

    where: str
    record: dict
    number: int = 0  # the line in its file

    def field(self, name: str, fields: tuple[str, ...]):
        if name not in self.record:
            raise GramkdError(f"{self.where} has no '{name}' field; every line needs {', '.join(repr(f) for f in fields)}")
        return self.record[name]

    def text(self, name: str, fields: tuple[str, ...]) -> str:
        value = self.field(name, fields)
        if not isinstance(value, str):
            raise GramkdError(f"{self.where}: '{name}' must be a string, got {json.dumps(value)}")
        return value

    def label(self, name: str, fields: tuple[str, ...], classes: dict) -> int:
        value = self.field(name, fields)
        for key, label in classes.items():
            if type(key) is type(value) and key == value:  # type first: True is not the label 1
                return label
        allowed = ", ".join(json.dumps(k) for k in classes)
        raise GramkdError(f"{self.where}: label {json.dumps(value)} is not one of {allowed}")


def shown_path(path: Path, folder: Path) -> str:
    """`path` relative to the data folder where it lies inside it, else in full."""
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def read_json_lines(file: Path, folder: Path) -> Iterator[Line]:
    """The JSON objects of a JSON-lines file, one per non-blank line, read as they are asked for."""
    name = shown_path(file, folder)
    try:
        with open(file, encoding="utf-8") as handle:
            for number, raw in enumerate(handle, start=1):
                if raw.strip():
                    yield Line(f"{name} line {number}", _parse(raw, name, number), number)
    except UnicodeDecodeError as err:
        raise GramkdError(f"{name} is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8 JSON lines") from None


def _parse(raw: str, name: str, number: int) -> dict:
    try:
        record = json.loads(raw.rstrip("\r\n"))
    except json.JSONDecodeError as err:
        raise GramkdError(f"{name} line {number} is not valid JSON ({err.msg} at column {err.pos + 1}); fix or remove that line") from None
    if not isinstance(record, dict):
        raise GramkdError(f"{name} line {number} is not a JSON object; each line must be one {{...}} record")
    return record
