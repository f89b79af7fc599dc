"""The layouts by name, and `auto`: the layout whose training file is in the folder."""

from pathlib import Path

from gramkd.data.image_text import hateful_memes, nlvr2, snli_ve
from gramkd.data.image_text.layout import Layout
from gramkd.errors import GramkdError

READERS = {"hateful_memes": hateful_memes, "snli_ve": snli_ve, "nlvr2": nlvr2}
FORMATS = (*READERS, "auto")


def layout_of(format: str, folder: Path) -> Layout:
    if format not in FORMATS:
        raise GramkdError(f"unknown data.format '{format}'; choose one of: {', '.join(FORMATS)}")
    if format != "auto":
        return READERS[format].LAYOUT
    found = [name for name, reader in READERS.items() if reader.detect(folder)]
    if len(found) == 1:
        return READERS[found[0]].LAYOUT
    if not found:
        raise GramkdError(
            f"{folder} holds none of train.jsonl (hateful_memes), snli_ve_train.jsonl (snli_ve), train.json (nlvr2); "
            "point data.path at the data folder"
        )
    raise GramkdError(f"{folder} looks like several layouts ({', '.join(found)}); set data.format to one of them")
